/**
 * The node's kernel: it owns the tasks, schedules their threads, and serves their syscalls.
 *
 * Scheduling: one run queue of (task, thread) pairs across every task of the node, round robin.
 * A thread runs until it blocks in a syscall, yields, or (for preemptible tasks) its time slice
 * ends at a safepoint. The kernel runs threads for at most `eventLoopTurnMsMax` before handing the
 * event loop back to Node, so that timers, sockets and signals keep being served while tasks compute.
 *
 * Blocking: a syscall that cannot complete records a `Wait` on its thread and unwinds it. Whatever
 * can satisfy the wait (a message queued, queue space, a timer, stdin, a lock released, a thread
 * ending, a name registered) wakes the thread, which re-executes the syscall from the start.
 * The indexes of who waits for what are derived from the threads' waits, never saved.
 */
import { type SyscallName, syscallModule, syscalls } from '../abi/syscalls.js';
import { NormaError } from '../errors.js';
import { Ipc, type IpcEvent } from '../ipc/index.js';
import { eventLoopTurnMsMax, timeSliceMsDefault } from '../limits.js';
import { checkImport, wasiModules } from '../runtime/import-policy.js';
import { loadTaskImage, type TaskImage, type TransformProgress } from '../runtime/module-cache.js';
import {
  block,
  type HostFunction,
  type PreparedInstance,
  type SuspendingHandler,
  TaskInstance,
} from '../runtime/task-instance.js';
import { MemoryObjects } from '../vm/memory-object.js';
import { DefaultPager } from '../vm/pager.js';
import { Wasi, type WasiHost } from '../wasi/wasi.js';
import { createWasiState } from '../wasi/wasi-state.js';
import { NameService } from './name-service.js';
import { makeSyscallHandlers, type SyscallHandler, TaskExitRequest } from './norma-syscalls.js';
import { createRandomState, fillRandom, nextFloat } from './random.js';
import {
  frozenExitCode,
  killedExitCode,
  type TaskExit,
  type TaskState,
  type TrapKind,
  trapExitCode,
} from './task.js';
import { createThread, type ThreadState, type Wait, type WakeReason } from './thread.js';
import { type HostClock, systemClock, VirtualClock } from './virtual-clock.js';

export interface KernelOptions {
  /** The node's identity, the prefix of every port id created here. */
  readonly nodeId?: string;
  readonly clock?: HostClock;
  /** Module cache directory; false disables the disk cache. */
  readonly cacheDirectory?: string | false;
  readonly timeSliceMs?: number;
  /** Told when a module is transformed (seconds for large modules), for progress output. */
  readonly onTransform?: (event: TransformProgress) => void;
}

export interface SpawnOptions {
  /** The original module bytes. */
  readonly module: Uint8Array<ArrayBuffer>;
  readonly name?: string;
  /** argv, including argv[0]. */
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Files of the task's in-memory file system, by absolute path. */
  readonly files?: Readonly<Record<string, Uint8Array>>;
  /** All of stdin up front; omit to stream it with `writeStdin`. */
  readonly stdin?: Uint8Array;
  /** Insert safepoints so the task can be preempted (and frozen) in pure compute. */
  readonly preempt?: boolean;
  /** The export to run; default `_start`. */
  readonly entry?: string;
  readonly stdout?: (bytes: Uint8Array) => void;
  readonly stderr?: (bytes: Uint8Array) => void;
  /** Called the first time the task waits for stdin that has not been written yet. */
  readonly onStdinWanted?: () => void;
}

/**
 * What the kernel tells the network layer (NORMA IPC, src/net/norma-ipc.ts) when the node is part
 * of a cluster. A kernel without one is a node on its own.
 */
export interface KernelNetwork {
  /** Every IPC event, after the kernel has handled it (proxies, releases, deaths). */
  ipcEvents(events: readonly IpcEvent[]): void;
  /** A lookup missed locally: ask the cluster (the answer comes as NameService.offerRemote). */
  lookupName(service: string): void;
  /** A task registered `service` here: publish it. */
  nameRegistered(service: string, portId: string): void;
  /** A registration made here ended (its port died): withdraw it. */
  nameForgotten(service: string, portId: string): void;
}

/** A task running in this kernel: its plain state plus what lives only in this process. */
export interface Task {
  readonly state: TaskState;
  readonly image: TaskImage;
  readonly instance: TaskInstance;
  readonly clock: VirtualClock;
  readonly wasi: Wasi;
  /** Resolves when the task has ended, however it ended. */
  readonly exited: Promise<TaskExit>;
}

