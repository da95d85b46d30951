/**
 * Port sets: a name in one space under which a task receives from many of its ports. A receive
 * right is a member of at most one set, and only while it sits in the space that holds the set
 * (moving the receive right in a message takes it out). Fairness: the members are kept in the
 * order they should be served; a member that delivers a message goes to the back.
 */

import type { PortId, PortName, PortState, TaskId } from './port.js';

export interface PortSetState {
  id: PortId;
  task: TaskId;
  name: PortName;
  /** Member ports, in the order a receive on the set tries them. */
  members: PortId[];
}

export function newPortSet(id: PortId, task: TaskId, name: PortName): PortSetState {
  return { id, task, name, members: [] };
}

export function portSetRemoveMember(set: PortSetState, port: PortId): void {
  const at = set.members.indexOf(port);
  if (at >= 0) set.members.splice(at, 1);
}

/** The first member (in service order) with a queued message, or undefined when all are empty. */
export function portSetSelect(
  set: PortSetState,
  portOf: (id: PortId) => PortState | undefined,
): PortState | undefined {
  for (const id of set.members) {
    const port = portOf(id);
    if (port !== undefined && port.queue.length > 0) return port;
  }
  return undefined;
}

/** Sends a member that just delivered a message to the back of the line. */
export function portSetServed(set: PortSetState, port: PortId): void {
  portSetRemoveMember(set, port);
  set.members.push(port);
}
