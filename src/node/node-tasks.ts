/**
 * The tasks of a node and what can be done to them: spawn, freeze, thaw, kill, periodic checkpoints,
 * suspending all of them as one group and resuming that group. Each task has an entry that outlives
 * its kernel task (frozen, ended, lost), is written to the journal on every change, and carries the
 * task's log across freezes, thaws and node restarts.
 *
 * Identity: a task keeps its id while it is frozen and thawed on the same node (the kernel keeps its
 * IPC space). A snapshot thawed anywhere else gives new ids; the entry it came from (same node id and
 * task id in the journal: a lost or suspended task) is carried over to the new id with its name, log,
 * module and checkpoint settings. Task ids are never reused within a store: a new node starts its
 * ids above every id its journal holds.
 *
 * Operations that change tasks run one at a time (`#exclusive`); a periodic checkpoint runs beside
 * them, and a freeze, suspend or stop waits for the checkpoint in flight of the tasks it takes.
 */
import { readFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { NormaError } from '../errors.js';
import { exportTasks } from '../ipc/index.js';
import type { Kernel, SpawnOptions, Task } from '../kernel/kernel.js';
import type { TaskExit } from '../kernel/task.js';
import type { Migration } from '../net/norma-ipc.js';
import type { CallArg, CallOp, CallValue } from '../net/wire-protocol.js';
import { CaptureBuffers } from '../snapshot/capture.js';
import type { SnapshotManifest } from '../snapshot/format.js';
import { checkpointTasks, type FreezeStats, freezeTasks } from '../snapshot/freezer.js';
import { Mutex } from '../snapshot/mutex.js';
import { type RestoreResult, restoreSnapshot, type StagedTask, stageSnapshot } from '../snapshot/restorer.js';
import type { SnapshotStore } from '../snapshot/store.js';
import type { ClusterMember } from './cluster-member.js';
import type {
  Params,
  RecoverableTask,
  Results,
  TaskInfo,
  TaskRef,
  TaskStatus,
  TransferInfo,
} from './control-protocol.js';
import type { RequestContext } from './control-server.js';
import {
  type NodePaths,
  readJson,
  type SuspendRecord,
  suspendRecordSchema,
  writeJsonAtomically,
} from './node-files.js';
import { type Journal, type JournalEntry, JournalWriter } from './task-journal.js';
import { TaskLog } from './task-log.js';
import { pullSnapshot, serveSnapshotCall } from './task-mover.js';

/** How long a task leaving this node waits for what it sent to other nodes to be acknowledged. */
const moveFlushTimeoutMs = 10_000;
/** How long a move waits for the other node to pull the snapshot and resume the task. */
const moveResumeTimeoutMs = 120_000;
/**
 * How long a task staged for a move's resume waits for it: a move abandoned after its pre-copy must
 * not hold the task's memory here for ever.
 */
const stageTimeoutMs = 60_000;

interface Entry {
  id: number;
  nodeId: string;
  name: string;
  module: string | null;
  args: string[];
  preempt: boolean;
  status: TaskStatus;
  exit: TaskExit | null;
  lastSnapshot: string | null;
  checkpoint: { everyMs: number; keep: number } | null;
  checkpoints: string[];
  checkpointsTaken: number;
  log: TaskLog;
  /** The kernel task while it runs. */
  task: Task | null;
  timer: NodeJS.Timeout | null;
  /** The periodic checkpoint in flight. */
  busy: Promise<void> | null;
  buffers: CaptureBuffers | null;
}

/** A name from a snapshot or a file name, made fit for a log file name. */
function safeName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return cleaned.slice(0, 64) || 'task';
}

function stopping(): NormaError {
  return new NormaError('NODE_NOT_RUNNING', 'the node is stopping');
}

export class NodeTasks {
  readonly #entries = new Map<number, Entry>();
  readonly #exclusive = new Mutex();
  readonly #journal: JournalWriter;
  #stopping = false;
  /** The node's cluster membership: tasks move between its members. */
  #member: ClusterMember | null = null;
  /** The manifest of the last freeze: a move's prepare and hand-off check it right after. */
  #lastFrozen: SnapshotManifest | null = null;
  /** Tasks staged for the resume of a move, by pre-copy id (one each; see #stage). */
  readonly #stages = new Map<string, { staged: Promise<StagedTask | null>; timer: NodeJS.Timeout }>();

  constructor(
    private readonly kernel: Kernel,
    private readonly store: SnapshotStore,
    private readonly paths: NodePaths,
    private readonly log: (message: string) => void,
  ) {
    this.#journal = new JournalWriter(paths.journal, () => this.#journalContents(), log);
  }

  // -------------------------------------------------------------------------------------------
  // Start: what the previous node left
  // -------------------------------------------------------------------------------------------