interface TaskRecord extends Task {
  readonly options: SpawnOptions;
  resolveExit: (exit: TaskExit) => void;
  stdinWanted: boolean;
}

interface Timer {
  readonly hostNs: bigint;
  readonly task: TaskRecord;
  readonly thread: ThreadState;
  readonly wait: Wait;
}

const nowMs = (): number => performance.now();
/** The longest delay setTimeout accepts (2^31-1 ms, about 24.8 days). */
const timerDelayMsMax = 0x7fff_ffff;

export class Kernel {
  readonly nodeId: string;
  readonly ipc: Ipc;
  readonly names: NameService;
  readonly memoryObjects = new MemoryObjects();
  readonly pager = new DefaultPager();
  readonly #clock: HostClock;
  readonly #cacheDirectory: string | false | undefined;
  readonly #timeSliceMs: number;
  readonly #onTransform: ((event: TransformProgress) => void) | undefined;
  readonly #tasks = new Map<number, TaskRecord>();
  #network: KernelNetwork | null = null;
  /** Tasks that must not run for now (between a freeze's capture and its commit), and their parked threads. */
  readonly #paused = new Set<TaskRecord>();
  #parked: [TaskRecord, ThreadState][] = [];
  /** Frozen tasks whose IPC spaces and mappings stay on this node (see detach). */
  readonly #detached = new Set<number>();
  #nextTaskId = 1;
  #runQueue: [TaskRecord, ThreadState][] = [];
  #runHead = 0;
  #pumpScheduled = false;
  /** The thread running now and its task (two fields, not an object: one fewer allocation a switch). */
  #currentTask: TaskRecord | null = null;
  #currentThread: ThreadState | null = null;
  #sliceEndMs = 0;
  #callsSinceClock = 0;
  #timers: Timer[] = [];
  /**
   * Holds the process open while tasks exist: a task blocked with no timeout (a server waiting for
   * requests) has nothing on Node's event loop, and a process whose loop is empty exits.
   */
  #keepAlive: NodeJS.Timeout | null = null;
  #timerHandle: NodeJS.Timeout | null = null;
  #timerAtNs: bigint | null = null;

  constructor(options: KernelOptions = {}) {
    this.nodeId = options.nodeId ?? 'local';
    this.#clock = options.clock ?? systemClock;
    this.#cacheDirectory = options.cacheDirectory;
    this.#timeSliceMs = options.timeSliceMs ?? timeSliceMsDefault;
    this.#onTransform = options.onTransform;
    this.ipc = new Ipc(this.nodeId);
    this.names = new NameService(this.ipc, undefined, (change, service, portId) => {
      if (change === 'registered') this.#network?.nameRegistered(service, portId);
      else this.#network?.nameForgotten(service, portId);
    });
  }

  /** Joins the node to a cluster: from now on the network layer sees every IPC event. */
  attachNetwork(network: KernelNetwork): void {
    this.#network = network;
  }

  /** The network layer changed the IPC state (a message arrived, a port died): wake who can go on. */
  ipcChanged(): void {
    this.#drainIpcEvents();
  }

  /** True while a thread waits in name_lookup for `service` (the network layer keeps asking). */
  hasLookupWaiters(service: string): boolean {
    for (const task of this.#tasks.values()) {
      if (task.state.status !== 'running') continue;
      for (const thread of task.state.threads) {
        if (thread.status === 'blocked' && thread.wait?.kind === 'lookup' && thread.wait.service === service)
          return true;
      }
    }
    return false;
  }

  /** How busy the node is: running tasks and threads ready to run (`norma nodes`, migration). */
  load(): { tasks: number; runnable: number } {
    let tasks = 0;
    let runnable = 0;
    for (const task of this.#tasks.values()) {
      if (task.state.status !== 'running') continue;
      tasks++;
      for (const thread of task.state.threads) if (thread.status === 'runnable') runnable++;
    }
    return { tasks, runnable };
  }

  /** A lookup missed locally: the network layer, if any, asks the cluster. */
  lookupRemote(service: string): void {
    this.#network?.lookupName(service);
  }

