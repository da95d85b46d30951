// A tiny check list for tasks that verify what the kernel did: each check prints one line, and the
// task exits 0 only when every check passed.
import { exit, println } from "../../sdk/norma";

let failures = 0;

/** Prints `ok   what` or `FAIL what (got ..., want ...)`. */
export function expect(what: string, got: string, want: string): void {
  if (got == want) {
    println("ok   " + what + ": " + got);
  } else {
    failures++;
    println("FAIL " + what + ": got " + got + ", want " + want);
  }
}

export function expectU32(what: string, got: u32, want: u32): void {
  expect(what, got.toString(), want.toString());
}

/** Prints the verdict and exits 0 when every check passed, 1 otherwise. */
export function finish(task: string): void {
  println(failures == 0 ? task + ": all checks passed" : task + ": " + failures.toString() + " check(s) FAILED");
  exit(failures == 0 ? 0 : 1);
}
