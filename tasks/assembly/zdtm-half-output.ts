// zdtm-half-output: output continuity across a freeze. The EXCEPTION to the rule that nothing is
// printed between `zdtm: ready` and the verdict: during its wait this task writes one 10240-byte
// line to stdout in 10 fd_write calls of 1024 bytes, with a 50 ms sleep before each (500 ms in
// all), so a freeze lands between two pieces of one line (the first half is 5 pieces, the second
// half 5 more; the last piece ends with the newline). The harness compares the concatenated stdout
// of a frozen-and-resumed run with an uninterrupted one. The line is 320 segments of 32 bytes,
// segment k being k as 5 digits, '-', then "abcdefghijklmnopqrstuvwxyz". It checks that every
// fd_write succeeded in full and that the line buffer is intact afterwards. Output:
//   zdtm: ready
//   00000-abcdefghijklmnopqrstuvwxyz00001-abcdefghijklmnopqrstuvwxyz ... 00319-abcdefghijklmnopqrstuvwxyz
//   zdtm: pass zdtm-half-output
import { fd_write, sleep } from "../sdk/norma";
import { begin, expect, expectEq, expectKr, ready, verdict } from "./lib/zdtm";

const SEGMENTS = 320;
const SEGMENT_BYTES = 32;
const LINE_BYTES = SEGMENTS * SEGMENT_BYTES; // 10240
const PIECES = 10;
const PIECE_BYTES = LINE_BYTES / PIECES; // 1024

function segmentByte(i: i32): u8 {
  const k = i / SEGMENT_BYTES;
  const j = i % SEGMENT_BYTES;
  if (j < 5) {
    let d = k;
    for (let n = 4 - j; n > 0; n--) d /= 10;
    return <u8>(48 + d % 10);
  }
  return j == 5 ? 45 : <u8>(97 + j - 6);
}

export function _start(): void {
  begin("zdtm-half-output");
  const line = heap.alloc(LINE_BYTES + 1);
  for (let i = 0; i < LINE_BYTES; i++) store<u8>(line + i, segmentByte(i));
  store<u8>(line + LINE_BYTES, 10);
  const iov = heap.alloc(16); // iovec + nwritten
  ready();

  let written = 0;
  for (let p = 0; p < PIECES; p++) {
    expectKr("clock_sleep", sleep(50));
    const len = PIECE_BYTES + (p == PIECES - 1 ? 1 : 0); // the newline goes with the last piece
    store<u32>(iov, line + p * PIECE_BYTES);
    store<u32>(iov, len, 4);
    if (expectEq("fd_write errno", fd_write(1, iov, 1, iov + 8), 0)) written += load<i32>(iov, 8);
  }
  expectEq("bytes written", written, LINE_BYTES + 1);
  let intact = 0;
  for (let i = 0; i < LINE_BYTES; i++) if (load<u8>(line + i) == segmentByte(i)) intact++;
  expectEq("line buffer intact", intact, LINE_BYTES);
  expect(load<u8>(line + LINE_BYTES) == 10, "newline intact");
  verdict();
}
