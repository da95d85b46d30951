/**
 * The norma syscall ABI: the one place that defines what a task may ask of its kernel.
 *
 * Tasks import these functions from the WebAssembly module `norma`. Every pointer is a byte offset
 * into the task's own linear memory (wasm32, little-endian) and must lie entirely inside the memory
 * the task can see; a pointer that does not yields KERN_INVALID_ADDRESS and the call has no effect.
 * Every syscall returns a `kern_return_t` (i32): 0 for success, otherwise one of the codes below.
 * The codes and their numbers are Mach's (`mach/kern_return.h`, `mach/message.h`) so that anyone
 * who has read Mach reads norma; the names are stable and appear in every error the host reports.
 *
 * The AssemblyScript SDK (`tasks/sdk/norma.ts`) mirrors this file; a change here is a change there.
 *
 * Syscalls marked BLOCKING may suspend the calling thread (the kernel unwinds it with asyncify and
 * re-executes the call when it is woken); a task can be frozen while any thread is inside one.
 */

/** The import module every norma syscall lives in. */
export const syscallModule = 'norma';

// ---------------------------------------------------------------------------------------------
// Return codes (kern_return_t). Grouped by the phase of the call that produces them, as in Mach.
// ---------------------------------------------------------------------------------------------

export const KernReturn = {
  /** The call did what it says. */
  SUCCESS: 0,
  /** A pointer argument, or the range it starts, lies outside the task's visible memory. */
  INVALID_ADDRESS: 1,
  /** The task's IPC space has no free names, or a thread/mapping table is full. */
  NO_SPACE: 3,
  /** An argument is outside the values the syscall accepts. */
  INVALID_ARGUMENT: 4,
  /** The kernel refused to allocate (a limit such as `portsPerTaskMax` was reached). */
  RESOURCE_SHORTAGE: 6,
  /** The name already denotes a right in this space (a name that must be fresh is not). */
  NAME_EXISTS: 13,
  /** The operation was aborted (the port or thread it waited on went away). */
  ABORTED: 14,
  /** The name denotes no right in this task's IPC space (a forged or stale name). */
  INVALID_NAME: 15,
  /** The name denotes a right, but not one of the kind the call needs. */
  INVALID_RIGHT: 17,
  /** A value (a reference delta, a queue limit, a size) is out of range. */
  INVALID_VALUE: 18,
  /** A user-reference count would exceed `userRefsMax`. */
  UREFS_OVERFLOW: 19,
  /** The right denotes a kernel object of another type (not a memory object, for instance). */
  INVALID_CAPABILITY: 20,
  /** The thread or mapping named does not exist. */
  NOT_FOUND: 56,
  /** The name is a dead name: the port it denoted has been destroyed. */
  DEAD_NAME: 0x4e4f_0001, // norma's own range (0x4e4f = 'NO'), for conditions Mach has no code for.
  /** A blocking call's timeout expired before it could complete. */
  OPERATION_TIMED_OUT: 49,
  /** The memory object window is not acquired, or is acquired in another mode. */
  MEMORY_NOT_ACQUIRED: 0x4e4f_0002,

  // Message send phase (mach/message.h: MACH_SEND_*).
  /** The message buffer is malformed: bad size, bad descriptor count, bad descriptor type. */
  SEND_INVALID_DATA: 0x10000002,
  /** The destination name does not denote a send or send-once right (or is dead). */
  SEND_INVALID_DEST: 0x10000003,
  /** The queue stayed full until the send timeout expired. */
  SEND_TIMED_OUT: 0x10000004,
  /** The reply-port name or disposition is unusable. */
  SEND_INVALID_REPLY: 0x10000009,
  /** A port descriptor names a right the sender does not hold (or with a wrong disposition). */
  SEND_INVALID_RIGHT: 0x1000000a,
  /** An out-of-line region lies outside the sender's memory. */
  SEND_INVALID_MEMORY: 0x1000000c,
  /** The message exceeds `messageSizeMax` (inline plus out-of-line bytes). */
  SEND_TOO_LARGE: 0x1000000e,
  /** The header's disposition bits are invalid. */
  SEND_INVALID_HEADER: 0x10000010,

  // Message receive phase (mach/message.h: MACH_RCV_*).
  /** The name does not denote a receive right or port set held by this task. */
  RCV_INVALID_NAME: 0x10004002,
  /** No message arrived before the receive timeout expired. */
  RCV_TIMED_OUT: 0x10004003,
  /**
   * The message does not fit the buffer. It stays queued and its total size is written to the
   * `size` field of the buffer's header (when the buffer holds at least a header): allocate and retry.
   */
  RCV_TOO_LARGE: 0x10004004,
  /** The port (or port set) was destroyed while the thread waited on it. */
  RCV_PORT_DIED: 0x10004009,
} as const;

