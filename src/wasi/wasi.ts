/**
 * WASI preview1 (`wasi_snapshot_preview1`) and its predecessor `wasi_unstable`, over a `WasiState`
 * that is plain data. The class holds no state of its own besides the host it talks to, so a task can
 * be frozen between any two calls and resumed elsewhere with the same state.
 *
 * Conventions, and where they differ from Node's node:wasi (uvwasi), which is the reference:
 * - Pointers are checked against the memory the guest sees now. A range outside it returns EFAULT
 *   (Node returns EOVERFLOW); every pointer is checked before anything changes, so a failed call has
 *   no effect.
 * - Descriptor rights follow uvwasi's tables: a call the descriptor has no right for returns
 *   ENOTCAPABLE, an unknown descriptor EBADF.
 * - Clocks and randomness come only from the host, which virtualizes them. The CPU-time clocks read
 *   the monotonic clock: a task's own CPU time is not measured.
 * - fd_read on stdin with nothing buffered, and poll_oneoff with nothing ready, return a 'block'
 *   outcome without effect on the guest; the kernel re-executes the same call later. A poll_oneoff
 *   waiting on stdin and a clock blocks as a sleep until the clock: input that arrives earlier is
 *   seen when the sleep ends.
 * - proc_raise returns ENOSYS (a task has no signals); sockets do not exist, so the sock_* calls
 *   return EBADF or ENOTCAPABLE as uvwasi does for a descriptor that is not a socket.
 * - Like Node: fd_readdir lists no `.` and `..`; path_readlink NUL-terminates the target and returns
 *   ENOBUFS when the buffer has no room for the NUL; fd_prestat_get on a descriptor that is not a
 *   preopen is EINVAL. Unlike Node, fd_fdstat_get reports WASI fdflags (Node leaks the host's
 *   fcntl flags there) and path_open without SYMLINK_FOLLOW refuses a link with ELOOP (Node's
 *   host open follows it).
 * - stdin, stdout and stderr are character devices (a terminal to wasi-libc's isatty), read-only
 *   and write-only respectively; the sandbox root `/` is the only preopen, descriptor 3.
 */

import assert from 'node:assert';
import { memoryFsFileBytesMax, threadsPerTaskMax } from '../limits.js';
import {
  adviceMax,
  ClockId,
  directoryInheritingRights,
  Errno,
  Eventrwflags,
  Eventtype,
  Fdflags,
  Filetype,
  Fstflags,
  Lookupflags,
  Oflags,
  RightSets,
  Rights,
  Subclockflags,
  WhencePreview1,
  WhenceUnstable,
} from './errno.js';
import {
  createFile,
  fsNode,
  linkNode,
  listDirectory,
  makeDirectory,
  makeSymlink,
  type NodeStat,
  nodeFiletype,
  readFile,
  releaseNode,
  removeDirectory,
  renameEntry,
  resolvePath,
  retainNode,
  setNodeTimes,
  statNode,
  truncateFile,
  unlinkFile,
  writeFile,
} from './memory-fs.js';
import type { WasiFd, WasiState } from './wasi-state.js';

export type WasiModuleName = 'wasi_snapshot_preview1' | 'wasi_unstable';

export const wasiModuleNames: readonly WasiModuleName[] = ['wasi_snapshot_preview1', 'wasi_unstable'];

export interface WasiHost {
  /** The guest-visible linear memory right now (re-fetch each call: memory can grow). Pointers past its length are EFAULT. */
  memory(): Uint8Array;
  /** Bytes the guest wrote to stdout; a copy the host may keep. */
  stdout(bytes: Uint8Array): void;
  stderr(bytes: Uint8Array): void;
  /** Virtualized by the kernel. */
  realtimeNs(): bigint;
  /** Virtualized by the kernel. */
  monotonicNs(): bigint;
  /** Virtualized (seeded) by the kernel. */
  randomFill(target: Uint8Array): void;
}

export type WasiOutcome =
  /** The errno (or the function's i32 result). */
  | { kind: 'return'; value: number }
  /** fd_read on stdin with nothing buffered: re-execute the same call once more input arrived. */
  | { kind: 'block'; on: 'stdin' }
  /** poll_oneoff with only clocks not yet due: re-execute the same call at that monotonic time. */
  | { kind: 'block'; on: 'sleep'; untilMonotonicNs: bigint }
  /** proc_exit. */
  | { kind: 'exit'; code: number };

type WasmType = 'i32' | 'i64';

export interface WasiFunctionSignature {
  params: WasmType[];
  results: WasmType[];
}

/** Parameters of every function, one letter each: i = i32, I = i64. All return an i32 errno but proc_exit. */
const parameterSpecs: Record<string, string> = {
  args_get: 'ii',
  args_sizes_get: 'ii',
  clock_res_get: 'ii',
  clock_time_get: 'iIi',
  environ_get: 'ii',
  environ_sizes_get: 'ii',
  fd_advise: 'iIIi',
  fd_allocate: 'iII',
  fd_close: 'i',
  fd_datasync: 'i',
  fd_fdstat_get: 'ii',
  fd_fdstat_set_flags: 'ii',
  fd_fdstat_set_rights: 'iII',
  fd_filestat_get: 'ii',
  fd_filestat_set_size: 'iI',
  fd_filestat_set_times: 'iIIi',
  fd_pread: 'iiiIi',
  fd_prestat_dir_name: 'iii',
  fd_prestat_get: 'ii',
  fd_pwrite: 'iiiIi',
  fd_read: 'iiii',
  fd_readdir: 'iiiIi',
  fd_renumber: 'ii',
  fd_seek: 'iIii',
  fd_sync: 'i',
  fd_tell: 'ii',
  fd_write: 'iiii',
  path_create_directory: 'iii',
  path_filestat_get: 'iiiii',
  path_filestat_set_times: 'iiiiIIi',
  path_link: 'iiiiiii',
  path_open: 'iiiiiIIii',
  path_readlink: 'iiiiii',
  path_remove_directory: 'iii',
  path_rename: 'iiiiii',
  path_symlink: 'iiiii',
  path_unlink_file: 'iii',
  poll_oneoff: 'iiii',
  proc_exit: 'i',
  proc_raise: 'i',
  random_get: 'ii',
  sched_yield: '',
  sock_accept: 'iii',
  sock_recv: 'iiiiii',
  sock_send: 'iiiii',
  sock_shutdown: 'ii',
};

