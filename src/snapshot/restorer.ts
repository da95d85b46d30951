/**
 * Resuming a snapshot in a kernel: the transformed module from the store (the frames fit only those
 * bytes), a fresh instance whose memory and globals are put back before any thread runs, the task
 * state (threads with their frames and waits, WASI state, clock, random), the IPC spaces and ports,
 * the memory objects, the names. Tasks of a group are all rebuilt before any of them runs.
 *
 * Nothing is partially restored: phase one reads and verifies everything (manifest, IPC state,
 * modules, every page) without touching the kernel; phase two changes the kernel, and the only
 * check left there (an IPC conflict) is made before anything is changed.
 *
 * Two cases. Thawing a task frozen on this same node: its IPC space and mappings were kept (its
 * ports went on queueing messages), so they are reused as they are now. Resuming anywhere else
 * (another process, tomorrow): everything comes from the snapshot, under new task ids; rights to
 * ports that no longer exist become dead names, as Mach would have it.
 */
import { NormaError } from '../errors.js';
import { importTasks, type KObject, validateIpcSnapshot } from '../ipc/index.js';
import type { Kernel, SpawnOptions, Task } from '../kernel/kernel.js';
import type { TaskState } from '../kernel/task.js';
import { imageFromSnapshot, loadTaskImage, moduleHash, type TaskImage } from '../runtime/module-cache.js';
import { transformVersion } from '../runtime/transform.js';
import { type SnapshotManifest, snapshotPageBytes, type TaskRecord } from './format.js';
import type { SnapshotStore } from './store.js';

/** Per-task process wiring (stdout, stderr, stdin) for the restored tasks, by position in the snapshot. */
export type RestoreIo = (
  record: TaskRecord,
  index: number,
) => Pick<SpawnOptions, 'stdout' | 'stderr' | 'onStdinWanted'>;

export interface RestoreOptions {
  /**
   * Original modules the user supplies (`--module`): each must be the module a task was frozen
   * from (SNAPSHOT_MODULE_MISMATCH otherwise); when the store lacks a task's transformed module, it
   * is transformed again and must come out identical.
   */
  readonly modules?: readonly Uint8Array<ArrayBuffer>[];
  /**
   * A task moving here from another node (NormaIpc.arrive): its live IPC state is imported by this
   * function instead of the snapshot's, and these are its name registrations.
   */
  readonly migration?: {
    importIpc(
      taskIds: Readonly<Record<number, number>>,
      kernelPorts: Readonly<Record<string, KObject>>,
    ): void;
    names: readonly { service: string; portId: string }[];
  };
}

export interface RestoreResult {
  readonly manifest: SnapshotManifest;
  readonly tasks: readonly Task[];
  readonly resumeMs: number;
}

const oldIdsOf = (manifest: SnapshotManifest): number[] => manifest.tasks.map((task) => task.state.id);

function corrupt(message: string): NormaError {
  return new NormaError('SNAPSHOT_CORRUPT', message);
}

/** Checks that a task record fits the module it names (a manifest pointing at another module is refused). */
function checkFits(record: TaskRecord, image: TaskImage): void {
  const globals = new Map(image.info.mutableGlobals.map((g) => [g.exportName, g.type]));
  const fits =
    record.globals.length === globals.size &&
    record.globals.every((g) => globals.get(g.exportName) === g.type) &&
    record.state.threads.every((thread) =>
      thread.calls.every((name) => WebAssembly.Module.exports(image.module).some((e) => e.name === name)),
    );
  if (!fits) throw corrupt(`task ${record.state.name} does not match the module the snapshot names`);
}

async function loadImage(
  store: SnapshotStore,
  record: TaskRecord,
  supplied: ReadonlyMap<string, Uint8Array<ArrayBuffer>>,
): Promise<TaskImage> {
  const { imageHash, originalHash, info } = record.module;
  if (store.hasBlob(imageHash)) {
    const bytes = await store.readBlob(imageHash);
    return imageFromSnapshot(new Uint8Array(bytes), info, originalHash);
  }
  const original = supplied.get(originalHash);
  if (original === undefined) {
    throw new NormaError(
      'SNAPSHOT_PAGE_MISSING',
      `the store lacks the module of task ${record.state.name} (sha256 ${originalHash.slice(0, 12)}…)`,
      { hint: 'Pass the original module with --module, or import the snapshot again.' },
    );
  }
  const image = await loadTaskImage(original, { preempt: info.preemptible, hiddenPages: info.hiddenPages });
  if (image.imageHash !== imageHash) {
    throw new NormaError(
      'SNAPSHOT_MODULE_MISMATCH',
      `this norma transforms the module of task ${record.state.name} differently from the one that froze it`,
      { hint: 'Resume it with the norma version that froze it (or keep the module in the store).' },
    );
  }
  return image;
}

/** Reads pages into `target` (zero pages stay zero): verified by the store as they are read. */
async function readPagesInto(
  store: SnapshotStore,
  pages: readonly (string | null)[],
  target: Uint8Array,
): Promise<void> {
  if (pages.length * snapshotPageBytes !== target.length)
    throw corrupt('a memory size does not match its page list');
  const offsets = new Map<string, number[]>();
  pages.forEach((page, index) => {
    if (page === null) return;
    const list = offsets.get(page);
    if (list === undefined) offsets.set(page, [index * snapshotPageBytes]);
    else list.push(index * snapshotPageBytes);
  });
  await store.readPages([...offsets.keys()], (hash, bytes) => {
    for (const offset of offsets.get(hash)!) target.set(bytes, offset);
  });
}

