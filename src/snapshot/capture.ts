/**
 * Capture: copying the complete state of a set of tasks out of a running kernel, as plain data.
 * This is the only part of a freeze during which the tasks are stopped (the "frozen time"); hashing,
 * compression and writing happen afterwards, on the copy, while the tasks run again (or not: a
 * freeze that stops them simply never restarts them).
 *
 * It must run between thread runs, which is every moment the event loop runs anything else: the
 * kernel runs threads synchronously, so no thread is ever half-way through anything when this code
 * runs. Every thread is either suspended at a syscall with its frames saved, blocked with its wait
 * recorded, runnable but not yet started, or exited.
 */
import { exportTasks, type IpcSnapshot } from '../ipc/index.js';
import type { Kernel, Task } from '../kernel/kernel.js';
import type { TaskState } from '../kernel/task.js';
import type { TaskImage } from '../runtime/module-cache.js';
import type { SavedGlobal } from '../runtime/task-instance.js';
import type { MappingState } from '../vm/memory-object.js';

export interface CapturedTask {
  /** A deep copy of the task's plain state, its clock reading taken at the capture. */
  readonly state: TaskState;
  readonly image: TaskImage;
  /** A copy of the guest-visible memory. */
  readonly memory: Uint8Array;
  readonly globals: readonly SavedGlobal[];
}

export interface CapturedMemoryObject {
  readonly id: number;
  readonly size: number;
  readonly portId: string;
  readonly data: Uint8Array;
}

export interface Capture {
  readonly nodeId: string;
  readonly tasks: readonly CapturedTask[];
  readonly ipc: IpcSnapshot;
  readonly names: readonly { service: string; portId: string }[];
  readonly memoryObjects: { objects: readonly CapturedMemoryObject[]; mappings: readonly MappingState[] };
  /** Milliseconds the tasks were stopped for the copy. */
  readonly frozenMs: number;
}

/**
 * Reusable copy buffers, one per task, so that periodic checkpoints copy into memory that is already
 * touched (10–14 GB/s) instead of fresh pages (about 2 GB/s). A buffer is lent to one capture at a
 * time: the caller returns it (`release`) once the snapshot is written.
 */
export class CaptureBuffers {
  readonly #free = new Map<number, Uint8Array>();

  take(task: number, bytes: number): Uint8Array {
    const buffer = this.#free.get(task);
    this.#free.delete(task);
    if (buffer !== undefined && buffer.length === bytes) return buffer;
    return sharedBytes(bytes);
  }

  release(task: number, buffer: Uint8Array): void {
    this.#free.set(task, buffer);
  }
}

/**
 * Capture copies live in shared memory, so that the freezer can hash half of their pages on a
 * worker thread while it hashes the other half (the machine's two cores both work on a freeze).
 */
export function sharedBytes(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(length));
}

export function captureTasks(kernel: Kernel, tasks: readonly Task[], buffers?: CaptureBuffers): Capture {
  const started = performance.now();
  const ids = tasks.map((task) => task.state.id);
  const captured = tasks.map((task): CapturedTask => {
    if (task.state.status !== 'running')
      throw new Error(`captureTasks: task ${task.state.id} is ${task.state.status}`);
    const globals = task.instance.readGlobals();
    const visible = task.instance.memory.visible();
    const memory = buffers ? buffers.take(task.state.id, visible.length) : sharedBytes(visible.length);
    memory.set(visible);
    const state = structuredClone(task.state);
    state.clock = task.clock.capture();
    return { state, image: task.image, memory, globals };
  });
  const mappings = ids.flatMap((id) => kernel.memoryObjects.mappingsOf(id)).map((m) => ({ ...m }));
  const objectIds = new Set(mappings.map((m) => m.objectId));
  const ipc = exportTasks(kernel.ipc, ids);
  const exportedPorts = new Set(ipc.ports.map((port) => port.id));
  // Memory objects the tasks hold rights to travel with them: a right to an object is a send right
  // to its kernel port, which the IPC export lists among the outside ports.
  for (const outside of ipc.outside) {
    if (outside.kobject?.type === 'memory_object') objectIds.add(outside.kobject.id);
  }
  const objects = [...objectIds].map((id): CapturedMemoryObject => {
    const object = kernel.memoryObjects.object(id)!;
    const data = new Uint8Array(object.size);
    kernel.pager.read(id, 0, data);
    return { id, size: object.size, portId: object.portId, data };
  });
  const names = kernel.names.list().filter((entry) => exportedPorts.has(entry.portId));
  return {
    nodeId: kernel.nodeId,
    tasks: captured,
    ipc,
    names,
    memoryObjects: { objects, mappings },
    frozenMs: performance.now() - started,
  };
}