export type KernReturnName = keyof typeof KernReturn;
export type KernReturnCode = (typeof KernReturn)[KernReturnName];

const kernReturnNames = new Map<number, KernReturnName>(
  Object.entries(KernReturn).map(([name, code]) => [code, name as KernReturnName]),
);

/** The stable name of a kern_return code, e.g. `KERN_INVALID_NAME` or `MACH_RCV_TIMED_OUT`. */
export function kernReturnName(code: number): string {
  const name = kernReturnNames.get(code);
  if (name === undefined) return `KERN_UNKNOWN(${code})`;
  if (name.startsWith('SEND_')) return `MACH_${name}`;
  if (name.startsWith('RCV_')) return `MACH_${name}`;
  return `KERN_${name}`;
}

// ---------------------------------------------------------------------------------------------
// Rights, dispositions and notifications (mach/port.h, mach/message.h).
// ---------------------------------------------------------------------------------------------

/** Right kinds, as bits of `port_type` results (MACH_PORT_TYPE_*). */
export const PortType = {
  SEND: 1 << 16,
  RECEIVE: 1 << 17,
  SEND_ONCE: 1 << 18,
  PORT_SET: 1 << 19,
  DEAD_NAME: 1 << 20,
} as const;

/** The right argument of `port_allocate` and `port_mod_refs` (MACH_PORT_RIGHT_*). */
export const PortRight = {
  SEND: 0,
  RECEIVE: 1,
  SEND_ONCE: 2,
  PORT_SET: 3,
  DEAD_NAME: 4,
} as const;
export type PortRightCode = (typeof PortRight)[keyof typeof PortRight];

/**
 * How a right travels in a message (MACH_MSG_TYPE_*). The receiver always gets the right as
 * MOVE_RECEIVE, MOVE_SEND or MOVE_SEND_ONCE: what it is, not how it was produced.
 */
export const Disposition = {
  /** No right (used for an absent reply port). */
  NONE: 0,
  /** Move the sender's receive right; the sender loses it. */
  MOVE_RECEIVE: 16,
  /** Move one user reference of the sender's send right. */
  MOVE_SEND: 17,
  /** Move the sender's send-once right. */
  MOVE_SEND_ONCE: 18,
  /** Copy the sender's send right (the sender keeps its references). */
  COPY_SEND: 19,
  /** Make a send right from the sender's receive right. */
  MAKE_SEND: 20,
  /** Make a send-once right from the sender's receive right. */
  MAKE_SEND_ONCE: 21,
} as const;
export type DispositionCode = (typeof Disposition)[keyof typeof Disposition];

/** Notification message ids (mach/notify.h), sent to the port named in port_request_notification. */
export const NotifyId = {
  /** The receive right of a port the task holds send rights to died; body: u32 the dead name. */
  DEAD_NAME: 72,
  /** The last send right to the port went away; body: u32 the make-send count. */
  NO_SENDERS: 70,
  /** A send-once right was destroyed unused; no body. */
  SEND_ONCE: 71,
  /** A name's rights went away (deallocated, destroyed, its task ended) while it had a dead-name request; body: u32 the name. */
  PORT_DELETED: 65,
} as const;

/** The `variant` argument of `port_request_notification`. */
export const NotifyVariant = {
  DEAD_NAME: 0,
  NO_SENDERS: 1,
} as const;

// ---------------------------------------------------------------------------------------------
// Message layout (mach_msg_header_t and descriptors), little-endian, 4-byte aligned.
// ---------------------------------------------------------------------------------------------

