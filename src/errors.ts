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
  /** `--node` names no live member of the cluster. */
  NODE_UNKNOWN: 'List the members with `norma nodes`.',
  /** The node is not part of a cluster (started without --cluster), so it cannot do this. */
  NODE_NOT_IN_CLUSTER:
    'Start the node with --cluster DIR --name NAME --etcd URL (see `norma node start --help`).',
  /** `norma resume` with no argument, but the node was not suspended. */
  NODE_NOT_SUSPENDED:
    'Nothing to resume: `norma suspend` records a suspend point; `norma thaw <snapshot>` or `norma resume <snapshot>` resume a given snapshot.',
  /** The task exists but is not running (frozen, exited, lost). */
  TASK_NOT_RUNNING: 'See its status with `norma ps`; a frozen task is thawed with `norma thaw <snapshot>`.',
  // Cluster transport
  /** The `norma cluster init` directory already holds a cluster: its CA is never overwritten. */
  CLUSTER_EXISTS:
    'Use the existing cluster (`norma cluster` commands take its directory), or init a new one in an empty directory.',
  /** The cluster directory lacks the CA, the cluster id, or this node's certificate and key. */
  CLUSTER_CREDENTIALS_MISSING:
    'Create the cluster with `norma cluster init <dir>` and point the node at that directory; a node certificate is issued where ca.key is present.',
  /** A cluster file is unreadable or inconsistent (bad cluster.json, a key that does not match its certificate, a certificate of another CA). */
  CLUSTER_CREDENTIALS_INVALID:
    'Restore the cluster directory from its copy, or delete nodes/<name>.crt and nodes/<name>.key to have them issued again.',
  /** A peer sent bytes that are not a valid frame (bad length, not CBOR, unknown kind, wrong fields, cut short). */
  NET_FRAME_MALFORMED:
    'The peer runs a broken or foreign program: check that every node runs the same norma version; the connection was closed.',
  /** A frame is longer than frameSizeMax (sent: split the data; received: the connection was closed). */
  NET_FRAME_TOO_LARGE:
    'Send large data in several frames; a peer that announces a larger frame is disconnected.',
  /** The peer speaks another version of the node-to-node wire protocol. */
  NET_PROTOCOL_MISMATCH: 'Run the same norma version on every node of the cluster.',
  /** The peer belongs to another cluster (its hello names another cluster id). */
  NET_CLUSTER_MISMATCH: 'Give every node credentials from the same `norma cluster init` directory.',
  /** The peer's certificate is refused, missing, or names another node than the one it claims to be. */
  NET_AUTH_FAILED:
    'Issue credentials for the node from the CA of this cluster (its `norma cluster init` directory) and start it under the name of its certificate.',
  /** A connection did not finish the handshake (TLS, then hello and welcome) in time. */
  NET_HANDSHAKE_TIMEOUT:
    'Check that the address is a norma node of this cluster and that the network lets it answer.',
  /** No connection could be made to the peer's address. */
  NET_PEER_UNREACHABLE:
    'Check that the node runs and listens on that address, and that no firewall is in the way.',
  /** The connection to the peer is closed (it closed it, it died, or this node closed it). */
  NET_PEER_CLOSED:
    'Connect to the peer again; what was sent but not acknowledged by the layer above may be lost.',
  /** The peer refused the connection with a code this version does not know (the message says which). */
  NET_PEER_REJECTED:
    'Run the same norma version on every node of the cluster; the log of the peer says more.',
  /** Another node did not answer a call (a step of a task move) in time. */
  NET_CALL_TIMEOUT:
    'The other node is overloaded or stuck: look at its log, and try again; the task stays where it was unless the message says otherwise.',
  // Moving tasks between nodes
  /** A task cannot move to another node (it maps memory objects, which stay with their node). */
  MOVE_UNSUPPORTED:
    'Keep the task on its node (shared memory objects do not span nodes), or freeze it and resume the snapshot elsewhere with `norma thaw` on a node that is not in the cluster.',
  /** A step of a move failed on the other node for a reason that has no code of its own. */
  MOVE_FAILED:
    'Look at the log of both nodes (the message names the step); the task stays frozen where it was if the hand-off did not happen.',
  // Cluster directory
  /** etcd does not answer (stopped, unreachable, or slower than clusterCallMsMax); the directory retries by itself. */
  CLUSTER_UNAVAILABLE:
    'Check that etcd runs and that the node is given its client URL (`etcdctl --endpoints <url> endpoint health`); the node keeps its local work and rejoins the cluster by itself when etcd answers again.',
  /** Another live node (another incarnation) holds this member name in the cluster. */
  CLUSTER_MEMBER_NAME_TAKEN:
    'Give this node another name, or stop the node that uses it; the name of a node that died is free once its lease expires (its TTL).',
  /** The node was cut off longer than its lease TTL and another node took its member name meanwhile. */
  CLUSTER_EVICTED:
    'This node left the cluster: restart it (under another name if the other node keeps this one).',
  /** A value under /norma/<cluster>/ in etcd is not a norma record (another program, or a foreign version, wrote it). */
  CLUSTER_RECORD_CORRUPT:
    'Inspect it with `etcdctl get --prefix /norma/` and delete the key named in the message (`etcdctl del <key>`); the node that owns it writes it again.',
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
