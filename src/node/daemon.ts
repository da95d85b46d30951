/**
 * The local node daemon (`norma node start`): one kernel, one snapshot store, and a control socket
 * through which `norma spawn | ps | logs | freeze | thaw | kill | suspend | resume | node stop` drive
 * it (control-protocol.ts). The design:
 *
 * - **Identity.** Each start is a new node, `node-<8 hex>`: its port ids never collide with those of
 *   an earlier node of the same store, whose snapshots it may thaw. Task ids are never reused within
 *   a store (node-tasks.ts).
 * - **Files** (node-files.ts): the store directory holds the socket, the pid file, the node's log
 *   (with --detach), the task journal, the suspend record and the tasks' logs. The store itself is
 *   the node's alone while it runs (its catalogue lock): snapshot commands go through the node or
 *   wait for it to stop.
 * - **Only its owner.** The socket is created with mode 0600 (umask around bind, then chmod), so the
 *   kernel refuses other users' connect(2); nothing else authenticates. At start, a socket that
 *   answers is a live node (NODE_ALREADY_RUNNING); one that refuses is the leftover of a node that
 *   died, and is removed.
 * - **Tasks** run with an empty, closed stdin; their stdout and stderr go to `<store>/logs/` and an
 *   in-memory tail (task-log.ts).
 * - **Freeze / thaw** on the node: a frozen task's IPC space stays in the kernel (Kernel.detach), so
 *   its ports keep queueing messages and senders block at the queue limit; thawing its snapshot on
 *   the same node reuses that space, so nothing sent meanwhile is lost or doubled.
 * - **Suspend** freezes every task as one group snapshot (consistent: messages between them stay in
 *   their queues), records it atomically as the suspend point, stops the node, and only then
 *   answers, so `norma resume` can start the next node at once; that node thaws the group and
 *   removes the record. Tasks that were frozen are part of the group too (messages queued for them
 *   since their freeze are kept) and are frozen again on resume.
 * - **Crash recovery.** The task journal is rewritten atomically on every change (and after every
 *   periodic checkpoint); the next node reports the tasks a dead node left running as `lost` with
 *   their last snapshot (`norma thaw <id>`). A clean stop kills the tasks and says so in the journal.
 * - **Periodic checkpoints** per task (`spawn --checkpoint-every MS --keep N`): one at a time per
 *   task, the journal updated before the oldest beyond N is removed.
 * - **Stopping**: `norma node stop`, SIGINT or SIGTERM kill the tasks, close the store, remove the
 *   socket and the pid file. A second signal exits at once.
 */

