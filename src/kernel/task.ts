/**
 * A task: one WebAssembly instance with its threads, IPC space and host resources. `TaskState` is
 * everything about it that is not the instance's memory and globals, as plain data; a snapshot is
 * this record plus the memory and the exported globals.
 */
import type { WasiState } from '../wasi/wasi-state.js';
import type { RandomState } from './random.js';
import type { ThreadState } from './thread.js';
import type { VirtualClockState } from './virtual-clock.js';

export type TaskStatus = 'running' | 'exited';

/** How a task ended: an exit code, and for a trap the kind and the engine's message. */
export interface TaskExit {
  readonly code: number;
  /** null for a normal exit; otherwise what killed it. */
  readonly trap: TrapKind | null;
  readonly message: string | null;
}

export type TrapKind =
  | 'unreachable'
  | 'out-of-bounds'
  | 'stack-overflow'
  | 'out-of-memory'
  | 'abort'
  | 'integer-divide'
  | 'invalid-conversion'
  | 'indirect-call'
  | 'killed'
  | 'other';

/** Exit code of a trapped task, as a shell reports a process killed by a signal (128 + SIGABRT). */
export const trapExitCode = 134;
/** Exit code of a task (and of `norma run`) that was frozen: EX_TEMPFAIL, "try again later". */
export const frozenExitCode = 75;
/** Exit code of a task killed on request (128 + SIGKILL). */
export const killedExitCode = 137;

export interface TaskState {
  readonly id: number;
  readonly name: string;
  /** sha256 of the original module bytes. */
  readonly moduleHash: string;
  readonly preemptible: boolean;
  status: TaskStatus;
  exit: TaskExit | null;
  threads: ThreadState[];
  nextThreadId: number;
  clock: VirtualClockState;
  random: RandomState;
  wasi: WasiState;
}