  get tasks(): readonly Task[] {
    return [...this.#tasks.values()];
  }

  task(id: number): Task | undefined {
    return this.#tasks.get(id);
  }

  /** Transforms (or finds in the cache) the module, instantiates it and starts its main thread. */
  async spawn(options: SpawnOptions): Promise<Task> {
    const image = await loadTaskImage(options.module, {
      preempt: options.preempt ?? false,
      ...(this.#cacheDirectory === undefined ? {} : { cacheDirectory: this.#cacheDirectory }),
      ...(this.#onTransform === undefined ? {} : { onTransform: this.#onTransform }),
    });
    const entry = options.entry ?? '_start';
    const entryFunction = WebAssembly.Module.exports(image.module).find(
      (e) => e.name === entry && e.kind === 'function',
    );
    if (!entryFunction) {
      throw new NormaError('MODULE_NO_ENTRY', `the module has no exported function ${entry}`);
    }
    for (const description of image.info.imports) checkImport(description);

    const id = this.#nextTaskId++;
    const state: TaskState = {
      id,
      name: options.name ?? `task-${id}`,
      moduleHash: image.moduleHash,
      preemptible: image.info.preemptible,
      status: 'running',
      exit: null,
      threads: [],
      nextThreadId: 1,
      clock: { monotonicAtAdoptNs: 0n },
      random: createRandomState(),
      wasi: createWasiState({
        args: [...(options.args ?? [options.name ?? 'task'])],
        env: { ...(options.env ?? {}) },
        files: { ...(options.files ?? {}) },
        ...(options.stdin === undefined ? {} : { stdin: options.stdin, stdinClosed: true }),
      }),
    };
    state.threads.push(createThread(0, [...image.info.initExports, entry], null, null));
    const record = await this.#adopt(state, image, options, true);
    this.#enqueue(record, state.threads[0]!);
    return record;
  }

  /** A fresh task id (the restorer asks for one per restored task). */
  allocateTaskId(): number {
    return this.#nextTaskId++;
  }

  /**
   * Adopts a task rebuilt from a snapshot (the restorer's entry point): instantiates its image and
   * registers it, without running anything. The restorer then puts its memory and globals back and
   * calls `startRestored`. The task's IPC space must already exist (imported, or kept while it was
   * frozen on this node).
   */
  async adoptRestored(
    state: TaskState,
    image: TaskImage,
    options: SpawnOptions,
    prepared?: PreparedInstance,
  ): Promise<Task> {
    if (state.id >= this.#nextTaskId) this.#nextTaskId = state.id + 1;
    this.#detached.delete(state.id);
    return this.#adopt(state, image, options, false, prepared);
  }

  /** Attaches a prepared instance to the task its imports serve (the kernel's own step, at adoption). */
  readonly #bindings = new WeakMap<PreparedInstance, (task: TaskRecord) => void>();

  /**
   * Instantiates an image before the task that will run in it exists (a move stages the task while
   * it still runs on the other node, off its downtime): its imports find their task when it is
   * adopted (`adoptRestored` with this instance). Nothing runs in it until then; it serves one task.
   */
  async prepareInstance(image: TaskImage): Promise<PreparedInstance> {
    let record: TaskRecord | null = null;
    const task = (): TaskRecord => {
      if (record === null) throw new Error('a prepared instance was called before its task was adopted');
      return record;
    };
    const handlers = makeSyscallHandlers(this, task);
    const instance = await TaskInstance.instantiate(image.module, image.info, (suspending) =>
      this.#imports(image, task, handlers, suspending),
    );
    const prepared: PreparedInstance = {
      image,
      instance,
      get adopted() {
        return record !== null;
      },
    };
    this.#bindings.set(prepared, (adopted) => {
      if (record !== null) throw new Error('a prepared instance serves one task only');
      record = adopted;
    });
    return prepared;
  }

  /**
   * Makes every thread of a restored task that was not exited runnable. A thread that was blocked
   * re-executes its syscall (the re-execution rule: it blocks again if its condition still does not
   * hold, keeping its deadline); a thread that had yielded returns its saved result.
   */
  startRestored(task: Task): void {
    for (const thread of task.state.threads) {
      if (thread.status === 'exited') continue;
      if (thread.wait !== null) thread.wake = 'event';
      this.#enqueue(task as TaskRecord, thread);
    }
  }

  /**
   * Stops a task that has just been captured (a freeze): it no longer runs and its instance is
   * dropped, but its IPC space and memory mappings stay in the node, so its ports keep queueing
   * messages (senders block at the queue limit, nothing is lost) until it is thawed here, or
   * dropped with `dropDetached`. Its `exited` promise resolves with code 75 and message 'frozen'.
   */
  detach(task: Task): void {
    const record = task as TaskRecord;
    if (record.state.status !== 'running') return;
    this.#paused.delete(record);
    this.#parked = this.#parked.filter(([t]) => t !== record);
    record.state.status = 'exited';
    record.state.exit = { code: frozenExitCode, trap: null, message: 'frozen' };
    this.#timers = this.#timers.filter((t) => t.task !== record);
    this.#rearm();
    this.#tasks.delete(record.state.id);
    this.#releaseKeepAlive();
    this.#detached.add(record.state.id);
    record.resolveExit(record.state.exit);
  }

  /**
   * Keeps the tasks from running (their runnable threads wait, events still wake blocked ones) until
   * `unpause`: a freeze pauses them from the capture until its commit is durable, so that nothing
   * they do after the capture is lost or done twice.
   */
  pause(tasks: readonly Task[]): void {
    for (const task of tasks) this.#paused.add(task as TaskRecord);
  }

  unpause(tasks: readonly Task[]): void {
    for (const task of tasks) this.#paused.delete(task as TaskRecord);
    const parked = this.#parked;
    this.#parked = [];
    for (const [task, thread] of parked) {
      if (this.#paused.has(task)) this.#parked.push([task, thread]);
      else if (task.state.status === 'running' && thread.status === 'runnable') {
        this.#runQueue.push([task, thread]);
      }
    }
    this.#schedulePump();
  }

  /** True when the task id is a frozen task whose IPC space is kept on this node. */
  isDetached(taskId: number): boolean {
    return this.#detached.has(taskId);
  }

  /** Ends a frozen task for good: its ports die, its mappings and locks are released. */
  dropDetached(taskId: number): void {
    if (!this.#detached.delete(taskId)) return;
    this.memoryObjects.forgetTask(taskId);
    this.wakeWhere((wait) => wait.kind === 'acquire');
    if (this.ipc.hasSpace(taskId)) this.ipc.destroySpace(taskId);
    this.#drainIpcEvents();
  }

  /** Builds the process-local parts of a task around its plain state and registers it. */
  async #adopt(
    state: TaskState,
    image: TaskImage,
    options: SpawnOptions,
    createSpace: boolean,
    prepared?: PreparedInstance,
  ): Promise<TaskRecord> {
    if (prepared !== undefined && (prepared.image.imageHash !== image.imageHash || prepared.adopted))
      throw new Error('adopt: the prepared instance is of another image, or serves a task already');
    const clock = new VirtualClock(state.clock, this.#clock);
    const host: WasiHost = {
      memory: () => record.instance.memory.visible(),
      stdout: (bytes) => options.stdout?.(bytes),
      stderr: (bytes) => options.stderr?.(bytes),
      realtimeNs: () => clock.realtimeNs(),
      monotonicNs: () => clock.monotonicNs(),
      randomFill: (target) => fillRandom(state.random, target),
    };
    const wasi = new Wasi(state.wasi, host);
    let resolveExit!: (exit: TaskExit) => void;
    const exited = new Promise<TaskExit>((resolve) => {
      resolveExit = resolve;
    });
    const ready = prepared ?? (await this.prepareInstance(image));
    const instance = ready.instance;
    const record: TaskRecord = {
      state,
      image,
      instance,
      clock,
      wasi,
      exited,
      options,
      resolveExit,
      stdinWanted: false,
    };
    this.#bindings.get(ready)!(record);
    if (createSpace) this.ipc.createSpace(state.id);
    this.#tasks.set(state.id, record);
    this.#keepAlive ??= setInterval(() => undefined, 2 ** 30);
    return record;
  }

  #imports(
    image: TaskImage,
    task: () => TaskRecord,
    handlers: Record<SyscallName, SyscallHandler>,
    suspending: (handler: SuspendingHandler, resultType: 'i32' | 'i64' | null) => HostFunction,
  ): WebAssembly.Imports {
    const imports: Record<string, Record<string, HostFunction>> = {};
    const add = (module: string, name: string, fn: HostFunction): void => {
      imports[module] ??= {};
      imports[module][name] = fn;
    };
    for (const { module, name, results } of image.info.imports) {
      const resultType = (results[0] ?? null) as 'i32' | 'i64' | null;
      if (module === syscallModule) {
        const handler = handlers[name as SyscallName];
        add(module, name, suspending(this.#syscall(handler), syscalls[name as SyscallName].result));
      } else if ((wasiModules as readonly string[]).includes(module)) {
        add(module, name, suspending(this.#wasiCall(module, name), resultType));
      } else if (module === 'env') {
        add(module, name, this.#assemblyScriptEnv(task, name));
      }
    }
    add('norma_internal', 'safepoint', suspending(this.#safepoint, null));
    return imports;
  }

  /**
   * Wraps a syscall body as a suspending import. On re-execution it hands the body the wait that
   * blocked it and why it was woken; a call that completed and then yielded returns its saved result.
   */
  #suspendable(
    body: (
      task: TaskRecord,
      thread: ThreadState,
      args: readonly (number | bigint)[],
      previous: Wait | null,
      wake: WakeReason | null,
    ) => number | bigint | typeof block,
  ): SuspendingHandler {
    return (args, resuming) => {
      const task = this.#currentTask!;
      const thread = this.#currentThread!;
      const previous = resuming ? thread.wait : null;
      const wake = resuming ? thread.wake : null;
      thread.wait = null;
      thread.wake = null;
      if (previous?.kind === 'yield' && previous.result !== null) return previous.result;
      const result = body(task, thread, args, previous, wake);
      // A callback of the call (its stdout reader, say) may have killed the task: stop it here.
      if (task.state.status !== 'running') throw new TaskExitRequest(killedExitCode);
      if (result === block) return block;
      // Yield after a completed call when the slice is over and another thread waits to run, so a
      // thread that never blocks (printing in a loop) cannot starve the others.
      // Reading the clock costs 3% of an IPC round trip, so it is read every 64th call only.
      if (
        this.#runHead < this.#runQueue.length &&
        (++this.#callsSinceClock & 63) === 0 &&
        this.#sliceOver()
      ) {
        return this.blockOn(thread, { kind: 'yield', result });
      }
      return result;
    };
  }

  #syscall(handler: SyscallHandler): SuspendingHandler {
    return this.#suspendable((task, thread, args, previous, wake) => {
      // i32 arguments arrive signed: a pointer above 2 GiB would be negative. Handlers get u32s
      // (the array is this call's own) and apply `| 0` where a value is signed (timeouts, deltas).
      const words = args as number[];
      for (let i = 0; i < words.length; i++) words[i] = words[i]! >>> 0;
      const result = handler(task, thread, words, previous, wake);
      this.#drainIpcEvents();
      return result;
    });
  }

  #wasiCall(module: string, name: string): SuspendingHandler {
    // A wait for stdin or a sleep is re-executed in full: the data is there now, or the clock is due.
    // The calling task's own WASI: the import is made before the task exists (prepareInstance).
    return this.#suspendable((record, thread, args) => {
      const outcome = record.wasi.call(module as (typeof wasiModules)[number], name, args);
      switch (outcome.kind) {
        case 'return':
          return outcome.value;
        case 'exit':
          throw new TaskExitRequest(outcome.code);
        case 'block':
          if (outcome.on === 'stdin') {
            if (!record.stdinWanted) {
              record.stdinWanted = true;
              record.options.onStdinWanted?.();
            }
            return this.blockOn(thread, { kind: 'stdin' });
          }
          return this.blockOn(thread, { kind: 'sleep', deadlineNs: outcome.untilMonotonicNs });
      }
    });
  }

  /** Called by preemptible code every `fuelPerCheck` loop iterations: yields when the slice is over. */
  readonly #safepoint: SuspendingHandler = (_args, resuming) => {
    const thread = this.#currentThread!;
    if (resuming) {
      thread.wait = null;
      thread.wake = null;
      return 0;
    }
    if (!this.#sliceOver()) return 0;
    return this.blockOn(thread, { kind: 'yield', result: null });
  };

  #assemblyScriptEnv(task: () => TaskRecord, name: string): HostFunction {
    switch (name) {
      case 'abort':
        return (message: number, file: number, line: number, column: number) => {
          const memory = task().instance.memory;
          const text = readAssemblyScriptString(memory.visible(), message);
          const where =
            file === 0 ? '' : ` at ${readAssemblyScriptString(memory.visible(), file)}:${line}:${column}`;
          // AssemblyScript's allocators abort with this message when memory.grow fails.
          const kind = /out of memory/i.test(text) ? 'out-of-memory' : 'abort';
          throw new TrapSignal(kind, `abort: ${text}${where}`);
        };
      case 'seed':
        return () => nextFloat(task().state.random);
      default:
        return () => undefined; // trace: a debugging aid, ignored
    }
  }

  /** Records the wait on the thread and suspends it (returned by handlers that block). */
  blockOn(thread: ThreadState, wait: Wait): typeof block {
    thread.wait = wait;
    return block;
  }

  /** Makes a blocked thread runnable; its syscall is re-executed with `reason`. */
  wake(task: Task, thread: ThreadState, reason: WakeReason): void {
    if (thread.status !== 'blocked') return;
    thread.status = 'runnable';
    thread.wake = reason;
    this.#enqueue(task as TaskRecord, thread);
  }

  /** Wakes every thread of every task whose wait matches. */
  wakeWhere(match: (wait: Wait, task: Task, thread: ThreadState) => boolean): void {
    for (const task of this.#tasks.values()) {
      if (task.state.status !== 'running') continue;
      for (const thread of task.state.threads) {
        if (thread.status === 'blocked' && thread.wait && match(thread.wait, task, thread)) {
          this.wake(task, thread, 'event');
        }
      }
    }
  }

  #drainIpcEvents(): void {
    const events = this.ipc.takeEvents();
    if (events.length > 0) this.#handleIpcEvents(events);
  }

  #handleIpcEvents(events: readonly IpcEvent[]): void {
    for (const event of events) {
      switch (event.kind) {
        case 'message-queued':
          this.#wakePortWaiters(this.#receiveWaiters, event.portId);
          if (event.setId !== null) this.#wakePortWaiters(this.#receiveWaiters, event.setId);
          break;
        case 'queue-space':
          this.#wakePortWaiters(this.#sendWaiters, event.portId);
          break;
        case 'receive-moved':
          this.#wakePortWaiters(this.#receiveWaiters, event.portId);
          break;
        case 'port-died':
          this.names.forgetPort(event.portId);
          this.#wakePortWaiters(this.#receiveWaiters, event.portId);
          this.#wakePortWaiters(this.#sendWaiters, event.portId);
          // Nobody can wait on a dead port again: its (now empty) lists go, or every port leaks one.
          this.#receiveWaiters.delete(event.portId);
          this.#sendWaiters.delete(event.portId);
          break;
        case 'kernel-no-senders':
          // Memory objects live until the node ends for now (see docs/ARCHITECTURE.md).
          break;
        default:
          break; // NORMA IPC events: for the network layer
      }
    }
    this.#network?.ipcEvents(events);
  }

  /** Threads blocked in receive (by the port or set they wait on) and in send (by destination). */
  readonly #receiveWaiters = new Map<string, [TaskRecord, ThreadState][]>();
  readonly #sendWaiters = new Map<string, [TaskRecord, ThreadState][]>();

  #addPortWaiter(
    index: Map<string, [TaskRecord, ThreadState][]>,
    portId: string,
    task: TaskRecord,
    thread: ThreadState,
  ): void {
    let waiters = index.get(portId);
    if (waiters === undefined) {
      waiters = [];
      index.set(portId, waiters);
    } else if (waiters.length >= 64) {
      // Entries of threads woken by a timeout stay until the port's next event; prune them here.
      const live = waiters.filter(([, t]) => waitPortId(t) === portId);
      waiters.length = 0;
      waiters.push(...live);
    }
    waiters.push([task, thread]);
  }

