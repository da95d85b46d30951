/**
 * The node's control protocol: the one place that defines what a client and the node say to each
 * other over the control socket, and its version. Change nothing here without a new version.
 *
 * Transport: a Unix stream socket (mode 0600: only the owner's processes can connect), carrying
 * newline-delimited JSON, one object per line (UTF-8, at most `controlLineBytesMax` bytes a line).
 * A client may send several requests on one connection; responses come as each completes, matched
 * by `id`.
 *
 *   request   {"v":1, "id":7, "method":"ps", "params":{}, "node":"n2"}   (node: optional, see below)
 *   result    {"id":7, "result":{...}}
 *   error     {"id":7, "error":{"code":"TASK_NOT_FOUND", "message":"...", "hint":"..."}}
 *   event     {"id":7, "event":"log", "stream":"stdout"|"stderr", "data":"<base64>"}
 *
 * `id` is the client's (a number, or a string of up to 64 characters). A request that cannot be read
 * at all (not JSON, no id, a line over the limit) gets an error with `"id": null`. Every request is
 * validated (`parseRequest`): an unknown method, a missing or unknown parameter, a parameter of the
 * wrong type or range, or another protocol version is NODE_BAD_REQUEST, and the node goes on
 * serving. `logs` sends `event`s before its result; with `follow` it goes on sending them until the
 * task ends (then its result) or the client closes the connection.
 *
 * `node` names the cluster member that should carry the request out (every command's `--node`):
 * the node that reads it forwards it over the cluster transport and relays the answer (and log
 * events). Without it, or naming itself, the node carries it out itself.
 */
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import type { MemberRecord } from '../cluster/cluster-directory.js';
import { NormaError } from '../errors.js';
import type { TaskExit } from '../kernel/task.js';
import { controlLineBytesMax } from '../limits.js';
import { nodeNamePattern } from '../net/wire-protocol.js';

export const controlProtocolVersion = 1;

/** Task names: they name log files, so a safe subset of characters. */
export const taskNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A task as a command names it: its id (digits) or its name. */
const taskRef = z.string().min(1).max(64);
const none = z.object({}).strict();

/** The parameters of every method (unknown keys are refused). */
export const methodParams = {
  /** The node itself: pid, node id, store, what it found at start. */
  status: none,
  /** Every task the node knows. */
  ps: none,
  /** Starts a task from a module file the node reads (an absolute path). */
  spawn: z
    .object({
      module: z.string().min(1).max(4096).refine(isAbsolute, 'must be an absolute path'),
      name: z.string().regex(taskNamePattern, 'letters, digits, . _ - (at most 64)').optional(),
      /** argv after argv[0] (the node puts the module's file name first). */
      args: z.array(z.string().max(65536)).max(1024).default([]),
      env: z.record(z.string().regex(/^[^=\0]+$/), z.string().max(65536)).default({}),
      preempt: z.boolean().default(false),
      /** Checkpoint the task every this many milliseconds (without stopping it). */
      checkpointEveryMs: z
        .number()
        .int()
        .min(10)
        .max(2 ** 31 - 1)
        .optional(),
      /** How many of its periodic checkpoints to keep. */
      keep: z.number().int().min(1).max(1000).default(3),
    })
    .strict(),
  /** The task's output so far (as events), and with `follow` what it prints next. */
  logs: z.object({ task: taskRef, follow: z.boolean().default(false) }).strict(),
  /** Freezes one running task into a snapshot; its ports keep queueing messages. */
  freeze: z.object({ task: taskRef }).strict(),
  /** Restores a snapshot of the store into the node. */
  thaw: z.object({ snapshot: z.string().min(1).max(64) }).strict(),
  /**
   * Moves a running task to another member: freezes it here, and that member pulls the pages it
   * lacks, takes over its ports and resumes it.
   */
  move: z.object({ task: taskRef, to: z.string().regex(nodeNamePattern) }).strict(),
  /** Kills a running task, drops a frozen one, forgets an ended or lost one. */
  kill: z.object({ task: taskRef }).strict(),
  /** Freezes every task as one group snapshot, records it as the suspend point, and stops the node. */
  suspend: none,
  /** Thaws the recorded suspend point (tasks frozen before the suspend are frozen again). */
  resumeSuspended: none,
  /** Kills every task and stops the node. */
  stop: none,
  /** The cluster's members with their load (a node on its own lists itself). */
  nodes: none,
  /** The cluster's name service: every registered name and the port behind it. */
  names: none,
} as const;

