/**
 * Export and import of the IPC state that a subset of tasks owns: what freezing tasks needs from the
 * IPC core, and what resuming them needs in another kernel (another process, maybe another node)
 * whose `IpcState` knows nothing of them, or in the same kernel later.
 *
 * A snapshot is plain data (objects, arrays, strings, numbers, null, Uint8Array), so cbor-x and
 * structuredClone carry it unchanged. It holds:
 *   - the spaces of the exported tasks, entry by entry, with their name allocator (generations and
 *     the queue of free indices): the tasks' memories hold names, which must keep denoting the same
 *     rights, and the names handed out next must be the same too;
 *   - the included ports: every port whose receive right is in one of those spaces and, recursively,
 *     every port whose receive right travels in a message queued on an included port; with their
 *     queues, limits, make-send counts, no-senders requests and the kernel's own send rights;
 *   - the port sets of those spaces;
 *   - of any other port that a right in the snapshot points at, only its id: in `outside` when it
 *     was alive at export, in `dead` when it had already died (dead names, dead rights in queued
 *     messages, requests whose notify port died).
 *
 * Rights held anywhere else (spaces of tasks not exported, messages queued on ports not included,
 * notification requests registered there) are not in the snapshot and do not exist in the target.
 * Port ids keep their global identity (node of origin + serial) across the move; task ids may
 * change, names may not.
 */

import { NotifyId, PortType } from '../abi/syscalls.js';
import {
  messageDescriptorsMax,
  messageSizeMax,
  namesPerTaskMax,
  portIdBytesMax,
  portQueueLengthMax,
  userRefsMax,
} from '../limits.js';
import type { Ipc } from './ipc.js';
import {
  type SpaceState,
  spaceIndex,
  spaceNameOf,
  spaceNames,
  spaceSendOnceNames,
  spaceUnindex,
} from './ipc-space.js';
import { type QueuedDescriptor, type QueuedMessage, receivedMessageSize } from './message.js';
import { notificationBody, notificationMessage } from './notification.js';
import {
  type KObject,
  newPort,
  type PortId,
  type PortName,
  type PortState,
  type RemoteHolding,
  type TaskId,
} from './port.js';
import { type TransitRight, validEntryTypes } from './right.js';

/** Version of the `IpcSnapshot` layout. */
export const ipcSnapshotVersion = 1;

/** The IPC state a group of tasks owns (see the file comment). Plain data only. */
export interface IpcSnapshot {
  version: typeof ipcSnapshotVersion;
  /** The node of the kernel that exported it (diagnostics; port ids carry their own origin). */
  originNode: string;
  spaces: IpcSnapshotSpace[];
  ports: IpcSnapshotPort[];
  sets: IpcSnapshotSet[];
  /** Ports not included, alive at export, that rights in the snapshot point at. */
  outside: IpcSnapshotOutsidePort[];
  /** Ports already dead at export that dead names, dead rights or requests in the snapshot mention. */
  dead: PortId[];
}

/** One task's space. */
export interface IpcSnapshotSpace {
  /** The task id in the exporting kernel (importTasks maps it). */
  task: TaskId;
  /**
   * Every name in use. Send-once entries of one port appear in the order the space indexes them
   * (the order their dead-name notifications go out if the port dies); otherwise the order is free.
   */
  entries: IpcSnapshotEntry[];
  /** Next never-used index; every index below it is either in use or in `freeIndices`. */
  nextIndex: number;
  /** Current generation of each index, `nextIndex` of them (index 0 unused, 0). */
  generations: number[];
  /** The free indices, in the order they will be reused. */
  freeIndices: number[];
}

export interface IpcSnapshotEntry {
  name: PortName;
  /** Port or port set; for a dead name, the id of the port that died. */
  object: PortId;
  /** PortType bits (RECEIVE, SEND, RECEIVE|SEND, SEND_ONCE, DEAD_NAME or PORT_SET). */
  type: number;
  urefs: number;
  /** Dead-name request: it holds a send-once right to this notify port. */
  request: PortId | null;
}

/** An included port. Never a kernel port: the kernel holds those, no task does. */
export interface IpcSnapshotPort {
  id: PortId;
  /** Where its receive right is: a space of the snapshot, or a message queued on an included port. */
  receiver: { kind: 'space'; task: TaskId; name: PortName } | { kind: 'transit'; in: PortId };
  set: PortId | null;
  /** The queue, oldest first; the messages hold their rights. */
  queue: QueuedMessage[];
  qlimit: number;
  mscount: number;
  /**
   * Send and send-once rights to the port at export, wherever they were (information: the import
   * recounts them; `srights` > 0 also tells that a drop to zero on import fires no-senders).
   */
  srights: number;
  sorights: number;
  /** Send rights the kernel held (the name service's), restored as kernel-held rights. */
  kernelSrights: number;
  /** No-senders request: it holds a send-once right to this notify port. */
  nsRequest: PortId | null;
}

export interface IpcSnapshotSet {
  id: PortId;
  task: TaskId;
  name: PortName;
  /** In service order. */
  members: PortId[];
}

export interface IpcSnapshotOutsidePort {
  id: PortId;
  /** Its kernel object when it was a kernel port (a memory object): what `kernelPorts` re-creates. */
  kobject: KObject | null;
}

export interface ImportOptions {
  /** Task id in the snapshot -> task id in the target (ids may differ). Every space in the snapshot must be mapped. */
  taskIds: Readonly<Record<number, TaskId>>;
  /**
   * Kernel ports (e.g. memory objects) the target kernel has re-created, by port id, with their
   * kobject — created here with that id if absent, so rights to them reattach.
   */
  kernelPorts?: Readonly<Record<PortId, KObject>>;
  /**
   * A migration from another node (Ipc.handOff there): the tasks' ports arrive live. A proxy here
   * of an arriving port becomes the port (its rights and queued messages join it, the messages
   * after the arriving ones); `holdings` are the rights other nodes hold to the arriving ports; and
   * every right to a port that is not arriving is taken over by `importRight` (the network layer
   * counts it as having come from the sending node, making proxies as needed; false: it is dead).
   */
  migration?: {
    holdings: Readonly<Record<PortId, Readonly<Record<string, RemoteHolding>>>>;
    importRight(kind: 'send' | 'send-once', id: PortId): boolean;
  };
}

