/**
 * Moving messages between a task's memory and the IPC core: parsing the Mach-style layout defined
 * in src/abi/syscalls.ts on send, and laying a received message out in the receiver's buffer.
 * Everything is checked against the task's visible memory; nothing is trusted from the guest.
 */
import { Descriptor, Disposition, KernReturn, MessageHeader } from '../abi/syscalls.js';
import { messageLayout, type OutgoingMessage, type ReceivedMessage } from '../ipc/index.js';
import { messageDescriptorsMax, messageSizeMax } from '../limits.js';
import type { GuestMemory } from '../runtime/guest-memory.js';

export type ParseResult = { kr: 0; message: OutgoingMessage } | { kr: number };

const validDestination = new Set<number>([
  Disposition.COPY_SEND,
  Disposition.MOVE_SEND,
  Disposition.MOVE_SEND_ONCE,
  Disposition.MAKE_SEND,
  Disposition.MAKE_SEND_ONCE,
]);
const validReply = new Set<number>([Disposition.NONE, ...validDestination]);

/**
 * Reads the message at [pointer, pointer + size) of the sender's memory. The body and out-of-line
 * regions are views into guest memory, valid until the guest runs again: the IPC core copies them.
 */
export function parseOutgoing(memory: GuestMemory, pointer: number, size: number): ParseResult {
  if (size > messageSizeMax) return { kr: KernReturn.SEND_TOO_LARGE };
  if (!memory.inBounds(pointer, size)) return { kr: KernReturn.INVALID_ADDRESS };
  if (size < MessageHeader.bytes || size % 4 !== 0) return { kr: KernReturn.SEND_INVALID_DATA };
  const bits = memory.u32(pointer + MessageHeader.bitsOffset);
  if (memory.u32(pointer + MessageHeader.sizeOffset) !== size) return { kr: KernReturn.SEND_INVALID_DATA };
  const destDisposition = bits & MessageHeader.remoteDispositionMask;
  const replyDisposition =
    (bits & MessageHeader.localDispositionMask) >>> MessageHeader.localDispositionShift;
  const unknownBits = bits & ~(MessageHeader.complexBit | MessageHeader.localDispositionMask | 0xff);
  if (unknownBits !== 0 || !validDestination.has(destDisposition))
    return { kr: KernReturn.SEND_INVALID_HEADER };
  if (!validReply.has(replyDisposition)) return { kr: KernReturn.SEND_INVALID_HEADER };
  const replyName = memory.u32(pointer + MessageHeader.localPortOffset);
  if ((replyName === 0) !== (replyDisposition === Disposition.NONE))
    return { kr: KernReturn.SEND_INVALID_REPLY };
  if (memory.u32(pointer + MessageHeader.reservedOffset) !== 0) return { kr: KernReturn.SEND_INVALID_HEADER };

  let offset = MessageHeader.bytes;
  const descriptors: OutgoingMessage['descriptors'][number][] = [];
  let outOfLineBytes = 0;
  if (bits & MessageHeader.complexBit) {
    if (size < offset + Descriptor.countBytes) return { kr: KernReturn.SEND_INVALID_DATA };
    const count = memory.u32(pointer + offset);
    offset += Descriptor.countBytes;
    if (count > messageDescriptorsMax || size < offset + count * Descriptor.bytes) {
      return { kr: KernReturn.SEND_INVALID_DATA };
    }
    for (let i = 0; i < count; i++, offset += Descriptor.bytes) {
      const at = pointer + offset;
      const type = memory.u32(at);
      const a = memory.u32(at + 4);
      const b = memory.u32(at + 8);
      if (type === Descriptor.typePort) {
        descriptors.push({ type: 'port', name: a, disposition: b as OutgoingMessage['destDisposition'] });
      } else if (type === Descriptor.typeOutOfLine) {
        outOfLineBytes += b;
        if (size + outOfLineBytes > messageSizeMax) return { kr: KernReturn.SEND_TOO_LARGE };
        if (!memory.inBounds(a, b)) return { kr: KernReturn.SEND_INVALID_MEMORY };
        descriptors.push({ type: 'ool', bytes: memory.bytes(a, b) });
      } else {
        return { kr: KernReturn.SEND_INVALID_DATA };
      }
    }
  }
  return {
    kr: 0,
    message: {
      destName: memory.u32(pointer + MessageHeader.remotePortOffset),
      destDisposition: destDisposition as OutgoingMessage['destDisposition'],
      replyName,
      replyDisposition: replyDisposition as OutgoingMessage['replyDisposition'],
      id: memory.view().getInt32(pointer + MessageHeader.idOffset, true),
      descriptors,
      body: memory.bytes(pointer + offset, size - offset),
    },
  };
}

/**
 * Writes a received message into the receiver's buffer (which the caller checked is in bounds and
 * at least layoutSize bytes). Out-of-line regions follow the inline part, 8-byte aligned, and their
 * descriptors point at them.
 */
export function writeReceived(memory: GuestMemory, pointer: number, message: ReceivedMessage): void {
  const view = memory.view();
  const layout = messageLayout(message);
  const complex = message.descriptors.length > 0;
  const bodyOffset = layout.inlineBytes - message.body.length;
  const bits =
    (message.replyDisposition << MessageHeader.localDispositionShift) |
    (complex ? MessageHeader.complexBit : 0);
  view.setUint32(pointer + MessageHeader.bitsOffset, bits >>> 0, true);
  view.setUint32(pointer + MessageHeader.sizeOffset, layout.inlineBytes, true);
  view.setUint32(pointer + MessageHeader.remotePortOffset, message.replyName, true);
  view.setUint32(pointer + MessageHeader.localPortOffset, message.localName, true);
  view.setUint32(pointer + MessageHeader.reservedOffset, 0, true);
  view.setInt32(pointer + MessageHeader.idOffset, message.id, true);
  memory.bytes(pointer + bodyOffset, message.body.length).set(message.body);
  if (!complex) return;
  view.setUint32(pointer + MessageHeader.bytes, message.descriptors.length, true);
  let outOfLineIndex = 0;
  message.descriptors.forEach((descriptor, i) => {
    const at = pointer + MessageHeader.bytes + Descriptor.countBytes + i * Descriptor.bytes;
    if (descriptor.type === 'port') {
      view.setUint32(at, Descriptor.typePort, true);
      view.setUint32(at + 4, descriptor.name, true);
      view.setUint32(at + 8, descriptor.disposition, true);
    } else {
      const offset = layout.oolOffsets[outOfLineIndex++]!;
      view.setUint32(at, Descriptor.typeOutOfLine, true);
      view.setUint32(at + 4, pointer + offset, true);
      view.setUint32(at + 8, descriptor.bytes.length, true);
      memory.bytes(pointer + offset, descriptor.bytes.length).set(descriptor.bytes);
    }
    view.setUint32(at + 12, 0, true);
  });
}
