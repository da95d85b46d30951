/**
 * IPC spaces: the table of names one task uses to refer to ports. A name is Mach's index plus
 * generation: `index << 8 | generation`, index 1..namesPerTaskMax. Fresh indices are handed out
 * before any freed one is reused, freed indices are reused oldest first, and each reuse bumps the
 * generation, so a stale name keeps failing with INVALID_NAME for a long time instead of silently
 * denoting a new right.
 *
 * These functions only keep the table and its indices consistent; what a right means (counts on
 * ports, notifications) is the business of ipc.ts.
 */

import { PortType } from '../abi/syscalls.js';
import { namesPerTaskMax } from '../limits.js';
import type { PortId, PortName, TaskId } from './port.js';
import { type EntryState, indexedTypes } from './right.js';

const generationBits = 8;
const generationMask = (1 << generationBits) - 1;

export interface SpaceState {
  task: TaskId;
  /** Name (decimal string) -> entry. */
  entries: Record<string, EntryState>;
  /** Port or port-set id -> the one name under which this space holds its receive/send/set rights. */
  byObject: Record<PortId, PortName>;
  /** Port id -> the names of this space's send-once rights to it. */
  sendOnce: Record<PortId, PortName[]>;
  /** Entries in use. */
  count: number;
  /** Next never-used index. */
  nextIndex: number;
  /** Current generation of each index (index 0 unused). */
  generations: number[];
  /** Freed indices, oldest first, from `freeHead` on (a queue: shift() would be O(n) per name). */
  freeIndices: number[];
  freeHead: number;
}

export function newSpace(task: TaskId): SpaceState {
  return {
    task,
    entries: {},
    byObject: {},
    sendOnce: {},
    count: 0,
    nextIndex: 1,
    generations: [0],
    freeIndices: [],
    freeHead: 0,
  };
}

/** The entry a name denotes, or undefined for a name that is malformed, free or stale. */
export function spaceLookup(space: SpaceState, name: PortName): EntryState | undefined {
  if (!Number.isInteger(name) || name <= 0 || name > 0xffff_ffff) return undefined;
  // Integer keys: V8 keeps them as elements, with no string conversion per lookup; and no
  // inherited property of a plain object has an integer key, so no hasOwn check is needed.
  return space.entries[name];
}

/** The name under which the space holds receive/send/set rights to `object`, if any. */
export function spaceNameOf(space: SpaceState, object: PortId): PortName | undefined {
  return Object.hasOwn(space.byObject, object) ? space.byObject[object] : undefined;
}

/** The names of the space's send-once rights to `port`. */
export function spaceSendOnceNames(space: SpaceState, port: PortId): readonly PortName[] {
  return Object.hasOwn(space.sendOnce, port) ? (space.sendOnce[port] ?? []) : [];
}

/** True when no name can be allocated. */
export function spaceFull(space: SpaceState): boolean {
  return space.count >= namesPerTaskMax;
}

/** Allocates a name for `entry` and indexes it; undefined when the space is full. */
export function spaceInsert(space: SpaceState, entry: EntryState): PortName | undefined {
  if (spaceFull(space)) return undefined;
  let index: number;
  if (space.nextIndex <= namesPerTaskMax) {
    index = space.nextIndex++;
    space.generations[index] = 0;
  } else {
    // count < max guarantees a freed index exists once every index has been used.
    index = space.freeIndices[space.freeHead++]!;
    if (space.freeHead >= 1024 && space.freeHead * 2 >= space.freeIndices.length) {
      space.freeIndices = space.freeIndices.slice(space.freeHead);
      space.freeHead = 0;
    }
  }
  const name = ((index << generationBits) | (space.generations[index] ?? 0)) >>> 0;
  space.entries[name] = entry;
  space.count++;
  spaceIndex(space, name, entry);
  return name;
}

/** Unindexes and frees `name`; the entry must exist. The generation moves on so the name goes stale. */
export function spaceRemove(space: SpaceState, name: PortName): EntryState {
  const entry = spaceLookup(space, name);
  if (entry === undefined) throw new Error(`ipc: removing unknown name ${name}`);
  spaceUnindex(space, name, entry);
  delete space.entries[name];
  space.count--;
  const index = name >>> generationBits;
  space.generations[index] = ((space.generations[index] ?? 0) + 1) & generationMask;
  space.freeIndices.push(index);
  return entry;
}

/** Adds the indices that `entry` (under `name`) belongs to. Call after changing `entry.type`. */
export function spaceIndex(space: SpaceState, name: PortName, entry: EntryState): void {
  if ((entry.type & indexedTypes) !== 0) space.byObject[entry.object] = name;
  if ((entry.type & PortType.SEND_ONCE) !== 0) {
    const names = space.sendOnce[entry.object];
    if (names === undefined || !Object.hasOwn(space.sendOnce, entry.object)) {
      space.sendOnce[entry.object] = [name];
    } else {
      names.push(name);
    }
  }
}

/** Removes the indices that `entry` (under `name`) belongs to. Call before changing `entry.type`. */
export function spaceUnindex(space: SpaceState, name: PortName, entry: EntryState): void {
  if ((entry.type & indexedTypes) !== 0 && space.byObject[entry.object] === name) {
    delete space.byObject[entry.object];
  }
  if ((entry.type & PortType.SEND_ONCE) !== 0 && Object.hasOwn(space.sendOnce, entry.object)) {
    const names = (space.sendOnce[entry.object] ?? []).filter((n) => n !== name);
    if (names.length === 0) delete space.sendOnce[entry.object];
    else space.sendOnce[entry.object] = names;
  }
}

/** Every name in use, ascending. */
export function spaceNames(space: SpaceState): PortName[] {
  return Object.keys(space.entries)
    .map(Number)
    .sort((a, b) => a - b);
}
