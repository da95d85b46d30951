import { strict as assert } from 'node:assert';
import { Disposition, KernReturn, PortRight, PortType } from '../../src/abi/syscalls.js';
import { userRefsMax } from '../../src/limits.js';
import {
  A,
  assertKr,
  audit,
  B,
  message,
  port,
  portDescriptor,
  receiveOk,
  sendOk,
  setup,
  transferSend,
} from './helpers.js';

describe('ipc: rights and user references', () => {
  it('portInsertRight makes send rights under the receive right name', () => {
    const ipc = setup();
    const name = port(ipc, A);
    assertKr(ipc.portInsertRight(A, name, Disposition.MAKE_SEND), KernReturn.SUCCESS);
    assertKr(ipc.portInsertRight(A, name, Disposition.MAKE_SEND), KernReturn.SUCCESS);
    assert.equal(ipc.portType(A, name).type, PortType.RECEIVE | PortType.SEND);
    assert.equal(ipc.portGetRefs(A, name, PortRight.SEND).refs, 2);
    assert.equal(ipc.portGetRefs(A, name, PortRight.RECEIVE).refs, 1);
    for (const disposition of [
      Disposition.MAKE_SEND_ONCE,
      Disposition.COPY_SEND,
      Disposition.MOVE_RECEIVE,
      99,
    ]) {
      assertKr(ipc.portInsertRight(A, name, disposition), KernReturn.INVALID_VALUE);
    }
    const sendOnly = transferSend(ipc, A, name, B);
    assertKr(ipc.portInsertRight(B, sendOnly, Disposition.MAKE_SEND), KernReturn.INVALID_RIGHT);
    const set = ipc.portAllocate(A, 'port_set').name;
    assertKr(ipc.portInsertRight(A, set, Disposition.MAKE_SEND), KernReturn.INVALID_RIGHT);
    audit(ipc);
  });

  it('portModRefs adds and removes send references within 0..userRefsMax', () => {
    const ipc = setup();
    const name = port(ipc, A, 1);
    assertKr(ipc.portModRefs(A, name, PortRight.SEND, 10), KernReturn.SUCCESS);
    assert.equal(ipc.portGetRefs(A, name, PortRight.SEND).refs, 11);
    assertKr(ipc.portModRefs(A, name, PortRight.SEND, -12), KernReturn.INVALID_VALUE);
    assertKr(ipc.portModRefs(A, name, PortRight.SEND, userRefsMax), KernReturn.UREFS_OVERFLOW);
    assert.equal(ipc.portGetRefs(A, name, PortRight.SEND).refs, 11, 'failed calls change nothing');
    assertKr(ipc.portModRefs(A, name, PortRight.SEND, userRefsMax - 11), KernReturn.SUCCESS);
    assert.equal(ipc.portGetRefs(A, name, PortRight.SEND).refs, userRefsMax);
    assertKr(ipc.portModRefs(A, name, PortRight.SEND, 1), KernReturn.UREFS_OVERFLOW);
    assertKr(ipc.portInsertRight(A, name, Disposition.MAKE_SEND), KernReturn.UREFS_OVERFLOW);
    assertKr(ipc.portModRefs(A, name, PortRight.SEND, 0), KernReturn.SUCCESS);
    assertKr(ipc.portModRefs(A, name, PortRight.SEND, -userRefsMax), KernReturn.SUCCESS);
    assert.equal(ipc.portType(A, name).type, PortType.RECEIVE, 'the receive right stays');
    assertKr(ipc.portModRefs(A, name, PortRight.SEND, 1), KernReturn.INVALID_RIGHT);
    audit(ipc);
  });

  it('portModRefs checks the right kind, the delta and the name', () => {
    const ipc = setup();
    const name = port(ipc, A);
    assertKr(ipc.portModRefs(A, name, 7 as never, 0), KernReturn.INVALID_VALUE);
    assertKr(ipc.portModRefs(A, name, PortRight.RECEIVE, 1.5), KernReturn.INVALID_VALUE);
    assertKr(ipc.portModRefs(A, name, PortRight.RECEIVE, 1), KernReturn.INVALID_VALUE);
    assertKr(ipc.portModRefs(A, name, PortRight.RECEIVE, -2), KernReturn.INVALID_VALUE);
    assertKr(ipc.portModRefs(A, name, PortRight.SEND_ONCE, -1), KernReturn.INVALID_RIGHT);
    assertKr(ipc.portModRefs(A, name, PortRight.PORT_SET, -1), KernReturn.INVALID_RIGHT);
    assertKr(ipc.portModRefs(A, name, PortRight.DEAD_NAME, -1), KernReturn.INVALID_RIGHT);
    assertKr(ipc.portModRefs(A, name, PortRight.RECEIVE, 0), KernReturn.SUCCESS);
    assertKr(ipc.portModRefs(A, name, PortRight.RECEIVE, -1), KernReturn.SUCCESS);
    assertKr(ipc.portType(A, name).kr, KernReturn.INVALID_NAME, 'receive-only name freed');
  });

  it('destroying the receive right of a name with send rights leaves a dead name', () => {
    const ipc = setup();
    const name = port(ipc, A, 3);
    const id = ipc.portIdOf(A, name)!;
    assertKr(ipc.portModRefs(A, name, PortRight.RECEIVE, -1), KernReturn.SUCCESS);
    assert.equal(ipc.portType(A, name).type, PortType.DEAD_NAME);
    assert.equal(ipc.portGetRefs(A, name, PortRight.DEAD_NAME).refs, 3);
    assert.equal(ipc.portGetRefs(A, name, PortRight.SEND).refs, 0);
    assert.equal(ipc.isAlive(id), false);
    assertKr(ipc.portModRefs(A, name, PortRight.SEND, -1), KernReturn.INVALID_RIGHT);
    assertKr(ipc.portModRefs(A, name, PortRight.DEAD_NAME, 2), KernReturn.SUCCESS);
    assertKr(ipc.portModRefs(A, name, PortRight.DEAD_NAME, -6), KernReturn.INVALID_VALUE);
    assertKr(ipc.portModRefs(A, name, PortRight.DEAD_NAME, -5), KernReturn.SUCCESS);
    assertKr(ipc.portType(A, name).kr, KernReturn.INVALID_NAME);
    audit(ipc);
  });

  it('portDeallocate releases one reference of send rights, send-once rights and dead names', () => {
    const ipc = setup();
    const name = port(ipc, A, 2);
    assertKr(ipc.portDeallocate(A, name), KernReturn.SUCCESS);
    assertKr(ipc.portDeallocate(A, name), KernReturn.SUCCESS);
    assert.equal(ipc.portType(A, name).type, PortType.RECEIVE);
    assertKr(ipc.portDeallocate(A, name), KernReturn.INVALID_RIGHT, 'receive right');
    const set = ipc.portAllocate(A, 'port_set').name;
    assertKr(ipc.portDeallocate(A, set), KernReturn.INVALID_RIGHT, 'port set');

    const sendOnly = transferSend(ipc, A, port(ipc, A, 1), B);
    assertKr(ipc.portDeallocate(B, sendOnly), KernReturn.SUCCESS);
    assertKr(ipc.portType(B, sendOnly).kr, KernReturn.INVALID_NAME, 'last reference frees the name');
    audit(ipc);
  });

  it('portGetRefs reports every kind, 0 for kinds the name does not hold', () => {
    const ipc = setup();
    const name = port(ipc, A, 4);
    const refs = (right: (typeof PortRight)[keyof typeof PortRight]) => ipc.portGetRefs(A, name, right).refs;
    assert.deepEqual(
      [
        refs(PortRight.SEND),
        refs(PortRight.RECEIVE),
        refs(PortRight.SEND_ONCE),
        refs(PortRight.PORT_SET),
        refs(PortRight.DEAD_NAME),
      ],
      [4, 1, 0, 0, 0],
    );
    assertKr(ipc.portGetRefs(A, name, 9 as never).kr, KernReturn.INVALID_VALUE);
  });

  it('one name per port per space: received send rights merge their references', () => {
    const ipc = setup();
    const target = port(ipc, A, 1);
    const inbox = port(ipc, B, 0);
    const toInbox = transferSend(ipc, B, inbox, A);
    assertKr(ipc.portInsertRight(B, inbox, Disposition.MAKE_SEND), KernReturn.SUCCESS);
    assertKr(ipc.portDeallocate(B, inbox), KernReturn.SUCCESS);
    const names = new Set<number>();
    for (let i = 0; i < 3; i++) {
      sendOk(
        ipc,
        A,
        message(toInbox, Disposition.COPY_SEND, {
          descriptors: [portDescriptor(target, Disposition.MAKE_SEND)],
        }),
      );
      const received = receiveOk(ipc, B, inbox);
      const descriptor = received.descriptors[0];
      assert.ok(descriptor?.type === 'port');
      assert.equal(descriptor.disposition, Disposition.MOVE_SEND);
      names.add(descriptor.name);
    }
    assert.equal(names.size, 1);
    const [name] = [...names];
    assert.equal(ipc.portGetRefs(B, name!, PortRight.SEND).refs, 3);
    audit(ipc);
  });

  it('received send rights stop adding references at userRefsMax (pegged, the right is released)', () => {
    const ipc = setup();
    const target = port(ipc, A, 1);
    const inbox = port(ipc, B, 0);
    const toInbox = transferSend(ipc, B, inbox, A);
    const targetInB = transferSend(ipc, A, target, B);
    assertKr(ipc.portModRefs(B, targetInB, PortRight.SEND, userRefsMax - 1), KernReturn.SUCCESS);
    sendOk(
      ipc,
      A,
      message(toInbox, Disposition.COPY_SEND, {
        descriptors: [portDescriptor(target, Disposition.COPY_SEND)],
      }),
    );
    const received = receiveOk(ipc, B, inbox);
    assert.deepEqual(received.descriptors, [
      { type: 'port', name: targetInB, disposition: Disposition.MOVE_SEND },
    ]);
    assert.equal(ipc.portGetRefs(B, targetInB, PortRight.SEND).refs, userRefsMax);
    audit(ipc);
  });

  it('a received send right for a port whose receive right the space holds joins that name', () => {
    const ipc = setup();
    const mine = port(ipc, A);
    sendOk(
      ipc,
      A,
      message(mine, Disposition.MAKE_SEND_ONCE, { replyName: mine, replyDisposition: Disposition.MAKE_SEND }),
    );
    const received = receiveOk(ipc, A, mine);
    assert.equal(received.replyName, mine);
    assert.equal(received.replyDisposition, Disposition.MOVE_SEND);
    assert.equal(ipc.portType(A, mine).type, PortType.RECEIVE | PortType.SEND);
    audit(ipc);
  });
});
