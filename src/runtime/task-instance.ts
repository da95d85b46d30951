/**
 * One instantiated task image and the asyncify mechanics that make its threads fibers.
 *
 * A suspending import is wrapped: its handler either returns a value (the common, fast case: no
 * unwinding at all) or returns `block`, and the wrapper starts an asyncify unwind. When the export
 * returns, `runThread` stops the unwind and copies the frames out of the hidden pages into the
 * thread's plain-data record. To resume, the frames are copied back and the export called again in
 * rewinding mode; the first suspending import reached is the one that blocked, which stops the
 * rewind and re-executes its handler (so a woken receive simply tries again).
 *
 * Only one thread unwinds or rewinds at a time, so one hidden region serves every thread; between
 * uses it is kept all-zero, because a later memory.grow makes those bytes guest-visible.
 */
import { NormaError } from '../errors.js';
import type { ThreadState } from '../kernel/thread.js';
import { wasmPageBytes } from '../limits.js';
import { GuestMemory } from './guest-memory.js';
import type { TaskImage } from './module-cache.js';
import type { TransformInfo } from './transform.js';

/** Returned by a suspending-import handler to suspend the calling thread. */
export const block: unique symbol = Symbol('block');
/** A function handed to WebAssembly as an import. */
export type HostFunction = (...args: never[]) => unknown;

export type SuspendingHandler = (
  args: readonly (number | bigint)[],
  resuming: boolean,
) => number | bigint | typeof block;

interface AsyncifyExports {
  asyncify_start_unwind(address: number): void;
  asyncify_stop_unwind(): void;
  asyncify_start_rewind(address: number): void;
  asyncify_stop_rewind(): void;
  asyncify_get_state(): number;
}

export interface SavedGlobal {
  readonly exportName: string;
  readonly type: 'i32' | 'i64' | 'f32' | 'f64';
  readonly value: number | bigint;
}

/**
 * An instance made before the task that will run in it (Kernel.prepareInstance), adopted later with
 * Kernel.adoptRestored: a move stages its task on the target node while it still runs on the source.
 */
export interface PreparedInstance {
  readonly image: TaskImage;
  readonly instance: TaskInstance;
  /** True once a task was adopted with it: it serves one task only. */
  readonly adopted: boolean;
}

/** Offset of the frames in the hidden region, after asyncify's {current, end} pair. */
const framesOffset = 8;

export type RunOutcome = 'suspended' | 'returned';

export class TaskInstance {
  readonly memory: GuestMemory;
  readonly exports: WebAssembly.Exports;
  readonly #asyncify: AsyncifyExports;
  readonly #hiddenOffset: WebAssembly.Global;
  readonly #stackPointer: WebAssembly.Global | null;
  readonly #hiddenBytes: number;
  #rewinding = false;
  #unwinding = false;
  /** Bytes of the hidden region the current rewind was given (a rewind moves `current` back down). */
  #rewindBytes = 0;

