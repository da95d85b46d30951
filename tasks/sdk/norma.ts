// The AssemblyScript SDK for norma tasks. It mirrors src/abi/syscalls.ts: a change there is a change here.
//
// Two layers:
//  - the raw syscalls (`port_allocate`, `msg_send`, ...), declared exactly as the ABI defines them;
//  - a friendly layer (Port, Message, send/receive, Thread, names, MemoryObject, print, args, exit).
// Rule of the friendly layer: a call that produces a value (a name, a thread id, a mapping) returns
// it and treats any failure as fatal (`check`); a call that produces nothing returns its
// kern_return_t so the caller can branch on timeouts, dead ports and the like.
//
// Tasks are compiled with `--runtime stub` (a bump allocator, no GC): threads are fibers with their
// own stacks that a tracing GC would not scan. Memory is therefore never reclaimed except for the
// most recent block, so loops reuse their Messages instead of allocating new ones.
//
// Out-parameters live in a fresh 8-byte heap block per call rather than in one static slot: a
// blocking syscall completes while other threads run, so a shared slot could be overwritten before
// its owner reads it.

// ---------------------------------------------------------------------------------------------
// Constants (src/abi/syscalls.ts, src/limits.ts).
// ---------------------------------------------------------------------------------------------

export namespace KernReturn {
  export const SUCCESS: i32 = 0;
  export const INVALID_ADDRESS: i32 = 1;
  export const NO_SPACE: i32 = 3;
  export const INVALID_ARGUMENT: i32 = 4;
  export const RESOURCE_SHORTAGE: i32 = 6;
  export const NAME_EXISTS: i32 = 13;
  export const ABORTED: i32 = 14;
  export const INVALID_NAME: i32 = 15;
  export const INVALID_RIGHT: i32 = 17;
  export const INVALID_VALUE: i32 = 18;
  export const UREFS_OVERFLOW: i32 = 19;
  export const INVALID_CAPABILITY: i32 = 20;
  export const NOT_FOUND: i32 = 56;
  export const DEAD_NAME: i32 = 0x4e4f0001;
  export const OPERATION_TIMED_OUT: i32 = 49;
  export const MEMORY_NOT_ACQUIRED: i32 = 0x4e4f0002;
  export const SEND_INVALID_DATA: i32 = 0x10000002;
  export const SEND_INVALID_DEST: i32 = 0x10000003;
  export const SEND_TIMED_OUT: i32 = 0x10000004;
  export const SEND_INVALID_REPLY: i32 = 0x10000009;
  export const SEND_INVALID_RIGHT: i32 = 0x1000000a;
  export const SEND_INVALID_MEMORY: i32 = 0x1000000c;
  export const SEND_TOO_LARGE: i32 = 0x1000000e;
  export const SEND_INVALID_HEADER: i32 = 0x10000010;
  export const RCV_INVALID_NAME: i32 = 0x10004002;
  export const RCV_TIMED_OUT: i32 = 0x10004003;
  export const RCV_TOO_LARGE: i32 = 0x10004004;
  export const RCV_PORT_DIED: i32 = 0x10004009;
}

