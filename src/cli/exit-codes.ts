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
  /** norma itself failed (EX_SOFTWARE). */
  SOFTWARE: 70,
  /** The cache or another output cannot be written (EX_CANTCREAT). */
  CANT_CREATE: 73,
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
      return ExitCode.NO_INPUT;
    case 'STORE_FULL':
    case 'STORE_UNAVAILABLE':
      return ExitCode.CANT_CREATE;
    case 'SNAPSHOT_CORRUPT':
    case 'SNAPSHOT_VERSION_UNSUPPORTED':
    case 'SNAPSHOT_PAGE_MISSING':
    case 'SNAPSHOT_MODULE_MISMATCH':
    case 'SNAPSHOT_CONFLICT':
    case 'TASK_NOT_FREEZABLE':
    case 'MODULE_INVALID':
    case 'MODULE_UNSUPPORTED':
    case 'MODULE_IMPORT_MISSING':
    case 'MODULE_NO_ENTRY':
      return ExitCode.DATA;
    default:
      return ExitCode.SOFTWARE;
  }
}
