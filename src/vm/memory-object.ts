/**
 * Memory objects and their mappings: how tasks on one node share memory. A WebAssembly task has
 * one linear memory and cannot map foreign pages into it, so sharing is by copy with a lock, in the
 * spirit of XMM's consistency protocol: `acquire` takes the object's lock (many readers or one
 * writer) and copies the window into the task's memory; `release` copies it back (for a writer) and
 * drops the lock. Between acquire and release the task works on its own copy.
 *
 * This file is the pure core: the lock and mapping bookkeeping, as plain data. The kernel does the
 * copying through a Pager and decides what blocked threads to wake.
 */
import { AccessMode, KernReturn } from '../abi/syscalls.js';
import { mappingsPerTaskMax, memoryObjectBytesMax, wasmPageBytes } from '../limits.js';

export interface MemoryObjectState {
  readonly id: number;
  readonly size: number;
  /** The port that names the object (its receive right belongs to the kernel). */
  readonly portId: string;
  readers: number;
  writer: boolean;
}

export interface MappingState {
  readonly id: number;
  readonly task: number;
  readonly objectId: number;
  readonly offset: number;
  readonly size: number;
  readonly address: number;
  /** 0 when not acquired, else AccessMode.READ or AccessMode.WRITE. */
  acquired: number;
}

export interface MemoryObjectsState {
  nextObjectId: number;
  objects: Record<number, MemoryObjectState>;
  /**
   * Mappings by `${task}/${id}`. Ids are per task because the task keeps them in its own memory:
   * a task restored in another kernel must find its mappings under the same ids.
   */
  mappings: Record<string, MappingState>;
  /** Next mapping id, per task. */
  nextMappingIds: Record<number, number>;
}

export function createMemoryObjectsState(): MemoryObjectsState {
  return { nextObjectId: 1, objects: {}, mappings: {}, nextMappingIds: {} };
}

const mappingKey = (task: number, id: number): string => `${task}/${id}`;

export type AcquireResult = { kr: number } | 'would-block';

export class MemoryObjects {
  constructor(readonly state: MemoryObjectsState = createMemoryObjectsState()) {}

  /** Rounds up to whole pages. Returns INVALID_VALUE for 0 or above memoryObjectBytesMax. */
  create(size: number, portId: (objectId: number) => string): { kr: number; object?: MemoryObjectState } {
    if (size <= 0 || size > memoryObjectBytesMax) return { kr: KernReturn.INVALID_VALUE };
    const rounded = Math.ceil(size / wasmPageBytes) * wasmPageBytes;
    const id = this.state.nextObjectId++;
    const object: MemoryObjectState = { id, size: rounded, portId: portId(id), readers: 0, writer: false };
    this.state.objects[id] = object;
    return { kr: KernReturn.SUCCESS, object };
  }

  object(id: number): MemoryObjectState | undefined {
    return this.state.objects[id];
  }

  /** INVALID_VALUE when the window leaves the object; NO_SPACE past mappingsPerTaskMax. */
  map(
    task: number,
    objectId: number,
    offset: number,
    size: number,
    address: number,
  ): { kr: number; mapping?: MappingState } {
    const object = this.state.objects[objectId];
    if (object === undefined) return { kr: KernReturn.INVALID_CAPABILITY };
    if (offset < 0 || size <= 0 || offset + size > object.size) return { kr: KernReturn.INVALID_VALUE };
    if (this.mappingsOf(task).length >= mappingsPerTaskMax) return { kr: KernReturn.NO_SPACE };
    const id = this.state.nextMappingIds[task] ?? 1;
    this.state.nextMappingIds[task] = id + 1;
    const mapping: MappingState = {
      id,
      task,
      objectId,
      offset,
      size,
      address,
      acquired: 0,
    };
    this.state.mappings[mappingKey(task, id)] = mapping;
    return { kr: KernReturn.SUCCESS, mapping };
  }

  mapping(task: number, mappingId: number): MappingState | undefined {
    const key = mappingKey(task, mappingId);
    return Object.hasOwn(this.state.mappings, key) ? this.state.mappings[key] : undefined;
  }

  mappingsOf(task: number): MappingState[] {
    return Object.values(this.state.mappings).filter((m) => m.task === task);
  }

  /** Takes the lock if it is free for `mode`; 'would-block' when another holder prevents it. */
  acquire(mapping: MappingState, mode: number): AcquireResult {
    if (mode !== AccessMode.READ && mode !== AccessMode.WRITE) return { kr: KernReturn.INVALID_VALUE };
    if (mapping.acquired !== 0) return { kr: KernReturn.INVALID_ARGUMENT };
    const object = this.state.objects[mapping.objectId]!;
    if (mode === AccessMode.READ) {
      if (object.writer) return 'would-block';
      object.readers++;
    } else {
      if (object.writer || object.readers > 0) return 'would-block';
      object.writer = true;
    }
    mapping.acquired = mode;
    return { kr: KernReturn.SUCCESS };
  }

  /** Drops the lock; the caller copies back first when the mode was WRITE. */
  release(mapping: MappingState): number {
    if (mapping.acquired === 0) return KernReturn.MEMORY_NOT_ACQUIRED;
    const object = this.state.objects[mapping.objectId]!;
    if (mapping.acquired === AccessMode.READ) object.readers--;
    else object.writer = false;
    mapping.acquired = 0;
    return KernReturn.SUCCESS;
  }

  unmap(mapping: MappingState): void {
    if (mapping.acquired !== 0) this.release(mapping);
    delete this.state.mappings[mappingKey(mapping.task, mapping.id)];
  }

  /** Drops every mapping of an ended task (and its locks) and forgets its mapping-id counter. */
  forgetTask(task: number): void {
    for (const mapping of this.mappingsOf(task)) this.unmap(mapping);
    delete this.state.nextMappingIds[task];
  }

  /**
   * Re-creates an object from a snapshot under its original port id (a new object id if this
   * kernel already uses the old one), for the restorer. Returns the object.
   */
  adoptObject(size: number, portId: (objectId: number) => string): MemoryObjectState {
    const id = this.state.nextObjectId++;
    const object: MemoryObjectState = { id, size, portId: portId(id), readers: 0, writer: false };
    this.state.objects[id] = object;
    return object;
  }

  /** Re-creates a restored task's mapping with its original id, taking its lock if it held one. */
  adoptMapping(mapping: MappingState): void {
    const object = this.state.objects[mapping.objectId];
    if (object === undefined) throw new Error(`adoptMapping: no object ${mapping.objectId}`);
    const key = mappingKey(mapping.task, mapping.id);
    if (Object.hasOwn(this.state.mappings, key)) throw new Error(`adoptMapping: ${key} exists`);
    this.state.mappings[key] = { ...mapping };
    if (mapping.acquired === AccessMode.READ) object.readers++;
    else if (mapping.acquired === AccessMode.WRITE) object.writer = true;
    const next = this.state.nextMappingIds[mapping.task] ?? 1;
    if (mapping.id >= next) this.state.nextMappingIds[mapping.task] = mapping.id + 1;
  }
}