export type Method = keyof typeof methodParams;
export type Params<M extends Method> = z.infer<(typeof methodParams)[M]>;
/** What a client passes: parameters with defaults may be left out. */
export type ParamsIn<M extends Method> = z.input<(typeof methodParams)[M]>;
export type RequestId = number | string;

export const methods = Object.keys(methodParams) as Method[];

export type TaskStatus = 'running' | 'frozen' | 'exited' | 'killed' | 'lost' | 'suspended';

export interface TaskInfo {
  id: number;
  name: string;
  status: TaskStatus;
  /** How it ended (exited, killed), else null. */
  exit: TaskExit | null;
  /** Live threads (0 unless running). */
  threads: number;
  /** Bytes of its linear memory (0 unless running). */
  memoryBytes: number;
  /** Its latest snapshot: a checkpoint, its freeze, or the snapshot it was thawed from. */
  lastSnapshot: string | null;
  /** Periodic checkpoints: the newest `keep` (oldest first), and how many were taken in all. */
  checkpoint: { everyMs: number; keep: number; kept: string[]; taken: number } | null;
  /** The module file it was spawned from (null for a task thawed from a foreign snapshot). */
  module: string | null;
  preempt: boolean;
  /** Its stdout and stderr, interleaved. */
  log: string;
}

export interface TaskRef {
  id: number;
  name: string;
}

export interface RecoverableTask extends TaskRef {
  status: 'lost' | 'suspended';
  lastSnapshot: string | null;
}

export interface Results {
  status: {
    protocol: number;
    pid: number;
    nodeId: string;
    store: string;
    socket: string;
    startedAtMs: number;
    /** Tasks of a previous node that died without stopping them, with their last snapshot. */
    recoverable: RecoverableTask[];
    /** The recorded suspend point, if any (`norma resume` thaws it). */
    suspended: { snapshot: string | null; tasks: number } | null;
  };
  ps: { tasks: TaskInfo[] };
  spawn: TaskRef;
  logs: { bytes: number; exit: TaskExit | null };
  freeze: { snapshot: string; task: TaskRef };
  thaw: { snapshot: string; tasks: TaskRef[]; transfer?: TransferInfo };
  move: {
    snapshot: string;
    from: string;
    to: string;
    tasks: TaskRef[];
    /** What travelled while the task was stopped. */
    transfer: TransferInfo;
    /** Pages `to` pulled before the stop (the pre-copy). */
    precopiedPages: number;
    /** Pages of the task's memory, and how many the freeze found changed since the pre-copy. */
    pagesScanned: number;
    pagesChanged: number;
    /** On `to`: pages its stage of the task (made from the pre-copy) held already, pages it wrote. */
    staged: { pagesKept: number; pagesWritten: number } | null;
    /** From stopped here to running on `to`; and the whole move, pre-copy included. */
    downtimeMs: number;
    totalMs: number;
  };
  kill: { task: TaskRef; action: 'killed' | 'dropped' | 'forgotten' };
  suspend: { snapshot: string | null; tasks: TaskRef[] };
  resumeSuspended: { snapshot: string | null; tasks: TaskRef[]; frozen: TaskRef[] };
  stop: { killed: number };
  nodes: { cluster: string | null; members: MemberInfo[] };
  names: { names: NameInfo[] };
}

/** What a snapshot's move between two stores carried (see task-mover.ts). */
export interface TransferInfo {
  /** The member the snapshot came from. */
  from: string;
  /** Pages carried over the network, and those the store had already (not carried). */
  pagesSent: number;
  pagesSkipped: number;
  bytesSent: number;
  ms: number;
}

/** A node of the cluster as `norma nodes` shows it: its directory record, and whether it answered. */
export type MemberInfo = MemberRecord & { readonly self: boolean };

/** A registration of the name service. */
export interface NameInfo {
  name: string;
  portId: string;
  /** The node that registered it. */
  node: string;
}

