// traps: one misbehaviour per run, chosen by argv[1], for the kernel's fault-containment tests.
// Each mode first prints `traps: <mode>`. Modes that trap (the task must die, alone):
//   unreachable  executes `unreachable`
//   oob          loads 256 MiB past the end of memory
//   stack        recurses until the stack overflows
//   oom          grows memory until memory.grow fails, then aborts (env.abort, "out of memory")
// Modes that get an error code back print it by name and exit 0 when it is the expected one:
//   badptr       msg_send on pointer 0xFFFFFFF0            -> badptr: KERN_INVALID_ADDRESS
//   forged       send to name 12345, which it never held   -> forged: MACH_SEND_INVALID_DEST
//   oversized    a real buffer whose header size is 64 MiB + 8 bytes (> messageSizeMax)
//                                                          -> oversized: MACH_SEND_TOO_LARGE
//   fullqueue    qlimit 1, two sends with timeout 0         -> fullqueue: first KERN_SUCCESS, second MACH_SEND_TIMED_OUT
// Usage: traps <mode>; no or unknown mode: usage on stderr, exit 2.
import {
  args, check, Disposition, eprintln, exit, HEADER_BYTES, KernReturn, kernReturnName, Message, MESSAGE_SIZE_MAX,
  msg_send, Port, println, send,
} from "../sdk/norma";

let depth: i32 = 0;

/** Not a tail call (the addition follows it), so it cannot become a loop. */
function recurse(n: i32): i32 {
  depth++;
  if (n == -1) return depth; // never true: n only grows
  return recurse(n + 1) + n;
}

/** Prints `mode: NAME` and exits 0 if the code is the expected one, 1 otherwise. */
function report(mode: string, kr: i32, expected: i32): void {
  println(mode + ": " + kernReturnName(kr));
  exit(kr == expected ? 0 : 1);
}

export function _start(): void {
  const argv = args();
  const mode = argv.length > 1 ? argv[1] : "";
  println("traps: " + mode);
  if (mode == "unreachable") {
    unreachable();
  } else if (mode == "oob") {
    const end = <usize>memory.size() << 16;
    println(load<u32>(end + (256 << 20)).toString()); // using the value keeps the load
  } else if (mode == "stack") {
    println(recurse(0).toString());
  } else if (mode == "oom") {
    while (memory.grow(256) >= 0) {} // 16 MiB at a time, until the host refuses
    abort("out of memory");
  } else if (mode == "badptr") {
    report(mode, msg_send(0xfffffff0, HEADER_BYTES, 0), KernReturn.INVALID_ADDRESS);
  } else if (mode == "forged") {
    const msg = new Message(64);
    report(mode, send(msg.setDestination(12345, Disposition.COPY_SEND), 0), KernReturn.SEND_INVALID_DEST);
  } else if (mode == "oversized") {
    // A buffer that really holds the claimed size, so only the size limit is wrong.
    const size = MESSAGE_SIZE_MAX + 8;
    const msg = new Message(size);
    const port = Port.allocate();
    check(Port.makeSend(port), "port_insert_right");
    msg.setDestination(port, Disposition.COPY_SEND);
    store<i32>(msg.buf, size, 4);
    report(mode, msg_send(msg.buf, size, 0), KernReturn.SEND_TOO_LARGE);
  } else if (mode == "fullqueue") {
    const port = Port.allocate();
    check(Port.makeSend(port), "port_insert_right");
    check(Port.setQlimit(port, 1), "port_set_qlimit");
    const msg = new Message(64);
    msg.setDestination(port, Disposition.COPY_SEND);
    const first = send(msg, 0);
    const second = send(msg, 0);
    println(mode + ": first " + kernReturnName(first) + ", second " + kernReturnName(second));
    exit(first == KernReturn.SUCCESS && second == KernReturn.SEND_TIMED_OUT ? 0 : 1);
  } else {
    eprintln("usage: traps unreachable|oob|stack|oom|badptr|forged|oversized|fullqueue");
    exit(2);
  }
}
