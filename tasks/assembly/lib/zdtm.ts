// What every zdtm task shares: the protocol lines, silent checks, the standard wait step and the
// WASI clocks. The protocol (the freeze harness relies on it exactly):
//   1. build the state, then `ready()` prints `zdtm: ready`;
//   2. the wait step: at least ~200 ms of the task's own (virtual monotonic) time, printing NOTHING,
//      so that a run frozen and resumed anywhere in it prints what an uninterrupted run prints;
//   3. `verdict()` prints `zdtm: pass <name>` and exits 0, or `zdtm: FAIL <name>: <what>`, exit 1.
// Checks made after `ready()` are silent: `expect*` only records the first failure for the verdict.
import { exit, KernReturn, kernReturnName, println, sleep } from "../../sdk/norma";

let taskName = "zdtm";
let failures = 0;
let firstFailure = "";

/** Names the task for its protocol lines. Call first. */
export function begin(name: string): void {
  taskName = name;
}

/** Step 1 done: the state is built. Nothing may be printed from here until the verdict. */
export function ready(): void {
  println("zdtm: ready");
}

/** Setup went wrong (before `ready`, or when going on makes no sense): FAIL at once. */
export function fail(what: string): void {
  println("zdtm: FAIL " + taskName + ": " + what);
  exit(1);
}

/** A setup step that must return KERN_SUCCESS. */
export function must(kr: i32, what: string): void {
  if (kr != KernReturn.SUCCESS) fail(what + ": " + kernReturnName(kr));
}

/** Records a failed check without printing anything; returns ok. */
export function expect(ok: bool, what: string): bool {
  if (!ok) {
    if (failures == 0) firstFailure = what;
    failures++;
  }
  return ok;
}

export function expectEq(what: string, got: i64, want: i64): bool {
  if (got == want) return true;
  return expect(false, what + ": got " + got.toString() + ", want " + want.toString());
}

/** A kern_return_t check: `what: got X, want Y` by name. */
export function expectKr(what: string, got: i32, want: i32 = KernReturn.SUCCESS): bool {
  if (got == want) return true;
  return expect(false, what + ": got " + kernReturnName(got) + ", want " + kernReturnName(want));
}

/** Step 3: prints the verdict and exits (0 only when every check passed). */
export function verdict(): void {
  if (failures == 0) {
    println("zdtm: pass " + taskName);
    exit(0);
  }
  const more = failures > 1 ? " (and " + (failures - 1).toString() + " more)" : "";
  println("zdtm: FAIL " + taskName + ": " + firstFailure + more);
  exit(1);
}

/** The standard wait step: 4 x 50 ms of virtual time, so a freeze can land between two sleeps. */
export const WAIT_MS: i64 = 200;
export function waitStep(): void {
  for (let i = 0; i < 4; i++) expectKr("clock_sleep", sleep(50));
}

// WASI clocks (the SDK declares only fd_write and the args calls).
@external("wasi_snapshot_preview1", "clock_time_get")
declare function clock_time_get(id: i32, precision: i64, timeOut: usize): i32;

export const CLOCK_REALTIME: i32 = 0;
export const CLOCK_MONOTONIC: i32 = 1;
export const MS: i64 = 1_000_000; // nanoseconds

/** A clock reading in nanoseconds (a fresh 8-byte slot per call: threads may interleave). */
export function clockNs(id: i32): i64 {
  const slot = heap.alloc(8);
  const errno = clock_time_get(id, 1, slot);
  const v = load<i64>(slot);
  heap.free(slot);
  if (errno != 0) fail("clock_time_get(" + id.toString() + "): errno " + errno.toString());
  return v;
}

/** The task's virtual monotonic clock: continues across a freeze, never goes backwards. */
export function monotonicNs(): i64 {
  return clockNs(CLOCK_MONOTONIC);
}

/** The wall clock of the node the task runs on now. */
export function realtimeNs(): i64 {
  return clockNs(CLOCK_REALTIME);
}
