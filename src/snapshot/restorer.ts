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
import type { PreparedInstance } from '../runtime/task-instance.js';
import { transformVersion } from '../runtime/transform.js';
import { type PageRef, type SnapshotManifest, snapshotPageBytes, type TaskRecord } from './format.js';
import { isZeroPage } from './page-hash.js';
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
  /**
   * The task staged from an earlier snapshot of it (`stageSnapshot`, a move's pre-copy): its
   * instance is used, and only the pages that differ from the stage's are written. A stage that does
   * not fit (another module, a smaller memory, a group) is not used: the restore takes the normal
   * path. Either way the stage is used up.
   */
  readonly stage?: StagedTask;
  /**
   * The snapshot's manifest when the caller has just read it from this store, or committed it there
   * (a snapshot pulled from another node): decoded and checked then, it is not read again.
   */
  readonly manifest?: SnapshotManifest;
}

export interface RestoreResult {
  readonly manifest: SnapshotManifest;
  readonly tasks: readonly Task[];
  readonly resumeMs: number;
  /** When a stage was used: the pages it already held, and the pages written at the restore. */
  readonly staged: { readonly pagesKept: number; readonly pagesWritten: number } | null;
}

/**
 * A task put into an instance ahead of its resume: the module loaded and instantiated, the memory
 * sized and filled with the pages of an earlier snapshot (a move's pre-copy, while the task still
 * runs on the other node), so that the resume writes only the pages that changed since.
 */
export interface StagedTask {
  readonly prepared: PreparedInstance;
  /** The memory below this holds exactly the pages `pages` name (read and verified from the store). */
  readonly visibleBytes: number;
  readonly pages: readonly PageRef[];
  /** Set by the restore that takes it (used or not): its memory may no longer match `pages`. */
  taken: boolean;
}

const oldIdsOf = (manifest: SnapshotManifest): number[] => manifest.tasks.map((task) => task.state.id);

function corrupt(message: string): NormaError {
  return new NormaError('SNAPSHOT_CORRUPT', message);
}

/** Checks what every resume relies on and this norma cannot adapt: the transform and WASI versions. */
function checkVersions(task: TaskRecord): void {
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

/**
 * Writes into `target` the pages that differ from `had` (what it holds now, page by page; pages
 * past its end are unknown): stored pages read from the store, which verifies them, zero pages
 * zeroed. Returns how many pages were kept and how many written.
 */
async function writeChangedPages(
  store: SnapshotStore,
  pages: readonly PageRef[],
  target: Uint8Array,
  had: readonly PageRef[],
): Promise<{ pagesKept: number; pagesWritten: number }> {
  if (pages.length * snapshotPageBytes !== target.length)
    throw corrupt('a memory size does not match its page list');
  const changed: PageRef[] = new Array(pages.length).fill(null);
  let pagesKept = 0;
  let pagesWritten = 0;
  pages.forEach((page, index) => {
    if (index < had.length && had[index] === page) {
      pagesKept++;
      return;
    }
    pagesWritten++;
    changed[index] = page;
    const bytes = target.subarray(index * snapshotPageBytes, (index + 1) * snapshotPageBytes);
    if (page === null && !isZeroPage(bytes)) bytes.fill(0);
  });
  await readPagesInto(store, changed, target);
  return { pagesKept, pagesWritten };
}

/**
 * Stages the one task of a snapshot in the store (a move's pre-copy; its manifest as read or
 * pulled into the store) in a new instance, off the resume's critical path: everything a resume of
 * a later snapshot of it can reuse. Verifies what it reads as a restore does; changes nothing in
 * the kernel.
 */
export async function stageSnapshot(
  kernel: Kernel,
  store: SnapshotStore,
  manifest: SnapshotManifest,
): Promise<StagedTask> {
  const record = manifest.tasks[0];
  if (record === undefined || manifest.tasks.length !== 1)
    throw new Error(`snapshot ${manifest.id} holds ${manifest.tasks.length} tasks; a stage holds one`);
  checkVersions(record);
  const image = await loadImage(store, record, new Map());
  checkFits(record, image);
  const prepared = await kernel.prepareInstance(image);
  prepared.instance.resizeForRestore(record.memory.visibleBytes);
  // Below the visible size, written as a whole (zero pages too: the module's data segments wrote
  // some at instantiation); the hidden pages above it are the fresh instance's, all zero.
  const memory = prepared.instance.memory.whole().subarray(0, record.memory.visibleBytes);
  await writeChangedPages(store, record.memory.pages, memory, []);
  return {
    prepared,
    visibleBytes: record.memory.visibleBytes,
    pages: record.memory.pages,
    taken: false,
  };
}

/** The stage, if it fits the snapshot's task (else the normal path restores it). */
function usableStage(manifest: SnapshotManifest, stage: StagedTask | undefined): StagedTask | null {
  if (stage === undefined) return null;
  const record = manifest.tasks[0];
  const fits =
    record !== undefined &&
    manifest.tasks.length === 1 &&
    record.module.imageHash === stage.prepared.image.imageHash &&
    // Memory only grows; a smaller one is not the same task's later state.
    record.memory.visibleBytes >= stage.visibleBytes &&
    !stage.prepared.adopted;
  return fits ? stage : null;
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
  const offered = options.stage !== undefined && !options.stage.taken ? options.stage : undefined;
  if (offered !== undefined) offered.taken = true;
  const manifest =
    options.manifest?.id === idOrPrefix ? options.manifest : await store.readManifest(idOrPrefix);
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
  for (const task of manifest.tasks) checkVersions(task);
  const stage = usableStage(manifest, offered);
  const objectsInSnapshot = new Set(manifest.memoryObjects.objects.map((object) => object.id));
  for (const mapping of manifest.memoryObjects.mappings) {
    if (!oldIdsOf(manifest).includes(mapping.task) || !objectsInSnapshot.has(mapping.objectId)) {
      throw corrupt('a memory mapping refers to a task or object outside the snapshot');
    }
  }
  // A stage's image was read from this store and verified when it was staged; same hash, same bytes.
  const images = await Promise.all(
    manifest.tasks.map((task) => stage?.prepared.image ?? loadImage(store, task, supplied)),
  );
  for (const [index, task] of manifest.tasks.entries()) checkFits(task, images[index]!);
  let staged: RestoreResult['staged'] = null;
  let memories: Uint8Array[] = [];
  if (stage !== null) {
    // Not the kernel's yet: if a page turns out damaged, the stage is dropped with nothing else.
    const record = manifest.tasks[0]!;
    stage.prepared.instance.resizeForRestore(record.memory.visibleBytes);
    const memory = stage.prepared.instance.memory.whole().subarray(0, record.memory.visibleBytes);
    staged = await writeChangedPages(store, record.memory.pages, memory, stage.pages);
  } else {
    memories = manifest.tasks.map((task) => new Uint8Array(task.memory.visibleBytes));
    for (const [index, task] of manifest.tasks.entries())
      await readPagesInto(store, task.memory.pages, memories[index]!);
  }
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
    const task = await kernel.adoptRestored(
      state,
      images[index]!,
      { module: images[index]!.bytes, ...io(record, index) },
      stage?.prepared,
    );
    task.instance.resizeForRestore(record.memory.visibleBytes);
    task.instance.writeGlobals(record.globals);
    if (stage === null) task.instance.memory.visible().set(memories[index]!);
    tasks.push(task);
  }
  for (const task of tasks) kernel.startRestored(task);
  return { manifest, tasks, resumeMs: performance.now() - started, staged };
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
