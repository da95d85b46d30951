/**
 * Errors a user or a caller of the host API can meet. Each has a stable upper-case code (the part
 * scripts match on), a message that may change, and a hint that says what to do next. Programmer
 * errors inside norma are assertions (`assert` from node:assert), not NormaErrors.
 *
 * Codes that a *task* sees from a syscall are kern_return codes, defined in src/abi/syscalls.ts.
 */

export const errorCodes = {
  /** The bytes are not a WebAssembly module (bad magic, truncated, failed validation). */
  MODULE_INVALID: 'Check that the file is a .wasm module; rebuild it if it was truncated.',
  /** The module uses a feature norma cannot freeze (tail calls, imported memory, ...). */
  MODULE_UNSUPPORTED: 'Rebuild the module without the feature named in the message.',
  /** The module imports a function norma does not provide. */
  MODULE_IMPORT_MISSING:
    'norma provides WASI preview1 (wasi_snapshot_preview1, wasi_unstable) and the norma syscalls; remove or stub the import.',
  /** The module exports neither `_start` nor `main` (nor the entry asked for). */
  MODULE_NO_ENTRY: 'Export `_start` (a WASI command) or name the entry with --entry.',
  /** A file given on the command line does not exist or cannot be read. */
  FILE_NOT_FOUND: 'Check the path.',
  /** A command-line argument is malformed. */
  USAGE: 'Run the command with --help.',
  /** The task was ended by a trap; the message says which (unreachable, out of bounds, ...). */
  TASK_TRAPPED: 'The program has a bug or ran out of a resource; the reason says which.',
  /** No task with this id on the node. */
  TASK_NOT_FOUND: 'List the tasks with `norma ps`.',
  /** A snapshot's manifest or a page fails its checksum, is truncated or malformed. */
  SNAPSHOT_CORRUPT:
    'The snapshot is damaged: `norma snapshot verify` tells which part; resume an earlier snapshot (`norma snapshot ls`).',
  /** The snapshot was written by a newer (or unknown) format version. */
  SNAPSHOT_VERSION_UNSUPPORTED: 'Resume it with the norma version that wrote it, or a newer one.',
  /** No snapshot with this id (or id prefix) in the store. */
  SNAPSHOT_NOT_FOUND: 'List the snapshots with `norma snapshot ls` (and check --store).',
  /** The id prefix matches several snapshots. */
  SNAPSHOT_AMBIGUOUS: 'Type more characters of the snapshot id.',
  /** A page or module blob the snapshot needs is not in the store. */
  SNAPSHOT_PAGE_MISSING:
    'The store lost data the snapshot needs; resume an earlier snapshot or import it again.',
  /** The snapshot does not belong to the module it is resumed with. */
  SNAPSHOT_MODULE_MISMATCH: 'Resume the snapshot with the module it was taken from (or without --module).',
  /** The disk filled up while writing; nothing was committed and earlier snapshots are intact. */
  STORE_FULL: 'Free disk space (`norma snapshot gc`, `norma snapshot rm`) or use --store on another disk.',
  /** The store directory cannot be opened (permissions, or another process holds it). */
  STORE_UNAVAILABLE: 'Check the --store directory, its permissions, and that no other norma node uses it.',
  /** The snapshot's tasks or ports are already running on this node (a checkpoint of a live task). */
  SNAPSHOT_CONFLICT: 'Kill the running task first (`norma kill`), or resume the snapshot on another node.',
  /** The task cannot be frozen (a state norma cannot capture, named in the message). */
  TASK_NOT_FREEZABLE: 'Rebuild the module without the feature named in the message.',
  /** The module cache directory cannot be written. */
  CACHE_UNWRITABLE: 'Set NORMA_CACHE_DIR to a writable directory.',
  /** No node answers on the control socket (`norma spawn`, `ps`, ... need a running node). */
  NODE_NOT_RUNNING: 'Start it with `norma node start` (and check --store / --socket).',
  /** A node already answers on the control socket of this store. */
  NODE_ALREADY_RUNNING:
    'Use the running node (`norma ps`), stop it with `norma node stop`, or start another with its own --store.',
  /** A control request is not valid JSON, too long, of another protocol version, or has bad params. */
  NODE_BAD_REQUEST:
    'Talk to the node with the `norma` commands, or follow src/node/control-protocol.ts (one JSON request per line).',
  /** `norma resume` with no argument, but the node was not suspended. */
  NODE_NOT_SUSPENDED:
    'Nothing to resume: `norma suspend` records a suspend point; `norma thaw <snapshot>` or `norma resume <snapshot>` resume a given snapshot.',
  /** The task exists but is not running (frozen, exited, lost). */
  TASK_NOT_RUNNING: 'See its status with `norma ps`; a frozen task is thawed with `norma thaw <snapshot>`.',
} as const;

export type ErrorCode = keyof typeof errorCodes;

export class NormaError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; hint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NormaError';
    this.code = code;
    this.hint = options?.hint ?? errorCodes[code];
  }

  /** The JSON shape the CLI prints with --json. */
  toJSON(): { code: ErrorCode; message: string; hint: string } {
    return { code: this.code, message: this.message, hint: this.hint };
  }
}

export function isNormaError(error: unknown, code?: ErrorCode): error is NormaError {
  return error instanceof NormaError && (code === undefined || error.code === code);
}
