/**
 * Rights, as they exist in a space (entries) and in transit (inside queued messages), and the
 * dispositions that turn the first into the second. Mach's vocabulary: a send right carries user
 * references in a space; a send-once right has its own name and is consumed by one message; a dead
 * name is what send and send-once names become when their port dies.
 */

import { Disposition, type DispositionCode, PortType } from '../abi/syscalls.js';
import type { PortId } from './port.js';

/** One name in a space (Mach's `ipc_entry`). */
export interface EntryState {
  /** The port or port set. For a dead name: the id of the port that died (kept for diagnostics). */
  object: PortId;
  /**
   * PortType bits. The combinations that exist: RECEIVE, SEND, RECEIVE|SEND (one name per port per
   * space for these), SEND_ONCE (each its own name), DEAD_NAME, PORT_SET.
   */
  type: number;
  /** User references of the send right, or of the dead name; 1 for send-once; 0 for receive only. */
  urefs: number;
  /** Dead-name request: a send-once right to this notify port, or none. */
  request: PortId | null;
}

/** The bits under which `byObject` in a space indexes an entry (one name per port per space). */
export const indexedTypes = PortType.RECEIVE | PortType.SEND | PortType.PORT_SET;

/** The types a space entry can have (any other combination of bits is corrupt state). */
export const validEntryTypes: readonly number[] = [
  PortType.RECEIVE,
  PortType.SEND,
  PortType.RECEIVE | PortType.SEND,
  PortType.SEND_ONCE,
  PortType.DEAD_NAME,
  PortType.PORT_SET,
];

/** What a right in a queued message is. */
export type TransitRightKind = 'send' | 'send-once' | 'receive';

/** A right held by a message in transit. Its port may die meanwhile: it is then a dead right. */
export interface TransitRight {
  kind: TransitRightKind;
  port: PortId;
}

/** Dispositions valid for a destination or reply right. */
const sendDispositions: readonly number[] = [
  Disposition.MOVE_SEND,
  Disposition.COPY_SEND,
  Disposition.MAKE_SEND,
  Disposition.MOVE_SEND_ONCE,
  Disposition.MAKE_SEND_ONCE,
];

/** True when `disposition` produces a send or send-once right (valid for destination and reply). */
export function isSendDisposition(disposition: number): disposition is DispositionCode {
  return sendDispositions.includes(disposition);
}

/** True when `disposition` is valid for a port descriptor (any send disposition, or MOVE_RECEIVE). */
export function isPortDisposition(disposition: number): disposition is DispositionCode {
  return disposition === Disposition.MOVE_RECEIVE || isSendDisposition(disposition);
}

/** The right a message holds after copying in a right with `disposition`. */
export function transitKindOf(disposition: DispositionCode): TransitRightKind {
  switch (disposition) {
    case Disposition.MOVE_RECEIVE:
      return 'receive';
    case Disposition.MOVE_SEND_ONCE:
    case Disposition.MAKE_SEND_ONCE:
      return 'send-once';
    default:
      return 'send';
  }
}

/** The disposition a receiver sees for a right: what it is, not how it was produced (MOVE_*). */
export function receivedDispositionOf(kind: TransitRightKind): DispositionCode {
  switch (kind) {
    case 'receive':
      return Disposition.MOVE_RECEIVE;
    case 'send-once':
      return Disposition.MOVE_SEND_ONCE;
    default:
      return Disposition.MOVE_SEND;
  }
}