  /** Wakes the threads waiting on `portId` (the list is emptied, not replaced: no garbage). */
  #wakePortWaiters(index: Map<string, [TaskRecord, ThreadState][]>, portId: string): void {
    const waiters = index.get(portId);
    if (waiters === undefined || waiters.length === 0) return;
    const woken = waiters.length === 1 ? [waiters[0]!] : [...waiters];
    waiters.length = 0;
    for (const [task, thread] of woken) {
      if (waitPortId(thread) === portId) this.wake(task, thread, 'event');
    }
  }

  /** Feeds stdin to a task that streams it (`eof` marks the end). */
  writeStdin(task: Task, bytes: Uint8Array, eof: boolean): void {
    Wasi.pushStdin(task.state.wasi, bytes, eof);
    this.wakeWhere((wait, t) => t === task && wait.kind === 'stdin');
  }

  /** Ends a task from outside, as SIGKILL ends a process. */
  kill(task: Task): void {
    this.#endTask(task as TaskRecord, { code: killedExitCode, trap: 'killed', message: 'killed' });
  }

  /** Starts a new thread of `task` running `entry(arg)`; used by thread_create. */
  createThread(task: Task, entry: string, arg: number, stackPointer: number | null): ThreadState {
    const thread = createThread(task.state.nextThreadId++, [entry], arg, stackPointer);
    task.state.threads.push(thread);
    this.#enqueue(task as TaskRecord, thread);
    return thread;
  }

  /** The task's virtual monotonic time. */
  now(task: Task): bigint {
    return task.clock.monotonicNs();
  }

  /** True when the running thread has used up its time slice. */
  #sliceOver(): boolean {
    const now = nowMs();
    if (this.#sliceEndMs === 0) {
      this.#sliceEndMs = now + this.#timeSliceMs;
      return false;
    }
    return now >= this.#sliceEndMs;
  }

  #enqueue(task: TaskRecord, thread: ThreadState): void {
    thread.status = 'runnable';
    this.#runQueue.push([task, thread]);
    this.#schedulePump();
  }

  #schedulePump(): void {
    if (this.#pumpScheduled || this.#currentThread !== null) return;
    this.#pumpScheduled = true;
    setImmediate(this.#pump);
  }

  readonly #pump = (): void => {
    this.#pumpScheduled = false;
    const turnEnd = nowMs() + eventLoopTurnMsMax;
    let runs = 0;
    while (this.#runHead < this.#runQueue.length) {
      const [task, thread] = this.#runQueue[this.#runHead++]!;
      if (this.#runHead > 1024 && this.#runHead * 2 > this.#runQueue.length) {
        this.#runQueue = this.#runQueue.slice(this.#runHead);
        this.#runHead = 0;
      }
      if (task.state.status !== 'running' || thread.status !== 'runnable') continue;
      if (this.#paused.has(task)) {
        this.#parked.push([task, thread]);
        continue;
      }
      // The clock is read every 16th run, and after any run that used up its slice (a long one).
      if (this.#runThread(task, thread) || (++runs & 15) === 0) {
        if (nowMs() >= turnEnd) break;
      }
    }
    if (this.#runHead < this.#runQueue.length) this.#schedulePump();
    else {
      this.#runQueue = [];
      this.#runHead = 0;
    }
  };

  /** Runs one thread until it blocks, yields or ends; true when it yielded (its slice may be over). */
  #runThread(task: TaskRecord, thread: ThreadState): boolean {
    this.#currentTask = task;
    this.#currentThread = thread;
    // The slice starts at its first clock check (see #sliceOver), not here: reading the clock at
    // every switch cost 3% of an IPC round trip.
    this.#sliceEndMs = 0;
    let outcome: 'suspended' | 'returned';
    try {
      outcome = task.instance.runThread(thread);
    } catch (error) {
      this.#currentTask = null;
      this.#currentThread = null;
      this.#drainIpcEvents();
      if (error instanceof TaskExitRequest) {
        this.#endTask(task, { code: error.code, trap: null, message: null });
      } else if (task.instance.unwinding) {
        // Asyncify traps when the frames outgrow the hidden region: the stack is too deep to suspend.
        const kib = task.image.info.hiddenPages * 64;
        this.#endTask(task, {
          code: trapExitCode,
          trap: 'stack-overflow',
          message: `the thread's call stack is too deep to suspend (its frames exceed the ${kib} KiB frame region)`,
        });
      } else {
        this.#endTask(task, trapOf(error));
      }
      return false;
    }
    this.#currentTask = null;
    this.#currentThread = null;
    // Ended while it ran (killed from a callback): its threads stay exited, nothing is re-armed.
    if (task.state.status !== 'running') return false;
    if (outcome === 'returned') {
      thread.status = 'exited';
      thread.wait = null;
      if (thread.id === 0) this.#endTask(task, { code: 0, trap: null, message: null });
      else this.wakeWhere((wait, t) => t === task && wait.kind === 'join' && wait.threadId === thread.id);
      return false;
    }
    const wait = thread.wait!;
    if (wait.kind === 'yield') {
      thread.wake = 'event';
      this.#enqueue(task, thread);
      return true;
    }
    thread.status = 'blocked';
    if (wait.kind === 'receive') this.#addPortWaiter(this.#receiveWaiters, wait.portId, task, thread);
    else if (wait.kind === 'send') this.#addPortWaiter(this.#sendWaiters, wait.portId, task, thread);
    const deadline = 'deadlineNs' in wait ? wait.deadlineNs : null;
    if (deadline !== null) this.#armTimer({ hostNs: task.clock.hostTimeOf(deadline), task, thread, wait });
    return false;
  }

  #armTimer(timer: Timer): void {
    // Timers of waits that ended before their deadline go now: a thread that receives with a
    // timeout in a loop would otherwise leave one per call, and every arm scans them all.
    this.#timers = this.#timers.filter((t) => t.thread.wait === t.wait);
    this.#timers.push(timer);
    this.#rearm();
  }

  #rearm(): void {
    let earliest: bigint | null = null;
    for (const t of this.#timers) if (earliest === null || t.hostNs < earliest) earliest = t.hostNs;
    if (earliest === this.#timerAtNs) return;
    if (this.#timerHandle) clearTimeout(this.#timerHandle);
    this.#timerHandle = null;
    this.#timerAtNs = earliest;
    if (earliest === null) return;
    const delayMs = Math.max(0, Number(earliest - this.#clock.monotonicNs()) / 1e6);
    // setTimeout turns a delay above 2^31-1 ms into 1 ms; a far deadline fires early and re-arms.
    this.#timerHandle = setTimeout(this.#fireTimers, Math.min(Math.ceil(delayMs), timerDelayMsMax));
  }

  readonly #fireTimers = (): void => {
    this.#timerHandle = null;
    this.#timerAtNs = null;
    const now = this.#clock.monotonicNs();
    const due = this.#timers.filter((t) => t.hostNs <= now);
    this.#timers = this.#timers.filter((t) => t.hostNs > now && t.thread.wait === t.wait);
    for (const timer of due) {
      if (timer.thread.wait === timer.wait) this.wake(timer.task, timer.thread, 'timeout');
    }
    this.#rearm();
  };

  #endTask(task: TaskRecord, exit: TaskExit): void {
    if (task.state.status === 'exited') return;
    this.#paused.delete(task);
    this.#parked = this.#parked.filter(([t]) => t !== task);
    task.state.status = 'exited';
    task.state.exit = exit;
    for (const thread of task.state.threads) {
      thread.status = 'exited';
      thread.wait = null;
    }
    this.#timers = this.#timers.filter((t) => t.task !== task);
    this.#rearm();
    this.memoryObjects.forgetTask(task.state.id);
    this.wakeWhere((wait) => wait.kind === 'acquire');
    this.ipc.destroySpace(task.state.id);
    this.#drainIpcEvents();
    this.#tasks.delete(task.state.id);
    this.#releaseKeepAlive();
    task.resolveExit(exit);
  }

  #releaseKeepAlive(): void {
    if (this.#tasks.size > 0 || this.#keepAlive === null) return;
    clearInterval(this.#keepAlive);
    this.#keepAlive = null;
  }

  /** Ends every task (for shutting a node down). */
  shutdown(): void {
    for (const task of [...this.#tasks.values()]) this.kill(task);
    for (const id of [...this.#detached]) this.dropDetached(id);
    if (this.#timerHandle) clearTimeout(this.#timerHandle);
    this.#timerHandle = null;
  }
}

/** The port a thread blocked in receive or send waits on, or null. */
function waitPortId(thread: ThreadState): string | null {
  if (thread.status !== 'blocked') return null;
  const wait = thread.wait;
  if (wait === null) return null;
  return wait.kind === 'receive' || wait.kind === 'send' ? wait.portId : null;
}

/** Thrown by host functions to end a task with a trap of a given kind. */
export class TrapSignal extends Error {
  constructor(
    readonly kind: TrapKind,
    message: string,
  ) {
    super(message);
  }
}

/** Classifies what escaped from the wasm stack. Engine messages are V8's (Node 20). */
function trapOf(error: unknown): TaskExit {
  if (error instanceof TrapSignal) return { code: trapExitCode, trap: error.kind, message: error.message };
  const message = error instanceof Error ? error.message : String(error);
  const kinds: [RegExp, TrapKind][] = [
    [/unreachable/, 'unreachable'],
    [/out of bounds|offset is out of bounds/, 'out-of-bounds'],
    [/Maximum call stack size exceeded/, 'stack-overflow'],
    [/divide by zero|remainder by zero|divide result unrepresentable/, 'integer-divide'],
    [/float unrepresentable|invalid conversion/, 'invalid-conversion'],
    [/null function|function signature mismatch|table index/, 'indirect-call'],
    [/Out of memory|Cannot allocate|array buffer allocation failed/i, 'out-of-memory'],
  ];
  const kind = kinds.find(([pattern]) => pattern.test(message))?.[1] ?? 'other';
  return { code: trapExitCode, trap: kind, message };
}

/** Reads an AssemblyScript string (UTF-16, byte length stored 4 bytes before it). */
function readAssemblyScriptString(memory: Uint8Array, pointer: number): string {
  if (pointer < 4 || pointer > memory.length) return '?';
  const length = new DataView(memory.buffer, memory.byteOffset).getUint32(pointer - 4, true);
  if (pointer + length > memory.length || length % 2 !== 0) return '?';
  return Buffer.from(memory.subarray(pointer, pointer + length)).toString('utf16le');
}