  /**
   * Takes over the journal of the previous node: tasks it had running or frozen were lost with it
   * (it died without stopping them) and are offered with their last snapshot; suspended tasks wait
   * for `norma resume`; ended tasks are forgotten.
   */
  async adoptJournal(previous: readonly JournalEntry[]): Promise<void> {
    let maxId = 0;
    for (const old of previous) {
      maxId = Math.max(maxId, old.id);
      const status: TaskStatus | null =
        old.status === 'running' || old.status === 'frozen' || old.status === 'lost'
          ? 'lost'
          : old.status === 'suspended'
            ? 'suspended'
            : null;
      if (status === null) continue;
      this.#entries.set(old.id, {
        ...old,
        exit: old.exit as TaskExit | null,
        status,
        log: new TaskLog(old.log === '' ? null : old.log, this.log),
        task: null,
        timer: null,
        busy: null,
        buffers: null,
      });
    }
    // Ids of this node start above every id the store's journal has seen.
    while (maxId > 0 && this.kernel.allocateTaskId() < maxId) {}
    await this.#journal.write();
  }

  recoverable(): RecoverableTask[] {
    return [...this.#entries.values()]
      .filter((entry) => entry.status === 'lost' || entry.status === 'suspended')
      .map((entry) => ({
        id: entry.id,
        name: entry.name,
        status: entry.status as 'lost' | 'suspended',
        lastSnapshot: entry.lastSnapshot,
      }));
  }

  // -------------------------------------------------------------------------------------------
  // Listing
  // -------------------------------------------------------------------------------------------

  list(): TaskInfo[] {
    return [...this.#entries.values()].sort((a, b) => a.id - b.id).map((entry) => this.#info(entry));
  }

  #info(entry: Entry): TaskInfo {
    const task = entry.task;
    return {
      id: entry.id,
      name: entry.name,
      status: entry.status,
      exit: entry.exit,
      threads: task === null ? 0 : task.state.threads.filter((t) => t.status !== 'exited').length,
      memoryBytes: task === null ? 0 : task.instance.memory.visible().length,
      lastSnapshot: entry.lastSnapshot,
      checkpoint:
        entry.checkpoint === null
          ? null
          : {
              ...entry.checkpoint,
              kept: entry.checkpoints.slice(-entry.checkpoint.keep),
              taken: entry.checkpointsTaken,
            },
      module: entry.module,
      preempt: entry.preempt,
      log: entry.log.path ?? '',
    };
  }

  #ref(entry: Entry): TaskRef {
    return { id: entry.id, name: entry.name };
  }

  /** A task by id or name (a name several live tasks share must be given as an id). */
  #find(ref: string): Entry {
    if (/^\d+$/.test(ref)) {
      const entry = this.#entries.get(Number(ref));
      if (entry !== undefined) return entry;
    }
    const named = [...this.#entries.values()].filter((entry) => entry.name === ref);
    const live = named.filter((entry) => entry.status === 'running' || entry.status === 'frozen');
    if (live.length > 1) {
      throw new NormaError(
        'TASK_NOT_FOUND',
        `${live.length} tasks are named ${ref} (ids ${live.map((e) => e.id).join(', ')})`,
        { hint: 'Name the task by its id (`norma ps`).' },
      );
    }
    const entry = live[0] ?? named.sort((a, b) => b.id - a.id)[0];
    if (entry === undefined) throw new NormaError('TASK_NOT_FOUND', `no task ${ref} on this node`);
    return entry;
  }

  // -------------------------------------------------------------------------------------------
  // Moving tasks between the members of a cluster
  // -------------------------------------------------------------------------------------------

  /** Joins the tasks to the cluster: they can move to and from its other members. */
  attachCluster(member: ClusterMember): void {
    this.#member = member;
    member.serveCalls((op, arg, from) => this.#serveCall(op, arg, from));
  }

  /**
   * Moves a running task to member `to`: frozen here, then `to` pulls the pages its store lacks,
   * takes over the task's ports and resumes it; nothing here is needed afterwards. If `to` cannot
   * resume it before the hand-off, it runs on here.
   */
  async move(params: Params<'move'>): Promise<Results['move']> {
    const started = performance.now();
    const member = this.#cluster();
    if (params.to === member.name) {
      throw new NormaError('USAGE', `task ${params.task} is on ${params.to} already`, {
        hint: 'Name another member (`norma nodes`).',
      });
    }
    const precopy = await this.#precopy(params.task, params.to);
    const stoppedAt = performance.now();
    const { frozen, stats, journalMs } = await this.#run(() => this.#freeze(params.task));
    const frozenAt = performance.now();
    try {
      const resumed = await member.call(
        params.to,
        'resume',
        { id: frozen.snapshot, ...(precopy === null ? {} : { precopy: precopy.id }) },
        moveResumeTimeoutMs,
      );
      const downtimeMs = performance.now() - stoppedAt;
      this.log(
        `moved ${frozen.task.name} to ${params.to}: stopped ${downtimeMs.toFixed(1)} ms (freeze ${(frozenAt - stoppedAt).toFixed(1)} ms:` +
          ` capture ${stats.frozenMs.toFixed(1)} ms with ${stats.pagesScanned - stats.pagesUnchanged} of ${stats.pagesScanned} pages changed,` +
          ` write ${(stats.totalMs - stats.frozenMs).toFixed(1)} ms, journal ${journalMs.toFixed(1)} ms;` +
          ` resume ${(performance.now() - frozenAt).toFixed(1)} ms)`,
      );
      return {
        snapshot: frozen.snapshot,
        from: member.name,
        to: params.to,
        tasks: resumed.tasks,
        transfer: resumed.transfer,
        precopiedPages: precopy?.pagesSent ?? 0,
        pagesScanned: stats.pagesScanned,
        pagesChanged: stats.pagesScanned - stats.pagesUnchanged,
        staged: resumed.staged,
        downtimeMs,
        totalMs: performance.now() - started,
      };
    } catch (error) {
      // Not handed off: it runs on here.
      const entry = this.#entries.get(frozen.task.id);
      if (entry?.status === 'frozen' && this.kernel.isDetached(entry.id)) {
        await this.thaw({ snapshot: frozen.snapshot }).catch(() => {});
      }
      throw error;
    }
  }

  /**
   * Pre-copy (as live migration does): a checkpoint taken while the task runs on, pulled by `to`
   * ahead of the freeze, so that the freeze writes, and `to` pulls, only the pages that changed
   * since. Returns the checkpoint's id (removed here at once: its pages stay, shared with the
   * freeze) and how many pages `to` pulled, or null when the task is not running.
   */
  async #precopy(ref: string, to: string): Promise<{ id: string; pagesSent: number } | null> {
    const id = await this.#run(async () => {
      const entry = this.#find(ref);
      if (entry.status !== 'running' || entry.task === null) return null;
      await this.#quiesce([entry]);
      entry.buffers ??= new CaptureBuffers();
      try {
        const { manifest } = await checkpointTasks(
          this.kernel,
          this.store,
          [entry.task],
          { kind: 'task', label: `${entry.name} (pre-copy)`, parent: entry.lastSnapshot },
          entry.buffers,
        );
        return manifest.id;
      } finally {
        this.#startCheckpoints(entry);
      }
    });
    if (id === null) return null;
    try {
      const { pagesSent } = await this.#cluster().call(to, 'prefetch', { id }, moveResumeTimeoutMs);
      return { id, pagesSent };
    } finally {
      await this.store.remove(id).catch(() => {});
    }
  }

  #cluster(): ClusterMember {
    if (this.#member === null) {
      throw new NormaError('NODE_NOT_IN_CLUSTER', 'this node is not a member of a cluster');
    }
    return this.#member;
  }

  async #serveCall<Op extends CallOp>(op: Op, arg: CallArg<Op>, from: string): Promise<CallValue<Op>> {
    switch (op) {
      case 'find':
      case 'manifest':
      case 'pages':
      case 'blob':
        return (await serveSnapshotCall(this.store, op, arg as never)) as CallValue<Op>;
      case 'prepare':
        return (await this.#prepareDeparture((arg as CallArg<'prepare'>).id)) as CallValue<Op>;
      case 'hand-off':
        return (await this.#handOff((arg as CallArg<'hand-off'>).id, from)) as unknown as CallValue<Op>;
      case 'prefetch': {
        const { id } = arg as CallArg<'prefetch'>;
        const member = this.#cluster();
        const pulled = await pullSnapshot(member, this.store, id, member.memberName(from));
        // Before answering: the source freezes once it has the answer, and the stage is then ready.
        await this.#stage(pulled.manifest);
        return { pagesSent: pulled.stats.pagesSent } as CallValue<Op>;
      }
      case 'resume': {
        const { id, precopy } = arg as CallArg<'resume'>;
        const stage = precopy === undefined ? null : this.#takeStage(precopy);
        return this.#run(async () => {
          const arrival = await this.#arrival(id, this.#member!.memberName(from));
          if (arrival === null)
            throw new NormaError('MOVE_FAILED', `snapshot ${id} is not frozen on the node that asked`);
          const { restored, staged } = await this.#arrive(arrival, (await stage) ?? undefined);
          // The pre-copy served its purpose: its pages are the new snapshot's now. Removed after the
          // answer (the task runs here already): a catalogue write and two syncs off the downtime.
          if (precopy !== undefined) {
            void this.#run(() => this.store.remove(precopy), true).catch(() => {});
          }
          return { tasks: restored.map((entry) => this.#ref(entry)), transfer: arrival.stats, staged };
        }) as Promise<CallValue<Op>>;
      }
      default:
        throw new NormaError('NODE_BAD_REQUEST', `unknown call ${op}`);
    }
  }

  /**
   * Stages the task of the pre-copy for the resume of its move (restorer.ts stageSnapshot): the
   * module instantiated and the memory filled while the task still runs on the source, so that the
   * resume writes only the pages that changed since. One stage per pre-copy; dropped when the resume
   * takes it, or after stageTimeoutMs. A stage that fails costs nothing but time: the resume then
   * restores the ordinary way.
   */
  async #stage(precopy: SnapshotManifest): Promise<void> {
    const { id } = precopy;
    let stage = this.#stages.get(id);
    if (stage === undefined) {
      const started = performance.now();
      const staged = stageSnapshot(this.kernel, this.store, precopy).then(
        (staged) => {
          this.log(`staged ${id} for its move in ${(performance.now() - started).toFixed(1)} ms`);
          return staged;
        },
        (error: unknown) => {
          this.log(`staging ${id} for its move failed: ${(error as Error).message}`);
          return null;
        },
      );
      const timer = setTimeout(() => void this.#takeStage(id), stageTimeoutMs);
      timer.unref();
      stage = { staged, timer };
      this.#stages.set(id, stage);
    }
    await stage.staged;
  }

  /** The stage of pre-copy `id`, no longer kept here (null: none, or it failed). */
  #takeStage(id: string): Promise<StagedTask | null> | null {
    const stage = this.#stages.get(id);
    if (stage === undefined) return null;
    this.#stages.delete(id);
    clearTimeout(stage.timer);
    return stage.staged;
  }

  /**
   * A snapshot to thaw here that another live member froze: pulled into this store if missing, and
   * the member its tasks are frozen on (which hands their ports over). Null: an ordinary thaw.
   */
  async #arrival(
    prefix: string,
    from?: string,
  ): Promise<{
    id: string;
    source: string;
    sourceName: string;
    stats: TransferInfo;
    manifest: SnapshotManifest;
  } | null> {
    const member = this.#member;
    if (member === null) return null;
    let stats: TransferInfo | null = null;
    let id: string;
    let manifest: SnapshotManifest | null = null;
    try {
      id = await this.store.resolveId(prefix);
    } catch (error) {
      if (!(error instanceof NormaError && error.code === 'SNAPSHOT_NOT_FOUND')) throw error;
      ({ id, stats, manifest } = await pullSnapshot(member, this.store, prefix, from));
    }
    manifest ??= await this.store.readManifest(id);
    const source = manifest.node.id;
    if (source === this.kernel.nodeId || member.isGone(source)) return null;
    const sourceName = member.memberName(source);
    stats ??= { from: sourceName, pagesSent: 0, pagesSkipped: 0, bytesSent: 0, ms: 0 };
    return { id, source, sourceName, stats, manifest };
  }

  /**
   * Takes over the tasks of a snapshot frozen on another member, and resumes them here (from `stage`
   * when it was staged from the move's pre-copy).
   */
  async #arrive(
    arrival: { id: string; source: string; stats: TransferInfo; manifest: SnapshotManifest },
    stage?: StagedTask,
  ): Promise<{ restored: Entry[]; staged: RestoreResult['staged'] }> {
    const member = this.#cluster();
    const started = performance.now();
    const { ports } = await member.call(arrival.source, 'prepare', { id: arrival.id });
    await member.ipc.prepareArrival(ports);
    let migration: Migration;
    try {
      migration = (await member.call(arrival.source, 'hand-off', { id: arrival.id })) as unknown as Migration;
    } catch (error) {
      member.ipc.cancelArrival(ports);
      throw error;
    }
    const handedOff = performance.now();
    const { restored, staged } = await this.#thaw(arrival.id, () => undefined, {
      migration,
      from: arrival.source,
      manifest: arrival.manifest,
      ...(stage === undefined ? {} : { stage }),
    });
    const resumed = performance.now();
    await this.#journal.write();
    const journaled = performance.now();
    const from =
      stage === undefined
        ? 'no stage'
        : staged === null
          ? 'stage not usable'
          : `stage: ${staged.pagesKept} pages kept, ${staged.pagesWritten} written`;
    this.log(
      `took over ${restored.map((e) => `${e.name} (task ${e.id})`).join(', ')} from ${member.memberName(arrival.source)}` +
        ` (pull ${arrival.stats.ms.toFixed(1)} ms, ports ${(handedOff - started).toFixed(1)} ms, restore ${(resumed - handedOff).toFixed(1)} ms, ${from},` +
        ` journal ${(journaled - resumed).toFixed(1)} ms)`,
    );
    return { restored, staged };
  }

  /** The task frozen at snapshot `id`, still here, that may leave for another node. */
  async #departing(id: string): Promise<Entry> {
    const entry = [...this.#entries.values()].find(
      (e) => e.lastSnapshot === id && e.status === 'frozen' && this.kernel.isDetached(e.id),
    );
    if (entry === undefined) {
      throw new NormaError('SNAPSHOT_CONFLICT', `no task is frozen at snapshot ${id} on this node any more`, {
        hint: 'It was thawed, killed or moved since: `norma ps` on that node says which.',
      });
    }
    const manifest = this.#lastFrozen?.id === id ? this.#lastFrozen : await this.store.readManifest(id);
    if (manifest.tasks.length !== 1 || manifest.memoryObjects.objects.length > 0) {
      throw new NormaError(
        'MOVE_UNSUPPORTED',
        manifest.tasks.length !== 1
          ? `snapshot ${id} holds ${manifest.tasks.length} tasks; tasks move one at a time`
          : `task ${entry.name} maps memory objects, which stay on their node`,
      );
    }
    return entry;
  }

  /** Before a hand-off: what the task sent to other nodes is delivered; the ports that will move. */
  #prepareDeparture(id: string): Promise<CallValue<'prepare'>> {
    return this.#run(async () => {
      const entry = await this.#departing(id);
      try {
        await this.#cluster().ipc.flushBarrier(moveFlushTimeoutMs);
      } catch (error) {
        throw new NormaError('MOVE_FAILED', `task ${entry.name} cannot leave: ${(error as Error).message}`);
      }
      return { ports: exportTasks(this.kernel.ipc, [entry.id]).ports.map((port) => port.id) };
    });
  }

  /** The task frozen at `id` leaves for node `to` (an incarnation) with its ports. */
  #handOff(id: string, to: string): Promise<Migration> {
    return this.#run(async () => {
      const entry = await this.#departing(id);
      const member = this.#cluster();
      const migration = await member.ipc.handOff([entry.id], to);
      this.kernel.dropDetached(entry.id);
      this.#entries.delete(entry.id);
      await this.#journal.write();
      this.log(`${entry.name} (task ${entry.id}) left for ${member.memberName(to)} with its ports`);
      return migration;
    });
  }

  // -------------------------------------------------------------------------------------------
  // Spawn, freeze, thaw, kill
  // -------------------------------------------------------------------------------------------

  spawn(params: Params<'spawn'>): Promise<Results['spawn']> {
    return this.#run(async () => {
      let module: Uint8Array<ArrayBuffer>;
      try {
        module = new Uint8Array(await readFile(params.module));
      } catch (error) {
        throw new NormaError(
          'FILE_NOT_FOUND',
          `the node cannot read ${params.module}: ${(error as NodeJS.ErrnoException).code ?? error}`,
        );
      }
      const name = params.name ?? safeName(basename(params.module, '.wasm'));
      const log = new TaskLog(null, this.log);
      const task = await this.kernel.spawn({
        module,
        name,
        args: [basename(params.module), ...params.args],
        env: params.env,
        stdin: new Uint8Array(0),
        preempt: params.preempt,
        ...this.#io(log),
      });
      const entry: Entry = {
        id: task.state.id,
        nodeId: this.kernel.nodeId,
        name,
        module: params.module,
        args: params.args,
        preempt: params.preempt,
        status: 'running',
        exit: null,
        lastSnapshot: null,
        checkpoint:
          params.checkpointEveryMs === undefined
            ? null
            : { everyMs: params.checkpointEveryMs, keep: params.keep },
        checkpoints: [],
        checkpointsTaken: 0,
        log,
        task: null,
        timer: null,
        busy: null,
        buffers: null,
      };
      this.#entries.set(entry.id, entry);
      await log.open(join(this.paths.logsDirectory, `${name}-${entry.id}.log`));
      this.#started(entry, task);
      await this.#journal.write();
      this.log(`spawned ${name} (task ${entry.id}) from ${params.module}`);
      return this.#ref(entry);
    });
  }

  freeze(params: Params<'freeze'>): Promise<Results['freeze']> {
    return this.#run(async () => (await this.#freeze(params.task)).frozen);
  }

  /** freeze, with what the move's log reports: the freeze's stats and the journal write's time. */
  async #freeze(ref: string): Promise<{ frozen: Results['freeze']; stats: FreezeStats; journalMs: number }> {
    const entry = this.#find(ref);
    await this.#quiesce([entry]);
    const task = this.#runningTask(entry);
    let frozen: Awaited<ReturnType<typeof freezeTasks>>;
    try {
      // The checkpoint buffers (a move's pre-copy left them): only what changed is copied and hashed.
      frozen = await freezeTasks(
        this.kernel,
        this.store,
        [task],
        { kind: 'task', label: entry.name, parent: entry.lastSnapshot },
        entry.buffers ?? undefined,
      );
    } catch (error) {
      this.#startCheckpoints(entry);
      throw error;
    }
    entry.lastSnapshot = frozen.manifest.id;
    entry.status = 'frozen';
    this.#lastFrozen = frozen.manifest;
    // A frozen task holds no copy of its memory here (the next checkpoint after a thaw copies all).
    entry.buffers = null;
    const journalStarted = performance.now();
    await this.#journal.write();
    const journalMs = performance.now() - journalStarted;
    this.log(`froze ${entry.name} (task ${entry.id}) into ${entry.lastSnapshot}`);
    const snapshot = frozen.manifest.id;
    return { frozen: { snapshot, task: this.#ref(entry) }, stats: frozen.stats, journalMs };
  }

  thaw(params: Params<'thaw'>): Promise<Results['thaw']> {
    return this.#run(async () => {
      const arrival = await this.#arrival(params.snapshot);
      if (arrival !== null) {
        const { restored } = await this.#arrive(arrival);
        return {
          snapshot: arrival.id,
          tasks: restored.map((entry) => this.#ref(entry)),
          transfer: arrival.stats,
        };
      }
      const { snapshot, restored } = await this.#thaw(params.snapshot, () => undefined);
      // Thawing the suspend point by hand uses it up, as `norma resume` would.
      if ((await this.suspendRecord())?.snapshot === snapshot)
        await rm(this.paths.suspendRecord, { force: true });
      await this.#journal.write();
      this.log(`thawed ${snapshot}: ${restored.map((e) => `${e.name} (task ${e.id})`).join(', ')}`);
      return { snapshot, tasks: restored.map((entry) => this.#ref(entry)) };
    });
  }

  /**
   * Restores a snapshot into the kernel and gives each task an entry (carried over from the one it
   * was frozen, lost or suspended as, else a new one). `afterRestore` runs before any restored
   * thread can: it may pause some of them.
   */
  async #thaw(
    idOrPrefix: string,
    afterRestore: (pairs: readonly { oldId: number; entry: Entry; task: Task }[]) => void,
    moving?: { migration: Migration; from: string; manifest: SnapshotManifest; stage?: StagedTask },
  ): Promise<{ snapshot: string; restored: Entry[]; staged: RestoreResult['staged'] }> {
    const id = await this.store.resolveId(idOrPrefix);
    // Read once: a moving task's manifest was read (or pulled) just before, and the restore gets it.
    const manifest = moving?.manifest.id === id ? moving.manifest : await this.store.readManifest(id);
    const sameNode = manifest.node.id === this.kernel.nodeId;
    const entries = manifest.tasks.map((record): { entry: Entry; inherited: boolean } => {
      const oldId = record.state.id;
      const previous = this.#entries.get(oldId);
      if (previous !== undefined && previous.nodeId === manifest.node.id) {
        if (
          previous.status === 'frozen' &&
          sameNode &&
          this.kernel.isDetached(oldId) &&
          previous.lastSnapshot !== id
        ) {
          throw new NormaError(
            'SNAPSHOT_CONFLICT',
            `task ${previous.name} (${oldId}) is frozen on this node at snapshot ${previous.lastSnapshot}, not ${id}`,
            { hint: `Thaw ${previous.lastSnapshot}, or kill the task first to go back to ${id}.` },
          );
        }
        if (previous.status === 'frozen' || previous.status === 'lost' || previous.status === 'suspended') {
          return { entry: previous, inherited: true };
        }
      }
      const name = safeName(record.state.name);
      return {
        inherited: false,
        entry: {
          id: oldId,
          nodeId: manifest.node.id,
          name,
          module: null,
          args: [],
          preempt: record.state.preemptible,
          status: 'frozen',
          exit: null,
          lastSnapshot: id,
          checkpoint: null,
          checkpoints: [],
          checkpointsTaken: 0,
          log: new TaskLog(null, this.log),
          task: null,
          timer: null,
          busy: null,
          buffers: null,
        },
      };
    });
    for (const { entry, inherited } of entries)
      if (inherited && entry.log.path !== null) await entry.log.open(entry.log.path);
    const io = (_record: unknown, index: number) => this.#io(entries[index]!.entry.log);
    const result =
      moving === undefined
        ? await restoreSnapshot(this.kernel, this.store, id, io, { manifest })
        : await this.#cluster().ipc.arrive(moving.migration, moving.from, (importIpc) =>
            restoreSnapshot(this.kernel, this.store, id, io, {
              manifest,
              migration: { importIpc, names: moving.migration.names },
              ...(moving.stage === undefined ? {} : { stage: moving.stage }),
            }),
          );
    const pairs = result.tasks.map((task, index) => ({
      oldId: manifest.tasks[index]!.state.id,
      entry: entries[index]!.entry,
      task,
    }));
    afterRestore(pairs);
    for (const { entry, task, oldId } of pairs) {
      // A task that read stdin from a terminal before it was frozen reads an empty, closed one here.
      if (!task.state.wasi.stdin.eof) this.kernel.writeStdin(task, new Uint8Array(0), true);
      if (this.#entries.get(oldId) === entry) this.#entries.delete(oldId);
      entry.id = task.state.id;
      entry.nodeId = this.kernel.nodeId;
      entry.exit = null;
      entry.lastSnapshot = id;
      this.#entries.set(entry.id, entry);
      if (entry.log.path === null)
        await entry.log.open(join(this.paths.logsDirectory, `${entry.name}-${entry.id}.log`));
      this.#started(entry, task);
    }
    return { snapshot: id, restored: pairs.map((pair) => pair.entry), staged: result.staged };
  }

  kill(params: Params<'kill'>): Promise<Results['kill']> {
    return this.#run(async () => {
      const entry = this.#find(params.task);
      const ref = this.#ref(entry);
      let action: Results['kill']['action'];
      if (entry.status === 'running') {
        const task = entry.task!;
        this.kernel.kill(task);
        this.#end(entry, 'killed', task.state.exit);
        action = 'killed';
      } else if (entry.status === 'frozen') {
        this.kernel.dropDetached(entry.id);
        this.#end(entry, 'killed', null);
        action = 'dropped';
      } else {
        this.#entries.delete(entry.id);
        action = 'forgotten';
      }
      await this.#journal.write();
      this.log(`${action} ${entry.name} (task ${entry.id})`);
      return { task: ref, action };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Logs
  // -------------------------------------------------------------------------------------------

  async logs(params: Params<'logs'>, context: RequestContext): Promise<Results['logs']> {
    const entry = this.#find(params.task);
    const { bytes, exit } = await entry.log.replay(context.emit, {
      follow: params.follow,
      signal: context.closed,
      alive: () => entry.status === 'running' || entry.status === 'frozen',
    });
    return { bytes, exit: exit ?? entry.exit };
  }

  // -------------------------------------------------------------------------------------------
  // Suspend, resume, stop
  // -------------------------------------------------------------------------------------------

  /**
   * Freezes every task as one group snapshot and records it as the suspend point. Tasks frozen on
   * their own before are thawed into the group first (paused: they do not run), so the messages
   * queued for them since their freeze are in the snapshot too; the record says to freeze them again
   * on resume. The node is stopping from here on.
   */
  suspend(): Promise<Results['suspend']> {
    return this.#run(async () => {
      this.#stopping = true;
      try {
        return await this.#suspend();
      } catch (error) {
        this.#stopping = false;
        for (const entry of this.#entries.values()) this.#startCheckpoints(entry);
        throw error;
      }
    }, true);
  }

  async #suspend(): Promise<Results['suspend']> {
    await this.#quiesce([...this.#entries.values()]);
    const frozen = [...this.#entries.values()].filter(
      (entry) =>
        entry.status === 'frozen' && entry.nodeId === this.kernel.nodeId && this.kernel.isDetached(entry.id),
    );
    const rethawed: Entry[] = [];
    for (const entry of frozen) {
      const { restored } = await this.#thaw(entry.lastSnapshot!, (pairs) => {
        this.kernel.pause(pairs.map((pair) => pair.task));
      });
      rethawed.push(...restored);
    }
    const running = [...this.#entries.values()].filter((entry) => entry.status === 'running');
    let snapshot: string | null = null;
    if (running.length > 0) {
      try {
        const { manifest } = await freezeTasks(
          this.kernel,
          this.store,
          running.map((entry) => entry.task!),
          {
            kind: running.length > 1 ? 'group' : 'task',
            label: `suspend of ${this.kernel.nodeId}`,
            parent: null,
          },
        );
        snapshot = manifest.id;
      } catch (error) {
        // The tasks run on; the ones that were frozen are frozen again before they can run.
        this.kernel.pause(rethawed.map((entry) => entry.task!));
        await this.#refreeze(rethawed);
        throw error;
      }
    }
    for (const entry of running) {
      entry.status = 'suspended';
      entry.lastSnapshot = snapshot;
    }
    const record: SuspendRecord = {
      version: 1,
      snapshot,
      nodeId: this.kernel.nodeId,
      suspendedAtMs: Date.now(),
      tasks: running.map((entry) => this.#ref(entry)),
      frozen: rethawed.map((entry) => entry.id),
    };
    await writeJsonAtomically(this.paths.suspendRecord, record);
    await this.#journal.write();
    this.log(`suspended ${running.length} task(s) into ${snapshot ?? '(no snapshot: no tasks)'}`);
    return { snapshot, tasks: record.tasks };
  }

  /** The recorded suspend point, if any. */
  async suspendRecord(): Promise<SuspendRecord | null> {
    try {
      return await readJson(this.paths.suspendRecord, suspendRecordSchema);
    } catch (error) {
      this.log(`the suspend record ${this.paths.suspendRecord} cannot be read: ${(error as Error).message}`);
      return null;
    }
  }

  resumeSuspended(): Promise<Results['resumeSuspended']> {
    return this.#run(async () => {
      const record = await this.suspendRecord();
      if (record === null) {
        throw new NormaError('NODE_NOT_SUSPENDED', `no suspend point in ${this.paths.store}`);
      }
      let tasks: TaskRef[] = [];
      let frozen: TaskRef[] = [];
      if (record.snapshot !== null) {
        const again = new Set(record.frozen);
        let refreeze: Entry[] = [];
        const { restored } = await this.#thaw(record.snapshot, (pairs) => {
          const wanted = pairs.filter((pair) => again.has(pair.oldId));
          this.kernel.pause(wanted.map((pair) => pair.task));
          refreeze = wanted.map((pair) => pair.entry);
        });
        await this.#refreeze(refreeze);
        tasks = restored.filter((entry) => entry.status === 'running').map((entry) => this.#ref(entry));
        frozen = refreeze.map((entry) => this.#ref(entry));
      }
      await rm(this.paths.suspendRecord, { force: true });
      await this.#journal.write();
      this.log(
        `resumed ${record.snapshot ?? '(no tasks)'}: ${tasks.length} running, ${frozen.length} frozen`,
      );
      return { snapshot: record.snapshot, tasks, frozen };
    });
  }

  /** Freezes paused tasks that must not run (they were frozen before a suspend). */
  async #refreeze(entries: readonly Entry[]): Promise<void> {
    for (const entry of entries) {
      this.#stopCheckpoints(entry);
      const { manifest } = await freezeTasks(this.kernel, this.store, [entry.task!], {
        kind: 'task',
        label: entry.name,
        parent: entry.lastSnapshot,
      });
      entry.lastSnapshot = manifest.id;
      entry.status = 'frozen';
    }
  }

  /** Kills every running task and drops the frozen ones (a clean stop); lost and suspended stay. */
  stop(): Promise<Results['stop']> {
    return this.#run(async () => {
      this.#stopping = true;
      for (const id of [...this.#stages.keys()]) void this.#takeStage(id);
      await this.#quiesce([...this.#entries.values()]);
      let killed = 0;
      for (const entry of this.#entries.values()) {
        if (entry.status === 'running') {
          this.kernel.kill(entry.task!);
          this.#end(entry, 'killed', entry.task!.state.exit);
          killed++;
        } else if (entry.status === 'frozen') {
          this.kernel.dropDetached(entry.id);
          this.#end(entry, 'killed', null);
          killed++;
        }
      }
      for (const entry of this.#entries.values()) entry.log.end(entry.exit);
      this.kernel.shutdown();
      await this.#journal.write();
      return { killed };
    }, true);
  }

  // -------------------------------------------------------------------------------------------
  // Task life
  // -------------------------------------------------------------------------------------------

  #run<T>(operation: () => Promise<T>, evenIfStopping = false): Promise<T> {
    if (this.#stopping && !evenIfStopping) return Promise.reject(stopping());
    return this.#exclusive.run(async () => {
      if (this.#stopping && !evenIfStopping) throw stopping();
      return operation();
    });
  }

  #io(log: TaskLog): Pick<SpawnOptions, 'stdout' | 'stderr'> {
    return {
      stdout: (bytes) => log.write('stdout', bytes),
      stderr: (bytes) => log.write('stderr', bytes),
    };
  }

  #runningTask(entry: Entry): Task {
    if (entry.status !== 'running' || entry.task === null) {
      throw new NormaError('TASK_NOT_RUNNING', `task ${entry.name} (${entry.id}) is ${entry.status}`);
    }
    return entry.task;
  }

  /** The task runs from now on in the kernel: watch its end, start its checkpoints. */
  #started(entry: Entry, task: Task): void {
    entry.task = task;
    entry.status = 'running';
    entry.exit = null;
    void task.exited.then((exit) => {
      if (entry.task !== task) return;
      if (this.kernel.isDetached(task.state.id)) {
        // Frozen: the freeze (or suspend) sets the status; its ports stay on this node.
        entry.task = null;
        this.#stopCheckpoints(entry);
        entry.log.close();
        if (entry.status === 'running') entry.status = 'frozen';
        return;
      }
      this.#end(entry, exit.trap === 'killed' ? 'killed' : 'exited', exit);
      if (!this.#stopping) void this.#journal.write();
    });
    this.#startCheckpoints(entry);
  }

  #end(entry: Entry, status: 'exited' | 'killed', exit: TaskExit | null): void {
    this.#stopCheckpoints(entry);
    entry.task = null;
    entry.status = status;
    entry.exit = exit;
    entry.log.close();
    entry.log.end(exit);
  }

  /** Stops the periodic checkpoints of `entries` and waits for those in flight. */
  async #quiesce(entries: readonly Entry[]): Promise<void> {
    for (const entry of entries) this.#stopCheckpoints(entry);
    await Promise.all(entries.map((entry) => entry.busy));
  }

  #startCheckpoints(entry: Entry): void {
    if (entry.checkpoint === null || entry.status !== 'running' || entry.timer !== null || this.#stopping)
      return;
    entry.timer = setInterval(() => this.#checkpoint(entry), entry.checkpoint.everyMs);
    entry.timer.unref();
  }

  #stopCheckpoints(entry: Entry): void {
    if (entry.timer !== null) clearInterval(entry.timer);
    entry.timer = null;
  }

  /** One periodic checkpoint, unless one is in flight; then the oldest beyond `keep` are removed. */
  #checkpoint(entry: Entry): void {
    const task = entry.task;
    if (entry.busy !== null || task === null || task.state.status !== 'running' || entry.checkpoint === null)
      return;
    const keep = entry.checkpoint.keep;
    entry.buffers ??= new CaptureBuffers();
    entry.busy = (async () => {
      try {
        const { manifest } = await checkpointTasks(
          this.kernel,
          this.store,
          [task],
          { kind: 'task', label: entry.name, parent: entry.lastSnapshot },
          entry.buffers!,
        );
        entry.lastSnapshot = manifest.id;
        entry.checkpoints.push(manifest.id);
        entry.checkpointsTaken++;
        // The journal names the new one before the oldest goes: a crash never leaves it naming none.
        await this.#journal.write();
        while (entry.checkpoints.length > keep) {
          const old = entry.checkpoints[0]!;
          await this.store.remove(old);
          entry.checkpoints.shift();
        }
        await this.#journal.write();
      } catch (error) {
        this.log(`checkpoint of ${entry.name} (task ${entry.id}) failed: ${(error as Error).message}`);
      } finally {
        entry.busy = null;
      }
    })();
  }

  #journalContents(): Journal {
    return {
      version: 1,
      nodeId: this.kernel.nodeId,
      pid: process.pid,
      updatedAtMs: Date.now(),
      tasks: [...this.#entries.values()].map((entry) => ({
        id: entry.id,
        nodeId: entry.nodeId,
        name: entry.name,
        module: entry.module,
        args: entry.args,
        preempt: entry.preempt,
        status: entry.status,
        exit: entry.exit,
        lastSnapshot: entry.lastSnapshot,
        checkpoint: entry.checkpoint,
        checkpoints: entry.checkpoints,
        checkpointsTaken: entry.checkpointsTaken,
        log: entry.log.path ?? '',
      })),
    };
  }
}