/** The stable name of a code, spelled as the host spells it (`kernReturnName` in syscalls.ts). */
export function kernReturnName(code: i32): string {
  switch (code) {
    case KernReturn.SUCCESS: return "KERN_SUCCESS";
    case KernReturn.INVALID_ADDRESS: return "KERN_INVALID_ADDRESS";
    case KernReturn.NO_SPACE: return "KERN_NO_SPACE";
    case KernReturn.INVALID_ARGUMENT: return "KERN_INVALID_ARGUMENT";
    case KernReturn.RESOURCE_SHORTAGE: return "KERN_RESOURCE_SHORTAGE";
    case KernReturn.NAME_EXISTS: return "KERN_NAME_EXISTS";
    case KernReturn.ABORTED: return "KERN_ABORTED";
    case KernReturn.INVALID_NAME: return "KERN_INVALID_NAME";
    case KernReturn.INVALID_RIGHT: return "KERN_INVALID_RIGHT";
    case KernReturn.INVALID_VALUE: return "KERN_INVALID_VALUE";
    case KernReturn.UREFS_OVERFLOW: return "KERN_UREFS_OVERFLOW";
    case KernReturn.INVALID_CAPABILITY: return "KERN_INVALID_CAPABILITY";
    case KernReturn.NOT_FOUND: return "KERN_NOT_FOUND";
    case KernReturn.DEAD_NAME: return "KERN_DEAD_NAME";
    case KernReturn.OPERATION_TIMED_OUT: return "KERN_OPERATION_TIMED_OUT";
    case KernReturn.MEMORY_NOT_ACQUIRED: return "KERN_MEMORY_NOT_ACQUIRED";
    case KernReturn.SEND_INVALID_DATA: return "MACH_SEND_INVALID_DATA";
    case KernReturn.SEND_INVALID_DEST: return "MACH_SEND_INVALID_DEST";
    case KernReturn.SEND_TIMED_OUT: return "MACH_SEND_TIMED_OUT";
    case KernReturn.SEND_INVALID_REPLY: return "MACH_SEND_INVALID_REPLY";
    case KernReturn.SEND_INVALID_RIGHT: return "MACH_SEND_INVALID_RIGHT";
    case KernReturn.SEND_INVALID_MEMORY: return "MACH_SEND_INVALID_MEMORY";
    case KernReturn.SEND_TOO_LARGE: return "MACH_SEND_TOO_LARGE";
    case KernReturn.SEND_INVALID_HEADER: return "MACH_SEND_INVALID_HEADER";
    case KernReturn.RCV_INVALID_NAME: return "MACH_RCV_INVALID_NAME";
    case KernReturn.RCV_TIMED_OUT: return "MACH_RCV_TIMED_OUT";
    case KernReturn.RCV_TOO_LARGE: return "MACH_RCV_TOO_LARGE";
    case KernReturn.RCV_PORT_DIED: return "MACH_RCV_PORT_DIED";
  }
  return "KERN_UNKNOWN(" + code.toString() + ")";
}

/** Bits of a `port_type` result (MACH_PORT_TYPE_*); 0 means the name denotes nothing. */
export namespace PortType {
  export const NONE: u32 = 0;
  export const SEND: u32 = 1 << 16;
  export const RECEIVE: u32 = 1 << 17;
  export const SEND_ONCE: u32 = 1 << 18;
  export const PORT_SET: u32 = 1 << 19;
  export const DEAD_NAME: u32 = 1 << 20;
}

/** The right argument of port_allocate, port_mod_refs, port_get_refs (MACH_PORT_RIGHT_*). */
export namespace PortRight {
  export const SEND: i32 = 0;
  export const RECEIVE: i32 = 1;
  export const SEND_ONCE: i32 = 2;
  export const PORT_SET: i32 = 3;
  export const DEAD_NAME: i32 = 4;
}

/** How a right travels in a message (MACH_MSG_TYPE_*); a receiver always sees a MOVE_*. */
export namespace Disposition {
  export const NONE: i32 = 0;
  export const MOVE_RECEIVE: i32 = 16;
  export const MOVE_SEND: i32 = 17;
  export const MOVE_SEND_ONCE: i32 = 18;
  export const COPY_SEND: i32 = 19;
  export const MAKE_SEND: i32 = 20;
  export const MAKE_SEND_ONCE: i32 = 21;
}

/** Notification message ids (mach/notify.h). */
export namespace NotifyId {
  export const PORT_DELETED: i32 = 65;
  export const NO_SENDERS: i32 = 70;
  export const SEND_ONCE: i32 = 71;
  export const DEAD_NAME: i32 = 72;
}

