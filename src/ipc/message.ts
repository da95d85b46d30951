/**
 * Messages in their three shapes: as the kernel hands one to `send` (names in the sender's space),
 * as it waits in a queue (rights held by the message, names translated away), and as `receive`
 * returns it (names in the receiver's space). Also the size a message takes in a receive buffer,
 * which the kernel uses to lay it out and the core uses to answer RCV_TOO_LARGE.
 */

import { Descriptor, type DispositionCode, MessageHeader } from '../abi/syscalls.js';
import type { PortName } from './port.js';
import type { TransitRight } from './right.js';

/** A descriptor as the sender wrote it. `disposition` is the raw value: `send` validates it. */
export type OutgoingDescriptor =
  | { type: 'port'; name: PortName; disposition: number }
  | { type: 'ool'; bytes: Uint8Array };

/** A message to send, names in the sender's space. Dispositions are raw values; `send` validates. */
export interface OutgoingMessage {
  destName: PortName;
  /** COPY_SEND, MOVE_SEND, MOVE_SEND_ONCE, MAKE_SEND or MAKE_SEND_ONCE. */
  destDisposition: number;
  /** 0 for no reply right. */
  replyName: PortName;
  /** NONE when replyName is 0, otherwise one of the destination dispositions. */
  replyDisposition: number;
  id: number;
  descriptors: readonly OutgoingDescriptor[];
  body: Uint8Array;
}

/** A descriptor in a queued message. */
export type QueuedDescriptor = { type: 'port'; right: TransitRight } | { type: 'ool'; bytes: Uint8Array };

/** A message in a port's queue. It holds its rights: they count on their ports until copied out. */
export interface QueuedMessage {
  /** The right the message was sent through (send or send-once), released or consumed on receive. */
  dest: TransitRight;
  reply: TransitRight | null;
  id: number;
  descriptors: QueuedDescriptor[];
  /** Owned by the message (copied at send). */
  body: Uint8Array;
}

/** A descriptor as the receiver sees it. `disposition` is MOVE_RECEIVE, MOVE_SEND or MOVE_SEND_ONCE. */
export type ReceivedDescriptor =
  | { type: 'port'; name: PortName; disposition: DispositionCode }
  | { type: 'ool'; bytes: Uint8Array };

/** A received message, names in the receiver's space. */
export interface ReceivedMessage {
  /** The reply right's name, 0 for none, or portNameDead when its port died in transit. */
  replyName: PortName;
  /** MOVE_SEND, MOVE_SEND_ONCE, or NONE when there is no reply right. */
  replyDisposition: DispositionCode;
  /** The name the message arrived on (the member port's name when received through a set). */
  localName: PortName;
  id: number;
  descriptors: ReceivedDescriptor[];
  body: Uint8Array;
}

/** What the size of a message depends on; every message shape above has it. */
export interface MessageShape {
  readonly descriptors: readonly ({ type: 'port' } | { type: 'ool'; bytes: Uint8Array })[];
  readonly body: Uint8Array;
}

/** Where each part of a received message goes in the receive buffer, in bytes from its start. */
export interface MessageLayout {
  /** Header, descriptor count and descriptors, inline data: the header's `size` field. */
  inlineBytes: number;
  /** Offset of each out-of-line region, in descriptor order (only OOL descriptors). */
  oolOffsets: number[];
  /** Bytes the whole message needs in the receive buffer. */
  totalBytes: number;
}

const oolAlignment = 8;

function roundUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/**
 * The layout of a received message: the 24-byte header; when there are descriptors, a u32 count and
 * 16 bytes per descriptor; the inline body; then each out-of-line region, each starting 8-byte
 * aligned (so the first starts at the inline end rounded up to 8) and padded to a multiple of 8.
 */
export function messageLayout(msg: MessageShape): MessageLayout {
  const count = msg.descriptors.length;
  const inlineBytes =
    MessageHeader.bytes +
    (count > 0 ? Descriptor.countBytes + Descriptor.bytes * count : 0) +
    msg.body.length;
  const oolOffsets: number[] = [];
  let cursor = inlineBytes;
  for (const descriptor of msg.descriptors) {
    if (descriptor.type !== 'ool') continue;
    cursor = roundUp(cursor, oolAlignment);
    oolOffsets.push(cursor);
    cursor += roundUp(descriptor.bytes.length, oolAlignment);
  }
  return { inlineBytes, oolOffsets, totalBytes: cursor };
}

/**
 * Bytes a message needs in a receive buffer (see messageLayout): header 24 + (descriptors ? 4 + 16n
 * : 0) + body + each OOL region padded to 8, plus up to 7 bytes that align the first OOL region when
 * the inline part does not end on an 8-byte boundary. Also the measure `send` checks against
 * messageSizeMax.
 */
export function receivedMessageSize(msg: MessageShape): number {
  return messageLayout(msg).totalBytes;
}
