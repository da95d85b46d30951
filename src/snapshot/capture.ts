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
import { type PageRef, snapshotPageBytes } from './format.js';

export interface CapturedTask {
  /** A deep copy of the task's plain state, its clock reading taken at the capture. */
  readonly state: TaskState;
  readonly image: TaskImage;
  /** A copy of the guest-visible memory. */
  readonly memory: Uint8Array;
  readonly globals: readonly SavedGlobal[];
  /**
   * Per page of `memory`, its reference when the capture found it unchanged since the last written
   * checkpoint in the same buffer (copied and hashed then: the ref names exactly these bytes), and
   * undefined for a page that must be checked and hashed. Null: no page is known.
   */
  readonly knownPages: readonly (PageRef | undefined)[] | null;
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

/** A capture buffer and what its pages held when they were last written to the store. */
export interface LentBuffer {
  /** The buffer to capture into, exactly as long as the memory. */
  readonly buffer: Uint8Array;
  /**
   * The previous capture of this task (often `buffer` itself) with the page references written for
   * it, or null when there is none whose references are known.
   */
  readonly previous: { readonly bytes: Uint8Array; readonly pages: readonly PageRef[] } | null;
}

/**
 * Reusable copy buffers, one per task, so that periodic checkpoints copy into memory that is already
 * touched (10–14 GB/s) instead of fresh pages (about 2 GB/s). A buffer is lent to one capture at a
 * time: the caller returns it (`release`) once the snapshot is written, with the page references
 * the snapshot recorded for it. The next capture then compares each live page with the buffer's
 * (memcmp, about 10 GB/s) and copies and hashes only the pages that differ: a freeze right after a
 * checkpoint (a move's pre-copy) costs a comparison of the memory instead of a copy and a hash.
 */
export class CaptureBuffers {
  readonly #free = new Map<number, { buffer: Uint8Array; pages: readonly PageRef[] | null }>();

  take(task: number, bytes: number): LentBuffer {
    const free = this.#free.get(task);
    this.#free.delete(task);
    const previous =
      free?.pages != null && free.pages.length * snapshotPageBytes === free.buffer.length
        ? { bytes: free.buffer, pages: free.pages }
        : null;
    if (free !== undefined && free.buffer.length === bytes) return { buffer: free.buffer, previous };
    // Memory grew (it never shrinks): a new buffer; the old one still tells which pages are unchanged.
    return { buffer: sharedBytes(bytes), previous };
  }

  /**
   * Gives a buffer back. `pages`: the references the store now has for exactly its contents (the
   * snapshot written from it was committed); null when the write failed or was not made, so that
   * the next capture trusts nothing of it.
   */
  release(task: number, buffer: Uint8Array, pages: readonly PageRef[] | null = null): void {
    this.#free.set(task, { buffer, pages });
  }
}

/** True when page `index` of `a` and of `b` hold the same bytes. */
function samePage(a: Uint8Array, b: Uint8Array, index: number): boolean {
  const at = index * snapshotPageBytes;
  return Buffer.from(a.buffer, a.byteOffset + at, snapshotPageBytes).equals(
    Buffer.from(b.buffer, b.byteOffset + at, snapshotPageBytes),
  );
}

/**
 * Copies `visible` into `target`, except the pages that the previous capture already holds with the
 * same bytes: their references are known, and they are copied only when `target` is a new buffer.
 */
function captureChanged(
  visible: Uint8Array,
  target: Uint8Array,
  previous: NonNullable<LentBuffer['previous']>,
): (PageRef | undefined)[] {
  const pages = visible.length / snapshotPageBytes;
  const known: (PageRef | undefined)[] = new Array(pages);
  for (let index = 0; index < pages; index++) {
    const at = index * snapshotPageBytes;
    if (index < previous.pages.length && samePage(visible, previous.bytes, index)) {
      known[index] = previous.pages[index];
      if (target === previous.bytes) continue;
    }
    target.set(visible.subarray(at, at + snapshotPageBytes), at);
  }
  return known;
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
    const lent = buffers?.take(task.state.id, visible.length) ?? null;
    const memory = lent?.buffer ?? sharedBytes(visible.length);
    let knownPages: (PageRef | undefined)[] | null = null;
    if (lent?.previous != null && visible.length % snapshotPageBytes === 0)
      knownPages = captureChanged(visible, memory, lent.previous);
    else memory.set(visible);
    const state = structuredClone(task.state);
    state.clock = task.clock.capture();
    return { state, image: task.image, memory, globals, knownPages };
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