/** The `variant` argument of port_request_notification. */
export namespace NotifyVariant {
  export const DEAD_NAME: i32 = 0;
  export const NO_SENDERS: i32 = 1;
}

/** Modes of memory_object_acquire: many readers or one writer. */
export namespace AccessMode {
  export const READ: i32 = 1;
  export const WRITE: i32 = 2;
}

/** Descriptor types inside a complex message. */
export namespace DescriptorType {
  export const PORT: u32 = 0;
  export const OUT_OF_LINE: u32 = 1;
}

/** MACH_PORT_NULL: no port. */
export const PORT_NULL: u32 = 0;
/** Timeouts are milliseconds of virtual time; -1 waits forever, 0 does not wait. */
export const FOREVER: i32 = -1;
/** Header layout (MessageHeader in syscalls.ts). */
export const HEADER_BYTES: i32 = 24;
export const DESCRIPTOR_BYTES: i32 = 16;
export const MSGH_COMPLEX: u32 = 0x80000000;
/** src/limits.ts. */
export const MESSAGE_SIZE_MAX: i32 = 64 * 1024 * 1024;
export const PORT_QUEUE_LENGTH_MAX: i32 = 1024;

// ---------------------------------------------------------------------------------------------
// The raw syscalls: module `norma`, every pointer an offset into this task's memory.
// ---------------------------------------------------------------------------------------------

@external("norma", "port_allocate")
export declare function port_allocate(right: i32, nameOut: usize): i32;
@external("norma", "port_destroy")
export declare function port_destroy(name: u32): i32;
@external("norma", "port_deallocate")
export declare function port_deallocate(name: u32): i32;
@external("norma", "port_mod_refs")
export declare function port_mod_refs(name: u32, right: i32, delta: i32): i32;
@external("norma", "port_insert_right")
export declare function port_insert_right(name: u32, disposition: i32): i32;
@external("norma", "port_type")
export declare function port_type(name: u32, typeOut: usize): i32;
@external("norma", "port_get_refs")
export declare function port_get_refs(name: u32, right: i32, refsOut: usize): i32;
@external("norma", "port_move_member")
export declare function port_move_member(member: u32, set: u32): i32;
@external("norma", "port_set_qlimit")
export declare function port_set_qlimit(name: u32, limit: i32): i32;
@external("norma", "port_request_notification")
export declare function port_request_notification(name: u32, variant: i32, notify: u32): i32;
@external("norma", "msg_send")
export declare function msg_send(msg: usize, size: i32, timeoutMs: i32): i32;
@external("norma", "msg_receive")
export declare function msg_receive(name: u32, buf: usize, bufSize: i32, timeoutMs: i32): i32;
@external("norma", "thread_create")
export declare function thread_create(entry: usize, entryLen: i32, arg: i32, stack: usize, stackSize: i32, tidOut: usize): i32;
@external("norma", "thread_join")
export declare function thread_join(tid: i32, timeoutMs: i32): i32;
@external("norma", "thread_yield")
export declare function thread_yield(): void;
@external("norma", "thread_self")
export declare function thread_self(): i32;
@external("norma", "clock_sleep")
export declare function clock_sleep(ms: i32): i32;
@external("norma", "name_register")
export declare function name_register(str: usize, len: i32, name: u32): i32;
@external("norma", "name_lookup")
export declare function name_lookup(str: usize, len: i32, timeoutMs: i32, nameOut: usize): i32;
@external("norma", "memory_object_create")
export declare function memory_object_create(size: i32, nameOut: usize): i32;
@external("norma", "memory_object_map")
export declare function memory_object_map(object: u32, offset: i32, size: i32, address: usize, mappingOut: usize): i32;
@external("norma", "memory_object_acquire")
export declare function memory_object_acquire(mapping: i32, mode: i32, timeoutMs: i32): i32;
@external("norma", "memory_object_release")
export declare function memory_object_release(mapping: i32): i32;
@external("norma", "memory_object_unmap")
export declare function memory_object_unmap(mapping: i32): i32;
@external("norma", "task_exit")
export declare function task_exit(code: i32): void;