export async function restoreSnapshot(
  kernel: Kernel,
  store: SnapshotStore,
  idOrPrefix: string,
  io: RestoreIo,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const started = performance.now();
  // Phase one: read and verify everything; the kernel is not touched.
  const manifest = await store.readManifest(idOrPrefix);
  const ipcProblems = validateIpcSnapshot(manifest.ipc);
  if (ipcProblems.length > 0) {
    throw corrupt(`the snapshot's IPC state is inconsistent: ${ipcProblems.slice(0, 3).join('; ')}`);
  }
  const supplied = new Map((options.modules ?? []).map((bytes) => [moduleHash(bytes), bytes]));
  for (const hash of supplied.keys()) {
    if (!manifest.tasks.some((task) => task.module.originalHash === hash)) {
      throw new NormaError(
        'SNAPSHOT_MODULE_MISMATCH',
        'the snapshot was not taken from the module given with --module',
      );
    }
  }
  for (const task of manifest.tasks) {
    if (task.module.info.transformVersion !== transformVersion) {
      throw new NormaError(
        'SNAPSHOT_VERSION_UNSUPPORTED',
        `the snapshot's module was transformed by transform version ${task.module.info.transformVersion}; this norma runs version ${transformVersion}`,
      );
    }
    if ((task.state.wasi as { version?: unknown }).version !== 1) {
      throw corrupt('the snapshot has a WASI state of an unknown version');
    }
  }
  const objectsInSnapshot = new Set(manifest.memoryObjects.objects.map((object) => object.id));
  for (const mapping of manifest.memoryObjects.mappings) {
    if (!oldIdsOf(manifest).includes(mapping.task) || !objectsInSnapshot.has(mapping.objectId)) {
      throw corrupt('a memory mapping refers to a task or object outside the snapshot');
    }
  }
  const images = await Promise.all(manifest.tasks.map((task) => loadImage(store, task, supplied)));
  for (const [index, task] of manifest.tasks.entries()) checkFits(task, images[index]!);
  const memories = manifest.tasks.map((task) => new Uint8Array(task.memory.visibleBytes));
  for (const [index, task] of manifest.tasks.entries())
    await readPagesInto(store, task.memory.pages, memories[index]!);
  const objectData = new Map<number, Uint8Array>();
  for (const object of manifest.memoryObjects.objects) {
    const data = new Uint8Array(object.size);
    await readPagesInto(store, object.pages, data);
    objectData.set(object.id, data);
  }

  // Phase two: change the kernel.
  const oldIds = oldIdsOf(manifest);
  const thawHere = manifest.node.id === kernel.nodeId && oldIds.every((id) => kernel.isDetached(id));
  const taskIds: Record<number, number> = {};
  for (const id of oldIds) taskIds[id] = thawHere ? id : kernel.allocateTaskId();
  if (!thawHere) restoreSharedState(kernel, manifest, taskIds, objectData, options.migration);

  const tasks: Task[] = [];
  for (const [index, record] of manifest.tasks.entries()) {
    const state = { ...structuredClone(record.state), id: taskIds[record.state.id]! } as unknown as TaskState;
    const task = await kernel.adoptRestored(state, images[index]!, {
      module: images[index]!.bytes,
      ...io(record, index),
    });
    task.instance.resizeForRestore(record.memory.visibleBytes);
    task.instance.writeGlobals(record.globals);
    task.instance.memory.visible().set(memories[index]!);
    tasks.push(task);
  }
  for (const task of tasks) kernel.startRestored(task);
  return { manifest, tasks, resumeMs: performance.now() - started };
}

/** Memory objects, mappings, IPC spaces and ports, and names, for a resume on another node. */
function restoreSharedState(
  kernel: Kernel,
  manifest: SnapshotManifest,
  taskIds: Record<number, number>,
  objectData: ReadonlyMap<number, Uint8Array>,
  migration: RestoreOptions['migration'],
): void {
  // Objects still alive here are reused; the others are created under their original port ids,
  // after the IPC import has checked for conflicts (it changes nothing when it refuses).
  const reused = new Map<number, number>();
  const kernelPorts: Record<string, KObject> = {};
  const toCreate: SnapshotManifest['memoryObjects']['objects'] = [];
  let nextObjectId = kernel.memoryObjects.state.nextObjectId;
  for (const object of manifest.memoryObjects.objects) {
    const existing = kernel.ipc.isAlive(object.portId) ? kernel.ipc.kobjectOf(object.portId) : null;
    if (existing?.type === 'memory_object') reused.set(object.id, existing.id);
    else {
      toCreate.push(object);
      kernelPorts[object.portId] = { type: 'memory_object', id: nextObjectId++ };
    }
  }
  try {
    if (migration !== undefined) migration.importIpc(taskIds, kernelPorts);
    else importTasks(kernel.ipc, manifest.ipc as never, { taskIds, kernelPorts });
  } catch (error) {
    throw new NormaError(
      'SNAPSHOT_CONFLICT',
      `cannot resume the snapshot here: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const objectIds = new Map(reused);
  for (const object of toCreate) {
    const adopted = kernel.memoryObjects.adoptObject(object.size, () => object.portId);
    if (kernelPorts[object.portId]?.id !== adopted.id) throw new Error('restore: object ids out of step');
    kernel.pager.create(adopted.id, object.size);
    kernel.pager.write(adopted.id, 0, objectData.get(object.id)!);
    objectIds.set(object.id, adopted.id);
  }
  for (const mapping of manifest.memoryObjects.mappings) {
    const task = taskIds[mapping.task];
    const objectId = objectIds.get(mapping.objectId);
    if (task === undefined || objectId === undefined)
      throw new Error('restore: a mapping outside the snapshot');
    kernel.memoryObjects.adoptMapping({ ...mapping, task, objectId });
  }
  for (const { service, portId } of migration?.names ?? manifest.names) kernel.names.adopt(service, portId);
}
