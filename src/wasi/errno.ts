/**
 * WASI preview1 constants (`wasi_snapshot_preview1` witx, numbering shared by `wasi_unstable` except
 * where a name says otherwise). Rights are bigints because the guest passes them as i64.
 */

/** Error codes (`errno`, u16). The names are POSIX's; the numbers are WASI's, not Linux's. */
export const Errno = {
  SUCCESS: 0,
  E2BIG: 1,
  EACCES: 2,
  EADDRINUSE: 3,
  EADDRNOTAVAIL: 4,
  EAFNOSUPPORT: 5,
  EAGAIN: 6,
  EALREADY: 7,
  EBADF: 8,
  EBADMSG: 9,
  EBUSY: 10,
  ECANCELED: 11,
  ECHILD: 12,
  ECONNABORTED: 13,
  ECONNREFUSED: 14,
  ECONNRESET: 15,
  EDEADLK: 16,
  EDESTADDRREQ: 17,
  EDOM: 18,
  EDQUOT: 19,
  EEXIST: 20,
  EFAULT: 21,
  EFBIG: 22,
  EHOSTUNREACH: 23,
  EIDRM: 24,
  EILSEQ: 25,
  EINPROGRESS: 26,
  EINTR: 27,
  EINVAL: 28,
  EIO: 29,
  EISCONN: 30,
  EISDIR: 31,
  ELOOP: 32,
  EMFILE: 33,
  EMLINK: 34,
  EMSGSIZE: 35,
  EMULTIHOP: 36,
  ENAMETOOLONG: 37,
  ENETDOWN: 38,
  ENETRESET: 39,
  ENETUNREACH: 40,
  ENFILE: 41,
  ENOBUFS: 42,
  ENODEV: 43,
  ENOENT: 44,
  ENOEXEC: 45,
  ENOLCK: 46,
  ENOLINK: 47,
  ENOMEM: 48,
  ENOMSG: 49,
  ENOPROTOOPT: 50,
  ENOSPC: 51,
  ENOSYS: 52,
  ENOTCONN: 53,
  ENOTDIR: 54,
  ENOTEMPTY: 55,
  ENOTRECOVERABLE: 56,
  ENOTSOCK: 57,
  ENOTSUP: 58,
  ENOTTY: 59,
  ENXIO: 60,
  EOVERFLOW: 61,
  EOWNERDEAD: 62,
  EPERM: 63,
  EPIPE: 64,
  EPROTO: 65,
  EPROTONOSUPPORT: 66,
  EPROTOTYPE: 67,
  ERANGE: 68,
  EROFS: 69,
  ESPIPE: 70,
  ESRCH: 71,
  ESTALE: 72,
  ETIMEDOUT: 73,
  ETXTBSY: 74,
  EXDEV: 75,
  ENOTCAPABLE: 76,
} as const;

export type ErrnoName = keyof typeof Errno;

const errnoNames = new Map<number, ErrnoName>(
  Object.entries(Errno).map(([name, code]) => [code, name as ErrnoName]),
);

/** The name of an errno, e.g. `ENOENT`, for messages and test failures. */
export function errnoName(code: number): string {
  return errnoNames.get(code) ?? `E_UNKNOWN(${code})`;
}

/** The type of a file or file descriptor (`filetype`, u8). */
export const Filetype = {
  UNKNOWN: 0,
  BLOCK_DEVICE: 1,
  CHARACTER_DEVICE: 2,
  DIRECTORY: 3,
  REGULAR_FILE: 4,
  SOCKET_DGRAM: 5,
  SOCKET_STREAM: 6,
  SYMBOLIC_LINK: 7,
} as const;

/** `whence` of fd_seek in wasi_snapshot_preview1. */
export const WhencePreview1 = { SET: 0, CUR: 1, END: 2 } as const;
/** `whence` of fd_seek in wasi_unstable: the same names, numbered in another order. */
export const WhenceUnstable = { CUR: 0, END: 1, SET: 2 } as const;