// WASI preview1: the only host calls besides `norma` (and AssemblyScript's env.abort).
@external("wasi_snapshot_preview1", "fd_write")
export declare function fd_write(fd: i32, iovs: usize, iovsLen: i32, nwrittenOut: usize): i32;
@external("wasi_snapshot_preview1", "args_sizes_get")
export declare function args_sizes_get(argcOut: usize, bufSizeOut: usize): i32;
@external("wasi_snapshot_preview1", "args_get")
export declare function args_get(argv: usize, buf: usize): i32;

// ---------------------------------------------------------------------------------------------
// Output, arguments, exit.
// ---------------------------------------------------------------------------------------------

/** Writes len bytes at ptr to a file descriptor, retrying short writes. */
export function writeFd(fd: i32, ptr: usize, len: i32): void {
  const iov = heap.alloc(16); // iovec {buf, len} + nwritten
  while (len > 0) {
    store<u32>(iov, ptr);
    store<u32>(iov, len, 4);
    if (fd_write(fd, iov, 1, iov + 8) != 0) break;
    const n = load<u32>(iov, 8);
    if (n == 0) break;
    ptr += n;
    len -= n;
  }
  heap.free(iov);
}

export function printBytes(ptr: usize, len: i32): void {
  writeFd(1, ptr, len);
}

/**
 * Writes s (and a newline) to fd in one fd_write, so lines of different threads do not interleave.
 * The UTF-8 bytes go to a heap block freed right after: the stub runtime reclaims it whenever nothing
 * was allocated meanwhile, so printing in a loop does not grow memory.
 */
function writeString(fd: i32, s: string, newline: bool): void {
  const len = String.UTF8.byteLength(s);
  const buf = heap.alloc(len + 1);
  String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, buf);
  store<u8>(buf + len, 10);
  writeFd(fd, buf, newline ? len + 1 : len);
  heap.free(buf);
}

/** Writes s to stdout as UTF-8, exactly (no newline added). */
export function print(s: string): void {
  writeString(1, s, false);
}

/** Writes s and a newline to stdout. */
export function println(s: string): void {
  writeString(1, s, true);
}

/** Writes s and a newline to stderr. */
export function eprintln(s: string): void {
  writeString(2, s, true);
}

/** `0x` and 8 hex digits, for checksums that must print the same everywhere. */
export function hex32(v: u32): string {
  return "0x" + v.toString(16).padStart(8, "0");
}

/** The WASI command-line arguments (argv[0] is the program name). */
export function args(): string[] {
  const sizes = heap.alloc(8);
  const result = new Array<string>(0);
  if (args_sizes_get(sizes, sizes + 4) != 0) return result;
  const argc = load<u32>(sizes);
  const bufSize = load<u32>(sizes, 4);
  const argv = heap.alloc(argc * 4 + 4);
  const buf = heap.alloc(bufSize + 1);
  if (args_get(argv, buf) != 0) return result;
  for (let i: u32 = 0; i < argc; i++) {
    const p = load<u32>(argv + i * 4);
    let end = p;
    while (end < <u32>(buf + bufSize) && load<u8>(end) != 0) end++;
    result.push(String.UTF8.decodeUnsafe(p, end - p));
  }
  return result;
}

/** argv[index] parsed as a decimal integer, or fallback when absent or not a positive number. */
export function intArg(index: i32, fallback: i32): i32 {
  const a = args();
  if (index >= a.length) return fallback;
  const v = I32.parseInt(a[index], 10);
  return v > 0 ? v : fallback;
}

/** Ends the task (every thread) with the exit code. */
export function exit(code: i32): void {
  task_exit(code);
}

/** On a code other than KERN_SUCCESS: prints `what: NAME` on stderr and exits with status 1. */
export function check(kr: i32, what: string): void {
  if (kr == KernReturn.SUCCESS) return;
  eprintln(what + ": " + kernReturnName(kr));
  exit(1);
}

