/**
 * Notification messages (mach/notify.h). They are ordinary messages, sent through the send-once
 * right that the notification request holds, so the notify port's owner receives them like any
 * other message; they carry no rights and ignore the queue limit (as in Mach: the kernel cannot
 * block, and a send-once right always has room).
 *
 * Bodies are 4-byte little-endian u32 values:
 *   DEAD_NAME     the dead name in the requester's space (which got one extra user reference for
 *                 the notification, as in Mach, so the name cannot be reused before it is handled)
 *   NO_SENDERS    the port's make-send count
 *   PORT_DELETED  the name whose dead-name request was cancelled because its rights went away
 *   SEND_ONCE     empty body
 */

import type { NotifyId } from '../abi/syscalls.js';
import type { QueuedMessage } from './message.js';
import type { PortId } from './port.js';

export type NotificationId = (typeof NotifyId)[keyof typeof NotifyId];

/** A u32 body, little-endian. */
export function notificationBody(value: number): Uint8Array {
  const body = new Uint8Array(4);
  new DataView(body.buffer).setUint32(0, value >>> 0, true);
  return body;
}

/** Reads a notification's u32 body (for tests and tasks written in TypeScript). */
export function notificationValue(body: Uint8Array): number {
  if (body.length < 4) throw new RangeError('notification body shorter than 4 bytes');
  return new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0, true);
}

/** The message for a notification through the send-once right `to`. */
export function notificationMessage(to: PortId, id: NotificationId, body: Uint8Array): QueuedMessage {
  return { dest: { kind: 'send-once', port: to }, reply: null, id, descriptors: [], body };
}