import { randomBytes } from 'node:crypto';
import { readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { isNormaError, NormaError } from '../errors.js';
import { Kernel } from '../kernel/kernel.js';
import { makeDirectories } from '../snapshot/disk.js';
import { prepareFreezer } from '../snapshot/freezer.js';
import { SnapshotStore } from '../snapshot/store.js';
import { ClusterMember, type ClusterOptions, clusterIncarnation } from './cluster-member.js';
import { fromWire, probeSocket } from './control-client.js';
import {
  controlProtocolVersion,
  encodeError,
  encodeLogEvent,
  encodeRequest,
  encodeResult,
  type LogEvent,
  type ParsedRequest,
  parseRequest,
  type Results,
  type WireError,
  wireError,
} from './control-protocol.js';
import { ControlServer, type RequestContext } from './control-server.js';
import { type NodePaths, nodePaths } from './node-files.js';
import { NodeTasks } from './node-tasks.js';
import { readJournal } from './task-journal.js';

export interface DaemonOptions {
  readonly store: string;
  /** Join a cluster (see cluster-member.ts); a node without one works on its own. */
  readonly cluster?: ClusterOptions | undefined;
  readonly socket?: string | undefined;
  readonly pidFile?: string | undefined;
  readonly log?: string | undefined;
}

/** The node's own messages: one line each, with the time. */
export function daemonLog(message: string): void {
  process.stderr.write(`${new Date().toISOString()} norma node: ${message}\n`);
}

export class NodeDaemon {
  readonly startedAtMs = Date.now();
  /** Resolves when the node has stopped (its socket, pid file and store released). */
  readonly stopped: Promise<void>;
  #resolveStopped!: () => void;
  #server: ControlServer | null = null;
  #stopping: Promise<void> | null = null;
  /** The node's cluster membership, or null for a node on its own. */
  #member: ClusterMember | null = null;

  private constructor(
    readonly paths: NodePaths,
    readonly kernel: Kernel,
    readonly store: SnapshotStore,
    readonly tasks: NodeTasks,
    private readonly log: (message: string) => void,
  ) {
    this.stopped = new Promise((resolve) => {
      this.#resolveStopped = resolve;
    });
  }

  static async start(
    options: DaemonOptions,
    log: (message: string) => void = daemonLog,
  ): Promise<NodeDaemon> {
    const paths = nodePaths(options.store, options);
    await makeDirectories(paths.store);
    await makeDirectories(paths.logsDirectory);
    await NodeDaemon.claimSocket(paths.socket);
    const kernel = new Kernel({
      nodeId:
        options.cluster === undefined
          ? `node-${randomBytes(4).toString('hex')}`
          : clusterIncarnation(options.cluster.name),
    });
    prepareFreezer(); // both hashing threads ready for the first freeze
    const store = await SnapshotStore.open(paths.store);
    let daemon: NodeDaemon | null = null;
    try {
      for (const repair of store.recovered) log(`store recovery: ${repair}`);
      const tasks = new NodeTasks(kernel, store, paths, log);
      await tasks.adoptJournal(await readJournal(paths.journal, log));
      const created = new NodeDaemon(paths, kernel, store, tasks, log);
      daemon = created;
      if (options.cluster !== undefined) {
        const member = await ClusterMember.join(kernel, options.cluster, log);
        created.#member = member;
        member.serveForwarded((line, reply) => created.#serveForwarded(line, reply));
        tasks.attachCluster(member);
        log(`member ${member.name} of cluster ${member.cluster}, listening on ${member.address}`);
      }
      created.#server = await ControlServer.listen(
        paths.socket,
        (request, context) => created.#handle(request, context),
        log,
      );
      await writeFile(paths.pidFile, `${process.pid}\n`, { mode: 0o600 }).catch((error: unknown) => {
        throw new NormaError(
          'FILE_NOT_FOUND',
          `cannot write the pid file ${paths.pidFile}: ${(error as NodeJS.ErrnoException).code ?? error}`,
          { cause: error },
        );
      });
    } catch (error) {
      const server = daemon === null ? null : daemon.#server;
      if (server !== null) {
        void server.stopListening();
        await rm(paths.socket, { force: true });
      }
      if (daemon !== null) await daemon.#member?.leave();
      kernel.shutdown();
      await store.close();
      if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw new NormaError('NODE_ALREADY_RUNNING', `another node started on ${paths.socket} meanwhile`);
      }
      throw error;
    }
    daemon.#handleSignals();
    log(`node ${kernel.nodeId} (pid ${process.pid}) listening on ${paths.socket}, store ${paths.store}`);
    return daemon;
  }

  /** Refuses a socket a live node answers on; removes one nobody listens on (a node that died). */
  static async claimSocket(path: string): Promise<void> {
    const state = await probeSocket(path);
    if (state === 'alive') {
      throw new NormaError('NODE_ALREADY_RUNNING', `a node is already running on ${path}`);
    }
    if (state === 'stale') await unlink(path).catch(() => undefined);
  }

  async status(): Promise<Results['status']> {
    const record = await this.tasks.suspendRecord();
    return {
      protocol: controlProtocolVersion,
      pid: process.pid,
      nodeId: this.kernel.nodeId,
      store: this.paths.store,
      socket: this.paths.socket,
      startedAtMs: this.startedAtMs,
      recoverable: this.tasks.recoverable(),
      suspended: record === null ? null : { snapshot: record.snapshot, tasks: record.tasks.length },
    };
  }

  async #handle(request: ParsedRequest, context: RequestContext): Promise<unknown> {
    if (request.node !== undefined) {
      const member = this.#member;
      if (member === null) {
        throw new NormaError(
          'NODE_NOT_IN_CLUSTER',
          `--node ${request.node}: this node is not part of a cluster`,
        );
      }
      if (!member.isSelf(request.node)) return this.#forward(member, request, context);
    }
    switch (request.method) {
      case 'nodes':
        return this.#member === null
          ? { cluster: null, members: [this.#selfAsMember()] }
          : { cluster: this.#member.cluster, members: await this.#member.members() };
      case 'names':
        return {
          names:
            this.#member === null
              ? this.kernel.names
                  .list()
                  .map((n) => ({ name: n.service, portId: n.portId, node: this.kernel.nodeId }))
              : await this.#member.names(),
        };
      case 'status':
        return this.status();
      case 'ps':
        return { tasks: this.tasks.list() };
      case 'spawn':
        return this.tasks.spawn(request.params);
      case 'logs':
        return this.tasks.logs(request.params, context);
      case 'freeze':
        return this.tasks.freeze(request.params);
      case 'thaw':
        return this.tasks.thaw(request.params);
      case 'move':
        return this.tasks.move(request.params);
      case 'kill':
        return this.tasks.kill(request.params);
      case 'resumeSuspended':
        return this.tasks.resumeSuspended();
      case 'suspend': {
        const result = await this.tasks.suspend();
        await this.stop('suspended');
        return result;
      }
      case 'stop': {
        let killed = 0;
        await this.stop('stop requested', (result) => {
          killed = result.killed;
        });
        return { killed };
      }
    }
  }

  /** A node on its own, as `norma nodes` lists a member. */
  #selfAsMember(): Results['nodes']['members'][number] {
    return {
      name: this.kernel.nodeId,
      incarnation: this.kernel.nodeId,
      address: this.paths.socket,
      pid: process.pid,
      startedAt: new Date(this.startedAtMs).toISOString(),
      load: { ...this.kernel.load(), cpu: 0 },
      self: true,
    };
  }

  /** Carries a request out on another member and relays its log events and its answer. */
  #forward(member: ClusterMember, request: ParsedRequest, context: RequestContext): Promise<unknown> {
    return new Promise((resolve, reject) => {
      member.forward(
        request.node!,
        encodeRequest(0, request.method, request.params as never),
        (line, final) => {
          const answer = JSON.parse(line) as { result?: unknown; error?: WireError } & Partial<LogEvent>;
          if (!final) {
            if (answer.event === 'log') context.emit(answer.stream!, Buffer.from(answer.data!, 'base64'));
            return;
          }
          if (answer.error !== undefined) reject(fromWire(answer.error));
          else resolve(answer.result);
        },
      );
    });
  }

  /** A request another member forwarded here: carried out as if it came from the control socket. */
  #serveForwarded(line: string, reply: (line: string, final: boolean) => void): void {
    const parsed = parseRequest(line.trimEnd());
    if (!parsed.ok) {
      reply(encodeError(0, wireError(parsed.error)), true);
      return;
    }
    // Carried out here whatever `node` says: a forwarded request is never forwarded again (no loops).
    const { node: _ignored, ...request } = parsed.request;
    const context: RequestContext = {
      emit: (stream, data) => reply(encodeLogEvent(0, stream, data), false),
      closed: new AbortController().signal,
    };
    this.#handle(request as ParsedRequest, context).then(
      (result) => reply(encodeResult(0, result), true),
      (error: unknown) => reply(encodeError(0, wireError(error)), true),
    );
  }

  /**
   * Stops the node: kills its tasks, closes the store, removes the socket and the pid file. The
   * connections stay open until the caller's response is on its way.
   */
  stop(why: string, onStopped?: (result: Results['stop']) => void): Promise<void> {
    this.#stopping ??= (async () => {
      this.log(`stopping (${why})`);
      try {
        onStopped?.(await this.tasks.stop());
      } catch (error) {
        this.log(`stopping the tasks failed: ${isNormaError(error) ? error.message : String(error)}`);
      }
      await this.#member?.leave();
      await this.store
        .close()
        .catch((error: unknown) => this.log(`closing the store failed: ${String(error)}`));
      if (this.#server !== null) void this.#server.stopListening();
      await rm(this.paths.socket, { force: true });
      const pid = await readFile(this.paths.pidFile, 'utf8').catch(() => '');
      if (pid.trim() === String(process.pid)) await rm(this.paths.pidFile, { force: true });
      // After the response of the request that stopped us has been written.
      setImmediate(() => {
        this.#server?.closeConnections();
        this.log('stopped');
        this.#resolveStopped();
      });
    })();
    return this.#stopping;
  }

  #handleSignals(): void {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals === 1) void this.stop(signal);
      else process.exit(1);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    void this.stopped.then(() => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    });
  }
}
