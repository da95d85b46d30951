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
import { KernReturn, type SyscallName, syscallModule, syscalls } from '../abi/syscalls.js';
import { NormaError } from '../errors.js';
import { Ipc, type IpcEvent } from '../ipc/index.js';
import { eventLoopTurnMsMax, timeSliceMsDefault } from '../limits.js';
import { checkImport, wasiModules } from '../runtime/import-policy.js';
import { loadTaskImage, type TaskImage, type TransformProgress } from '../runtime/module-cache.js';
import { block, type HostFunction, type SuspendingHandler, TaskInstance } from '../runtime/task-instance.js';
import { MemoryObjects } from '../vm/memory-object.js';
import { DefaultPager } from '../vm/pager.js';
import { Wasi, type WasiHost } from '../wasi/wasi.js';
import { createWasiState } from '../wasi/wasi-state.js';
import { NameService } from './name-service.js';
import { makeSyscallHandlers, type SyscallHandler, TaskExitRequest } from './norma-syscalls.js';
import { createRandomState, fillRandom, nextFloat } from './random.js';
import { killedExitCode, type TaskExit, type TaskState, type TrapKind, trapExitCode } from './task.js';
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
  #timerHandle: NodeJS.Timeout | null = null;
  #timerAtNs: bigint | null = null;

  constructor(options: KernelOptions = {}) {
    this.nodeId = options.nodeId ?? 'local';
    this.#clock = options.clock ?? systemClock;
    this.#cacheDirectory = options.cacheDirectory;
    this.#timeSliceMs = options.timeSliceMs ?? timeSliceMsDefault;
    this.#onTransform = options.onTransform;
    this.ipc = new Ipc(this.nodeId);
    this.names = new NameService(this.ipc);
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
    const record = await this.#adopt(state, image, options);
    this.#enqueue(record, state.threads[0]!);
    return record;
  }

  /** Builds the process-local parts of a task around its plain state and registers it. */
  async #adopt(state: TaskState, image: TaskImage, options: SpawnOptions): Promise<TaskRecord> {
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
    let record!: TaskRecord;
    const handlers = makeSyscallHandlers(this, () => record);
    const instance = await TaskInstance.instantiate(image.module, image.info, (suspending) =>
      this.#imports(image, () => record, wasi, handlers, suspending),
    );
    record = { state, image, instance, clock, wasi, exited, options, resolveExit, stdinWanted: false };
    this.ipc.createSpace(state.id);
    this.#tasks.set(state.id, record);
    return record;
  }

  #imports(
    image: TaskImage,
    task: () => TaskRecord,
    wasi: Wasi,
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
        add(module, name, suspending(this.#wasiCall(wasi, module, name), resultType));
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
      const result = handler(task, thread, args as number[], previous, wake);
      this.#drainIpcEvents();
      return result;
    });
  }

  #wasiCall(wasi: Wasi, module: string, name: string): SuspendingHandler {
    // A wait for stdin or a sleep is re-executed in full: the data is there now, or the clock is due.
    return this.#suspendable((record, thread, args) => {
      const outcome = wasi.call(module as (typeof wasiModules)[number], name, args);
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
          break;
        case 'kernel-no-senders':
          // Memory objects live until the node ends for now (see docs/ARCHITECTURE.md).
          break;
      }
    }
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
    this.#timerHandle = setTimeout(this.#fireTimers, Math.ceil(delayMs));
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
    task.state.status = 'exited';
    task.state.exit = exit;
    for (const thread of task.state.threads) {
      thread.status = 'exited';
      thread.wait = null;
    }
    this.#timers = this.#timers.filter((t) => t.task !== task);
    this.#rearm();
    for (const mapping of this.memoryObjects.mappingsOf(task.state.id)) this.memoryObjects.unmap(mapping);
    this.wakeWhere((wait) => wait.kind === 'acquire');
    this.ipc.destroySpace(task.state.id);
    this.#drainIpcEvents();
    this.#tasks.delete(task.state.id);
    task.resolveExit(exit);
  }

  /** Ends every task (for shutting a node down). */
  shutdown(): void {
    for (const task of [...this.#tasks.values()]) this.kill(task);
    if (this.#timerHandle) clearTimeout(this.#timerHandle);
    this.#timerHandle = null;
  }

  /** kern_return for a thread blocked past its deadline, by wait kind. */
  static timeoutCode(wait: Wait | null): number {
    switch (wait?.kind) {
      case 'receive':
        return KernReturn.RCV_TIMED_OUT;
      case 'send':
        return KernReturn.SEND_TIMED_OUT;
      default:
        return KernReturn.OPERATION_TIMED_OUT;
    }
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