/**
 * Message header, 24 bytes:
 *   0  u32 bits         remote disposition in bits 0-7, local (reply) disposition in bits 8-15,
 *                       MSGH_COMPLEX (bit 31) when descriptors follow the header
 *   4  u32 size         total size in bytes: header, descriptor block and inline data
 *   8  u32 remote_port  on send: the destination name; on receive: the reply right's name (or 0)
 *  12  u32 local_port   on send: the reply name (or 0); on receive: the name the message arrived on
 *  16  u32 reserved     must be 0
 *  20  i32 id           free for the protocol (msgh_id); notifications use NotifyId
 * When MSGH_COMPLEX is set, a u32 descriptor count follows, then that many 16-byte descriptors,
 * then the inline data. Otherwise the inline data follows the header directly.
 */
export const MessageHeader = {
  bytes: 24,
  bitsOffset: 0,
  sizeOffset: 4,
  remotePortOffset: 8,
  localPortOffset: 12,
  reservedOffset: 16,
  idOffset: 20,
  complexBit: 0x8000_0000,
  remoteDispositionMask: 0xff,
  localDispositionShift: 8,
  localDispositionMask: 0xff00,
} as const;

/**
 * Descriptor, 16 bytes: u32 type, then three u32 fields whose meaning depends on the type.
 *   PORT: a = name, b = disposition (on receive: the name in the receiver's space and MOVE_*), c = 0
 *   OOL:  a = address, b = size in bytes, c = flags (bit 0: deallocate is accepted and ignored).
 *         On send the bytes are copied out of the sender at send time. On receive they are placed in
 *         the receive buffer after the inline data (8-byte aligned) and `a` points at them.
 */
export const Descriptor = {
  bytes: 16,
  countBytes: 4,
  typePort: 0,
  typeOutOfLine: 1,
} as const;

// ---------------------------------------------------------------------------------------------
// Memory objects.
// ---------------------------------------------------------------------------------------------

/** Access modes of `memory_object_acquire`: many readers or one writer at a time. */
export const AccessMode = {
  READ: 1,
  WRITE: 2,
} as const;

/** Timeouts are milliseconds of virtual time; this value waits forever. */
export const timeoutForever = -1;

// ---------------------------------------------------------------------------------------------
// The syscalls.
// ---------------------------------------------------------------------------------------------

type WasmType = 'i32' | 'i64';

export interface SyscallSpec {
  readonly params: readonly WasmType[];
  readonly result: WasmType | null;
  /** True when the call may suspend the thread (it must be listed as an asyncify import). */
  readonly blocking: boolean;
  /** What the call does, its arguments, and every code it returns besides SUCCESS. */
  readonly doc: string;
}

