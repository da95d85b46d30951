/**
 * Writing a capture to the store: split memories into pages, skip all-zero pages, hash the others,
 * skip those the store already has (so a second snapshot of a task writes only what changed), add
 * the transformed module once, and commit the manifest last. Runs on the capture's copy, so the
 * tasks may already be running again.
 */
import { randomBytes } from 'node:crypto';
import type { Kernel, Task } from '../kernel/kernel.js';
import { type Capture, type CaptureBuffers, captureTasks } from './capture.js';
import { type PageRef, type SnapshotManifest, snapshotFormatVersion, snapshotPageBytes } from './format.js';
import { isZeroPage, loadPageHasher, type PageHasher } from './page-hash.js';
import type { Commit, SnapshotStore } from './store.js';

/** CRIU-style statistics of one freeze (`--stats`, `--json`). */
export interface FreezeStats {
  /** Milliseconds the tasks were stopped to copy their state. */
  frozenMs: number;
  pagesScanned: number;
  pagesZero: number;
  pagesAlreadyStored: number;
  pagesWritten: number;
  bytesWritten: number;
  /** Milliseconds spent finding zero pages and hashing. */
  hashMs: number;
  writeMs: number;
  syncMs: number;
  /** From the start of the capture to the durable commit. */
  totalMs: number;
}

export interface SnapshotMeta {
  readonly kind: 'task' | 'group';
  readonly label: string;
  readonly parent: string | null;
}

export function newSnapshotId(): string {
  return randomBytes(8).toString('hex');
}

interface PageCounter {
  scanned: number;
  zero: number;
  alreadyStored: number;
}

/** Page references of `memory`, putting every page the store lacks into the commit. */
function pageRefs(
  memory: Uint8Array,
  hasher: PageHasher,
  store: SnapshotStore,
  commit: Commit,
  count: PageCounter,
): PageRef[] {
  const refs: PageRef[] = [];
  const written = new Set<string>();
  for (let offset = 0; offset < memory.length; offset += snapshotPageBytes) {
    const page = memory.subarray(offset, offset + snapshotPageBytes);
    count.scanned++;
    if (isZeroPage(page)) {
      count.zero++;
      refs.push(null);
      continue;
    }
    const hash = hasher.hash(page);
    refs.push(hash);
    if (store.hasPage(hash) || written.has(hash)) {
      count.alreadyStored++;
      continue;
    }
    written.add(hash);
    commit.putPage(hash, page);
  }
  return refs;
}

export async function writeSnapshot(
  store: SnapshotStore,
  capture: Capture,
  meta: SnapshotMeta,
): Promise<{ manifest: SnapshotManifest; stats: FreezeStats }> {
  const started = performance.now() - capture.frozenMs;
  const hasher = await loadPageHasher();
  const commit = store.beginCommit();
  try {
    const hashStarted = performance.now();
    const count: PageCounter = { scanned: 0, zero: 0, alreadyStored: 0 };
    const tasks = capture.tasks.map((task) => {
      if (!store.hasBlob(task.image.imageHash)) commit.putBlob(task.image.imageHash, task.image.bytes);
      return {
        state: task.state,
        module: {
          originalHash: task.image.moduleHash,
          imageHash: task.image.imageHash,
          info: task.image.info,
        },
        memory: {
          visibleBytes: task.memory.length,
          pages: pageRefs(task.memory, hasher, store, commit, count),
        },
        globals: [...task.globals],
      };
    });
    const objects = capture.memoryObjects.objects.map((object) => ({
      id: object.id,
      size: object.size,
      portId: object.portId,
      pages: pageRefs(object.data, hasher, store, commit, count),
    }));
    const hashMs = performance.now() - hashStarted;
    const manifest: SnapshotManifest = {
      format: 'norma.snapshot',
      version: snapshotFormatVersion,
      id: newSnapshotId(),
      createdAtMs: Date.now(),
      kind: meta.kind,
      label: meta.label,
      parent: meta.parent,
      node: { id: capture.nodeId },
      tasks: tasks as unknown as SnapshotManifest['tasks'],
      ipc: capture.ipc as unknown as SnapshotManifest['ipc'],
      names: [...capture.names],
      memoryObjects: { objects, mappings: capture.memoryObjects.mappings.map((m) => ({ ...m })) },
    };
    const committed = await commit.finish(manifest);
    return {
      manifest,
      stats: {
        frozenMs: capture.frozenMs,
        pagesScanned: count.scanned,
        pagesZero: count.zero,
        pagesAlreadyStored: count.alreadyStored,
        pagesWritten: committed.pagesWritten,
        bytesWritten: committed.bytesWritten,
        hashMs,
        writeMs: committed.writeMs,
        syncMs: committed.syncMs,
        totalMs: performance.now() - started,
      },
    };
  } catch (error) {
    await commit.abort();
    throw error;
  }
}

/**
 * Freezes `tasks` as one consistent snapshot and stops them. The state is captured at once, at the
 * moment of the request; the tasks stay paused until the commit is durable, so nothing they would do
 * in between is lost or done twice on resume. If opening the store or the commit fails (a full
 * disk: STORE_FULL), they run on as if nothing happened and the error is thrown.
 */
export async function freezeTasks(
  kernel: Kernel,
  store: SnapshotStore | Promise<SnapshotStore>,
  tasks: readonly Task[],
  meta: SnapshotMeta,
): Promise<{ manifest: SnapshotManifest; stats: FreezeStats }> {
  const capture = captureTasks(kernel, tasks);
  kernel.pause(tasks);
  let result: { manifest: SnapshotManifest; stats: FreezeStats };
  try {
    result = await writeSnapshot(await store, capture, meta);
  } catch (error) {
    kernel.unpause(tasks);
    throw error;
  }
  for (const task of tasks) kernel.detach(task);
  return result;
}

/**
 * Checkpoints `tasks` without stopping them: they are stopped only while their state is copied
 * (into reused buffers), and run on while the copy is hashed and written.
 */
export async function checkpointTasks(
  kernel: Kernel,
  store: SnapshotStore,
  tasks: readonly Task[],
  meta: SnapshotMeta,
  buffers: CaptureBuffers,
): Promise<{ manifest: SnapshotManifest; stats: FreezeStats }> {
  const capture = captureTasks(kernel, tasks, buffers);
  try {
    return await writeSnapshot(store, capture, meta);
  } finally {
    for (const task of capture.tasks) buffers.release(task.state.id, task.memory);
  }
}