export interface ImportReport {
  /** Ports, port sets and queued messages imported (notifications sent by the import not counted). */
  ports: number;
  sets: number;
  messages: number;
  /**
   * Send / send-once rights to outside ports alive in the target, reattached: one per space entry
   * (whatever its user references), per right in a queued message, per notification request.
   */
  reattached: number;
  /** Rights, counted the same way, to outside ports that no longer exist: they are dead now. */
  deadNames: number;
}

// -------------------------------------------------------------------------------------------------
// Export.
// -------------------------------------------------------------------------------------------------

/**
 * Pure read of `ipc` (no mutation, no events): everything `tasks` own, as described in the file
 * comment. The snapshot shares nothing with the state (bytes are copied), so the core may go on.
 * Duplicate task ids are taken once; the spaces come in the order of `tasks`.
 * Throws when a task has no IPC space (a kernel bug, as everywhere in the core).
 */
export function exportTasks(ipc: Ipc, tasks: readonly TaskId[]): IpcSnapshot {
  const state = ipc.state;
  const spaces: SpaceState[] = [];
  const exported = new Set<TaskId>();
  for (const task of tasks) {
    if (!ipc.hasSpace(task)) throw new Error(`ipc: cannot export task ${task}: it has no IPC space`);
    if (exported.has(task)) continue;
    exported.add(task);
    spaces.push(state.spaces[task]!);
  }

  // The included ports: receive rights in the spaces, then what travels in their queues (a work
  // list in discovery order, so the snapshot is deterministic).
  const included: PortState[] = [];
  const includedIds = new Set<PortId>();
  const include = (id: PortId): void => {
    if (includedIds.has(id)) return;
    includedIds.add(id);
    included.push(state.ports[id]!);
  };
  for (const space of spaces) {
    for (const name of spaceNames(space)) {
      const entry = space.entries[name]!;
      if ((entry.type & PortType.RECEIVE) !== 0) include(entry.object);
    }
  }
  for (let i = 0; i < included.length; i++) {
    for (const msg of included[i]!.queue) {
      for (const right of messageRights(msg)) if (right.kind === 'receive') include(right.port);
    }
  }

  const outside = new Map<PortId, KObject | null>();
  const dead = new Set<PortId>();
  const refer = (id: PortId): void => {
    if (includedIds.has(id) || outside.has(id) || dead.has(id)) return;
    const port = Object.hasOwn(state.ports, id) ? state.ports[id] : undefined;
    if (port === undefined) dead.add(id);
    else outside.set(id, port.kobject === null ? null : { type: port.kobject.type, id: port.kobject.id });
  };

  const snapshotSpaces = spaces.map((space): IpcSnapshotSpace => {
    const entries: IpcSnapshotEntry[] = [];
    const copy = (name: PortName): void => {
      const entry = space.entries[name]!;
      if ((entry.type & (PortType.SEND | PortType.SEND_ONCE | PortType.DEAD_NAME)) !== 0) refer(entry.object);
      if (entry.request !== null) refer(entry.request);
      entries.push({
        name,
        object: entry.object,
        type: entry.type,
        urefs: entry.urefs,
        request: entry.request,
      });
    };
    const sendOnce: PortName[] = [];
    for (const name of spaceNames(space)) {
      if (space.entries[name]!.type === PortType.SEND_ONCE) sendOnce.push(name);
      else copy(name);
    }
    // Send-once names in index order, so that the import indexes them in the same order.
    const done = new Set<PortName>();
    for (const names of Object.values(space.sendOnce)) {
      for (const name of names) {
        if (!done.has(name) && space.entries[name]?.type === PortType.SEND_ONCE) {
          done.add(name);
          copy(name);
        }
      }
    }
    for (const name of sendOnce) if (!done.has(name)) copy(name);
    return {
      task: space.task,
      entries,
      nextIndex: space.nextIndex,
      generations: space.generations.slice(),
      freeIndices: space.freeIndices.slice(space.freeHead),
    };
  });

  const snapshotPorts = included.map((port): IpcSnapshotPort => {
    for (const msg of port.queue) {
      for (const right of messageRights(msg)) if (right.kind !== 'receive') refer(right.port);
    }
    if (port.nsRequest !== null) refer(port.nsRequest);
    const receiver = port.receiver;
    // Unreachable: only a task's space or an included queue makes a port included.
    if (receiver.kind === 'kernel' || receiver.kind === 'remote') {
      throw new Error(`ipc: ${receiver.kind} port ${port.id} cannot be exported`);
    }
    return {
      id: port.id,
      receiver:
        receiver.kind === 'space'
          ? { kind: 'space', task: receiver.task, name: receiver.name }
          : { kind: 'transit', in: receiver.in },
      set: port.set,
      queue: port.queue.map(copyMessage),
      qlimit: port.qlimit,
      mscount: port.mscount,
      srights: port.srights,
      sorights: port.sorights,
      kernelSrights: port.kernelSrights,
      nsRequest: port.nsRequest,
    };
  });

  const snapshotSets: IpcSnapshotSet[] = [];
  for (const space of spaces) {
    for (const name of spaceNames(space)) {
      const entry = space.entries[name]!;
      if ((entry.type & PortType.PORT_SET) === 0) continue;
      const set = state.sets[entry.object]!;
      snapshotSets.push({ id: set.id, task: set.task, name: set.name, members: set.members.slice() });
    }
  }

  return {
    version: ipcSnapshotVersion,
    originNode: ipc.nodeId,
    spaces: snapshotSpaces,
    ports: snapshotPorts,
    sets: snapshotSets,
    outside: [...outside].map(([id, kobject]) => ({ id, kobject })),
    dead: [...dead],
  };
}