export const syscalls = {
  port_allocate: {
    params: ['i32', 'i32'],
    result: 'i32',
    blocking: false,
    doc: `port_allocate(right, name_out) creates a port (right = RECEIVE) or a port set (right =
      PORT_SET) and stores the new name at name_out. Errors: INVALID_VALUE (other right),
      INVALID_ADDRESS, NO_SPACE.`,
  },
  port_destroy: {
    params: ['i32'],
    result: 'i32',
    blocking: false,
    doc: `port_destroy(name) removes every right the name denotes; destroying a receive right
      destroys the port (its queue is drained, its senders see a dead name). Errors: INVALID_NAME.`,
  },
  port_deallocate: {
    params: ['i32'],
    result: 'i32',
    blocking: false,
    doc: `port_deallocate(name) releases one user reference of a send right, a send-once right or a
      dead name. Errors: INVALID_NAME, INVALID_RIGHT (a receive right or a port set).`,
  },
  port_mod_refs: {
    params: ['i32', 'i32', 'i32'],
    result: 'i32',
    blocking: false,
    doc: `port_mod_refs(name, right, delta) adds delta user references of one right kind (SEND,
      DEAD_NAME; RECEIVE, SEND_ONCE and PORT_SET accept only -1 and 0). Errors: INVALID_NAME,
      INVALID_RIGHT, INVALID_VALUE (the count would go below zero), UREFS_OVERFLOW.`,
  },
  port_insert_right: {
    params: ['i32', 'i32'],
    result: 'i32',
    blocking: false,
    doc: `port_insert_right(name, disposition) with disposition MAKE_SEND adds a send right (one user
      reference) to the port whose receive right the name denotes, under the same name. Errors:
      INVALID_NAME, INVALID_RIGHT, INVALID_VALUE (other disposition), UREFS_OVERFLOW.`,
  },
  port_type: {
    params: ['i32', 'i32'],
    result: 'i32',
    blocking: false,
    doc: `port_type(name, type_out) stores the PortType bits of the rights the name denotes.
      Errors: INVALID_NAME, INVALID_ADDRESS.`,
  },
  port_get_refs: {
    params: ['i32', 'i32', 'i32'],
    result: 'i32',
    blocking: false,
    doc: `port_get_refs(name, right, refs_out) stores the user-reference count of one right kind.
      Errors: INVALID_NAME, INVALID_VALUE, INVALID_ADDRESS.`,
  },
  port_move_member: {
    params: ['i32', 'i32'],
    result: 'i32',
    blocking: false,
    doc: `port_move_member(member, set) moves a receive right into a port set, or out of any set when
      set = 0. Errors: INVALID_NAME, INVALID_RIGHT (member not a receive right, set not a port set).`,
  },
  port_set_qlimit: {
    params: ['i32', 'i32'],
    result: 'i32',
    blocking: false,
    doc: `port_set_qlimit(name, limit) sets the queue limit of a port whose receive right the task
      holds, 1..portQueueLengthMax. Senders to a full queue block or time out. Errors: INVALID_NAME,
      INVALID_RIGHT, INVALID_VALUE.`,
  },
  port_request_notification: {
    params: ['i32', 'i32', 'i32'],
    result: 'i32',
    blocking: false,
    doc: `port_request_notification(name, variant, notify) asks for a notification message on the
      port whose receive right \`notify\` denotes: DEAD_NAME when the port behind the send right
      \`name\` dies, NO_SENDERS when the last send right to the port whose receive right \`name\`
      denotes goes away. Errors: INVALID_NAME, INVALID_RIGHT, INVALID_VALUE.`,
  },
  msg_send: {
    params: ['i32', 'i32', 'i32'],
    result: 'i32',
    blocking: true,
    doc: `msg_send(msg, size, timeout_ms) BLOCKING sends the message at msg (size bytes, the header's
      size field must agree). Blocks while the destination queue is full, up to timeout_ms (-1:
      forever, 0: do not wait). Errors: INVALID_ADDRESS, SEND_INVALID_DATA, SEND_INVALID_HEADER,
      SEND_INVALID_DEST, SEND_INVALID_REPLY, SEND_INVALID_RIGHT, SEND_INVALID_MEMORY,
      SEND_TOO_LARGE, SEND_TIMED_OUT. On any error no right has been moved.`,
  },
  msg_receive: {
    params: ['i32', 'i32', 'i32', 'i32'],
    result: 'i32',
    blocking: true,
    doc: `msg_receive(name, buf, buf_size, timeout_ms) BLOCKING receives the first message of the
      port or port set \`name\` into buf. Errors: INVALID_ADDRESS, RCV_INVALID_NAME, RCV_TIMED_OUT,
      RCV_TOO_LARGE (message kept, size reported in the buffer's header), RCV_PORT_DIED.`,
  },
  thread_create: {
    params: ['i32', 'i32', 'i32', 'i32', 'i32', 'i32'],
    result: 'i32',
    blocking: false,
    doc: `thread_create(entry, entry_len, arg, stack, stack_size, tid_out) starts a thread running the
      exported function named by the UTF-8 string at entry (signature (i32) -> void) with arg.
      When the module has a shadow stack (__stack_pointer), the thread's stack is [stack,
      stack+stack_size) and must be allocated by the caller. Errors: INVALID_ADDRESS, NOT_FOUND (no
      such export), INVALID_ARGUMENT (wrong signature), RESOURCE_SHORTAGE (threadsPerTaskMax).`,
  },
  thread_join: {
    params: ['i32', 'i32'],
    result: 'i32',
    blocking: true,
    doc: `thread_join(tid, timeout_ms) BLOCKING waits for thread tid to return. Errors: NOT_FOUND,
      INVALID_ARGUMENT (joining itself), OPERATION_TIMED_OUT.`,
  },
  thread_yield: {
    params: [],
    result: null,
    blocking: true,
    doc: 'thread_yield() BLOCKING lets the other runnable threads of the node run first.',
  },
  thread_self: {
    params: [],
    result: 'i32',
    blocking: false,
    doc: 'thread_self() returns the calling thread id (the main thread is 0).',
  },
  clock_sleep: {
    params: ['i32'],
    result: 'i32',
    blocking: true,
    doc: 'clock_sleep(ms) BLOCKING suspends the thread for ms milliseconds. Errors: INVALID_VALUE.',
  },
  name_register: {
    params: ['i32', 'i32', 'i32'],
    result: 'i32',
    blocking: false,
    doc: `name_register(str, len, name) checks a send right to the port named \`name\` (a send or
      receive right) in with the node's name service under the UTF-8 string (netname_check_in).
      Errors: INVALID_ADDRESS, INVALID_NAME, INVALID_RIGHT, NAME_EXISTS, INVALID_VALUE (empty or
      longer than serviceNameBytesMax).`,
  },
  name_lookup: {
    params: ['i32', 'i32', 'i32', 'i32'],
    result: 'i32',
    blocking: true,
    doc: `name_lookup(str, len, timeout_ms, name_out) BLOCKING waits until the string is registered,
      then inserts a send right to it into the caller's space and stores its name
      (netname_look_up). Errors: INVALID_ADDRESS, INVALID_VALUE, OPERATION_TIMED_OUT.`,
  },
  memory_object_create: {
    params: ['i32', 'i32'],
    result: 'i32',
    blocking: false,
    doc: `memory_object_create(size, name_out) creates a zero-filled memory object of size bytes
      (rounded up to pages) backed by the default pager, and stores a send right to it. Rights to
      a memory object travel in messages like any send right. Errors: INVALID_VALUE (0 or above
      memoryObjectBytesMax), INVALID_ADDRESS.`,
  },
  memory_object_map: {
    params: ['i32', 'i32', 'i32', 'i32', 'i32'],
    result: 'i32',
    blocking: false,
    doc: `memory_object_map(object, offset, size, address, mapping_out) maps the window [offset,
      offset+size) of the object at [address, address+size) of the task's memory. The window is
      filled at acquire and written back at release. Errors: INVALID_NAME, INVALID_CAPABILITY (not
      a memory object), INVALID_VALUE (window outside the object), INVALID_ADDRESS, NO_SPACE.`,
  },
  memory_object_acquire: {
    params: ['i32', 'i32', 'i32'],
    result: 'i32',
    blocking: true,
    doc: `memory_object_acquire(mapping, mode, timeout_ms) BLOCKING takes the object's lock for READ
      (shared) or WRITE (exclusive) and copies the window into the task's memory. Errors:
      NOT_FOUND, INVALID_VALUE (mode), OPERATION_TIMED_OUT, INVALID_ARGUMENT (already acquired).`,
  },
  memory_object_release: {
    params: ['i32'],
    result: 'i32',
    blocking: false,
    doc: `memory_object_release(mapping) copies the window back (WRITE mode) and releases the lock.
      Errors: NOT_FOUND, MEMORY_NOT_ACQUIRED.`,
  },
  memory_object_unmap: {
    params: ['i32'],
    result: 'i32',
    blocking: false,
    doc: 'memory_object_unmap(mapping) releases the mapping (and its lock, writing back). Errors: NOT_FOUND.',
  },
  task_exit: {
    params: ['i32'],
    result: null,
    blocking: true,
    doc: 'task_exit(code) ends the task and all its threads with the exit code. Does not return.',
  },
} as const satisfies Record<string, SyscallSpec>;

export type SyscallName = keyof typeof syscalls;

/** Imports from `env` that AssemblyScript emits; norma provides them so that AS tasks need no glue. */
export const assemblyScriptEnvImports = ['abort', 'seed', 'trace'] as const;

/**
 * Preemption: the instrumentation calls this import when a thread's fuel runs out. It is not a
 * syscall a task calls by hand; it is listed here because it is part of what a module may import.
 */
export const safepointImport = { module: 'norma_internal', name: 'safepoint' } as const;