export interface WireError {
  code: string;
  message: string;
  hint?: string;
}

export interface LogEvent {
  id: RequestId;
  event: 'log';
  stream: 'stdout' | 'stderr';
  data: string;
}

/** `node`: the cluster member that should carry the request out (the receiving node forwards it). */
export type ParsedRequest = {
  [M in Method]: { id: RequestId; method: M; params: Params<M>; node?: string };
}[Method];

const envelope = z.object({
  v: z.unknown(),
  id: z.union([z.number().finite(), z.string().max(64)]),
  method: z.string(),
  params: z.unknown().optional(),
  node: z.string().regex(nodeNamePattern).optional(),
});

function badRequest(message: string): NormaError {
  return new NormaError('NODE_BAD_REQUEST', message);
}

/** Reads one request line: the request, or the error to answer (with the id, when one could be read). */
export function parseRequest(
  line: string,
): { ok: true; request: ParsedRequest } | { ok: false; id: RequestId | null; error: NormaError } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { ok: false, id: null, error: badRequest('the request is not JSON') };
  }
  const parsed = envelope.safeParse(value);
  if (!parsed.success) {
    return { ok: false, id: null, error: badRequest('a request is an object with v, id, method and params') };
  }
  const { v, id, method, params, node } = parsed.data;
  if (v !== controlProtocolVersion) {
    return {
      ok: false,
      id,
      error: badRequest(
        `protocol version ${JSON.stringify(v)} is not supported: this node speaks version ${controlProtocolVersion}`,
      ),
    };
  }
  if (!Object.hasOwn(methodParams, method)) {
    return {
      ok: false,
      id,
      error: badRequest(`unknown method ${JSON.stringify(method)} (${methods.join(', ')})`),
    };
  }
  const schema = methodParams[method as Method];
  const checked = schema.safeParse(params ?? {});
  if (!checked.success) {
    const problems = checked.error.issues.map((i) => `${i.path.join('.') || 'params'}: ${i.message}`);
    return { ok: false, id, error: badRequest(`bad params for ${method}: ${problems.join('; ')}`) };
  }
  const request = { id, method, params: checked.data, ...(node === undefined ? {} : { node }) };
  return { ok: true, request: request as ParsedRequest };
}

export function encodeRequest<M extends Method>(
  id: RequestId,
  method: M,
  params: ParamsIn<M>,
  node?: string,
): string {
  return `${JSON.stringify({ v: controlProtocolVersion, id, method, params, node })}\n`;
}

export function encodeResult(id: RequestId, result: unknown): string {
  return `${JSON.stringify({ id, result })}\n`;
}

export function encodeError(id: RequestId | null, error: WireError): string {
  return `${JSON.stringify({ id, error })}\n`;
}

export function encodeLogEvent(id: RequestId, stream: 'stdout' | 'stderr', data: Uint8Array): string {
  const event: LogEvent = { id, event: 'log', stream, data: Buffer.from(data).toString('base64') };
  return `${JSON.stringify(event)}\n`;
}

/** What the node sends for an error: a NormaError as it is, anything else as INTERNAL. */
export function wireError(error: unknown): WireError {
  if (error instanceof NormaError) return error.toJSON();
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/**
 * Splits a byte stream into lines of at most `controlLineBytesMax` bytes. A longer line is reported
 * once (`onOversized`) and skipped up to its end; the lines after it are read as usual.
 */
export class LineReader {
  #chunks: Buffer[] = [];
  #bytes = 0;
  #skipping = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onOversized: () => void,
    private readonly limit = controlLineBytesMax,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(10, start);
      const end = newline === -1 ? chunk.length : newline;
      if (!this.#skipping) {
        this.#chunks.push(chunk.subarray(start, end));
        this.#bytes += end - start;
        if (this.#bytes > this.limit) {
          this.#chunks = [];
          this.#bytes = 0;
          this.#skipping = true;
          this.onOversized();
        }
      }
      if (newline === -1) return;
      if (this.#skipping) this.#skipping = false;
      else {
        const line = Buffer.concat(this.#chunks).toString('utf8');
        this.#chunks = [];
        this.#bytes = 0;
        if (line.trim() !== '') this.onLine(line);
      }
      start = newline + 1;
    }
  }
}
