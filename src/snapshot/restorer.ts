/**
 * Resuming a snapshot in a kernel: the transformed module from the store (the frames fit only those
 * bytes), a fresh instance whose memory and globals are put back before any thread runs, the task
 * state (threads with their frames and waits, WASI state, clock, random), the IPC spaces and ports,
 * the memory objects, the names. Tasks of a group are all rebuilt before any of them runs.
 *
 * Two cases. Thawing a task frozen on this same node: its IPC space and mappings were kept (its
 * ports went on queueing messages), so they are reused as they are now. Resuming anywhere else
 * (another process, tomorrow): everything comes from the snapshot, under new task ids; rights to
 * ports that no longer exist become dead names, as Mach would have it.
 */

import { NormaError } from '../errors.js';
import type { KObject } from '../ipc/index.js';
import { importTasks, validateIpcSnapshot } from '../ipc/index.js';
import type { Kernel, SpawnOptions, Task } from '../kernel/kernel.js';
import type { TaskState } from '../kernel/task.js';
import { imageFromSnapshot } from '../runtime/module-cache.js';
import { transformVersion } from '../runtime/transform.js';
import { type SnapshotManifest, snapshotPageBytes, type TaskRecord } from './format.js';
import { isZeroPage } from './page-hash.js';
import type { SnapshotStore } from './store.js';

/** Per-task process wiring (stdout, stderr, stdin) for the restored tasks, by position in the snapshot. */
export type RestoreIo = (
  record: TaskRecord,
  index: number,
) => Pick<SpawnOptions, 'stdout' | 'stderr' | 'onStdinWanted'>;

export interface RestoreResult {
  readonly manifest: SnapshotManifest;
  readonly tasks: readonly Task[];
  readonly resumeMs: number;
}

function corrupt(message: string): NormaError {
  return new NormaError('SNAPSHOT_CORRUPT', message);
}

export async function restoreSnapshot(
  kernel: Kernel,
  store: SnapshotStore,
  idOrPrefix: string,
  io: RestoreIo,
): Promise<RestoreResult> {
  const started = performance.now();
  const manifest = await store.readManifest(idOrPrefix);
  const ipcProblems = validateIpcSnapshot(manifest.ipc);
  if (ipcProblems.length > 0)
    throw corrupt(`the snapshot's IPC state is inconsistent: ${ipcProblems.slice(0, 3).join('; ')}`);
  for (const task of manifest.tasks) {
    if (task.module.info.transformVersion !== transformVersion) {
      throw new NormaError(
        'SNAPSHOT_VERSION_UNSUPPORTED',
        `the snapshot's module was transformed by transform version ${task.module.info.transformVersion}; this norma runs version ${transformVersion}`,
      );
    }
    if ((task.state.wasi as { version?: unknown }).version !== 1)
      throw corrupt('the snapshot has a WASI state of an unknown version');
  }
  const images = await Promise.all(
    manifest.tasks.map(async (task) => {
      const bytes = await store.readBlob(task.module.imageHash);
      return imageFromSnapshot(new Uint8Array(bytes), task.module.info, task.module.originalHash);
    }),
  );

  const oldIds = manifest.tasks.map((task) => task.state.id);
  const thawHere = manifest.node.id === kernel.nodeId && oldIds.every((id) => kernel.isDetached(id));
  const taskIds: Record<number, number> = {};
  for (const id of oldIds) taskIds[id] = thawHere ? id : kernel.allocateTaskId();
  if (!thawHere) await restoreSharedState(kernel, store, manifest, taskIds);

  const tasks: Task[] = [];
  for (const [index, record] of manifest.tasks.entries()) {
    const state = { ...structuredClone(record.state), id: taskIds[record.state.id]! } as unknown as TaskState;
    const task = await kernel.adoptRestored(state, images[index]!, {
      module: images[index]!.bytes,
      ...io(record, index),
    });
    task.instance.resizeForRestore(record.memory.visibleBytes);
    task.instance.writeGlobals(record.globals);
    await restoreMemory(store, record.memory.pages, task.instance.memory.visible());
    tasks.push(task);
  }
  for (const task of tasks) kernel.startRestored(task);
  return { manifest, tasks, resumeMs: performance.now() - started };
}

/** Fills `memory` page by page: stored pages read straight into it, zero pages zeroed if needed. */
async function restoreMemory(
  store: SnapshotStore,
  pages: readonly (string | null)[],
  memory: Uint8Array,
): Promise<void> {
  if (pages.length * snapshotPageBytes !== memory.length)
    throw corrupt('a memory size does not match its page list');
  const offsets = new Map<string, number[]>();
  pages.forEach((page, index) => {
    const offset = index * snapshotPageBytes;
    if (page === null) {
      // A fresh instance holds its data segments: a page that was zero when frozen may not be now.
      const view = memory.subarray(offset, offset + snapshotPageBytes);
      if (!isZeroPage(view)) view.fill(0);
      return;
    }
    const list = offsets.get(page);
    if (list === undefined) offsets.set(page, [offset]);
    else list.push(offset);
  });
  await store.readPages([...offsets.keys()], (hash, bytes) => {
    for (const offset of offsets.get(hash)!) memory.set(bytes, offset);
  });
}

/** Memory objects, mappings, IPC spaces and ports, and names, for a resume on another node. */
async function restoreSharedState(
  kernel: Kernel,
  store: SnapshotStore,
  manifest: SnapshotManifest,
  taskIds: Record<number, number>,
): Promise<void> {
  const objectIds = new Map<number, number>();
  const kernelPorts: Record<string, KObject> = {};
  for (const object of manifest.memoryObjects.objects) {
    const existing = kernel.ipc.isAlive(object.portId) ? kernel.ipc.kobjectOf(object.portId) : null;
    if (existing?.type === 'memory_object') {
      objectIds.set(object.id, existing.id);
      continue;
    }
    const adopted = kernel.memoryObjects.adoptObject(object.size, () => object.portId);
    kernel.pager.create(adopted.id, object.size);
    const data = new Uint8Array(object.size);
    await restoreMemory(store, object.pages, data);
    kernel.pager.write(adopted.id, 0, data);
    objectIds.set(object.id, adopted.id);
    kernelPorts[object.portId] = { type: 'memory_object', id: adopted.id };
  }
  try {
    importTasks(kernel.ipc, manifest.ipc as never, { taskIds, kernelPorts });
  } catch (error) {
    throw new NormaError(
      'SNAPSHOT_CONFLICT',
      `cannot resume the snapshot here: ${(error as Error).message}`,
      { cause: error },
    );
  }
  for (const mapping of manifest.memoryObjects.mappings) {
    const task = taskIds[mapping.task];
    const objectId = objectIds.get(mapping.objectId);
    if (task === undefined || objectId === undefined)
      throw corrupt('a memory mapping refers to a task or object outside the snapshot');
    kernel.memoryObjects.adoptMapping({ ...mapping, task, objectId });
  }
  for (const { service, portId } of manifest.names) kernel.names.adopt(service, portId);
}