/**
 * Every function of both modules. wasi_unstable's witx has no sock_accept, but Node provides it there
 * too, and so does norma: a module that imports it gets ENOTCAPABLE like everywhere else.
 */
export const wasiFunctionNames: readonly string[] = Object.keys(parameterSpecs);

const signatures = new Map<string, WasiFunctionSignature>(
  Object.entries(parameterSpecs).map(([name, letters]) => [
    name,
    {
      params: [...letters].map((letter): WasmType => (letter === 'I' ? 'i64' : 'i32')),
      results: name === 'proc_exit' ? [] : ['i32'],
    },
  ]),
);

/** The signature of a function, or undefined when the module does not have it (the loader refuses the import). */
export function wasiFunctionSignature(
  module: WasiModuleName,
  name: string,
): WasiFunctionSignature | undefined {
  const signature = wasiModuleNames.includes(module) ? signatures.get(name) : undefined;
  return signature === undefined
    ? undefined
    : { params: [...signature.params], results: [...signature.results] };
}

export class WasiExit extends Error {
  readonly code: number;

  constructor(code: number) {
    super(`the WASI program exited with code ${code}`);
    this.name = 'WasiExit';
    this.code = code;
  }
}

/** Thrown by the memory accessors on a range outside the guest's memory; `call` turns it into EFAULT. */
class GuestFault extends Error {}

/** The guest's memory for the duration of one call. */
class GuestMemory {
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Pointers and lengths are unsigned (callers pass `>>> 0` values), so only the end can be out of range. */
  need(pointer: number, length: number): void {
    if (pointer + length > this.bytes.length) throw new GuestFault();
  }

  slice(pointer: number, length: number): Uint8Array {
    this.need(pointer, length);
    return this.bytes.subarray(pointer, pointer + length);
  }

  u8(pointer: number): number {
    this.need(pointer, 1);
    return this.view.getUint8(pointer);
  }

  u16(pointer: number): number {
    this.need(pointer, 2);
    return this.view.getUint16(pointer, true);
  }

  u32(pointer: number): number {
    this.need(pointer, 4);
    return this.view.getUint32(pointer, true);
  }

  u64(pointer: number): bigint {
    this.need(pointer, 8);
    return this.view.getBigUint64(pointer, true);
  }

  setU8(pointer: number, value: number): void {
    this.need(pointer, 1);
    this.view.setUint8(pointer, value);
  }

  setU16(pointer: number, value: number): void {
    this.need(pointer, 2);
    this.view.setUint16(pointer, value, true);
  }

  setU32(pointer: number, value: number): void {
    this.need(pointer, 4);
    this.view.setUint32(pointer, value, true);
  }

  setU64(pointer: number, value: bigint): void {
    this.need(pointer, 8);
    this.view.setBigUint64(pointer, BigInt.asUintN(64, value), true);
  }