/** Rights of a file descriptor (`rights`, u64 flags), one bit per operation. */
export const Rights = {
  FD_DATASYNC: 1n << 0n,
  FD_READ: 1n << 1n,
  FD_SEEK: 1n << 2n,
  FD_FDSTAT_SET_FLAGS: 1n << 3n,
  FD_SYNC: 1n << 4n,
  FD_TELL: 1n << 5n,
  FD_WRITE: 1n << 6n,
  FD_ADVISE: 1n << 7n,
  FD_ALLOCATE: 1n << 8n,
  PATH_CREATE_DIRECTORY: 1n << 9n,
  PATH_CREATE_FILE: 1n << 10n,
  PATH_LINK_SOURCE: 1n << 11n,
  PATH_LINK_TARGET: 1n << 12n,
  PATH_OPEN: 1n << 13n,
  FD_READDIR: 1n << 14n,
  PATH_READLINK: 1n << 15n,
  PATH_RENAME_SOURCE: 1n << 16n,
  PATH_RENAME_TARGET: 1n << 17n,
  PATH_FILESTAT_GET: 1n << 18n,
  PATH_FILESTAT_SET_SIZE: 1n << 19n,
  PATH_FILESTAT_SET_TIMES: 1n << 20n,
  FD_FILESTAT_GET: 1n << 21n,
  FD_FILESTAT_SET_SIZE: 1n << 22n,
  FD_FILESTAT_SET_TIMES: 1n << 23n,
  PATH_SYMLINK: 1n << 24n,
  PATH_REMOVE_DIRECTORY: 1n << 25n,
  PATH_UNLINK_FILE: 1n << 26n,
  POLL_FD_READWRITE: 1n << 27n,
  SOCK_SHUTDOWN: 1n << 28n,
  /** preview1 only. */
  SOCK_ACCEPT: 1n << 29n,
} as const;

const R = Rights;

/**
 * The most a descriptor of each kind may hold: uvwasi's (Node's) tables, so that a guest probing its
 * rights with fd_fdstat_get sees what it would see under node:wasi.
 */
export const RightSets = {
  regularFileBase:
    R.FD_DATASYNC |
    R.FD_READ |
    R.FD_SEEK |
    R.FD_FDSTAT_SET_FLAGS |
    R.FD_SYNC |
    R.FD_TELL |
    R.FD_WRITE |
    R.FD_ADVISE |
    R.FD_ALLOCATE |
    R.FD_FILESTAT_GET |
    R.FD_FILESTAT_SET_SIZE |
    R.FD_FILESTAT_SET_TIMES |
    R.POLL_FD_READWRITE,
  regularFileInheriting: 0n,
  directoryBase:
    R.FD_FDSTAT_SET_FLAGS |
    R.FD_SYNC |
    R.FD_ADVISE |
    R.PATH_CREATE_DIRECTORY |
    R.PATH_CREATE_FILE |
    R.PATH_LINK_SOURCE |
    R.PATH_LINK_TARGET |
    R.PATH_OPEN |
    R.FD_READDIR |
    R.PATH_READLINK |
    R.PATH_RENAME_SOURCE |
    R.PATH_RENAME_TARGET |
    R.PATH_FILESTAT_GET |
    R.PATH_FILESTAT_SET_SIZE |
    R.PATH_FILESTAT_SET_TIMES |
    R.FD_FILESTAT_GET |
    R.FD_FILESTAT_SET_TIMES |
    R.PATH_SYMLINK |
    R.PATH_UNLINK_FILE |
    R.PATH_REMOVE_DIRECTORY |
    R.POLL_FD_READWRITE,
  /** A terminal: stdin, stdout and stderr look like one (character device, not seekable). */
  ttyBase: R.FD_READ | R.FD_FDSTAT_SET_FLAGS | R.FD_WRITE | R.FD_FILESTAT_GET | R.POLL_FD_READWRITE,
} as const;

/** Directories hand down what they and the files in them may do (uvwasi's DIRECTORY_INHERITING). */
export const directoryInheritingRights = RightSets.directoryBase | RightSets.regularFileBase;

/** `oflags` of path_open (u16). */
export const Oflags = { CREAT: 1, DIRECTORY: 2, EXCL: 4, TRUNC: 8 } as const;

/** `fdflags` (u16). */
export const Fdflags = { APPEND: 1, DSYNC: 2, NONBLOCK: 4, RSYNC: 8, SYNC: 16 } as const;

/** `lookupflags` (u32). */
export const Lookupflags = { SYMLINK_FOLLOW: 1 } as const;

/** `fstflags` of the *_set_times calls (u16). */
export const Fstflags = { ATIM: 1, ATIM_NOW: 2, MTIM: 4, MTIM_NOW: 8 } as const;

/** `clockid` (u32). */
export const ClockId = { REALTIME: 0, MONOTONIC: 1, PROCESS_CPUTIME_ID: 2, THREAD_CPUTIME_ID: 3 } as const;

/** `eventtype` of poll_oneoff subscriptions and events (u8). */
export const Eventtype = { CLOCK: 0, FD_READ: 1, FD_WRITE: 2 } as const;

/** `subclockflags` (u16). */
export const Subclockflags = { ABSTIME: 1 } as const;

/** `eventrwflags` (u16). */
export const Eventrwflags = { FD_READWRITE_HANGUP: 1 } as const;

/** `advice` of fd_advise (u8): NORMAL .. NOREUSE. */
export const adviceMax = 5;

/** `preopentype` (u8). */
export const Preopentype = { DIR: 0 } as const;