/** Reads the u32 an out-parameter call stored and frees its block. */
function take(slot: usize): u32 {
  const v = load<u32>(slot);
  heap.free(slot);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Ports and rights.
// ---------------------------------------------------------------------------------------------

export class Port {
  /** A new port; the task holds its receive right under the returned name. */
  static allocate(): u32 {
    const slot = heap.alloc(8);
    check(port_allocate(PortRight.RECEIVE, slot), "port_allocate");
    return take(slot);
  }

  /** A new, empty port set. */
  static allocateSet(): u32 {
    const slot = heap.alloc(8);
    check(port_allocate(PortRight.PORT_SET, slot), "port_allocate(set)");
    return take(slot);
  }

  /** Adds a send right (one user reference) to the port whose receive right `name` denotes. */
  static makeSend(name: u32): i32 {
    return port_insert_right(name, Disposition.MAKE_SEND);
  }

  /** Removes every right `name` denotes; on a receive right this destroys the port. */
  static destroy(name: u32): i32 {
    return port_destroy(name);
  }

  /** Releases one user reference of a send right, send-once right or dead name. */
  static deallocate(name: u32): i32 {
    return port_deallocate(name);
  }

  /** Moves a receive right into a port set (or out of any set when set = PORT_NULL). */
  static moveMember(member: u32, set: u32): i32 {
    return port_move_member(member, set);
  }

  static setQlimit(name: u32, limit: i32): i32 {
    return port_set_qlimit(name, limit);
  }

  /** Asks for a DEAD_NAME or NO_SENDERS notification (NotifyVariant) on the port `notify`. */
  static requestNotification(name: u32, variant: i32, notify: u32): i32 {
    return port_request_notification(name, variant, notify);
  }

  /** The PortType bits of the rights `name` denotes; PortType.NONE when it denotes nothing. */
  static type(name: u32): u32 {
    const slot = heap.alloc(8);
    const kr = port_type(name, slot);
    const bits = take(slot);
    if (kr == KernReturn.INVALID_NAME) return PortType.NONE;
    check(kr, "port_type");
    return bits;
  }

  /** The user-reference count of one right kind (PortRight) under `name`. */
  static refs(name: u32, right: i32): u32 {
    const slot = heap.alloc(8);
    check(port_get_refs(name, right, slot), "port_get_refs");
    return take(slot);
  }
}

/** A readable name for PortType bits, e.g. `SEND|RECEIVE`, or `NONE`. */
export function portTypeName(bits: u32): string {
  let s = "";
  if (bits & PortType.SEND) s += "|SEND";
  if (bits & PortType.RECEIVE) s += "|RECEIVE";
  if (bits & PortType.SEND_ONCE) s += "|SEND_ONCE";
  if (bits & PortType.PORT_SET) s += "|PORT_SET";
  if (bits & PortType.DEAD_NAME) s += "|DEAD_NAME";
  return s.length ? s.substring(1) : "NONE";
}

/** A readable name for a disposition, e.g. `MOVE_SEND`. */
export function dispositionName(d: i32): string {
  switch (d) {
    case Disposition.NONE: return "NONE";
    case Disposition.MOVE_RECEIVE: return "MOVE_RECEIVE";
    case Disposition.MOVE_SEND: return "MOVE_SEND";
    case Disposition.MOVE_SEND_ONCE: return "MOVE_SEND_ONCE";
    case Disposition.COPY_SEND: return "COPY_SEND";
    case Disposition.MAKE_SEND: return "MAKE_SEND";
    case Disposition.MAKE_SEND_ONCE: return "MAKE_SEND_ONCE";
  }
  return "DISPOSITION(" + d.toString() + ")";
}

// ---------------------------------------------------------------------------------------------
// Messages.
// ---------------------------------------------------------------------------------------------

/**
 * A message buffer laid out as the ABI's mach_msg_header_t (24 bytes), then, when complex, a u32
 * descriptor count and 16-byte descriptors, then inline data. The same object is built for a send
 * and read after a receive; `reset()` before reusing a received buffer for a send.
 * Header fields mean different things per direction: on send, remotePort is the destination and
 * localPort the reply port; on receive, remotePort is the reply right (`replyPort`) and localPort
 * the port it arrived on (`arrivedOn`).
 */
export class Message {
  buf: usize;
  capacity: i32;

  constructor(capacity: i32 = 256) {
    this.capacity = max(capacity, 64);
    this.buf = heap.alloc(this.capacity);
    this.reset();
  }

  /** Clears the header: no ports, no descriptors, no inline data, id 0. */
  reset(): Message {
    memory.fill(this.buf, 0, HEADER_BYTES);
    store<u32>(this.buf, HEADER_BYTES, 4);
    return this;
  }

  /** Makes room for at least `bytes` bytes in total, keeping the contents. */
  reserve(bytes: i32): void {
    if (bytes <= this.capacity) return;
    const capacity = max(bytes, this.capacity * 2);
    const buf = heap.alloc(capacity);
    memory.copy(buf, this.buf, this.capacity);
    heap.free(this.buf);
    this.buf = buf;
    this.capacity = capacity;
  }

  // Header.
  get bits(): u32 { return load<u32>(this.buf, 0); }
  get size(): i32 { return load<i32>(this.buf, 4); }
  get remotePort(): u32 { return load<u32>(this.buf, 8); }
  get localPort(): u32 { return load<u32>(this.buf, 12); }
  get id(): i32 { return load<i32>(this.buf, 20); }
  get remoteDisposition(): i32 { return <i32>(this.bits & 0xff); }
  get localDisposition(): i32 { return <i32>((this.bits >> 8) & 0xff); }
  get isComplex(): bool { return (this.bits & MSGH_COMPLEX) != 0; }
  /** After a receive: the reply right the sender attached (PORT_NULL if none). */
  get replyPort(): u32 { return this.remotePort; }
  /** After a receive: the name of the port the message arrived on (useful with port sets). */
  get arrivedOn(): u32 { return this.localPort; }

  setId(id: i32): Message {
    store<i32>(this.buf, id, 20);
    return this;
  }

  /** The destination name and how the right to it travels (COPY_SEND, MOVE_SEND_ONCE, ...). */
  setDestination(name: u32, disposition: i32): Message {
    store<u32>(this.buf, name, 8);
    store<u32>(this.buf, (this.bits & ~0xff) | (<u32>disposition & 0xff), 0);
    return this;
  }

  /** The reply port and the right the receiver gets to it (usually MAKE_SEND_ONCE). */
  setReply(name: u32, disposition: i32): Message {
    store<u32>(this.buf, name, 12);
    store<u32>(this.buf, (this.bits & ~0xff00) | ((<u32>disposition & 0xff) << 8), 0);
    return this;
  }

  // Descriptors.
  get descriptorCount(): i32 {
    return this.isComplex ? load<i32>(this.buf, HEADER_BYTES) : 0;
  }

  /** Where descriptor i starts. */
  descriptor(i: i32): usize {
    return this.buf + HEADER_BYTES + 4 + i * DESCRIPTOR_BYTES;
  }

  descriptorType(i: i32): u32 { return load<u32>(this.descriptor(i)); }
  portName(i: i32): u32 { return load<u32>(this.descriptor(i), 4); }
  portDisposition(i: i32): i32 { return load<i32>(this.descriptor(i), 8); }
  /** After a receive: the address of the out-of-line bytes, inside this buffer. */
  oolAddress(i: i32): usize { return load<u32>(this.descriptor(i), 4); }
  oolSize(i: i32): i32 { return load<i32>(this.descriptor(i), 8); }

  /** Carries a right: disposition MOVE_RECEIVE, MAKE_SEND, COPY_SEND, MOVE_SEND, ... */
  addPort(name: u32, disposition: i32): Message {
    this.addDescriptor(DescriptorType.PORT, name, <u32>disposition, 0);
    return this;
  }

  /** Carries `size` bytes at `address`, copied out of this task when the message is sent. */
  addOutOfLine(address: usize, size: i32): Message {
    this.addDescriptor(DescriptorType.OUT_OF_LINE, <u32>address, <u32>size, 0);
    return this;
  }

  /** Inserts a descriptor before the inline data, shifting the data that is already there. */
  private addDescriptor(type: u32, a: u32, b: u32, c: u32): void {
    const count = this.descriptorCount;
    const grow = count == 0 ? 4 + DESCRIPTOR_BYTES : DESCRIPTOR_BYTES;
    const at = this.inlineOffset; // where the inline data starts now: the new descriptor goes there
    const size = this.size;
    this.reserve(size + grow);
    memory.copy(this.buf + at + grow, this.buf + at, size - at);
    store<u32>(this.buf, this.bits | MSGH_COMPLEX, 0);
    store<i32>(this.buf, count + 1, HEADER_BYTES);
    const d = this.descriptor(count);
    store<u32>(d, type);
    store<u32>(d, a, 4);
    store<u32>(d, b, 8);
    store<u32>(d, c, 12);
    store<i32>(this.buf, size + grow, 4);
  }

  // Inline data.
  /** Offset of the inline data from the start of the buffer. */
  get inlineOffset(): i32 {
    const count = this.descriptorCount;
    return count == 0 ? HEADER_BYTES : HEADER_BYTES + 4 + count * DESCRIPTOR_BYTES;
  }
  get inlineSize(): i32 { return this.size - this.inlineOffset; }
  get inlinePtr(): usize { return this.buf + this.inlineOffset; }

  /** Appends raw bytes, padded to 4 bytes so the next field stays aligned. */
  putBytes(ptr: usize, len: i32): Message {
    const size = this.size;
    const padded = (len + 3) & ~3;
    this.reserve(size + padded);
    memory.copy(this.buf + size, ptr, len);
    memory.fill(this.buf + size + len, 0, padded - len);
    store<i32>(this.buf, size + padded, 4);
    return this;
  }

  putU32(v: u32): Message {
    const size = this.size;
    this.reserve(size + 4);
    store<u32>(this.buf + size, v);
    store<i32>(this.buf, size + 4, 4);
    return this;
  }

  /** Appends a string as u32 byte length + UTF-8 bytes (padded), encoded in place. */
  putString(s: string): Message {
    const len = String.UTF8.byteLength(s);
    const size = this.size;
    const padded = (len + 3) & ~3;
    this.reserve(size + 4 + padded);
    store<i32>(this.buf + size, len);
    String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, this.buf + size + 4);
    memory.fill(this.buf + size + 4 + len, 0, padded - len);
    store<i32>(this.buf, size + 4 + padded, 4);
    return this;
  }

  /** The u32 at inline word `index`. */
  u32At(index: i32): u32 {
    return load<u32>(this.inlinePtr + index * 4);
  }

  /** The string written by putString at inline byte offset `offset` ("" if it does not fit). */
  stringAt(offset: i32): string {
    if (offset + 4 > this.inlineSize) return "";
    const len = load<i32>(this.inlinePtr + offset);
    if (len < 0 || offset + 4 + len > this.inlineSize) return "";
    return String.UTF8.decodeUnsafe(this.inlinePtr + offset + 4, len);
  }
}