  private constructor(
    instance: WebAssembly.Instance,
    readonly info: TransformInfo,
  ) {
    this.exports = instance.exports;
    this.#asyncify = instance.exports as unknown as AsyncifyExports;
    this.#hiddenOffset = instance.exports[info.hiddenOffsetExport] as WebAssembly.Global;
    this.#stackPointer = info.stackPointerExport
      ? (instance.exports[info.stackPointerExport] as WebAssembly.Global)
      : null;
    this.#hiddenBytes = info.hiddenPages * wasmPageBytes;
    const memory = instance.exports[info.memoryExport] as WebAssembly.Memory;
    // The offset is an i32 global: above 2 GiB its value reads negative, so it is read as u32.
    this.memory = new GuestMemory(memory, () => (this.#hiddenOffset.value as number) >>> 0);
  }

  /**
   * Instantiates the image. `makeImports` receives the wrapper that turns a handler into a
   * suspending import, and returns the whole import object.
   */
  static async instantiate(
    module: WebAssembly.Module,
    info: TransformInfo,
    makeImports: (
      suspending: (handler: SuspendingHandler, resultType: 'i32' | 'i64' | null) => HostFunction,
    ) => WebAssembly.Imports,
  ): Promise<TaskInstance> {
    let self: TaskInstance | undefined;
    const suspending =
      (handler: SuspendingHandler, resultType: 'i32' | 'i64' | null) =>
      (...args: (number | bigint)[]): number | bigint | undefined =>
        self!.#callSuspending(handler, resultType, args);
    const instance = await WebAssembly.instantiate(module, makeImports(suspending));
    self = new TaskInstance(instance, info);
    return self;
  }

  /** Values of every mutable global, for a snapshot. Throws TASK_NOT_FREEZABLE for v128/ref globals. */
  readGlobals(): SavedGlobal[] {
    return this.info.mutableGlobals.map(({ exportName, type }) => {
      if (type !== 'i32' && type !== 'i64' && type !== 'f32' && type !== 'f64') {
        throw new NormaError(
          'TASK_NOT_FREEZABLE',
          `the mutable global ${exportName} has type ${type}, which cannot be read from JavaScript`,
        );
      }
      return {
        exportName,
        type,
        value: (this.exports[exportName] as WebAssembly.Global).value as number | bigint,
      };
    });
  }

  /** Sets the globals of a snapshot (every one must exist with the same type). */
  writeGlobals(globals: readonly SavedGlobal[]): void {
    for (const { exportName, value } of globals) {
      const global = this.exports[exportName];
      if (!(global instanceof WebAssembly.Global))
        throw new Error(`writeGlobals: no exported global ${exportName}`);
      global.value = value;
    }
    // The hidden-offset global is among them: the visible size may have changed.
    this.memory.invalidate();
  }

  /**
   * Makes the memory exactly `visibleBytes` of guest memory plus the hidden pages, as in the task
   * that was frozen. A fresh instance has its initial size; memory can only grow, so the snapshot's
   * memory is never smaller than a fresh instance's (the guest cannot shrink it).
   */
  resizeForRestore(visibleBytes: number): void {
    const memory = this.exports[this.info.memoryExport] as WebAssembly.Memory;
    const wantedPages = visibleBytes / wasmPageBytes + this.info.hiddenPages;
    const havePages = memory.buffer.byteLength / wasmPageBytes;
    if (wantedPages < havePages)
      throw new Error(
        `resizeForRestore: snapshot memory (${wantedPages} pages) below initial (${havePages})`,
      );
    if (wantedPages > havePages) memory.grow(wantedPages - havePages);
  }

  /** True while a thread is unwinding (a trap now means its frames overflowed the hidden region). */
  get unwinding(): boolean {
    return this.#unwinding;
  }

  /** The current shadow-stack pointer, or null when the module has none. */
  get stackPointer(): number | null {
    return this.#stackPointer === null ? null : (this.#stackPointer.value as number);
  }

  set stackPointer(value: number | null) {
    if (this.#stackPointer !== null && value !== null) this.#stackPointer.value = value;
  }

  #callSuspending(
    handler: SuspendingHandler,
    resultType: 'i32' | 'i64' | null,
    args: (number | bigint)[],
  ): number | bigint | undefined {
    const resuming = this.#rewinding;
    if (resuming) {
      this.#asyncify.asyncify_stop_rewind();
      this.#rewinding = false;
      this.#clearHidden();
    }
    const result = handler(args, resuming);
    if (result !== block) return resultType === null ? undefined : result;
    const view = this.memory.view();
    const base = (this.#hiddenOffset.value as number) >>> 0;
    view.setUint32(base, framesOffset, true);
    view.setUint32(base + 4, this.#hiddenBytes, true);
    this.#unwinding = true;
    this.#asyncify.asyncify_start_unwind(0);
    // The value is ignored: the caller is unwinding, not continuing.
    return resultType === 'i64' ? 0n : resultType === 'i32' ? 0 : undefined;
  }

  /** Zeroes the part of the hidden region used by the last rewind. */
  #clearHidden(): void {
    const base = (this.#hiddenOffset.value as number) >>> 0;
    // After a rewind asyncify's `current` is back at the start: the frames copied in lie above it.
    const used = Math.max(this.memory.view().getUint32(base, true), this.#rewindBytes, framesOffset);
    this.#rewindBytes = 0;
    this.memory.whole().fill(0, base, base + Math.min(used, this.#hiddenBytes));
  }

  /**
   * Runs `thread` until it suspends or has returned from all its calls. Traps and the exceptions
   * of handlers (task exit) propagate to the caller.
   */
  runThread(thread: ThreadState): RunOutcome {
    this.stackPointer = thread.stackPointer;
    while (thread.callIndex < thread.calls.length) {
      const name = thread.calls[thread.callIndex]!;
      const entry = this.exports[name] as (...args: number[]) => unknown;
      if (thread.frames !== null) this.#startRewind(thread.frames);
      this.#unwinding = false;
      if (thread.arg === null || thread.callIndex < thread.calls.length - 1) entry();
      else entry(thread.arg);
      if (this.#unwinding) {
        this.#unwinding = false;
        this.#asyncify.asyncify_stop_unwind();
        thread.frames = this.#takeFrames(thread.frames);
        thread.stackPointer = this.stackPointer;
        return 'suspended';
      }
      thread.frames = null;
      thread.callIndex++;
    }
    thread.stackPointer = this.stackPointer;
    return 'returned';
  }

  #startRewind(frames: Uint8Array): void {
    const base = (this.#hiddenOffset.value as number) >>> 0;
    const whole = this.memory.whole();
    whole.set(frames, base + framesOffset);
    const view = this.memory.view();
    view.setUint32(base, framesOffset + frames.length, true);
    view.setUint32(base + 4, this.#hiddenBytes, true);
    this.#rewindBytes = framesOffset + frames.length;
    this.#rewinding = true;
    this.#asyncify.asyncify_start_rewind(0);
  }

  /** Copies the frames out (into the thread's previous buffer when it has the same size: no garbage). */
  #takeFrames(previous: Uint8Array | null): Uint8Array {
    const base = (this.#hiddenOffset.value as number) >>> 0;
    const end = this.memory.view().getUint32(base, true);
    const whole = this.memory.whole();
    const source = whole.subarray(base + framesOffset, base + end);
    let frames: Uint8Array;
    if (previous !== null && previous.length === source.length) {
      previous.set(source);
      frames = previous;
    } else {
      frames = source.slice();
    }
    whole.fill(0, base, base + end);
    return frames;
  }
}
