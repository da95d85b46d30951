/**
 * Everything a task's WASI layer remembers, as plain data (objects, arrays, strings, numbers, bigints,
 * booleans, Uint8Array, null) so that a snapshot can carry it with cbor-x and a restore can hand it
 * to a new `Wasi` unchanged. No Map, Set, class instance, closure or host handle may live here.
 */

import { directoryInheritingRights, RightSets, Rights } from './errno.js';
import { createMemoryFs, type MemoryFs, putFile, retainNode, rootIno } from './memory-fs.js';

/** What a descriptor refers to: one of the host-backed standard streams, or a node of the file system. */
export type WasiFdKind = 'stdin' | 'stdout' | 'stderr' | 'file' | 'directory';

export interface WasiFd {
  kind: WasiFdKind;
  /** The node of a 'file' or 'directory' descriptor; 0 for the standard streams. */
  ino: number;
  /** Read/write position of a 'file' descriptor, in bytes. */
  offset: number;
  /** `fdflags` (APPEND, NONBLOCK, ...). */
  fdflags: number;
  rightsBase: bigint;
  rightsInheriting: bigint;
  /** The name a preopened directory is known by (fd_prestat_dir_name); null for other descriptors. */
  preopen: string | null;
}

/**
 * A poll_oneoff that blocked. The kernel re-executes the same call when the thread wakes, and relative
 * timeouts must count from the first execution, not from the re-execution: the clocks at that first
 * execution are kept here, under a key made of the call's arguments and subscriptions.
 */
export interface PendingPoll {
  key: string;
  monotonicNs: bigint;
  realtimeNs: bigint;
}

export interface WasiState {
  /** The layout of this object; bumped when a field changes meaning, so that old snapshots are refused. */
  version: 1;
  args: string[];
  /** `KEY=VALUE` strings, in the order the environment was given. */
  env: string[];
  /** Open descriptors by number. */
  fds: Record<number, WasiFd>;
  /** The number the next opened descriptor gets (numbers are not reused). */
  nextFd: number;
  fs: MemoryFs;
  /** Bytes the user sent that the guest has not read yet, and whether the user closed the stream. */
  stdin: { bytes: Uint8Array; eof: boolean };
  /** The code the guest passed to proc_exit, once it has. */
  exitCode: number | null;
  pendingPolls: PendingPoll[];
}

export interface WasiStateOptions {
  args: string[];
  env: Record<string, string>;
  /** Files of the sandbox by absolute path (e.g. '/data/in.txt'); their directories are created. */
  files?: Record<string, Uint8Array>;
  stdin?: Uint8Array;
  /** True when `stdin` is all the input there will be: reading past it returns end of file. */
  stdinClosed?: boolean;
}

/** The descriptor number of the preopened sandbox root `/`, the first after the standard streams. */
export const rootFd = 3;

function stream(kind: 'stdin' | 'stdout' | 'stderr'): WasiFd {
  // A terminal that only reads (stdin) or only writes (stdout, stderr), as uvwasi opens a tty.
  const without = kind === 'stdin' ? Rights.FD_WRITE : Rights.FD_READ;
  return {
    kind,
    ino: 0,
    offset: 0,
    fdflags: 0,
    rightsBase: RightSets.ttyBase & ~without,
    rightsInheriting: 0n,
    preopen: null,
  };
}

export function createWasiState(options: WasiStateOptions): WasiState {
  const fs = createMemoryFs();
  for (const [path, data] of Object.entries(options.files ?? {})) putFile(fs, path, data, 0n);
  retainNode(fs, rootIno);
  return {
    version: 1,
    args: [...options.args],
    env: Object.entries(options.env).map(([key, value]) => `${key}=${value}`),
    fds: {
      0: stream('stdin'),
      1: stream('stdout'),
      2: stream('stderr'),
      [rootFd]: {
        kind: 'directory',
        ino: rootIno,
        offset: 0,
        fdflags: 0,
        rightsBase: RightSets.directoryBase,
        rightsInheriting: directoryInheritingRights,
        preopen: '/',
      },
    },
    nextFd: rootFd + 1,
    fs,
    stdin: { bytes: Uint8Array.from(options.stdin ?? []), eof: options.stdinClosed ?? false },
    exitCode: null,
    pendingPolls: [],
  };
}