/** Every right a queued message holds: destination, reply, port descriptors. */
function messageRights(msg: QueuedMessage): TransitRight[] {
  const rights = [msg.dest];
  if (msg.reply !== null) rights.push(msg.reply);
  for (const descriptor of msg.descriptors) if (descriptor.type === 'port') rights.push(descriptor.right);
  return rights;
}

/**
 * A deep copy of a message. Bytes are copied into plain Uint8Arrays: the snapshot must not alias
 * the state, and a snapshot decoded by cbor-x holds Buffers, which the state should not.
 */
function copyMessage(msg: QueuedMessage): QueuedMessage {
  return {
    dest: { kind: msg.dest.kind, port: msg.dest.port },
    reply: msg.reply === null ? null : { kind: msg.reply.kind, port: msg.reply.port },
    id: msg.id,
    descriptors: msg.descriptors.map(
      (d): QueuedDescriptor =>
        d.type === 'ool'
          ? { type: 'ool', bytes: new Uint8Array(d.bytes) }
          : { type: 'port', right: { kind: d.right.kind, port: d.right.port } },
    ),
    body: new Uint8Array(msg.body),
  };
}

// -------------------------------------------------------------------------------------------------
// Validation.
// -------------------------------------------------------------------------------------------------

/** `${node}.${serial}`, serial from 1: the only shape allocateId produces. */
const portIdPattern = /^(.+)\.([1-9][0-9]*)$/s;

type Loose = Record<string, unknown>;

function isRecord(value: unknown): value is Loose {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
  );
}

