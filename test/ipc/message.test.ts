import { strict as assert } from 'node:assert';
import { Disposition, KernReturn, PortRight, PortType } from '../../src/abi/syscalls.js';
import {
  type Ipc,
  messageLayout,
  portNameDead,
  receivedMessageSize,
  receiveWouldBlock,
} from '../../src/ipc/index.js';
import { messageDescriptorsMax, messageSizeMax } from '../../src/limits.js';
import {
  A,
  assertKr,
  audit,
  B,
  C,
  message,
  port,
  portDescriptor,
  receiveOk,
  sendOk,
  setup,
  transferSend,
} from './helpers.js';

/** A fresh port in B with a send right in A: A talks to B through `dest`, B receives on `inbox`. */
function channel(ipc: Ipc): { inbox: number; dest: number } {
  const inbox = port(ipc, B);
  assertKr(ipc.portInsertRight(B, inbox, Disposition.MAKE_SEND), KernReturn.SUCCESS);
  const dest = transferSend(ipc, B, inbox, A);
  assertKr(ipc.portDeallocate(B, inbox), KernReturn.SUCCESS);
  return { inbox, dest };
}

function snapshot(ipc: Ipc): unknown {
  const { events: _events, ...rest } = ipc.state;
  return structuredClone(rest);
}

