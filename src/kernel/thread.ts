/**
 * A thread: one fiber of a task. Everything the kernel knows about it is in this plain record, so
 * a snapshot captures a thread by copying it: its asyncify frames (the wasm call stack, saved
 * host-side while it is suspended), its shadow-stack pointer, and what it waits for.
 */

export type ThreadStatus = 'runnable' | 'blocked' | 'exited';

/**
 * What a blocked thread waits for. The syscall that blocked is re-executed when the thread is
 * woken (the wasm code calls the import again while rewinding), so a wait only needs what lets the
 * kernel decide when to wake it; `deadlineNs` is in the task's virtual monotonic time.
 */
export type Wait =
  /** Runnable, waiting for its turn. `result` is set when the syscall completed before the yield. */
  | { readonly kind: 'yield'; readonly result: number | bigint | null }
  | {
      readonly kind: 'receive';
      readonly name: number;
      readonly portId: string;
      readonly deadlineNs: bigint | null;
    }
  | { readonly kind: 'send'; readonly portId: string; readonly deadlineNs: bigint | null }
  | { readonly kind: 'sleep'; readonly deadlineNs: bigint }
  | { readonly kind: 'join'; readonly threadId: number; readonly deadlineNs: bigint | null }
  | { readonly kind: 'lookup'; readonly service: string; readonly deadlineNs: bigint | null }
  | { readonly kind: 'acquire'; readonly objectId: number; readonly deadlineNs: bigint | null }
  | { readonly kind: 'stdin' };

/** Why a blocked thread was made runnable again; read once by the re-executed syscall. */
export type WakeReason = 'event' | 'timeout';

export interface ThreadState {
  readonly id: number;
  /** Exports called in order on this thread (the main thread runs the deferred initializers first). */
  readonly calls: readonly string[];
  /** Index into `calls` of the export running now. */
  callIndex: number;
  /** Argument of a thread entry (entries have signature (i32) -> ()); null for `_start`. */
  readonly arg: number | null;
  status: ThreadStatus;
  /** Saved asyncify frames while suspended inside an export; null before it first runs. */
  frames: Uint8Array | null;
  /** The thread's shadow-stack pointer while it is not running; null when the module has none. */
  stackPointer: number | null;
  wait: Wait | null;
  wake: WakeReason | null;
}

export function createThread(
  id: number,
  calls: readonly string[],
  arg: number | null,
  stackPointer: number | null,
): ThreadState {
  return {
    id,
    calls,
    callIndex: 0,
    arg,
    status: 'runnable',
    frames: null,
    stackPointer,
    wait: null,
    wake: null,
  };
}