function isInt(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

function isPortId(value: unknown): value is PortId {
  return typeof value === 'string' && Buffer.byteLength(value) <= portIdBytesMax && portIdPattern.test(value);
}

/** The node and serial of a well-formed port id. */
function parsePortId(id: PortId): { node: string; serial: number } | undefined {
  const match = portIdPattern.exec(id);
  if (match === null) return undefined;
  const serial = Number(match[2]);
  return Number.isSafeInteger(serial) ? { node: match[1]!, serial } : undefined;
}

function isKObject(value: unknown): value is KObject {
  return isRecord(value) && value.type === 'memory_object' && isInt(value.id, 0, Number.MAX_SAFE_INTEGER);
}

function show(value: unknown): string {
  try {
    return typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    return typeof value;
  }
}

/**
 * Checks a decoded snapshot (from disk: never trust it) for everything importTasks relies on, so
 * that an import of a sound snapshot keeps every invariant of invariants.ts:
 *   - structure: the fields and their types, ids of the form `node.serial`, names, types and user
 *     references as a space holds them, queue limits, message sizes;
 *   - references: every right points at a port the snapshot includes, or lists as outside (send,
 *     send-once) or dead (dead names); receive rights (in spaces or queues) only at included ports,
 *     each exactly where the port's `receiver` says, with no port inside its own queue; sets and
 *     their members agree; ids are listed once;
 *   - each space's allocator: every name is current, and every index below `nextIndex` is either
 *     in use or free, exactly once;
 *   - counts: `srights` / `sorights` are at least the rights the snapshot itself holds.
 * Returns one line per problem (empty = sound). Structural problems stop the check before the
 * references are followed, so a malformed value never throws.
 */
export function validateIpcSnapshot(value: unknown): string[] {
  if (!isRecord(value)) return ['snapshot: not an object'];
  const problems: string[] = [];
  if (value.version !== ipcSnapshotVersion) {
    problems.push(`snapshot: version ${show(value.version)} is not ${ipcSnapshotVersion}`);
  }
  if (typeof value.originNode !== 'string' || value.originNode.length === 0) {
    problems.push('snapshot: originNode is not a non-empty string');
  }
  for (const key of ['spaces', 'ports', 'sets', 'outside', 'dead']) {
    if (!Array.isArray(value[key])) problems.push(`snapshot: ${key} is not an array`);
  }
  if (problems.length > 0) return problems;
  checkStructure(value, problems);
  if (problems.length > 0) return problems;
  checkReferences(value as unknown as IpcSnapshot, problems);
  return problems;
}

function checkStructure(value: Loose, problems: string[]): void {
  const right = (r: unknown, where: string): void => {
    if (!isRecord(r) || !['send', 'send-once', 'receive'].includes(r.kind as string) || !isPortId(r.port)) {
      problems.push(`${where}: not a right {kind, port}`);
    }
  };
  const bytes = (b: unknown, where: string): void => {
    if (!(b instanceof Uint8Array)) problems.push(`${where}: not a byte array`);
  };
  const nullablePortId = (v: unknown, where: string): void => {
    if (v !== null && !isPortId(v)) problems.push(`${where}: ${show(v)} is neither null nor a port id`);
  };
  const taskId = (v: unknown): boolean => isInt(v, 0, Number.MAX_SAFE_INTEGER);
  const name = (v: unknown): boolean => isInt(v, 1, 0xffff_ffff);

  for (const [i, space] of (value.spaces as unknown[]).entries()) {
    const where = `spaces[${i}]`;
    if (!isRecord(space)) {
      problems.push(`${where}: not an object`);
      continue;
    }
    if (!taskId(space.task)) problems.push(`${where}: task ${show(space.task)}`);
    if (!isInt(space.nextIndex, 1, namesPerTaskMax + 1)) {
      problems.push(`${where}: nextIndex ${show(space.nextIndex)}`);
    }
    const generations = space.generations;
    if (!Array.isArray(generations) || !generations.every((g) => isInt(g, 0, 255))) {
      problems.push(`${where}: generations is not an array of 0..255`);
    } else if (generations.length !== space.nextIndex || generations[0] !== 0) {
      problems.push(`${where}: ${generations.length} generations for nextIndex ${show(space.nextIndex)}`);
    }
    if (!Array.isArray(space.freeIndices) || !space.freeIndices.every((f) => isInt(f, 1, namesPerTaskMax))) {
      problems.push(`${where}: freeIndices is not an array of indices`);
    }
    if (!Array.isArray(space.entries)) {
      problems.push(`${where}: entries is not an array`);
      continue;
    }
    for (const [j, entry] of space.entries.entries()) {
      const at = `${where}.entries[${j}]`;
      if (!isRecord(entry)) {
        problems.push(`${at}: not an object`);
        continue;
      }
      if (!name(entry.name)) problems.push(`${at}: name ${show(entry.name)}`);
      if (!isPortId(entry.object)) problems.push(`${at}: object ${show(entry.object)} is not a port id`);
      if (!validEntryTypes.includes(entry.type as number)) problems.push(`${at}: type ${show(entry.type)}`);
      if (!isInt(entry.urefs, 0, userRefsMax)) problems.push(`${at}: urefs ${show(entry.urefs)}`);
      nullablePortId(entry.request, `${at}.request`);
    }
  }

  for (const [i, port] of (value.ports as unknown[]).entries()) {
    const where = `ports[${i}]`;
    if (!isRecord(port)) {
      problems.push(`${where}: not an object`);
      continue;
    }
    if (!isPortId(port.id)) problems.push(`${where}: id ${show(port.id)} is not a port id`);
    const receiver = port.receiver;
    const receiverOk =
      isRecord(receiver) &&
      ((receiver.kind === 'space' && taskId(receiver.task) && name(receiver.name)) ||
        (receiver.kind === 'transit' && isPortId(receiver.in)));
    if (!receiverOk) problems.push(`${where}: receiver is neither a space entry nor an included queue`);
    nullablePortId(port.set, `${where}.set`);
    nullablePortId(port.nsRequest, `${where}.nsRequest`);
    if (!isInt(port.qlimit, 1, portQueueLengthMax)) problems.push(`${where}: qlimit ${show(port.qlimit)}`);
    for (const key of ['mscount', 'srights', 'sorights', 'kernelSrights']) {
      if (!isInt(port[key], 0, Number.MAX_SAFE_INTEGER)) problems.push(`${where}: ${key} ${show(port[key])}`);
    }
    if (!Array.isArray(port.queue)) {
      problems.push(`${where}: queue is not an array`);
      continue;
    }
    for (const [j, msg] of port.queue.entries()) {
      const at = `${where}.queue[${j}]`;
      if (!isRecord(msg)) {
        problems.push(`${at}: not an object`);
        continue;
      }
      right(msg.dest, `${at}.dest`);
      if (msg.reply !== null) right(msg.reply, `${at}.reply`);
      if (!isInt(msg.id, -0x8000_0000, 0xffff_ffff)) problems.push(`${at}: id ${show(msg.id)}`);
      bytes(msg.body, `${at}.body`);
      if (!Array.isArray(msg.descriptors) || msg.descriptors.length > messageDescriptorsMax) {
        problems.push(`${at}: descriptors is not an array of at most ${messageDescriptorsMax}`);
        continue;
      }
      for (const [k, d] of msg.descriptors.entries()) {
        const dat = `${at}.descriptors[${k}]`;
        if (isRecord(d) && d.type === 'port') right(d.right, `${dat}.right`);
        else if (isRecord(d) && d.type === 'ool') bytes(d.bytes, `${dat}.bytes`);
        else problems.push(`${dat}: neither a port nor an ool descriptor`);
      }
    }
  }

  for (const [i, set] of (value.sets as unknown[]).entries()) {
    const where = `sets[${i}]`;
    if (!isRecord(set)) {
      problems.push(`${where}: not an object`);
      continue;
    }
    if (!isPortId(set.id)) problems.push(`${where}: id ${show(set.id)} is not a port id`);
    if (!taskId(set.task)) problems.push(`${where}: task ${show(set.task)}`);
    if (!name(set.name)) problems.push(`${where}: name ${show(set.name)}`);
    if (!Array.isArray(set.members) || !set.members.every(isPortId)) {
      problems.push(`${where}: members is not an array of port ids`);
    }
  }

  for (const [i, outside] of (value.outside as unknown[]).entries()) {
    const where = `outside[${i}]`;
    if (!isRecord(outside) || !isPortId(outside.id)) problems.push(`${where}: no port id`);
    else if (outside.kobject !== null && !isKObject(outside.kobject)) problems.push(`${where}: kobject`);
  }

  for (const [i, id] of (value.dead as unknown[]).entries()) {
    if (!isPortId(id)) problems.push(`dead[${i}]: ${show(id)} is not a port id`);
  }
}

function checkReferences(snapshot: IpcSnapshot, problems: string[]): void {
  const ports = new Map<PortId, IpcSnapshotPort>();
  const sets = new Map<PortId, IpcSnapshotSet>();
  const outside = new Set<PortId>();
  const dead = new Set<PortId>();
  const listed = (id: PortId): boolean => ports.has(id) || sets.has(id) || outside.has(id) || dead.has(id);
  const once = (id: PortId, what: string): boolean => {
    if (listed(id)) problems.push(`${what} ${id}: listed twice`);
    return !listed(id);
  };
  for (const port of snapshot.ports) if (once(port.id, 'port')) ports.set(port.id, port);
  for (const set of snapshot.sets) if (once(set.id, 'set')) sets.set(set.id, set);
  for (const o of snapshot.outside) if (once(o.id, 'outside port')) outside.add(o.id);
  for (const id of snapshot.dead) if (once(id, 'dead port')) dead.add(id);
  const known = (id: PortId): boolean => ports.has(id) || outside.has(id) || dead.has(id);

  // Counts of the rights the snapshot holds, and where each receive right is.
  const srights = new Map<PortId, number>();
  const sorights = new Map<PortId, number>();
  const add = (counts: Map<PortId, number>, id: PortId): void => {
    counts.set(id, (counts.get(id) ?? 0) + 1);
  };
  const holders = new Map<PortId, string[]>();
  const hold = (id: PortId, where: string): void => {
    const list = holders.get(id) ?? [];
    list.push(where);
    holders.set(id, list);
  };

  const spaces = new Map<TaskId, Map<PortName, IpcSnapshotEntry>>();
  for (const space of snapshot.spaces) {
    const task = space.task;
    if (spaces.has(task)) {
      problems.push(`space ${task}: listed twice`);
      continue;
    }
    const byName = new Map<PortName, IpcSnapshotEntry>();
    spaces.set(task, byName);
    const indices = new Set<number>();
    const byObject = new Map<PortId, PortName>();
    for (const entry of space.entries) {
      const name = entry.name;
      const where = `space ${task} name ${name}`;
      const index = name >>> 8;
      if (index < 1 || index >= space.nextIndex || space.generations[index] !== (name & 0xff)) {
        problems.push(`${where}: not a current name (index ${index}, generation ${name & 0xff})`);
      } else if (indices.has(index)) {
        problems.push(`${where}: index ${index} used twice`);
      }
      indices.add(index);
      byName.set(name, entry);
      const has = (bit: number): boolean => (entry.type & bit) !== 0;
      if (has(PortType.SEND) || has(PortType.DEAD_NAME)) {
        if (entry.urefs < 1) problems.push(`${where}: urefs ${entry.urefs}`);
      } else if (has(PortType.SEND_ONCE)) {
        if (entry.urefs !== 1) problems.push(`${where}: send-once with urefs ${entry.urefs}`);
      } else if (entry.urefs !== 0) {
        problems.push(`${where}: urefs ${entry.urefs} without send right`);
      }
      if (has(PortType.RECEIVE) || has(PortType.SEND) || has(PortType.PORT_SET)) {
        if (byObject.has(entry.object)) {
          problems.push(`${where}: ${entry.object} also has name ${byObject.get(entry.object)}`);
        }
        byObject.set(entry.object, name);
      }
      if (has(PortType.RECEIVE)) {
        if (ports.has(entry.object)) hold(entry.object, `space ${task}:${name}`);
        else problems.push(`${where}: receive right of ${entry.object}, which the snapshot does not include`);
      }
      if ((has(PortType.SEND) || has(PortType.SEND_ONCE)) && !ports.has(entry.object)) {
        if (!outside.has(entry.object)) {
          problems.push(`${where}: right to ${entry.object}, which the snapshot neither includes nor lists`);
        }
      }
      if (has(PortType.SEND)) add(srights, entry.object);
      if (has(PortType.SEND_ONCE)) add(sorights, entry.object);
      if (has(PortType.DEAD_NAME) && !dead.has(entry.object)) {
        problems.push(`${where}: dead name for ${entry.object}, which the snapshot does not list as dead`);
      }
      if (has(PortType.PORT_SET)) {
        const set = sets.get(entry.object);
        if (set === undefined || set.task !== task || set.name !== name) {
          problems.push(`${where}: port set ${entry.object} does not point back`);
        }
      }
      if (entry.request !== null) {
        if (!(has(PortType.SEND) || has(PortType.SEND_ONCE) || has(PortType.RECEIVE))) {
          problems.push(`${where}: dead-name request on a ${entry.type.toString(16)} entry`);
        }
        if (!known(entry.request)) problems.push(`${where}: request to unlisted ${entry.request}`);
        add(sorights, entry.request);
      }
    }
    for (const index of space.freeIndices) {
      if (index >= space.nextIndex) problems.push(`space ${task}: free index ${index} not below nextIndex`);
      else if (indices.has(index)) problems.push(`space ${task}: free index ${index} in use or listed twice`);
      indices.add(index);
    }
    if (indices.size !== space.nextIndex - 1) {
      problems.push(`space ${task}: ${indices.size} indices in use or free, expected ${space.nextIndex - 1}`);
    }
  }

  for (const port of snapshot.ports) {
    const where = `port ${port.id}`;
    const receiver = port.receiver;
    if (receiver.kind === 'space') {
      const entry = spaces.get(receiver.task)?.get(receiver.name);
      if (entry === undefined || entry.object !== port.id || (entry.type & PortType.RECEIVE) === 0) {
        problems.push(`${where}: receiver ${receiver.task}:${receiver.name} holds no receive right to it`);
      }
    } else if (!ports.has(receiver.in)) {
      problems.push(`${where}: in transit in ${receiver.in}, which the snapshot does not include`);
    }
    if (port.set !== null) {
      const set = sets.get(port.set);
      if (set === undefined || !set.members.includes(port.id)) {
        problems.push(`${where}: not in its set ${port.set}`);
      } else if (receiver.kind !== 'space' || receiver.task !== set.task) {
        problems.push(`${where}: member of ${port.set} but not received in its space`);
      }
    }
    for (const msg of port.queue) {
      if (msg.dest.port !== port.id || msg.dest.kind === 'receive') {
        problems.push(`${where}: message with bad dest`);
      }
      if (msg.reply?.kind === 'receive') problems.push(`${where}: message with a receive right as reply`);
      for (const right of messageRights(msg)) {
        if (right.kind === 'receive') {
          if (ports.has(right.port)) hold(right.port, `transit in ${port.id}`);
          else problems.push(`${where}: a message carries the receive right of ${right.port}, not included`);
        } else {
          if (!known(right.port))
            problems.push(`${where}: a message carries a right to unlisted ${right.port}`);
          add(right.kind === 'send' ? srights : sorights, right.port);
        }
      }
      if (receivedMessageSize(msg) > messageSizeMax) problems.push(`${where}: message larger than allowed`);
    }
    if (port.nsRequest !== null) {
      if (!known(port.nsRequest)) problems.push(`${where}: no-senders request to unlisted ${port.nsRequest}`);
      add(sorights, port.nsRequest);
    }
  }

  for (const port of snapshot.ports) {
    const where = `port ${port.id}`;
    const receiver = port.receiver;
    const expected =
      receiver.kind === 'space' ? `space ${receiver.task}:${receiver.name}` : `transit in ${receiver.in}`;
    const held = holders.get(port.id) ?? [];
    if (held.length !== 1 || held[0] !== expected) {
      problems.push(`${where}: receiver ${expected}, receive rights in [${held.join(', ')}]`);
    }
    if (port.srights < (srights.get(port.id) ?? 0) + port.kernelSrights) {
      problems.push(`${where}: srights ${port.srights}, fewer than the rights in the snapshot`);
    }
    if (port.sorights < (sorights.get(port.id) ?? 0)) {
      problems.push(`${where}: sorights ${port.sorights}, fewer than the rights in the snapshot`);
    }
    // The chain of queues the receive right travels in must end in a space, not loop.
    const seen = new Set<PortId>();
    let at: IpcSnapshotPort | undefined = port;
    while (at !== undefined && at.receiver.kind === 'transit') {
      if (seen.has(at.id)) {
        problems.push(`${where}: receive right in a cycle`);
        break;
      }
      seen.add(at.id);
      at = ports.get(at.receiver.in);
    }
  }

  for (const set of snapshot.sets) {
    const where = `set ${set.id}`;
    const entry = spaces.get(set.task)?.get(set.name);
    if (entry === undefined || entry.object !== set.id || entry.type !== PortType.PORT_SET) {
      problems.push(`${where}: no entry ${set.task}:${set.name}`);
    }
    if (new Set(set.members).size !== set.members.length) problems.push(`${where}: duplicate members`);
    for (const member of set.members) {
      if (ports.get(member)?.set !== set.id) problems.push(`${where}: member ${member} disagrees`);
    }
  }
}

// -------------------------------------------------------------------------------------------------
// Import.
// -------------------------------------------------------------------------------------------------

/**
 * What a dead reference in the target to an id that the import brings back to life becomes: an id
 * allocateId never produces (it does not end in `.serial`) and validation never accepts, so it
 * stays dead forever.
 */
function tombstone(id: PortId): PortId {
  return `${id}~dead`;
}

/**
 * Merges `snapshot` into `ipc`. Atomic: validates the snapshot (validateIpcSnapshot) and checks it
 * against the target first, and throws an Error naming every problem, changing nothing, when:
 *   - the snapshot is not sound, or a space of it is not mapped by `taskIds`, or maps to a value
 *     that is not a task id (integer >= 0), or two spaces map to the same task;
 *   - a mapped target task already has a space;
 *   - an included port or set id is alive in the target (e.g. thawing a checkpoint of tasks still
 *     running there), or a port the snapshot lists as dead is alive there (ids collided);
 *   - an outside port is alive in the target as a port set, or as a port whose kobject differs;
 *   - a `kernelPorts` entry is malformed, names an included, set or dead id, or is alive in the
 *     target as something other than a kernel port with that kobject.
 * Then, in order:
 *   1. Dead references in the target (dead names, dead rights in queued messages, requests) to the
 *      ids being created are renamed to tombstones, so they stay dead (same node: thawing tasks
 *      whose ports died here when they were frozen and destroyed).
 *   2. `kernelPorts` not alive are created with their ids.
 *   3. Spaces (under the mapped task ids, same names and allocator), ports (same ids, queues with
 *      their rights, receivers re-pointed to the mapped tasks) and sets are created.
 *   4. Every right in them is counted where it points: included ports' counts are recomputed from
 *      what exists now (plus the restored kernel rights); rights to outside ports alive in the target
 *      are reattached (counted there); the others are dead: space entries become dead names keeping
 *      their user references, rights in messages stay as dead rights (received as portNameDead).
 *   5. Dead-name requests on the names that died fire (DEAD_NAME, one more user reference), then
 *      no-senders requests on included ports whose count dropped to zero by the import (it was
 *      above zero at export) fire (NO_SENDERS with the make-send count), as the core does.
 *   6. message-queued events for included ports with queued messages (and for target ports that
 *      got a notification); the state's serial counter moves above any imported id of this node.
 * Send-once rights to included ports held outside the snapshot vanish without a notification.
 */
export function importTasks(ipc: Ipc, snapshot: IpcSnapshot, options: ImportOptions): ImportReport {
  const invalid = validateIpcSnapshot(snapshot);
  if (invalid.length > 0) throw new Error(`ipc: invalid IPC snapshot: ${summary(invalid)}`);
  const conflicts = importConflicts(ipc, snapshot, options);
  if (conflicts.length > 0) throw new Error(`ipc: cannot import the IPC snapshot: ${summary(conflicts)}`);

  // Validated: from here on nothing fails.
  const state = ipc.state;
  const taskOf = (task: TaskId): TaskId => options.taskIds[task]!;
  const findPort = (id: PortId): PortState | undefined =>
    Object.hasOwn(state.ports, id) ? state.ports[id] : undefined;
  const kernelPorts = Object.entries(options.kernelPorts ?? {}).filter(([id]) => findPort(id) === undefined);
  const includedIds = new Set(snapshot.ports.map((p) => p.id));
  const outsideIds = new Set(snapshot.outside.map((o) => o.id));
  const report: ImportReport = {
    ports: snapshot.ports.length,
    sets: snapshot.sets.length,
    messages: 0,
    reattached: 0,
    deadNames: 0,
  };

  // Proxies of arriving ports (a migration): they become the ports, keeping what they hold.
  const proxies = new Map<PortId, PortState>();
  if (options.migration !== undefined) {
    for (const id of includedIds) {
      const proxy = findPort(id);
      if (proxy?.receiver.kind === 'remote') proxies.set(id, proxy);
    }
  }

  // 1. Tombstones.
  const creating = new Set<PortId>(
    [...includedIds, ...snapshot.sets.map((s) => s.id)].filter((id) => !proxies.has(id)),
  );
  for (const [id] of kernelPorts) creating.add(id);
  buryReferences(ipc, creating);

  // 2, 3. Create.
  for (const [id, kobject] of kernelPorts) {
    state.ports[id] = newPort(id, { kind: 'kernel' }, { type: kobject.type, id: kobject.id });
  }
  for (const set of snapshot.sets) {
    state.sets[set.id] = { id: set.id, task: taskOf(set.task), name: set.name, members: set.members.slice() };
  }
  for (const p of snapshot.ports) {
    const receiver = p.receiver;
    const port = newPort(
      p.id,
      receiver.kind === 'space'
        ? { kind: 'space', task: taskOf(receiver.task), name: receiver.name }
        : { kind: 'transit', in: receiver.in },
      null,
    );
    port.set = p.set;
    port.queue = p.queue.map(copyMessage);
    port.qlimit = p.qlimit;
    port.mscount = p.mscount;
    port.kernelSrights = p.kernelSrights;
    port.srights = p.kernelSrights;
    port.nsRequest = p.nsRequest;
    state.ports[p.id] = port;
    report.messages += p.queue.length;
  }
  const spaces: SpaceState[] = snapshot.spaces.map((s) => {
    const space: SpaceState = {
      task: taskOf(s.task),
      entries: {},
      byObject: {},
      sendOnce: {},
      count: s.entries.length,
      nextIndex: s.nextIndex,
      generations: s.generations.slice(),
      freeIndices: s.freeIndices.slice(),
      freeHead: 0,
    };
    for (const e of s.entries) {
      const entry = { object: e.object, type: e.type, urefs: e.urefs, request: e.request };
      space.entries[e.name] = entry;
      // In snapshot order: it is the order of the send-once index.
      spaceIndex(space, e.name, entry);
    }
    state.spaces[space.task] = space;
    return space;
  });

  // 4. Count every right where it points.
  const migration = options.migration;
  const count = (kind: 'send' | 'send-once', id: PortId): void => {
    if (migration !== undefined && !includedIds.has(id)) {
      if (migration.importRight(kind, id)) report.reattached++;
      else if (outsideIds.has(id)) report.deadNames++;
      return;
    }
    const port = findPort(id);
    if (port === undefined) {
      if (outsideIds.has(id)) report.deadNames++;
      return;
    }
    if (kind === 'send') port.srights++;
    else port.sorights++;
    if (outsideIds.has(id)) report.reattached++;
  };
  for (const space of spaces) {
    for (const entry of Object.values(space.entries)) {
      if ((entry.type & PortType.SEND) !== 0) count('send', entry.object);
      if ((entry.type & PortType.SEND_ONCE) !== 0) count('send-once', entry.object);
      if (entry.request !== null) count('send-once', entry.request);
    }
  }
  for (const p of snapshot.ports) {
    const port = state.ports[p.id]!;
    for (const msg of port.queue) {
      for (const right of messageRights(msg)) if (right.kind !== 'receive') count(right.kind, right.port);
    }
    if (port.nsRequest !== null) count('send-once', port.nsRequest);
  }

  // What the proxies held joins the ports: their rights here, then their messages (counted
  // already), after the ones that arrived. The holdings of other nodes come along.
  for (const p of snapshot.ports) {
    const port = state.ports[p.id]!;
    const proxy = proxies.get(p.id);
    if (proxy !== undefined) {
      port.srights += proxy.srights;
      port.sorights += proxy.sorights;
      port.kernelSrights += proxy.kernelSrights;
      port.queue.push(...proxy.queue);
    }
    const held = migration?.holdings[p.id];
    if (held !== undefined) {
      const remote = Object.entries(held)
        .filter(([node, h]) => node !== ipc.nodeId && (h.send !== 0 || h.sendOnce !== 0))
        .map(([node, h]) => [node, { send: h.send, sendOnce: h.sendOnce }]);
      if (remote.length > 0) port.remote = Object.fromEntries(remote);
    }
  }

  // 5. Notifications, through the requests' send-once rights (counted above; they move into the
  // messages). A right to a port missing here just vanishes, as in the core.
  const notify = (to: PortId, id: (typeof NotifyId)[keyof typeof NotifyId], body: Uint8Array): void => {
    const port = findPort(to);
    if (port === undefined) return;
    port.queue.push(notificationMessage(to, id, body));
    if (!includedIds.has(to)) state.events.push({ kind: 'message-queued', portId: to, setId: port.set });
  };
  for (const { id } of snapshot.outside) {
    if (findPort(id) !== undefined) continue;
    // As the core's deadenNames when a port dies: its name, then its send-once names, per space.
    for (const space of spaces) {
      const names = [...spaceSendOnceNames(space, id)];
      const name = spaceNameOf(space, id);
      if (name !== undefined) names.unshift(name);
      for (const deadName of names) {
        const entry = space.entries[deadName]!;
        spaceUnindex(space, deadName, entry);
        entry.type = PortType.DEAD_NAME;
        if (entry.request !== null) {
          const to = entry.request;
          entry.request = null;
          entry.urefs = Math.min(userRefsMax, entry.urefs + 1);
          notify(to, NotifyId.DEAD_NAME, notificationBody(deadName));
        }
      }
    }
  }
  for (const p of snapshot.ports) {
    const port = state.ports[p.id]!;
    const remoteSenders = Object.values(port.remote ?? {}).some((held) => held.send !== 0);
    if (p.srights > 0 && port.srights === 0 && !remoteSenders && port.nsRequest !== null) {
      const to = port.nsRequest;
      port.nsRequest = null;
      notify(to, NotifyId.NO_SENDERS, notificationBody(port.mscount));
    }
  }

  // 6. Events and serials.
  for (const p of snapshot.ports) {
    const port = state.ports[p.id]!;
    if (port.queue.length > 0) state.events.push({ kind: 'message-queued', portId: p.id, setId: port.set });
  }
  const ids = [
    ...creating,
    ...snapshot.outside.map((o) => o.id),
    ...snapshot.dead,
    ...Object.keys(options.kernelPorts ?? {}),
  ];
  for (const id of ids) {
    const parsed = parsePortId(id);
    if (parsed !== undefined && parsed.node === ipc.nodeId && parsed.serial >= state.nextSerial) {
      state.nextSerial = parsed.serial + 1;
    }
  }
  return report;
}

function summary(problems: readonly string[]): string {
  const shown = problems.slice(0, 20).join('; ');
  return problems.length > 20 ? `${shown}; and ${problems.length - 20} more` : shown;
}

/** Every reason `snapshot` cannot be imported into `ipc` with `options` (see importTasks). */
function importConflicts(ipc: Ipc, snapshot: IpcSnapshot, options: ImportOptions): string[] {
  const state = ipc.state;
  const problems: string[] = [];
  const findPort = (id: PortId): PortState | undefined =>
    Object.hasOwn(state.ports, id) ? state.ports[id] : undefined;
  const isSet = (id: PortId): boolean => Object.hasOwn(state.sets, id);
  const alive = (id: PortId): boolean => findPort(id) !== undefined || isSet(id);

  const taskIds: unknown = options?.taskIds;
  if (!isRecord(taskIds)) {
    problems.push('taskIds is not an object');
  } else {
    const targets = new Map<TaskId, TaskId>();
    for (const { task } of snapshot.spaces) {
      if (!Object.hasOwn(taskIds, String(task))) {
        problems.push(`task ${task} of the snapshot is not mapped to a task id`);
        continue;
      }
      const target = taskIds[String(task)];
      if (!isInt(target, 0, Number.MAX_SAFE_INTEGER)) {
        problems.push(`task ${task} maps to ${show(target)}, not a task id`);
      } else if (targets.has(target)) {
        problems.push(`tasks ${targets.get(target)} and ${task} of the snapshot both map to task ${target}`);
      } else {
        targets.set(target, task);
        if (ipc.hasSpace(target)) {
          problems.push(`task ${target} (task ${task} in the snapshot) already has an IPC space`);
        }
      }
    }
  }

  const arriving = (id: PortId): boolean =>
    options?.migration !== undefined && findPort(id)?.receiver.kind === 'remote';
  for (const { id } of [...snapshot.ports, ...snapshot.sets]) {
    if (alive(id) && !arriving(id))
      problems.push(`port ${id} is alive in the target (are its tasks still running here?)`);
  }
  for (const id of snapshot.dead) {
    if (alive(id))
      problems.push(`port ${id}, dead in the snapshot, is alive in the target: port ids collide`);
  }
  const sameKObject = (a: KObject | null, b: KObject | null): boolean =>
    a === null || b === null ? a === b : a.type === b.type && a.id === b.id;
  const kernelPorts: unknown = options?.kernelPorts ?? {};
  const requested = isRecord(kernelPorts) ? kernelPorts : {};
  if (!isRecord(kernelPorts)) problems.push('kernelPorts is not an object');
  // A kernel object's id is local to its kernel: across kernels only the kind of port can be checked.
  for (const { id, kobject } of snapshot.outside) {
    if (isSet(id)) problems.push(`outside port ${id} is a port set in the target`);
    const port = findPort(id);
    const recreated = Object.hasOwn(requested, id) && isKObject(requested[id]) ? requested[id] : null;
    const targetKObject = port !== undefined ? port.kobject : recreated;
    if ((port !== undefined || recreated !== null) && kobject?.type !== targetKObject?.type) {
      const was = kobject === null ? "a task's port" : `a kernel port (${kobject.type})`;
      problems.push(`outside port ${id} was ${was} but is not in the target`);
    }
  }
  const forbidden = new Set<PortId>([
    ...snapshot.ports.map((p) => p.id),
    ...snapshot.sets.map((s) => s.id),
    ...snapshot.dead,
  ]);
  for (const [id, kobject] of Object.entries(requested)) {
    if (!isPortId(id) || !isKObject(kobject)) {
      problems.push(`kernelPorts ${show(id)}: not a port id with a kobject {type: 'memory_object', id}`);
      continue;
    }
    if (forbidden.has(id)) problems.push(`kernelPorts ${id}: the snapshot has it as a task's port or dead`);
    const port = findPort(id);
    if (isSet(id)) problems.push(`kernelPorts ${id}: a port set in the target`);
    else if (port !== undefined && (port.receiver.kind !== 'kernel' || !sameKObject(port.kobject, kobject))) {
      problems.push(`kernelPorts ${id}: alive in the target, but not the kernel port of that kobject`);
    }
  }
  return problems;
}

/** Renames the target's dead references to `ids` (which are not alive) to tombstones. */
function buryReferences(ipc: Ipc, ids: ReadonlySet<PortId>): void {
  if (ids.size === 0) return;
  const bury = (id: PortId): PortId => (ids.has(id) ? tombstone(id) : id);
  const buryRight = (right: TransitRight): TransitRight =>
    ids.has(right.port) ? { kind: right.kind, port: tombstone(right.port) } : right;
  for (const space of Object.values(ipc.state.spaces)) {
    for (const entry of Object.values(space.entries)) {
      // Live rights point at live ports, so only dead names and requests can mention these ids.
      if (entry.type === PortType.DEAD_NAME) entry.object = bury(entry.object);
      if (entry.request !== null) entry.request = bury(entry.request);
    }
  }
  for (const port of Object.values(ipc.state.ports)) {
    for (const msg of port.queue) {
      msg.dest = buryRight(msg.dest);
      if (msg.reply !== null) msg.reply = buryRight(msg.reply);
      for (const descriptor of msg.descriptors) {
        if (descriptor.type === 'port') descriptor.right = buryRight(descriptor.right);
      }
    }
    if (port.nsRequest !== null) port.nsRequest = bury(port.nsRequest);
  }
}
