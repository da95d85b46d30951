/**
 * The invariants of the IPC state, checked from scratch: tests run this after every operation, and
 * a restore can run it on a decoded snapshot before trusting it. Each violation is one line of text.
 *
 *   - Every live port has exactly one receive right: in the space entry its `receiver` names, inside
 *     exactly one message queued on the port its `receiver` names, or with the kernel (kobject set).
 *   - `srights` equals the space entries with send rights, plus the send rights in queued messages,
 *     plus `kernelSrights`; `sorights` equals send-once entries, plus send-once rights in queued
 *     messages, plus the notification requests that hold a send-once right to the port.
 *   - Live rights in spaces point at live ports; dead names point at dead ones.
 *   - Names decode to an index and its current generation; the per-space indices agree with the
 *     entries; sets and their members agree; no receive right is (transitively) in its own queue.
 */

import { PortType } from '../abi/syscalls.js';
import { portQueueLengthMax, userRefsMax } from '../limits.js';
import type { IpcState } from './ipc.js';
import type { PortId } from './port.js';
import { type TransitRight, validEntryTypes } from './right.js';

export function auditIpcState(state: IpcState): string[] {
  const problems: string[] = [];
  const alive = (id: PortId): boolean => Object.hasOwn(state.ports, id);
  const srights = new Map<PortId, number>();
  const sorights = new Map<PortId, number>();
  const receives = new Map<PortId, string[]>();
  const add = (counts: Map<PortId, number>, id: PortId): void => {
    counts.set(id, (counts.get(id) ?? 0) + 1);
  };
  const holder = (id: PortId, where: string): void => {
    const list = receives.get(id) ?? [];
    list.push(where);
    receives.set(id, list);
  };

  for (const [key, space] of Object.entries(state.spaces)) {
    const task = space.task;
    if (String(task) !== key) problems.push(`space ${key} says it belongs to task ${task}`);
    const entryKeys = Object.keys(space.entries);
    if (entryKeys.length !== space.count) {
      problems.push(`task ${task}: count ${space.count} but ${entryKeys.length} entries`);
    }
    for (const nameKey of entryKeys) {
      const entry = space.entries[nameKey]!;
      const name = Number(nameKey);
      const where = `task ${task} name ${name}`;
      const index = name >>> 8;
      if (index < 1 || index >= space.nextIndex || space.generations[index] !== (name & 0xff)) {
        problems.push(`${where}: not a current name (index ${index}, generation ${name & 0xff})`);
      }
      if (!validEntryTypes.includes(entry.type))
        problems.push(`${where}: invalid type ${entry.type.toString(16)}`);
      const has = (bit: number): boolean => (entry.type & bit) !== 0;
      const live = has(PortType.RECEIVE) || has(PortType.SEND) || has(PortType.SEND_ONCE);
      if (live && !alive(entry.object)) problems.push(`${where}: live right to dead port ${entry.object}`);
      if (has(PortType.DEAD_NAME) && alive(entry.object)) {
        problems.push(`${where}: dead name for live port ${entry.object}`);
      }
      if (has(PortType.SEND) || has(PortType.DEAD_NAME)) {
        if (entry.urefs < 1 || entry.urefs > userRefsMax) problems.push(`${where}: urefs ${entry.urefs}`);
      } else if (has(PortType.SEND_ONCE)) {
        if (entry.urefs !== 1) problems.push(`${where}: send-once with urefs ${entry.urefs}`);
      } else if (entry.urefs !== 0) {
        problems.push(`${where}: urefs ${entry.urefs} without send right`);
      }
      if (has(PortType.PORT_SET)) {
        const set = Object.hasOwn(state.sets, entry.object) ? state.sets[entry.object] : undefined;
        if (set === undefined || set.task !== task || set.name !== name) {
          problems.push(`${where}: port set ${entry.object} does not point back`);
        }
      }
      if (
        (has(PortType.RECEIVE) || has(PortType.SEND) || has(PortType.PORT_SET)) &&
        space.byObject[entry.object] !== name
      ) {
        problems.push(`${where}: byObject does not map ${entry.object} to it`);
      }
      if (has(PortType.SEND_ONCE) && !(space.sendOnce[entry.object] ?? []).includes(name)) {
        problems.push(`${where}: sendOnce index misses it`);
      }
      if (has(PortType.SEND)) add(srights, entry.object);
      if (has(PortType.SEND_ONCE)) add(sorights, entry.object);
      if (has(PortType.RECEIVE)) holder(entry.object, `space ${task}:${name}`);
      if (entry.request !== null) {
        if (!(has(PortType.SEND) || has(PortType.SEND_ONCE) || has(PortType.RECEIVE))) {
          problems.push(`${where}: dead-name request on a ${entry.type.toString(16)} entry`);
        }
        if (alive(entry.request)) add(sorights, entry.request);
      }
    }
    for (const [object, name] of Object.entries(space.byObject)) {
      const entry = space.entries[String(name)];
      if (entry === undefined || entry.object !== object) {
        problems.push(`task ${task}: byObject ${object} -> ${name} is stale`);
      }
    }
    for (const [object, names] of Object.entries(space.sendOnce)) {
      for (const name of names) {
        const entry = space.entries[String(name)];
        if (entry === undefined || entry.object !== object || entry.type !== PortType.SEND_ONCE) {
          problems.push(`task ${task}: sendOnce ${object} -> ${name} is stale`);
        }
      }
    }
  }

  const countTransit = (right: TransitRight, carrier: PortId): void => {
    if (right.kind === 'receive') {
      if (!alive(right.port))
        problems.push(`message on ${carrier} carries the receive right of dead ${right.port}`);
      holder(right.port, `transit in ${carrier}`);
      return;
    }
    if (!alive(right.port)) return;
    add(right.kind === 'send' ? srights : sorights, right.port);
  };

  for (const [id, port] of Object.entries(state.ports)) {
    if (port.id !== id) problems.push(`port ${id} says it is ${port.id}`);
    if (!Number.isInteger(port.qlimit) || port.qlimit < 1 || port.qlimit > portQueueLengthMax) {
      problems.push(`port ${id}: qlimit ${port.qlimit}`);
    }
    for (const msg of port.queue) {
      if (msg.dest.port !== id || msg.dest.kind === 'receive')
        problems.push(`port ${id}: message with bad dest`);
      countTransit(msg.dest, id);
      if (msg.reply !== null) {
        if (msg.reply.kind === 'receive') problems.push(`port ${id}: message with a receive right as reply`);
        countTransit(msg.reply, id);
      }
      for (const descriptor of msg.descriptors) {
        if (descriptor.type === 'port') countTransit(descriptor.right, id);
      }
    }
    if (port.nsRequest !== null && alive(port.nsRequest)) add(sorights, port.nsRequest);
    if (port.kernelSrights < 0 || port.kernelSrights > port.srights) {
      problems.push(`port ${id}: kernelSrights ${port.kernelSrights} of ${port.srights}`);
    }
  }

  for (const [id, port] of Object.entries(state.ports)) {
    const expectedSend = (srights.get(id) ?? 0) + port.kernelSrights;
    if (port.srights !== expectedSend) {
      problems.push(`port ${id}: srights ${port.srights}, rights found ${expectedSend}`);
    }
    const expectedOnce = sorights.get(id) ?? 0;
    if (port.sorights !== expectedOnce) {
      problems.push(`port ${id}: sorights ${port.sorights}, rights found ${expectedOnce}`);
    }
    const holders = receives.get(id) ?? [];
    const receiver = port.receiver;
    if (receiver.kind === 'remote') {
      if (holders.length !== 0) problems.push(`proxy ${id} with receive rights in ${holders.join(', ')}`);
      if (port.kobject !== null || port.nsRequest !== null)
        problems.push(`proxy ${id} with a kobject or request`);
    } else if (receiver.kind === 'kernel') {
      if (port.kobject === null) problems.push(`port ${id}: kernel port without kobject`);
      if (holders.length !== 0)
        problems.push(`port ${id}: kernel port with receive rights in ${holders.join(', ')}`);
    } else {
      const expected =
        receiver.kind === 'space' ? `space ${receiver.task}:${receiver.name}` : `transit in ${receiver.in}`;
      if (holders.length !== 1 || holders[0] !== expected) {
        problems.push(`port ${id}: receiver ${expected}, receive rights in [${holders.join(', ')}]`);
      }
      if (port.kobject !== null) problems.push(`port ${id}: kobject on a port the kernel does not hold`);
    }
    if (port.set !== null) {
      const set = Object.hasOwn(state.sets, port.set) ? state.sets[port.set] : undefined;
      if (set === undefined || !set.members.includes(id))
        problems.push(`port ${id}: not in its set ${port.set}`);
      else if (receiver.kind !== 'space' || receiver.task !== set.task) {
        problems.push(`port ${id}: member of ${port.set} but not received in its space`);
      }
    }
    // No port may be (transitively) inside its own queue.
    const seen = new Set<PortId>();
    let at: PortId | undefined = id;
    while (at !== undefined) {
      if (seen.has(at)) {
        problems.push(`port ${id}: receive right in a cycle`);
        break;
      }
      seen.add(at);
      const next: (typeof state.ports)[string] | undefined = Object.hasOwn(state.ports, at)
        ? state.ports[at]
        : undefined;
      at = next?.receiver.kind === 'transit' ? next.receiver.in : undefined;
    }
  }
  for (const id of receives.keys()) {
    if (!alive(id)) problems.push(`receive right of dead port ${id} still held`);
  }

  for (const [id, set] of Object.entries(state.sets)) {
    if (set.id !== id) problems.push(`set ${id} says it is ${set.id}`);
    const space = state.spaces[String(set.task)];
    const entry = space?.entries[String(set.name)];
    if (entry === undefined || entry.object !== id || entry.type !== PortType.PORT_SET) {
      problems.push(`set ${id}: no entry ${set.task}:${set.name}`);
    }
    if (new Set(set.members).size !== set.members.length) problems.push(`set ${id}: duplicate members`);
    for (const member of set.members) {
      if (!alive(member) || state.ports[member]?.set !== id)
        problems.push(`set ${id}: member ${member} disagrees`);
    }
  }
  return problems;
}
