/**
 * Events: what the IPC core tells the kernel so it can wake blocked threads. The core never blocks
 * anyone; it answers WOULD_BLOCK and, later, reports the change that may let the call succeed.
 * Events are plain data kept in the IPC state until `takeEvents` drains them.
 *
 * How the kernel matches them (`waitId` = `portIdOf(task, name)` taken when the thread blocked):
 *   receive blocked on (task, name):  message-queued with portId === waitId or setId === waitId;
 *                                     port-died or receive-moved with portId === waitId.
 *   send blocked on destination port: queue-space or port-died with portId === that port.
 * A woken thread simply retries its call. A retry after port-died of the waited port or set must
 * be answered RCV_PORT_DIED (receive) by the kernel: the core no longer knows the name.
 */

import type { KObject, PortId, PortName, TaskId } from './port.js';

export type IpcEvent =
  /**
   * A message was queued on `portId`, or a port with queued messages joined a set. `setId` is the
   * set the port is a member of at that moment (receivers on the set may proceed), or null.
   */
  | { kind: 'message-queued'; portId: PortId; setId: PortId | null }
  /** The queue of `portId` went from full to not full (receive, or a larger qlimit). */
  | { kind: 'queue-space'; portId: PortId }
  /** The port or port set `portId` was destroyed (its queue with it). */
  | { kind: 'port-died'; portId: PortId }
  /**
   * The receive right of `portId` left `task`'s space (moved into a message), so `name` no longer
   * denotes it there; receivers blocked on that name must retry (and get RCV_INVALID_NAME).
   */
  | { kind: 'receive-moved'; portId: PortId; task: TaskId; name: PortName }
  /** The last send right to the kernel port `portId` went away; the kernel may destroy it. */
  | { kind: 'kernel-no-senders'; portId: PortId; kobject: KObject }
  // NORMA IPC: what the network layer must tell other nodes (see the remote section of ipc.ts).
  /**
   * A right to the remote port `portId` left this node inside a message delivered to node `to`:
   * the port's node must count it for `to` (before this node's own release can reach it).
   */
  | { kind: 'right-exported'; portId: PortId; right: 'send' | 'send-once'; to: string }
  /** The proxy `portId` holds no right and no message any more: release it (Ipc.dropProxy). */
  | { kind: 'proxy-unused'; portId: PortId }
  /** The port `portId`, homed here, died while the nodes `nodes` held rights to it: tell them. */
  | { kind: 'remote-holders-orphaned'; portId: PortId; nodes: string[] };
