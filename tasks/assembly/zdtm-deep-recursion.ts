// zdtm-deep-recursion: a deep stack of asyncify frames. The task recurses DEPTH = 2000 levels
// (not a tail call: every level keeps an i32, an i64 and an f64 local live across the call) and
// blocks at the bottom in the wait step (4 x 50 ms sleeps), so a freeze captures 2000 frames. Then
// it unwinds, each level folding its own locals into a checksum, and compares the checksum with
// the one an identical recursion computed before `zdtm: ready` without blocking. Output:
//   zdtm: ready
//   zdtm: pass zdtm-deep-recursion
import { begin, expect, expectEq, ready, verdict, waitStep } from "./lib/zdtm";

const DEPTH = 2000;
let blockAtBottom = false;
let deepest = -1;

function mix(h: u64, v: u64): u64 {
  h = (h ^ v) * 0x100000001b3;
  return h ^ (h >> 29);
}

function recurse(depth: i32, seed: u32): u64 {
  const a: u32 = seed * 0x9e3779b1 + <u32>depth;
  const b: i64 = (<i64>a << 11) ^ (<i64>depth * 7919);
  const c: f64 = <f64>depth * 0.5 + <f64>(a & 0xff);
  let below: u64 = 0x1234567;
  if (depth > 0) {
    below = recurse(depth - 1, a ^ (a >> 15));
  } else {
    deepest = depth;
    if (blockAtBottom) waitStep();
  }
  return mix(mix(mix(below, a), <u64>b), reinterpret<u64>(c)) + <u64>depth;
}

export function _start(): void {
  begin("zdtm-deep-recursion");
  const want = recurse(DEPTH, 42);
  blockAtBottom = true;
  deepest = -1;
  ready();

  const got = recurse(DEPTH, 42);
  expectEq("reached the bottom", deepest, 0);
  expect(got == want, "checksum after blocking at depth 2000 differs from the one computed without blocking");
  verdict();
}