/** Sends msg (BLOCKING while the destination queue is full, up to timeoutMs). */
export function send(msg: Message, timeoutMs: i32 = FOREVER): i32 {
  return msg_send(msg.buf, msg.size, timeoutMs);
}

/**
 * Receives the next message of port or port set `name` into msg. A message larger than the buffer
 * stays queued (RCV_TOO_LARGE reports its size in the header): grow the buffer and retry.
 */
export function receive(name: u32, msg: Message, timeoutMs: i32 = FOREVER): i32 {
  while (true) {
    const kr = msg_receive(name, msg.buf, msg.capacity, timeoutMs);
    if (kr != KernReturn.RCV_TOO_LARGE) return kr;
    const needed = load<i32>(msg.buf, 4);
    if (needed <= msg.capacity) return kr;
    msg.reserve(needed);
  }
}

// ---------------------------------------------------------------------------------------------
// Threads and time.
// ---------------------------------------------------------------------------------------------

export class Thread {
  /**
   * Starts a thread running the exported function `entry` (signature (i32) => void) with `arg`;
   * returns its id. AssemblyScript's stub runtime has no shadow stack, but the ABI asks the caller
   * to provide one, so the SDK allocates it.
   */
  static spawn(entry: string, arg: i32, stackBytes: i32 = 16384): i32 {
    const name = String.UTF8.encode(entry);
    const stack = heap.alloc(stackBytes);
    const slot = heap.alloc(8);
    check(
      thread_create(changetype<usize>(name), name.byteLength, arg, stack, stackBytes, slot),
      "thread_create(" + entry + ")",
    );
    return <i32>take(slot);
  }