describe('ipc: send and receive', () => {
  it('delivers id, body and OOL bytes, copied at send time', () => {
    const ipc = setup();
    const { inbox, dest } = channel(ipc);
    const body = new Uint8Array([1, 2, 3]);
    const ool = new Uint8Array([9, 8, 7, 6, 5]);
    sendOk(
      ipc,
      A,
      message(dest, Disposition.COPY_SEND, { id: 42, body, descriptors: [{ type: 'ool', bytes: ool }] }),
    );
    body[0] = 99;
    ool[0] = 99;
    assert.equal(ipc.hasMessage(B, inbox), true);
    const received = receiveOk(ipc, B, inbox);
    assert.equal(received.id, 42);
    assert.equal(received.localName, inbox);
    assert.deepEqual([...received.body], [1, 2, 3]);
    assert.deepEqual(received.descriptors, [{ type: 'ool', bytes: new Uint8Array([9, 8, 7, 6, 5]) }]);
    assert.equal(received.replyName, 0);
    assert.equal(received.replyDisposition, Disposition.NONE);
    assert.equal(ipc.hasMessage(B, inbox), false);
    assertKr(ipc.receive(B, inbox, 1024).kr, receiveWouldBlock);
    audit(ipc);
  });

  it('keeps FIFO order', () => {
    const ipc = setup();
    const { inbox, dest } = channel(ipc);
    for (let id = 1; id <= 4; id++) sendOk(ipc, A, message(dest, Disposition.COPY_SEND, { id }));
    assert.deepEqual(
      [1, 2, 3, 4].map(() => receiveOk(ipc, B, inbox).id),
      [1, 2, 3, 4],
    );
  });

  it('COPY_SEND keeps the sender references; MOVE_SEND takes one, the last one frees the name', () => {
    const ipc = setup();
    const { inbox, dest } = channel(ipc);
    assertKr(ipc.portModRefs(A, dest, PortRight.SEND, 1), KernReturn.SUCCESS);
    sendOk(ipc, A, message(dest, Disposition.COPY_SEND));
    assert.equal(ipc.portGetRefs(A, dest, PortRight.SEND).refs, 2);
    sendOk(ipc, A, message(dest, Disposition.MOVE_SEND));
    assert.equal(ipc.portGetRefs(A, dest, PortRight.SEND).refs, 1);
    sendOk(ipc, A, message(dest, Disposition.MOVE_SEND));
    assertKr(ipc.portType(A, dest).kr, KernReturn.INVALID_NAME);
    assertKr(ipc.send(A, message(dest, Disposition.COPY_SEND)), KernReturn.SEND_INVALID_DEST);
    for (let i = 0; i < 3; i++) receiveOk(ipc, B, inbox);
    audit(ipc);
  });

  it('MAKE_SEND and MAKE_SEND_ONCE need the receive right; the receiver gets MOVE_SEND / MOVE_SEND_ONCE', () => {
    const ipc = setup();
    const { inbox, dest } = channel(ipc);
    const reply = port(ipc, A);
    sendOk(
      ipc,
      A,
      message(dest, Disposition.COPY_SEND, {
        replyName: reply,
        replyDisposition: Disposition.MAKE_SEND_ONCE,
        descriptors: [portDescriptor(reply, Disposition.MAKE_SEND)],
      }),
    );
    const received = receiveOk(ipc, B, inbox);
    assert.equal(received.replyDisposition, Disposition.MOVE_SEND_ONCE);
    assert.equal(ipc.portType(B, received.replyName).type, PortType.SEND_ONCE);
    const descriptor = received.descriptors[0];
    assert.ok(descriptor?.type === 'port');
    assert.equal(descriptor.disposition, Disposition.MOVE_SEND);
    assert.equal(ipc.portType(B, descriptor.name).type, PortType.SEND);
    assert.notEqual(descriptor.name, received.replyName, 'send-once rights get their own names');
    assertKr(ipc.send(B, message(descriptor.name, Disposition.MAKE_SEND)), KernReturn.SEND_INVALID_DEST);
    audit(ipc);
  });

  it('a send-once right is consumed by the send (the reply pattern)', () => {
    const ipc = setup();
    const { inbox, dest } = channel(ipc);
    const reply = port(ipc, A);
    sendOk(
      ipc,
      A,
      message(dest, Disposition.COPY_SEND, {
        replyName: reply,
        replyDisposition: Disposition.MAKE_SEND_ONCE,
      }),
    );
    const request = receiveOk(ipc, B, inbox);
    sendOk(ipc, B, message(request.replyName, Disposition.MOVE_SEND_ONCE, { id: 7 }));
    assertKr(ipc.portType(B, request.replyName).kr, KernReturn.INVALID_NAME);
    assertKr(
      ipc.send(B, message(request.replyName, Disposition.MOVE_SEND_ONCE)),
      KernReturn.SEND_INVALID_DEST,
    );
    const answer = receiveOk(ipc, A, reply);
    assert.equal(answer.id, 7);
    assert.equal(answer.localName, reply);
    assert.equal(ipc.state.ports[ipc.portIdOf(A, reply)!]?.sorights, 0, 'consumed on receive');
    audit(ipc);
  });

  it('MOVE_RECEIVE moves the receive right with its queue; the old name becomes invalid', () => {
    const ipc = setup();
    const { inbox, dest } = channel(ipc);
    const moving = port(ipc, A, 1);
    const movingId = ipc.portIdOf(A, moving)!;
    sendOk(ipc, A, message(moving, Disposition.COPY_SEND, { id: 1 }));
    ipc.takeEvents();
    sendOk(
      ipc,
      A,
      message(dest, Disposition.COPY_SEND, {
        descriptors: [portDescriptor(moving, Disposition.MOVE_RECEIVE)],
      }),
    );
    const moved = ipc.takeEvents().find((e) => e.kind === 'receive-moved');
    assert.deepEqual(moved, { kind: 'receive-moved', portId: movingId, task: A, name: moving });
    assert.equal(ipc.portType(A, moving).type, PortType.SEND, 'A keeps its send right under the name');
    assertKr(ipc.receive(A, moving, 1024).kr, KernReturn.RCV_INVALID_NAME);
    // While the receive right is in transit, messages to the port queue normally.
    sendOk(ipc, A, message(moving, Disposition.COPY_SEND, { id: 2 }));
    const carrier = receiveOk(ipc, B, inbox);
    const descriptor = carrier.descriptors[0];
    assert.ok(descriptor?.type === 'port');
    assert.equal(descriptor.disposition, Disposition.MOVE_RECEIVE);
    assert.equal(ipc.portType(B, descriptor.name).type, PortType.RECEIVE);
    assert.equal(ipc.portIdOf(B, descriptor.name), movingId);
    assert.deepEqual([receiveOk(ipc, B, descriptor.name).id, receiveOk(ipc, B, descriptor.name).id], [1, 2]);
    audit(ipc);
  });

  it('a receive right arriving where the space holds send rights joins their name', () => {
    const ipc = setup();
    const { inbox, dest } = channel(ipc);
    const moving = port(ipc, A, 1);
    const bSend = transferSend(ipc, A, moving, B);
    sendOk(
      ipc,
      A,
      message(dest, Disposition.COPY_SEND, {
        descriptors: [portDescriptor(moving, Disposition.MOVE_RECEIVE)],
      }),
    );
    const descriptor = receiveOk(ipc, B, inbox).descriptors[0];
    assert.ok(descriptor?.type === 'port');
    assert.equal(descriptor.name, bSend);
    assert.equal(ipc.portType(B, bSend).type, PortType.RECEIVE | PortType.SEND);
    audit(ipc);
  });

  it('validates everything before moving anything', () => {
    const ipc = setup();
    const { dest } = channel(ipc);
    const mine = port(ipc, A, 1);
    const sendOnlyToC = transferSend(ipc, C, port(ipc, C, 1), A);
    const set = ipc.portAllocate(A, 'port_set').name;
    ipc.takeEvents();
    const before = snapshot(ipc);
    const cases: [string, Parameters<Ipc['send']>[1], number][] = [
      ['dest disposition', message(dest, Disposition.MOVE_RECEIVE), KernReturn.SEND_INVALID_HEADER],
      ['dest disposition value', message(dest, 99), KernReturn.SEND_INVALID_HEADER],
      ['make-send from a send right', message(dest, Disposition.MAKE_SEND), KernReturn.SEND_INVALID_DEST],
      [
        'send-once from a send right',
        message(dest, Disposition.MOVE_SEND_ONCE),
        KernReturn.SEND_INVALID_DEST,
      ],
      ['port set as destination', message(set, Disposition.COPY_SEND), KernReturn.SEND_INVALID_DEST],
      [
        'reply disposition without name',
        message(dest, Disposition.COPY_SEND, { replyDisposition: Disposition.MAKE_SEND }),
        KernReturn.SEND_INVALID_REPLY,
      ],
      [
        'reply disposition invalid',
        message(dest, Disposition.COPY_SEND, { replyName: mine, replyDisposition: Disposition.MOVE_RECEIVE }),
        KernReturn.SEND_INVALID_REPLY,
      ],
      [
        'reply right missing',
        message(dest, Disposition.MOVE_SEND, {
          replyName: sendOnlyToC,
          replyDisposition: Disposition.MAKE_SEND,
        }),
        KernReturn.SEND_INVALID_REPLY,
      ],
      [
        'descriptor disposition',
        message(dest, Disposition.MOVE_SEND, { descriptors: [portDescriptor(mine, Disposition.NONE)] }),
        KernReturn.SEND_INVALID_RIGHT,
      ],
      [
        'descriptor right missing',
        message(dest, Disposition.MOVE_SEND, {
          replyName: mine,
          replyDisposition: Disposition.MAKE_SEND_ONCE,
          descriptors: [
            portDescriptor(mine, Disposition.MOVE_RECEIVE),
            portDescriptor(sendOnlyToC, Disposition.MOVE_RECEIVE),
          ],
        }),
        KernReturn.SEND_INVALID_RIGHT,
      ],
      [
        'two moves of one reference',
        message(dest, Disposition.MOVE_SEND, { descriptors: [portDescriptor(dest, Disposition.MOVE_SEND)] }),
        KernReturn.SEND_INVALID_RIGHT,
      ],
      [
        'receive right moved twice',
        message(dest, Disposition.MOVE_SEND, {
          descriptors: [
            portDescriptor(mine, Disposition.MOVE_RECEIVE),
            portDescriptor(mine, Disposition.MOVE_RECEIVE),
          ],
        }),
        KernReturn.SEND_INVALID_RIGHT,
      ],
      [
        'make-send after the receive right moved',
        message(dest, Disposition.MOVE_SEND, {
          descriptors: [
            portDescriptor(mine, Disposition.MOVE_RECEIVE),
            portDescriptor(mine, Disposition.MAKE_SEND),
          ],
        }),
        KernReturn.SEND_INVALID_RIGHT,
      ],
      [
        'unknown descriptor type',
        message(dest, Disposition.MOVE_SEND, { descriptors: [{ type: 'bogus' } as never] }),
        KernReturn.SEND_INVALID_DATA,
      ],
      [
        'too many descriptors',
        message(dest, Disposition.MOVE_SEND, {
          descriptors: Array.from({ length: messageDescriptorsMax + 1 }, () =>
            portDescriptor(mine, Disposition.MAKE_SEND),
          ),
        }),
        KernReturn.SEND_TOO_LARGE,
      ],
      [
        'too large',
        message(dest, Disposition.MOVE_SEND, { body: new Uint8Array(messageSizeMax - 24 + 1) }),
        KernReturn.SEND_TOO_LARGE,
      ],
    ];
    for (const [what, msg, expected] of cases) {
      assertKr(ipc.send(A, msg), expected, what);
      assert.deepEqual(snapshot(ipc), before, `${what}: no side effect`);
    }
    assert.deepEqual(ipc.takeEvents(), []);
  });

  it('accepts exactly messageSizeMax and messageDescriptorsMax', () => {
    const ipc = setup();
    const { inbox, dest } = channel(ipc);
    ipc.portSetQlimit(B, inbox, 2);
    const mine = port(ipc, A);
    sendOk(ipc, A, message(dest, Disposition.COPY_SEND, { body: new Uint8Array(messageSizeMax - 24) }));
    sendOk(
      ipc,
      A,
      message(dest, Disposition.COPY_SEND, {
        descriptors: Array.from({ length: messageDescriptorsMax }, () =>
          portDescriptor(mine, Disposition.MAKE_SEND),
        ),
      }),
    );
    assert.equal(receiveOk(ipc, B, inbox, messageSizeMax).body.length, messageSizeMax - 24);
    const many = receiveOk(ipc, B, inbox);
    assert.equal(many.descriptors.length, messageDescriptorsMax);
    const names = new Set(many.descriptors.map((d) => (d.type === 'port' ? d.name : 0)));
    assert.equal(names.size, 1);
    assert.equal(ipc.portGetRefs(B, [...names][0]!, PortRight.SEND).refs, messageDescriptorsMax);
    audit(ipc);
  });

  it('answers RCV_TOO_LARGE with the size needed and keeps the message', () => {
    const ipc = setup();
    const { inbox, dest } = channel(ipc);
    const msg = message(dest, Disposition.COPY_SEND, {
      body: new Uint8Array(5),
      descriptors: [{ type: 'ool', bytes: new Uint8Array(3) }],
    });
    sendOk(ipc, A, msg);
    const size = receivedMessageSize(msg);
    const result = ipc.receive(B, inbox, size - 1);
    assert.deepEqual(result, { kr: KernReturn.RCV_TOO_LARGE, size });
    assert.equal(ipc.hasMessage(B, inbox), true);
    assert.equal(receiveOk(ipc, B, inbox, size).body.length, 5);
  });

  it('receivedMessageSize: header, descriptor block, body, 8-aligned OOL regions', () => {
    const body = (n: number) => new Uint8Array(n);
    assert.equal(receivedMessageSize({ descriptors: [], body: body(0) }), 24);
    assert.equal(receivedMessageSize({ descriptors: [], body: body(10) }), 34);
    assert.equal(receivedMessageSize({ descriptors: [{ type: 'port' }], body: body(4) }), 24 + 4 + 16 + 4);
    // 24 + 4 + 32 = 60 inline; OOL regions at 64 (5 -> 8 bytes) and 72 (16 bytes).
    const msg = {
      descriptors: [
        { type: 'ool' as const, bytes: body(5) },
        { type: 'ool' as const, bytes: body(16) },
      ],
      body: body(0),
    };
    assert.deepEqual(messageLayout(msg), { inlineBytes: 60, oolOffsets: [64, 72], totalBytes: 88 });
    assert.equal(receivedMessageSize(msg), 88);
  });

  it('sends to a port held by the sender itself, and receives on a name with send and receive rights', () => {
    const ipc = setup();
    const self = port(ipc, A, 1);
    sendOk(ipc, A, message(self, Disposition.MOVE_SEND, { id: 3 }));
    assert.equal(ipc.portType(A, self).type, PortType.RECEIVE);
    assert.equal(receiveOk(ipc, A, self).id, 3);
    audit(ipc);
  });

  it('rights to ports that die in transit come out as portNameDead', () => {
    const ipc = setup();
    const { inbox, dest } = channel(ipc);
    const doomed = port(ipc, A);
    sendOk(
      ipc,
      A,
      message(dest, Disposition.COPY_SEND, {
        replyName: doomed,
        replyDisposition: Disposition.MAKE_SEND_ONCE,
        descriptors: [portDescriptor(doomed, Disposition.MAKE_SEND)],
      }),
    );
    assertKr(ipc.portDestroy(A, doomed), KernReturn.SUCCESS);
    const received = receiveOk(ipc, B, inbox);
    assert.equal(received.replyName, portNameDead);
    assert.equal(received.replyDisposition, Disposition.MOVE_SEND_ONCE);
    assert.deepEqual(received.descriptors, [
      { type: 'port', name: portNameDead, disposition: Disposition.MOVE_SEND },
    ]);
    assert.deepEqual(
      ipc.names(B).map((n) => n.name),
      [inbox],
    );
    audit(ipc);
  });

  it('kernel ports: send rights travel and translate, but the port takes no messages', () => {
    const ipc = setup();
    const { inbox, dest } = channel(ipc);
    const kport = ipc.allocateKernelPort({ type: 'memory_object', id: 5 });
    const inserted = ipc.insertSendRight(A, kport);
    assertKr(inserted.kr, KernReturn.SUCCESS);
    assertKr(ipc.insertSendRight(A, kport).kr, KernReturn.SUCCESS);
    assert.equal(ipc.portGetRefs(A, inserted.name, PortRight.SEND).refs, 2);
    assert.deepEqual(ipc.translateSend(A, inserted.name), {
      kr: KernReturn.SUCCESS,
      portId: kport,
      kobject: { type: 'memory_object', id: 5 },
    });
    assertKr(ipc.send(A, message(inserted.name, Disposition.COPY_SEND)), KernReturn.SEND_INVALID_DEST);
    sendOk(
      ipc,
      A,
      message(dest, Disposition.COPY_SEND, {
        descriptors: [portDescriptor(inserted.name, Disposition.MOVE_SEND)],
      }),
    );
    const descriptor = receiveOk(ipc, B, inbox).descriptors[0];
    assert.ok(descriptor?.type === 'port');
    assert.equal(ipc.translateSend(B, descriptor.name).kobject?.id, 5);
    // Translation needs a send right.
    assertKr(ipc.translateSend(B, inbox).kr, KernReturn.INVALID_RIGHT);
    assert.equal(ipc.kobjectOf(kport)?.id, 5);
    audit(ipc);
  });

  it('insertSendRight only hands out rights the kernel holds', () => {
    const ipc = setup();
    const mine = port(ipc, A);
    const id = ipc.portIdOf(A, mine)!;
    assertKr(ipc.insertSendRight(B, id).kr, KernReturn.INVALID_RIGHT);
    assertKr(ipc.insertSendRight(B, 'n1.999999').kr, KernReturn.DEAD_NAME);
    const copied = ipc.kernelCopySend(A, mine);
    assertKr(copied.kr, KernReturn.SUCCESS);
    assertKr(ipc.insertSendRight(B, id).kr, KernReturn.SUCCESS);
    assertKr(ipc.kernelCopySend(A, ipc.portAllocate(A, 'port_set').name).kr, KernReturn.INVALID_RIGHT);
    assertKr(ipc.kernelCopySend(A, 12345).kr, KernReturn.INVALID_NAME);
    audit(ipc);
    ipc.kernelReleaseSend(id);
    audit(ipc);
  });

  it('translateSend reports dead names', () => {
    const ipc = setup();
    const kport = ipc.allocateKernelPort({ type: 'memory_object', id: 1 });
    const { name } = ipc.insertSendRight(A, kport);
    assertKr(ipc.destroyKernelPort(kport), KernReturn.SUCCESS);
    assertKr(ipc.destroyKernelPort(kport), KernReturn.INVALID_ARGUMENT);
    assertKr(ipc.translateSend(A, name).kr, KernReturn.DEAD_NAME);
    assert.equal(ipc.portType(A, name).type, PortType.DEAD_NAME);
    assertKr(ipc.send(A, message(name, Disposition.COPY_SEND)), KernReturn.SEND_INVALID_DEST);
    assertKr(ipc.insertSendRight(A, kport).kr, KernReturn.DEAD_NAME);
  });
});
