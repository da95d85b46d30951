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
import { HashWorker } from './hash-worker.js';
import { isZeroPage, loadPageHasher, type PageHasher } from './page-hash.js';
import type { Commit, SnapshotStore } from './store.js';

/** CRIU-style statistics of one freeze (`--stats`, `--json`). */
export interface FreezeStats {
  /** Milliseconds the tasks were stopped to copy their state. */
  frozenMs: number;
  pagesScanned: number;
  /**
   * Pages the capture found unchanged since the checkpoint last written from the same buffer: not
   * copied, not hashed (their references were known). The rest of the scanned pages were hashed,
   * unless zero.
   */
  pagesUnchanged: number;
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
  unchanged: number;
  zero: number;
  alreadyStored: number;
}

/** The worker that hashes half of a large freeze's pages (started on first use, then kept; unref'ed while idle). */
let worker: HashWorker | null = null;

/** Starts the hash worker ahead of a freeze (it takes about 40 ms to start; until then one thread hashes). */
export function prepareFreezer(): void {
  worker ??= new HashWorker();
}

/** True once the hash worker can take half of a freeze's pages. */
export function freezerReady(): boolean {
  return worker?.ready ?? false;
}

/** Pages of a large memory are hashed on two threads from this many non-zero pages on. */
const parallelHashPagesMin = 32;

/**
 * Page references of `memory`, putting every page the store lacks into the commit. A page whose
 * reference the capture knows (`known`, see CapturedTask.knownPages) is neither checked nor hashed.
 */
async function pageRefs(
  memory: Uint8Array,
  hasher: PageHasher,
  store: SnapshotStore,
  commit: Commit,
  count: PageCounter,
  known: readonly (PageRef | undefined)[] | null = null,
): Promise<PageRef[]> {
  const pages = memory.length / snapshotPageBytes;
  const refs: PageRef[] = new Array(pages).fill(null);
  const nonZero: number[] = [];
  const reused: number[] = [];
  for (let index = 0; index < pages; index++) {
    count.scanned++;
    const ref = known?.[index];
    if (ref !== undefined) {
      count.unchanged++;
      if (ref === null) count.zero++;
      else reused.push(index);
    } else if (isZeroPage(memory.subarray(index * snapshotPageBytes, (index + 1) * snapshotPageBytes)))
      count.zero++;
    else nonZero.push(index);
  }
  // The worker takes the second half when it can (shared memory, enough pages, started).
  let split = nonZero.length;
  let remote: Promise<string[]> | null = null;
  if (worker?.ready && memory.buffer instanceof SharedArrayBuffer && nonZero.length >= parallelHashPagesMin) {
    split = nonZero.length >> 1;
    const spans = new Uint32Array((nonZero.length - split) * 2);
    nonZero.slice(split).forEach((index, i) => {
      spans[i * 2] = memory.byteOffset + index * snapshotPageBytes;
      spans[i * 2 + 1] = snapshotPageBytes;
    });
    remote = worker.hash(memory.buffer, spans).catch(() => null as unknown as string[]);
  }
  const put = (index: number, hash: string): void => {
    refs[index] = hash;
    if (store.hasPage(hash) || commit.hasPut(hash)) {
      count.alreadyStored++;
      return;
    }
    // The capture copy stays untouched until the commit settles: no copy of the page is made.
    commit.putPageRef(hash, memory.subarray(index * snapshotPageBytes, (index + 1) * snapshotPageBytes));
  };
  // Still the store's check: the page a known reference names may have been removed since (gc).
  for (const index of reused) put(index, known![index]!);
  for (const index of nonZero.slice(0, split)) {
    put(index, hasher.hash(memory.subarray(index * snapshotPageBytes, (index + 1) * snapshotPageBytes)));
  }
  if (remote !== null) {
    const hashes = await remote;
    nonZero.slice(split).forEach((index, i) => {
      const hash =
        hashes?.[i] ??
        hasher.hash(memory.subarray(index * snapshotPageBytes, (index + 1) * snapshotPageBytes));
      put(index, hash);
    });
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
    const count: PageCounter = { scanned: 0, unchanged: 0, zero: 0, alreadyStored: 0 };
    const tasks = [];
    for (const task of capture.tasks) {
      if (!store.hasBlob(task.image.imageHash)) commit.putBlob(task.image.imageHash, task.image.bytes);
      tasks.push({
        state: task.state,
        module: {
          originalHash: task.image.moduleHash,
          imageHash: task.image.imageHash,
          info: task.image.info,
        },
        memory: {
          visibleBytes: task.memory.length,
          pages: await pageRefs(task.memory, hasher, store, commit, count, task.knownPages),
        },
        globals: [...task.globals],
      });
    }
    const objects = [];
    for (const object of capture.memoryObjects.objects) {
      objects.push({
        id: object.id,
        size: object.size,
        portId: object.portId,
        pages: await pageRefs(object.data, hasher, store, commit, count),
      });
    }
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
        pagesUnchanged: count.unchanged,
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
 * disk: STORE_FULL), they run on as if nothing happened and the error is thrown. With `buffers`
 * (the tasks' checkpoint buffers), only the pages changed since their last checkpoint are copied
 * and hashed.
 */
export async function freezeTasks(
  kernel: Kernel,
  store: SnapshotStore | Promise<SnapshotStore>,
  tasks: readonly Task[],
  meta: SnapshotMeta,
  buffers?: CaptureBuffers,
): Promise<{ manifest: SnapshotManifest; stats: FreezeStats }> {
  const capture = captureTasks(kernel, tasks, buffers);
  kernel.pause(tasks);
  let result: { manifest: SnapshotManifest; stats: FreezeStats } | null = null;
  try {
    result = await writeSnapshot(await store, capture, meta);
  } catch (error) {
    kernel.unpause(tasks);
    throw error;
  } finally {
    if (buffers !== undefined) releaseBuffers(buffers, capture, result?.manifest ?? null);
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
  let result: { manifest: SnapshotManifest; stats: FreezeStats } | null = null;
  try {
    result = await writeSnapshot(store, capture, meta);
    return result;
  } finally {
    releaseBuffers(buffers, capture, result?.manifest ?? null);
  }
}

/**
 * Gives the capture's buffers back with the page references the committed snapshot recorded for
 * them (exactly their contents); after a failed write, with none: a ref is reused only if it names
 * the bytes in the buffer and the store has (or is given) them.
 */
function releaseBuffers(buffers: CaptureBuffers, capture: Capture, written: SnapshotManifest | null): void {
  for (const [index, task] of capture.tasks.entries())
    buffers.release(task.state.id, task.memory, written?.tasks[index]?.memory.pages ?? null);
}
