/**
 * Ports: kernel message queues with a global identity. A task never sees a `PortId`; it sees names
 * in its own IPC space (see ipc-space.ts). The port record holds what Mach's `ipc_port` holds: who
 * has the receive right, the queue, and the counts of outstanding send and send-once rights that
 * drive no-senders notifications and let the invariant checker prove that no right was lost.
 */

import { portQueueLengthDefault, proxyQueueBytesMax } from '../limits.js';
import type { QueuedMessage } from './message.js';

/** A task, as the kernel numbers it. Each task has at most one IPC space. */
export type TaskId = number;

/**
 * Global identity of a port or a port set: `${nodeId}.${serial}`, the serial from one counter in
 * the IPC state. Never reused, so an id that is no longer in the state denotes a dead port.
 */
export type PortId = string;

/** A name in one task's IPC space (u32, never 0). */
export type PortName = number;

/** MACH_PORT_NULL: no right. */
export const portNameNull = 0;
/**
 * MACH_PORT_DEAD: what a receiver gets in place of a name when a right carried in a message points
 * at a port that died while the message was queued. It denotes no entry: nothing to deallocate.
 */
export const portNameDead = 0xffff_ffff;

/** The kernel object behind a kernel port, so that the kernel can map a send right to it. */
export interface KObject {
  type: 'memory_object';
  id: number;
}

/** Where the single receive right of a live port is. */
export type PortReceiver =
  /** In a task's space, under `name`. */
  | { kind: 'space'; task: TaskId; name: PortName }
  /** Inside a message queued on port `in` (the receive right travels with its queue). */
  | { kind: 'transit'; in: PortId }
  /** Held by the kernel: a kernel port (its `kobject` is set). */
  | { kind: 'kernel' }
  /**
   * On another node (NORMA IPC): this record is a proxy. Its queue holds the messages sent to the
   * port from this node that the port's node has not acknowledged yet; its counts are the rights
   * held on this node. The network layer knows where the port lives.
   */
  | { kind: 'remote' };

/** Rights to a port homed here that one other node holds (see PortState.remote). */
export interface RemoteHolding {
  /**
   * Send rights shipped to the node minus those it released. Negative for a while when a release
   * overtakes the acquire of a right that a third node passed on (see Ipc.remoteAcquire).
   */
  send: number;
  /** Send-once rights the node holds (each is used or destroyed exactly once). */
  sendOnce: number;
}

export interface PortState {
  id: PortId;
  receiver: PortReceiver;
  /** Set for kernel ports only. */
  kobject: KObject | null;
  /** The port set the receive right is a member of (only while it is in a space). */
  set: PortId | null;
  /** FIFO of messages; notifications may push it past `qlimit`. */
  queue: QueuedMessage[];
  /** Senders through a send right block (WOULD_BLOCK) while `queue.length >= qlimit`. */
  qlimit: number;
  /**
   * Send rights in existence: one per space entry holding send rights (whatever its user
   * references), one per send right in a queued message (destination, reply or descriptor), plus
   * `kernelSrights`. No-senders fires when it drops to zero.
   */
  srights: number;
  /** Of `srights`, those the kernel holds outside any space (the name service's rights). */
  kernelSrights: number;
  /**
   * Send-once rights in existence: space entries, rights in queued messages, and the rights held
   * by notification requests (dead-name requests on entries, no-senders requests on ports).
   */
  sorights: number;
  /** Make-send count (the body of a no-senders notification); reset when the receive right moves. */
  mscount: number;
  /** The no-senders request: a send-once right to this notify port, or none. */
  nsRequest: PortId | null;
  /**
   * Rights other nodes hold to this port, by node incarnation (absent until a right first leaves
   * the node). No-senders waits until every holding is zero as well as `srights`.
   */
  remote?: Record<string, RemoteHolding>;
}

export function newPort(id: PortId, receiver: PortReceiver, kobject: KObject | null): PortState {
  return {
    id,
    receiver,
    kobject,
    set: null,
    queue: [],
    qlimit: portQueueLengthDefault,
    srights: 0,
    kernelSrights: 0,
    sorights: 0,
    mscount: 0,
    nsRequest: null,
  };
}

/**
 * True when a sender through a send right must wait (send-once senders never wait, as in Mach). A
 * proxy is also full at proxyQueueBytesMax of unacknowledged bytes (its queue is short: adding up
 * its messages costs less than keeping a sum right through every path that changes the queue).
 */
export function portQueueFull(port: PortState): boolean {
  if (port.queue.length >= port.qlimit) return true;
  if (port.receiver.kind !== 'remote') return false;
  let bytes = 0;
  for (const message of port.queue) {
    bytes += message.body.length;
    for (const descriptor of message.descriptors)
      if (descriptor.type === 'ool') bytes += descriptor.bytes.length;
  }
  return bytes >= proxyQueueBytesMax;
}
