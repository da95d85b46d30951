/**
 * Exit codes of the `norma` command. A task's own exit code passes through unchanged (0–125 by
 * convention); norma's own failures use the BSD sysexits codes so a script can tell them apart.
 */
import type { ErrorCode } from '../errors.js';

export const ExitCode = {
  OK: 0,
  /** The command line is wrong (EX_USAGE). */
  USAGE: 64,
  /** The module or another input was refused (EX_DATAERR). */
  DATA: 65,
  /** An input file does not exist (EX_NOINPUT). */
  NO_INPUT: 66,
  /** The node (a service) is not running (EX_UNAVAILABLE). */
  UNAVAILABLE: 69,
  /** norma itself failed (EX_SOFTWARE). */
  SOFTWARE: 70,
  /** The cache or another output cannot be written (EX_CANTCREAT). */
  CANT_CREATE: 73,
  /** A control request was refused by the node: not the protocol (EX_PROTOCOL). */
  PROTOCOL: 76,
} as const;

export function exitCodeOf(code: ErrorCode): number {
  switch (code) {
    case 'USAGE':
      return ExitCode.USAGE;
    case 'FILE_NOT_FOUND':
      return ExitCode.NO_INPUT;
    case 'CACHE_UNWRITABLE':
      return ExitCode.CANT_CREATE;
    case 'SNAPSHOT_NOT_FOUND':
    case 'SNAPSHOT_AMBIGUOUS':
    case 'TASK_NOT_FOUND':
    case 'NODE_NOT_SUSPENDED':
      return ExitCode.NO_INPUT;
    case 'NODE_NOT_RUNNING':
    case 'CLUSTER_UNAVAILABLE':
    case 'NET_PEER_UNREACHABLE':
      // A service (the node, etcd, another node) is not there now: a script may retry later.
      return ExitCode.UNAVAILABLE;
    case 'NODE_ALREADY_RUNNING':
      return ExitCode.CANT_CREATE;
    case 'NODE_BAD_REQUEST':
      return ExitCode.PROTOCOL;
    case 'STORE_FULL':
    case 'STORE_UNAVAILABLE':
      return ExitCode.CANT_CREATE;
    case 'SNAPSHOT_CORRUPT':
    case 'SNAPSHOT_VERSION_UNSUPPORTED':
    case 'SNAPSHOT_PAGE_MISSING':
    case 'SNAPSHOT_MODULE_MISMATCH':
    case 'SNAPSHOT_CONFLICT':
    case 'TASK_NOT_FREEZABLE':
    case 'TASK_NOT_RUNNING':
    case 'MODULE_INVALID':
    case 'MODULE_UNSUPPORTED':
    case 'MODULE_IMPORT_MISSING':
    case 'MODULE_NO_ENTRY':
      return ExitCode.DATA;
    default:
      return ExitCode.SOFTWARE;
  }
}