  static self(): i32 {
    return thread_self();
  }
}

/** Waits for thread tid to return (BLOCKING). */
export function join(tid: i32, timeoutMs: i32 = FOREVER): i32 {
  return thread_join(tid, timeoutMs);
}

/** Lets the other runnable threads run first. (`yield` is a reserved word.) */
export function yield_(): void {
  thread_yield();
}

/** Sleeps ms milliseconds of virtual time. */
export function sleep(ms: i32): i32 {
  return clock_sleep(ms);
}

// ---------------------------------------------------------------------------------------------
// Name service.
// ---------------------------------------------------------------------------------------------

/** Checks a send right to `port` (a send or receive right) in under `service`. */
export function nameRegister(service: string, port: u32): i32 {
  const s = String.UTF8.encode(service);
  return name_register(changetype<usize>(s), s.byteLength, port);
}

/** Waits up to timeoutMs for `service` and returns a send right to it; PORT_NULL on timeout. */
export function nameLookup(service: string, timeoutMs: i32 = FOREVER): u32 {
  const s = String.UTF8.encode(service);
  const slot = heap.alloc(8);
  const kr = name_lookup(changetype<usize>(s), s.byteLength, timeoutMs, slot);
  const name = take(slot);
  if (kr == KernReturn.OPERATION_TIMED_OUT) return PORT_NULL;
  check(kr, "name_lookup(" + service + ")");
  return name;
}

// ---------------------------------------------------------------------------------------------
// Memory objects.
// ---------------------------------------------------------------------------------------------

export class MemoryObject {
  /** A zero-filled object of `size` bytes; returns a send right to it. */
  static create(size: i32): u32 {
    const slot = heap.alloc(8);
    check(memory_object_create(size, slot), "memory_object_create");
    return take(slot);
  }

  /** Maps [offset, offset+size) of the object at [address, address+size); returns the mapping. */
  static map(object: u32, offset: i32, size: i32, address: usize): i32 {
    const slot = heap.alloc(8);
    check(memory_object_map(object, offset, size, address, slot), "memory_object_map");
    return <i32>take(slot);
  }

  /** Takes the lock (AccessMode.READ shared, WRITE exclusive) and fills the window (BLOCKING). */
  static acquire(mapping: i32, mode: i32, timeoutMs: i32 = FOREVER): i32 {
    return memory_object_acquire(mapping, mode, timeoutMs);
  }

  /** Writes the window back (WRITE mode) and releases the lock. */
  static release(mapping: i32): i32 {
    return memory_object_release(mapping);
  }

  static unmap(mapping: i32): i32 {
    return memory_object_unmap(mapping);
  }
}