  /** iovec/ciovec arrays: `count` pairs of (u32 pointer, u32 length), each range checked. */
  vectors(pointer: number, count: number): Uint8Array[] {
    this.need(pointer, count * 8);
    const vectors: Uint8Array[] = [];
    for (let i = 0; i < count; i++)
      vectors.push(this.slice(this.u32(pointer + i * 8), this.u32(pointer + i * 8 + 4)));
    return vectors;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const fdstatBytes = 24;
const prestatBytes = 8;
const direntBytes = 24;
const eventBytes = 32;
/** filestat is 64 bytes in preview1; wasi_unstable's has a u32 nlink and is 56. */
const filestatBytes = { wasi_snapshot_preview1: 64, wasi_unstable: 56 } as const;
/** subscription is 48 bytes in preview1; wasi_unstable's clock carries an extra u64 identifier first. */
const subscriptionBytes = { wasi_snapshot_preview1: 48, wasi_unstable: 56 } as const;

const socketRights = RightSets.ttyBase | Rights.SOCK_SHUTDOWN;
const writeRights = Rights.FD_DATASYNC | Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE;
const fdflagsAll = Fdflags.APPEND | Fdflags.DSYNC | Fdflags.NONBLOCK | Fdflags.RSYNC | Fdflags.SYNC;

function fstflagsValid(flags: number): boolean {
  if ((flags & ~(Fstflags.ATIM | Fstflags.ATIM_NOW | Fstflags.MTIM | Fstflags.MTIM_NOW)) !== 0) return false;
  const both = (set: number, now: number) => (flags & set) !== 0 && (flags & now) !== 0;
  return !both(Fstflags.ATIM, Fstflags.ATIM_NOW) && !both(Fstflags.MTIM, Fstflags.MTIM_NOW);
}

export class Wasi {
  private readonly state: WasiState;
  private readonly host: WasiHost;
  // Set for the duration of one call.
  private module: WasiModuleName = 'wasi_snapshot_preview1';
  private guest = new GuestMemory(new Uint8Array(0));

  constructor(state: WasiState, host: WasiHost) {
    assert.equal(state.version, 1, 'WasiState: unknown version');
    this.state = state;
    this.host = host;
  }

  /** Feed more stdin (the kernel calls this as bytes arrive from the user); eof marks the end. */
  static pushStdin(state: WasiState, bytes: Uint8Array, eof: boolean): void {
    assert(!state.stdin.eof || bytes.length === 0, 'stdin pushed after its end');
    if (bytes.length > 0) {
      const joined = new Uint8Array(state.stdin.bytes.length + bytes.length);
      joined.set(state.stdin.bytes);
      joined.set(bytes, state.stdin.bytes.length);
      state.stdin.bytes = joined;
    }
    if (eof) state.stdin.eof = true;
  }

  /** Perform one call. args are numbers for i32 and bigint for i64, in wasm order. */
  call(module: WasiModuleName, name: string, args: readonly (number | bigint)[]): WasiOutcome {
    const signature = wasiModuleNames.includes(module) ? signatures.get(name) : undefined;
    assert(signature !== undefined, `${module} has no function ${name}`);
    assert.equal(args.length, signature.params.length, `${name} takes ${signature.params.length} arguments`);
    // i32 arguments are unsigned everywhere in WASI (pointers, lengths, descriptors, flags).
    const values = args.map((arg, i) =>
      signature.params[i] === 'i64' ? BigInt.asUintN(64, BigInt(arg)) : Number(arg) >>> 0,
    );
    this.module = module;
    this.guest = new GuestMemory(this.host.memory());
    try {
      const result = this.dispatch(name, values);
      return typeof result === 'number' ? { kind: 'return', value: result } : result;
    } catch (error) {
      if (error instanceof GuestFault) return { kind: 'return', value: Errno.EFAULT };
      throw error;
    } finally {
      this.guest = new GuestMemory(new Uint8Array(0));
    }
  }

  private dispatch(name: string, values: readonly (number | bigint)[]): number | WasiOutcome {
    const n = (i: number) => values[i] as number;
    const b = (i: number) => values[i] as bigint;
    switch (name) {
      case 'args_get':
        return this.stringsGet(this.state.args, n(0), n(1));
      case 'args_sizes_get':
        return this.stringsSizesGet(this.state.args, n(0), n(1));
      case 'environ_get':
        return this.stringsGet(this.state.env, n(0), n(1));
      case 'environ_sizes_get':
        return this.stringsSizesGet(this.state.env, n(0), n(1));
      case 'clock_res_get':
        return this.clockResGet(n(0), n(1));
      case 'clock_time_get':
        return this.clockTimeGet(n(0), n(2));
      case 'fd_advise':
        return this.fdAdvise(n(0), n(3));
      case 'fd_allocate':
        return this.fdAllocate(n(0), b(1), b(2));
      case 'fd_close':
        return this.fdClose(n(0));
      case 'fd_datasync':
        return this.fdRights(n(0), Rights.FD_DATASYNC);
      case 'fd_sync':
        return this.fdRights(n(0), Rights.FD_SYNC);
      case 'fd_fdstat_get':
        return this.fdFdstatGet(n(0), n(1));
      case 'fd_fdstat_set_flags':
        return this.fdFdstatSetFlags(n(0), n(1));
      case 'fd_fdstat_set_rights':
        return this.fdFdstatSetRights(n(0), b(1), b(2));
      case 'fd_filestat_get':
        return this.fdFilestatGet(n(0), n(1));
      case 'fd_filestat_set_size':
        return this.fdFilestatSetSize(n(0), b(1));
      case 'fd_filestat_set_times':
        return this.fdFilestatSetTimes(n(0), b(1), b(2), n(3));
      case 'fd_pread':
        return this.fdPread(n(0), n(1), n(2), b(3), n(4));
      case 'fd_prestat_get':
        return this.fdPrestatGet(n(0), n(1));
      case 'fd_prestat_dir_name':
        return this.fdPrestatDirName(n(0), n(1), n(2));
      case 'fd_pwrite':
        return this.fdPwrite(n(0), n(1), n(2), b(3), n(4));
      case 'fd_read':
        return this.fdRead(n(0), n(1), n(2), n(3));
      case 'fd_readdir':
        return this.fdReaddir(n(0), n(1), n(2), b(3), n(4));
      case 'fd_renumber':
        return this.fdRenumber(n(0), n(1));
      case 'fd_seek':
        return this.fdSeek(n(0), b(1), n(2), n(3));
      case 'fd_tell':
        return this.fdTell(n(0), n(1));
      case 'fd_write':
        return this.fdWrite(n(0), n(1), n(2), n(3));
      case 'path_create_directory':
        return this.pathCreateDirectory(n(0), n(1), n(2));
      case 'path_filestat_get':
        return this.pathFilestatGet(n(0), n(1), n(2), n(3), n(4));
      case 'path_filestat_set_times':
        return this.pathFilestatSetTimes(n(0), n(1), n(2), n(3), b(4), b(5), n(6));
      case 'path_link':
        return this.pathLink(n(0), n(1), n(2), n(3), n(4), n(5), n(6));
      case 'path_open':
        return this.pathOpen(n(0), n(1), n(2), n(3), n(4), b(5), b(6), n(7), n(8));
      case 'path_readlink':
        return this.pathReadlink(n(0), n(1), n(2), n(3), n(4), n(5));
      case 'path_remove_directory':
        return this.pathRemoveDirectory(n(0), n(1), n(2));
      case 'path_rename':
        return this.pathRename(n(0), n(1), n(2), n(3), n(4), n(5));
      case 'path_symlink':
        return this.pathSymlink(n(0), n(1), n(2), n(3), n(4));
      case 'path_unlink_file':
        return this.pathUnlinkFile(n(0), n(1), n(2));
      case 'poll_oneoff':
        return this.pollOneoff(n(0), n(1), n(2), n(3));
      case 'proc_exit':
        this.state.exitCode = n(0);
        return { kind: 'exit', code: n(0) };
      case 'proc_raise':
        return Errno.ENOSYS;
      case 'random_get':
        this.host.randomFill(this.guest.slice(n(0), n(1)));
        return Errno.SUCCESS;
      case 'sched_yield':
        return Errno.SUCCESS;
      case 'sock_accept':
        return (n(1) & ~Fdflags.NONBLOCK) !== 0 ? Errno.ENOTSUP : this.fdRights(n(0), socketRights);
      case 'sock_recv':
      case 'sock_send':
        return this.fdRights(n(0), socketRights);
      case 'sock_shutdown':
        // uvwasi supports shutting down the write side only.
        return (n(1) & ~2) !== 0 ? Errno.ENOTSUP : this.fdRights(n(0), socketRights);
      default:
        assert.fail(`WASI function ${name} has a signature but no implementation`);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers.
  // ---------------------------------------------------------------------------------------------

  private get fs() {
    return this.state.fs;
  }

  private now(): bigint {
    return this.host.realtimeNs();
  }

  /** The descriptor, if it exists (EBADF) and holds every right asked for (ENOTCAPABLE). */
  private fd(fd: number, base: bigint, inheriting = 0n): WasiFd | number {
    const entry = this.state.fds[fd];
    if (entry === undefined) return Errno.EBADF;
    if ((entry.rightsBase & base) !== base || (entry.rightsInheriting & inheriting) !== inheriting) {
      return Errno.ENOTCAPABLE;
    }
    return entry;
  }

  private fdRights(fd: number, base: bigint): number {
    const entry = this.fd(fd, base);
    return typeof entry === 'number' ? entry : Errno.SUCCESS;
  }

  /** A directory descriptor with the rights, for the path_* calls. */
  private dirFd(fd: number, base: bigint, inheriting = 0n): WasiFd | number {
    const entry = this.fd(fd, base, inheriting);
    if (typeof entry !== 'number' && entry.kind !== 'directory') return Errno.ENOTDIR;
    return entry;
  }

  /** A path argument. Node reads it as a C string, so it ends at the first NUL. */
  private path(pointer: number, length: number): string {
    const bytes = this.guest.slice(pointer, length);
    const nul = bytes.indexOf(0);
    return decoder.decode(nul < 0 ? bytes : bytes.subarray(0, nul));
  }

  private writeFilestat(pointer: number, ino: number, stat: NodeStat): void {
    const size = filestatBytes[this.module];
    this.guest.slice(pointer, size).fill(0);
    const unstable = this.module === 'wasi_unstable';
    this.guest.setU64(pointer + 8, BigInt(ino));
    this.guest.setU8(pointer + 16, stat.filetype);
    if (unstable) this.guest.setU32(pointer + 20, stat.nlink);
    else this.guest.setU64(pointer + 24, BigInt(stat.nlink));
    const times = unstable ? 24 : 32;
    this.guest.setU64(pointer + times, BigInt(stat.size));
    this.guest.setU64(pointer + times + 8, stat.atimNs);
    this.guest.setU64(pointer + times + 16, stat.mtimNs);
    this.guest.setU64(pointer + times + 24, stat.ctimNs);
  }

  private fdStat(entry: WasiFd): NodeStat {
    if (entry.ino !== 0) return statNode(this.fs, entry.ino);
    return { filetype: Filetype.CHARACTER_DEVICE, nlink: 1, size: 0, atimNs: 0n, mtimNs: 0n, ctimNs: 0n };
  }

  // ---------------------------------------------------------------------------------------------
  // Arguments, environment, clocks.
  // ---------------------------------------------------------------------------------------------

  private stringsSizesGet(strings: readonly string[], countPointer: number, bytesPointer: number): number {
    this.guest.need(countPointer, 4);
    this.guest.need(bytesPointer, 4);
    const bytes = strings.reduce((sum, s) => sum + encoder.encode(s).length + 1, 0);
    this.guest.setU32(countPointer, strings.length);
    this.guest.setU32(bytesPointer, bytes);
    return Errno.SUCCESS;
  }

  private stringsGet(strings: readonly string[], pointersPointer: number, bufferPointer: number): number {
    const encoded = strings.map((s) => encoder.encode(`${s}\0`));
    this.guest.need(pointersPointer, strings.length * 4);
    this.guest.need(
      bufferPointer,
      encoded.reduce((sum, bytes) => sum + bytes.length, 0),
    );
    let at = bufferPointer;
    encoded.forEach((bytes, i) => {
      this.guest.setU32(pointersPointer + i * 4, at);
      this.guest.bytes.set(bytes, at);
      at += bytes.length;
    });
    return Errno.SUCCESS;
  }

  private clockResGet(id: number, resultPointer: number): number {
    if (id > ClockId.THREAD_CPUTIME_ID) return Errno.EINVAL;
    this.guest.setU64(resultPointer, 1n);
    return Errno.SUCCESS;
  }

  private clockTimeGet(id: number, resultPointer: number): number {
    if (id > ClockId.THREAD_CPUTIME_ID) return Errno.EINVAL;
    this.guest.setU64(
      resultPointer,
      id === ClockId.REALTIME ? this.host.realtimeNs() : this.host.monotonicNs(),
    );
    return Errno.SUCCESS;
  }

  // ---------------------------------------------------------------------------------------------
  // Descriptors.
  // ---------------------------------------------------------------------------------------------

  private fdAdvise(fd: number, advice: number): number {
    if (advice > adviceMax) return Errno.EINVAL;
    return this.fdRights(fd, Rights.FD_ADVISE);
  }

  private fdAllocate(fd: number, offset: bigint, length: bigint): number {
    const entry = this.fd(fd, Rights.FD_ALLOCATE);
    if (typeof entry === 'number') return entry;
    const end = offset + length;
    if (end > BigInt(memoryFsFileBytesMax)) return Errno.EFBIG;
    if (Number(end) <= this.fdStat(entry).size) return Errno.SUCCESS;
    return truncateFile(this.fs, entry.ino, Number(end), this.now());
  }

  private fdClose(fd: number): number {
    const entry = this.state.fds[fd];
    if (entry === undefined) return Errno.EBADF;
    delete this.state.fds[fd];
    if (entry.ino !== 0) releaseNode(this.fs, entry.ino);
    return Errno.SUCCESS;
  }

  private fdFdstatGet(fd: number, resultPointer: number): number {
    const entry = this.fd(fd, 0n);
    if (typeof entry === 'number') return entry;
    this.guest.slice(resultPointer, fdstatBytes).fill(0);
    this.guest.setU8(resultPointer, this.fdStat(entry).filetype);
    this.guest.setU16(resultPointer + 2, entry.fdflags);
    this.guest.setU64(resultPointer + 8, entry.rightsBase);
    this.guest.setU64(resultPointer + 16, entry.rightsInheriting);
    return Errno.SUCCESS;
  }

  private fdFdstatSetFlags(fd: number, flags: number): number {
    const entry = this.fd(fd, Rights.FD_FDSTAT_SET_FLAGS);
    if (typeof entry === 'number') return entry;
    entry.fdflags = flags & fdflagsAll;
    return Errno.SUCCESS;
  }

  private fdFdstatSetRights(fd: number, base: bigint, inheriting: bigint): number {
    const entry = this.fd(fd, 0n);
    if (typeof entry === 'number') return entry;
    // Rights can only be dropped, never gained.
    if ((base | entry.rightsBase) !== entry.rightsBase) return Errno.ENOTCAPABLE;
    if ((inheriting | entry.rightsInheriting) !== entry.rightsInheriting) return Errno.ENOTCAPABLE;
    entry.rightsBase = base;
    entry.rightsInheriting = inheriting;
    return Errno.SUCCESS;
  }

  private fdFilestatGet(fd: number, resultPointer: number): number {
    const entry = this.fd(fd, Rights.FD_FILESTAT_GET);
    if (typeof entry === 'number') return entry;
    this.guest.need(resultPointer, filestatBytes[this.module]);
    this.writeFilestat(resultPointer, entry.ino, this.fdStat(entry));
    return Errno.SUCCESS;
  }

  private fdFilestatSetSize(fd: number, size: bigint): number {
    const entry = this.fd(fd, Rights.FD_FILESTAT_SET_SIZE);
    if (typeof entry === 'number') return entry;
    if (size > BigInt(memoryFsFileBytesMax)) return Errno.EFBIG;
    return truncateFile(this.fs, entry.ino, Number(size), this.now());
  }

  private setTimes(ino: number, atim: bigint, mtim: bigint, flags: number): number {
    const now = this.now();
    const pick = (given: bigint, set: number, setNow: number) =>
      (flags & setNow) !== 0 ? now : (flags & set) !== 0 ? given : undefined;
    setNodeTimes(
      this.fs,
      ino,
      pick(atim, Fstflags.ATIM, Fstflags.ATIM_NOW),
      pick(mtim, Fstflags.MTIM, Fstflags.MTIM_NOW),
      now,
    );
    return Errno.SUCCESS;
  }

  private fdFilestatSetTimes(fd: number, atim: bigint, mtim: bigint, flags: number): number {
    if (!fstflagsValid(flags)) return Errno.EINVAL;
    const entry = this.fd(fd, Rights.FD_FILESTAT_SET_TIMES);
    if (typeof entry === 'number') return entry;
    return this.setTimes(entry.ino, atim, mtim, flags);
  }

  private fdPrestatGet(fd: number, resultPointer: number): number {
    const entry = this.state.fds[fd];
    if (entry === undefined) return Errno.EBADF;
    if (entry.preopen === null) return Errno.EINVAL;
    this.guest.slice(resultPointer, prestatBytes).fill(0);
    this.guest.setU32(resultPointer + 4, encoder.encode(entry.preopen).length);
    return Errno.SUCCESS;
  }

  private fdPrestatDirName(fd: number, pathPointer: number, pathLength: number): number {
    const entry = this.state.fds[fd];
    if (entry === undefined) return Errno.EBADF;
    if (entry.preopen === null) return Errno.EINVAL;
    const name = encoder.encode(entry.preopen);
    if (pathLength < name.length) return Errno.ENOBUFS;
    this.guest.slice(pathPointer, name.length).set(name);
    return Errno.SUCCESS;
  }

  /** Copies `source` into the vectors in order; returns the bytes copied. */
  private static scatter(source: Uint8Array, vectors: readonly Uint8Array[]): number {
    let copied = 0;
    for (const vector of vectors) {
      if (copied === source.length) break;
      const part = source.subarray(copied, copied + vector.length);
      vector.set(part);
      copied += part.length;
    }
    return copied;
  }

  private fdRead(fd: number, iovs: number, iovsLength: number, resultPointer: number): number | WasiOutcome {
    const entry = this.fd(fd, Rights.FD_READ);
    if (typeof entry === 'number') return entry;
    const vectors = this.guest.vectors(iovs, iovsLength);
    this.guest.need(resultPointer, 4);
    const wanted = vectors.reduce((sum, vector) => sum + vector.length, 0);
    let read: number;
    if (entry.kind === 'stdin') {
      const stdin = this.state.stdin;
      if (stdin.bytes.length === 0 && !stdin.eof && wanted > 0) {
        if ((entry.fdflags & Fdflags.NONBLOCK) !== 0) return Errno.EAGAIN;
        return { kind: 'block', on: 'stdin' };
      }
      read = Wasi.scatter(stdin.bytes, vectors);
      stdin.bytes = stdin.bytes.subarray(read);
    } else {
      read = Wasi.scatter(readFile(this.fs, entry.ino, entry.offset, wanted, this.now()), vectors);
      entry.offset += read;
    }
    this.guest.setU32(resultPointer, read);
    return Errno.SUCCESS;
  }

  private fdPread(
    fd: number,
    iovs: number,
    iovsLength: number,
    offset: bigint,
    resultPointer: number,
  ): number {
    const entry = this.fd(fd, Rights.FD_READ | Rights.FD_SEEK);
    if (typeof entry === 'number') return entry;
    const vectors = this.guest.vectors(iovs, iovsLength);
    this.guest.need(resultPointer, 4);
    const wanted = vectors.reduce((sum, vector) => sum + vector.length, 0);
    const start = offset > BigInt(memoryFsFileBytesMax) ? memoryFsFileBytesMax : Number(offset);
    this.guest.setU32(
      resultPointer,
      Wasi.scatter(readFile(this.fs, entry.ino, start, wanted, this.now()), vectors),
    );
    return Errno.SUCCESS;
  }

  private fdWrite(fd: number, iovs: number, iovsLength: number, resultPointer: number): number {
    const entry = this.fd(fd, Rights.FD_WRITE);
    if (typeof entry === 'number') return entry;
    const vectors = this.guest.vectors(iovs, iovsLength);
    this.guest.need(resultPointer, 4);
    let written: number;
    if (entry.kind === 'stdout' || entry.kind === 'stderr') {
      const bytes = new Uint8Array(vectors.reduce((sum, vector) => sum + vector.length, 0));
      let at = 0;
      for (const vector of vectors) {
        bytes.set(vector, at);
        at += vector.length;
      }
      if (bytes.length > 0) this.host[entry.kind](bytes);
      written = bytes.length;
    } else {
      const append = (entry.fdflags & Fdflags.APPEND) !== 0;
      const offset = append ? statNode(this.fs, entry.ino).size : entry.offset;
      const result = writeFile(this.fs, entry.ino, offset, vectors, this.now());
      if (typeof result === 'number') return result;
      written = result.written;
      entry.offset = offset + written;
    }
    this.guest.setU32(resultPointer, written);
    return Errno.SUCCESS;
  }

  private fdPwrite(
    fd: number,
    iovs: number,
    iovsLength: number,
    offset: bigint,
    resultPointer: number,
  ): number {
    const entry = this.fd(fd, Rights.FD_WRITE | Rights.FD_SEEK);
    if (typeof entry === 'number') return entry;
    const vectors = this.guest.vectors(iovs, iovsLength);
    this.guest.need(resultPointer, 4);
    if (offset > BigInt(memoryFsFileBytesMax)) return Errno.EFBIG;
    const result = writeFile(this.fs, entry.ino, Number(offset), vectors, this.now());
    if (typeof result === 'number') return result;
    this.guest.setU32(resultPointer, result.written);
    return Errno.SUCCESS;
  }

  private fdReaddir(
    fd: number,
    buffer: number,
    bufferLength: number,
    cookie: bigint,
    resultPointer: number,
  ): number {
    const entry = this.fd(fd, Rights.FD_READDIR);
    if (typeof entry === 'number') return entry;
    const output = this.guest.slice(buffer, bufferLength);
    this.guest.need(resultPointer, 4);
    // Entries are written back to back, the last one cut off where the buffer ends: a full buffer
    // tells the guest to call again (or to grow its buffer when not even one entry fit).
    let used = 0;
    for (const dirent of listDirectory(this.fs, entry.ino)) {
      if (used === bufferLength) break;
      if (BigInt(dirent.cookie) <= cookie) continue;
      const name = encoder.encode(dirent.name);
      const record = new Uint8Array(direntBytes + name.length);
      const view = new DataView(record.buffer);
      view.setBigUint64(0, BigInt(dirent.cookie), true);
      view.setBigUint64(8, BigInt(dirent.ino), true);
      view.setUint32(16, name.length, true);
      view.setUint8(20, nodeFiletype(fsNode(this.fs, dirent.ino)));
      record.set(name, direntBytes);
      const part = record.subarray(0, bufferLength - used);
      output.set(part, used);
      used += part.length;
    }
    this.guest.setU32(resultPointer, used);
    return Errno.SUCCESS;
  }

  private fdRenumber(from: number, to: number): number {
    const source = this.state.fds[from];
    const target = this.state.fds[to];
    if (source === undefined || target === undefined) return Errno.EBADF;
    if (from === to) return Errno.SUCCESS;
    if (target.ino !== 0) releaseNode(this.fs, target.ino);
    this.state.fds[to] = source;
    delete this.state.fds[from];
    return Errno.SUCCESS;
  }

  private fdSeek(fd: number, offset: bigint, whence: number, resultPointer: number): number {
    const entry = this.fd(fd, Rights.FD_SEEK);
    if (typeof entry === 'number') return entry;
    this.guest.need(resultPointer, 8);
    const names = this.module === 'wasi_unstable' ? WhenceUnstable : WhencePreview1;
    let base: number;
    if (whence === names.SET) base = 0;
    else if (whence === names.CUR) base = entry.offset;
    else if (whence === names.END) base = this.fdStat(entry).size;
    else return Errno.EINVAL;
    const position = BigInt(base) + BigInt.asIntN(64, offset);
    if (position < 0n) return Errno.EINVAL;
    if (position > BigInt(Number.MAX_SAFE_INTEGER)) return Errno.EOVERFLOW;
    entry.offset = Number(position);
    this.guest.setU64(resultPointer, position);
    return Errno.SUCCESS;
  }

  private fdTell(fd: number, resultPointer: number): number {
    const entry = this.fd(fd, Rights.FD_TELL);
    if (typeof entry === 'number') return entry;
    this.guest.setU64(resultPointer, BigInt(entry.offset));
    return Errno.SUCCESS;
  }

  // ---------------------------------------------------------------------------------------------
  // Paths.
  // ---------------------------------------------------------------------------------------------

  private pathCreateDirectory(fd: number, pathPointer: number, pathLength: number): number {
    const dir = this.dirFd(fd, Rights.PATH_CREATE_DIRECTORY);
    if (typeof dir === 'number') return dir;
    const at = resolvePath(this.fs, dir.ino, this.path(pathPointer, pathLength), false);
    return typeof at === 'number' ? at : makeDirectory(this.fs, at, this.now());
  }

  private pathFilestatGet(
    fd: number,
    lookupflags: number,
    pathPointer: number,
    pathLength: number,
    resultPointer: number,
  ): number {
    const dir = this.dirFd(fd, Rights.PATH_FILESTAT_GET);
    if (typeof dir === 'number') return dir;
    const path = this.path(pathPointer, pathLength);
    this.guest.need(resultPointer, filestatBytes[this.module]);
    const at = resolvePath(this.fs, dir.ino, path, (lookupflags & Lookupflags.SYMLINK_FOLLOW) !== 0);
    if (typeof at === 'number') return at;
    if (at.ino === undefined) return Errno.ENOENT;
    this.writeFilestat(resultPointer, at.ino, statNode(this.fs, at.ino));
    return Errno.SUCCESS;
  }

  private pathFilestatSetTimes(
    fd: number,
    lookupflags: number,
    pathPointer: number,
    pathLength: number,
    atim: bigint,
    mtim: bigint,
    flags: number,
  ): number {
    if (!fstflagsValid(flags)) return Errno.EINVAL;
    const dir = this.dirFd(fd, Rights.PATH_FILESTAT_SET_TIMES);
    if (typeof dir === 'number') return dir;
    const path = this.path(pathPointer, pathLength);
    const at = resolvePath(this.fs, dir.ino, path, (lookupflags & Lookupflags.SYMLINK_FOLLOW) !== 0);
    if (typeof at === 'number') return at;
    if (at.ino === undefined) return Errno.ENOENT;
    return this.setTimes(at.ino, atim, mtim, flags);
  }

  private pathLink(
    oldFd: number,
    lookupflags: number,
    oldPointer: number,
    oldLength: number,
    newFd: number,
    newPointer: number,
    newLength: number,
  ): number {
    const oldDir = this.dirFd(oldFd, Rights.PATH_LINK_SOURCE);
    if (typeof oldDir === 'number') return oldDir;
    const newDir = this.dirFd(newFd, Rights.PATH_LINK_TARGET);
    if (typeof newDir === 'number') return newDir;
    const oldPath = this.path(oldPointer, oldLength);
    const newPath = this.path(newPointer, newLength);
    const from = resolvePath(this.fs, oldDir.ino, oldPath, (lookupflags & Lookupflags.SYMLINK_FOLLOW) !== 0);
    if (typeof from === 'number') return from;
    if (from.ino === undefined) return Errno.ENOENT;
    const to = resolvePath(this.fs, newDir.ino, newPath, false);
    if (typeof to === 'number') return to;
    return linkNode(this.fs, from.ino, to, this.now());
  }

  private pathOpen(
    fd: number,
    lookupflags: number,
    pathPointer: number,
    pathLength: number,
    oflags: number,
    rightsBase: bigint,
    rightsInheriting: bigint,
    fdflags: number,
    resultPointer: number,
  ): number {
    // The rights the directory must hold and hand down, computed as uvwasi does.
    const read = (rightsBase & (Rights.FD_READ | Rights.FD_READDIR)) !== 0n;
    const write = (rightsBase & writeRights) !== 0n;
    let neededBase = Rights.PATH_OPEN;
    let neededInheriting = rightsBase | rightsInheriting;
    if ((oflags & Oflags.CREAT) !== 0) neededBase |= Rights.PATH_CREATE_FILE;
    if ((oflags & Oflags.TRUNC) !== 0) neededBase |= Rights.PATH_FILESTAT_SET_SIZE;
    if ((fdflags & Fdflags.DSYNC) !== 0) neededInheriting |= Rights.FD_DATASYNC;
    if ((fdflags & (Fdflags.RSYNC | Fdflags.SYNC)) !== 0) neededInheriting |= Rights.FD_SYNC;
    if (write && (fdflags & Fdflags.APPEND) === 0 && (oflags & Oflags.TRUNC) === 0) {
      neededInheriting |= Rights.FD_SEEK;
    }
    const dir = this.dirFd(fd, neededBase, neededInheriting);
    if (typeof dir === 'number') return dir;
    const path = this.path(pathPointer, pathLength);
    this.guest.need(resultPointer, 4);

    const now = this.now();
    const at = resolvePath(this.fs, dir.ino, path, (lookupflags & Lookupflags.SYMLINK_FOLLOW) !== 0);
    if (typeof at === 'number') return at;
    let ino = at.ino;
    if (ino === undefined) {
      if ((oflags & Oflags.CREAT) === 0) return Errno.ENOENT;
      if ((oflags & Oflags.DIRECTORY) !== 0) return Errno.EINVAL;
      const created = createFile(this.fs, at, now);
      if (typeof created === 'number') return created;
      ino = created.ino;
    } else {
      const node = fsNode(this.fs, ino);
      if ((oflags & (Oflags.CREAT | Oflags.EXCL)) === (Oflags.CREAT | Oflags.EXCL)) return Errno.EEXIST;
      // Only reached without SYMLINK_FOLLOW, where POSIX's O_NOFOLLOW refuses a link.
      if (node.kind === 'symlink') return Errno.ELOOP;
      if ((oflags & Oflags.DIRECTORY) !== 0 && node.kind !== 'dir') return Errno.ENOTDIR;
      if (node.kind === 'dir' && (write || (oflags & Oflags.TRUNC) !== 0)) return Errno.EISDIR;
      if (node.kind === 'file' && (oflags & Oflags.TRUNC) !== 0) truncateFile(this.fs, ino, 0, now);
    }

    // The new descriptor gets what was asked for, within what its kind of file allows.
    const isDirectory = fsNode(this.fs, ino).kind === 'dir';
    let maxBase = isDirectory ? RightSets.directoryBase : RightSets.regularFileBase;
    if (!write) maxBase &= ~Rights.FD_WRITE;
    else if (!read) maxBase &= ~Rights.FD_READ;
    const maxInheriting = isDirectory ? directoryInheritingRights : RightSets.regularFileInheriting;
    const opened = this.state.nextFd++;
    this.state.fds[opened] = {
      kind: isDirectory ? 'directory' : 'file',
      ino,
      offset: 0,
      fdflags: fdflags & fdflagsAll,
      rightsBase: rightsBase & maxBase,
      rightsInheriting: rightsInheriting & maxInheriting,
      preopen: null,
    };
    retainNode(this.fs, ino);
    this.guest.setU32(resultPointer, opened);
    return Errno.SUCCESS;
  }

  private pathReadlink(
    fd: number,
    pathPointer: number,
    pathLength: number,
    buffer: number,
    bufferLength: number,
    resultPointer: number,
  ): number {
    const dir = this.dirFd(fd, Rights.PATH_READLINK);
    if (typeof dir === 'number') return dir;
    const path = this.path(pathPointer, pathLength);
    const output = this.guest.slice(buffer, bufferLength);
    this.guest.need(resultPointer, 4);
    const at = resolvePath(this.fs, dir.ino, path, false);
    if (typeof at === 'number') return at;
    if (at.ino === undefined) return Errno.ENOENT;
    const node = fsNode(this.fs, at.ino);
    if (node.kind !== 'symlink') return Errno.EINVAL;
    // As Node does: the target is followed by a NUL that bufused does not count, and a buffer
    // without room for both is ENOBUFS (where readlink(2) would truncate).
    const target = encoder.encode(node.target);
    if (target.length >= bufferLength) return Errno.ENOBUFS;
    output.set(target);
    output[target.length] = 0;
    this.guest.setU32(resultPointer, target.length);
    return Errno.SUCCESS;
  }

  private pathRemoveDirectory(fd: number, pathPointer: number, pathLength: number): number {
    const dir = this.dirFd(fd, Rights.PATH_REMOVE_DIRECTORY);
    if (typeof dir === 'number') return dir;
    const at = resolvePath(this.fs, dir.ino, this.path(pathPointer, pathLength), false);
    return typeof at === 'number' ? at : removeDirectory(this.fs, at, this.now());
  }

  private pathRename(
    oldFd: number,
    oldPointer: number,
    oldLength: number,
    newFd: number,
    newPointer: number,
    newLength: number,
  ): number {
    const oldDir = this.dirFd(oldFd, Rights.PATH_RENAME_SOURCE);
    if (typeof oldDir === 'number') return oldDir;
    const newDir = this.dirFd(newFd, Rights.PATH_RENAME_TARGET);
    if (typeof newDir === 'number') return newDir;
    const oldPath = this.path(oldPointer, oldLength);
    const newPath = this.path(newPointer, newLength);
    const from = resolvePath(this.fs, oldDir.ino, oldPath, false);
    if (typeof from === 'number') return from;
    const to = resolvePath(this.fs, newDir.ino, newPath, false);
    if (typeof to === 'number') return to;
    return renameEntry(this.fs, from, to, this.now());
  }

  private pathSymlink(
    targetPointer: number,
    targetLength: number,
    fd: number,
    pathPointer: number,
    pathLength: number,
  ): number {
    const dir = this.dirFd(fd, Rights.PATH_SYMLINK);
    if (typeof dir === 'number') return dir;
    const target = this.path(targetPointer, targetLength);
    const at = resolvePath(this.fs, dir.ino, this.path(pathPointer, pathLength), false);
    return typeof at === 'number' ? at : makeSymlink(this.fs, target, at, this.now());
  }

  private pathUnlinkFile(fd: number, pathPointer: number, pathLength: number): number {
    const dir = this.dirFd(fd, Rights.PATH_UNLINK_FILE);
    if (typeof dir === 'number') return dir;
    const at = resolvePath(this.fs, dir.ino, this.path(pathPointer, pathLength), false);
    return typeof at === 'number' ? at : unlinkFile(this.fs, at, this.now());
  }

  // ---------------------------------------------------------------------------------------------
  // poll_oneoff.
  // ---------------------------------------------------------------------------------------------

  private pollOneoff(
    subscriptions: number,
    events: number,
    count: number,
    resultPointer: number,
  ): number | WasiOutcome {
    if (count === 0) return Errno.EINVAL;
    const unstable = this.module === 'wasi_unstable';
    const size = subscriptionBytes[this.module];
    const input = this.guest.slice(subscriptions, count * size);
    const output = this.guest.slice(events, count * eventBytes);
    this.guest.need(resultPointer, 4);

    // A re-execution of a call that blocked measures its timeouts from the first execution.
    const key = `${this.module}:${subscriptions}:${events}:${count}:${Buffer.from(input).toString('base64')}`;
    const pending = this.state.pendingPolls.find((poll) => poll.key === key);
    const start = pending ?? {
      key,
      monotonicNs: this.host.monotonicNs(),
      realtimeNs: this.host.realtimeNs(),
    };
    const now = pending === undefined ? start.monotonicNs : this.host.monotonicNs();

    const ready: { userdata: bigint; error: number; type: number; nbytes: bigint; flags: number }[] = [];
    let earliest: bigint | undefined;
    for (let i = 0; i < count; i++) {
      const at = subscriptions + i * size;
      const userdata = this.guest.u64(at);
      const type = this.guest.u8(at + 8);
      if (type === Eventtype.CLOCK) {
        const clock = at + (unstable ? 24 : 16);
        const id = this.guest.u32(clock);
        const timeout = this.guest.u64(clock + 8);
        const absolute = (this.guest.u16(clock + 24) & Subclockflags.ABSTIME) !== 0;
        if (id > ClockId.THREAD_CPUTIME_ID) {
          ready.push({ userdata, error: Errno.EINVAL, type, nbytes: 0n, flags: 0 });
          continue;
        }
        // Deadlines are kept on the monotonic clock; an absolute realtime one is converted once.
        let deadline = start.monotonicNs + timeout;
        if (absolute)
          deadline = id === ClockId.REALTIME ? start.monotonicNs + (timeout - start.realtimeNs) : timeout;
        if (deadline <= now) ready.push({ userdata, error: Errno.SUCCESS, type, nbytes: 0n, flags: 0 });
        else if (earliest === undefined || deadline < earliest) earliest = deadline;
      } else if (type === Eventtype.FD_READ || type === Eventtype.FD_WRITE) {
        const event = this.pollFd(this.guest.u32(at + 16), type);
        if (event !== undefined) ready.push({ userdata, type, ...event });
      } else {
        return Errno.EINVAL;
      }
    }

    if (ready.length === 0) {
      if (earliest === undefined) return { kind: 'block', on: 'stdin' };
      if (pending === undefined) {
        if (this.state.pendingPolls.length >= threadsPerTaskMax) this.state.pendingPolls.shift();
        this.state.pendingPolls.push(start);
      }
      return { kind: 'block', on: 'sleep', untilMonotonicNs: earliest };
    }
    if (pending !== undefined) this.state.pendingPolls.splice(this.state.pendingPolls.indexOf(pending), 1);
    output.fill(0);
    ready.forEach((event, i) => {
      const at = events + i * eventBytes;
      this.guest.setU64(at, event.userdata);
      this.guest.setU16(at + 8, event.error);
      this.guest.setU8(at + 10, event.type);
      this.guest.setU64(at + 16, event.nbytes);
      this.guest.setU16(at + 24, event.flags);
    });
    this.guest.setU32(resultPointer, ready.length);
    return Errno.SUCCESS;
  }

  /** The event of a descriptor subscription if it is ready (errors are events too), else undefined. */
  private pollFd(fd: number, type: number): { error: number; nbytes: bigint; flags: number } | undefined {
    const right = type === Eventtype.FD_READ ? Rights.FD_READ : Rights.FD_WRITE;
    const entry = this.fd(fd, right | Rights.POLL_FD_READWRITE);
    if (typeof entry === 'number') return { error: entry, nbytes: 0n, flags: 0 };
    if (entry.kind === 'stdin') {
      const { bytes, eof } = this.state.stdin;
      if (bytes.length === 0 && !eof) return undefined;
      const flags = bytes.length === 0 ? Eventrwflags.FD_READWRITE_HANGUP : 0;
      return { error: Errno.SUCCESS, nbytes: BigInt(bytes.length), flags };
    }
    // Files are always ready; a read reports how much is left before the end.
    const left =
      entry.kind === 'file' && type === Eventtype.FD_READ ? this.fdStat(entry).size - entry.offset : 0;
    return { error: Errno.SUCCESS, nbytes: BigInt(Math.max(0, left)), flags: 0 };
  }
}

/**
 * Convenience for standalone use and tests: an import object for plain (un-instrumented)
 * instantiation. A 'block' outcome throws an Error (nothing can wait here); an 'exit' throws WasiExit.
 */
export function wasiImportObject(
  wasi: Wasi,
  modules: readonly WasiModuleName[] = wasiModuleNames,
): WebAssembly.Imports {
  const imports: WebAssembly.Imports = {};
  for (const module of modules) {
    const functions: WebAssembly.ModuleImports = {};
    for (const name of wasiFunctionNames) {
      if (wasiFunctionSignature(module, name) === undefined) continue;
      functions[name] = (...args: (number | bigint)[]) => {
        const outcome = wasi.call(module, name, args);
        if (outcome.kind === 'return') return outcome.value;
        if (outcome.kind === 'exit') throw new WasiExit(outcome.code);
        throw new Error(
          `WASI ${name} would block on ${outcome.on}, which a plain instantiation cannot wait for`,
        );
      };
    }
    imports[module] = functions;
  }
  return imports;
}
