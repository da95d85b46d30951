import { strict as assert } from 'node:assert';
import { Disposition, KernReturn, PortType } from '../../src/abi/syscalls.js';
import type { Ipc } from '../../src/ipc/index.js';
import { receiveWouldBlock } from '../../src/ipc/index.js';
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

function fill(ipc: Ipc, task: number, name: number, ids: number[]): void {
  for (const id of ids) sendOk(ipc, task, message(name, Disposition.MAKE_SEND, { id }));
}

describe('ipc: port sets', () => {
  it('receives from any member, reporting the member name as localName', () => {
    const ipc = setup();
    const set = ipc.portAllocate(A, 'port_set').name;
    const p1 = port(ipc, A);
    const p2 = port(ipc, A);
    assertKr(ipc.portMoveMember(A, p1, set), KernReturn.SUCCESS);
    assertKr(ipc.portMoveMember(A, p2, set), KernReturn.SUCCESS);
    assert.equal(ipc.hasMessage(A, set), false);
    assertKr(ipc.receive(A, set, 1024).kr, receiveWouldBlock);
    fill(ipc, A, p2, [20]);
    assert.equal(ipc.hasMessage(A, set), true);
    const received = receiveOk(ipc, A, set);
    assert.equal(received.id, 20);
    assert.equal(received.localName, p2);
    audit(ipc);
  });

  it('serves members fairly (round robin among those with messages)', () => {
    const ipc = setup();
    const set = ipc.portAllocate(A, 'port_set').name;
    const members = [port(ipc, A), port(ipc, A), port(ipc, A)];
    for (const member of members) ipc.portMoveMember(A, member, set);
    fill(ipc, A, members[0]!, [10, 11, 12, 13]);
    fill(ipc, A, members[1]!, [20, 21]);
    fill(ipc, A, members[2]!, [30, 31, 32]);
    const order: number[] = [];
    while (ipc.hasMessage(A, set)) order.push(receiveOk(ipc, A, set).id);
    assert.deepEqual(order, [10, 20, 30, 11, 21, 31, 12, 32, 13]);
  });

  it('a busy member cannot starve a member that gets a message later', () => {
    const ipc = setup();
    const set = ipc.portAllocate(A, 'port_set').name;
    const busy = port(ipc, A);
    const quiet = port(ipc, A);
    ipc.portMoveMember(A, busy, set);
    ipc.portMoveMember(A, quiet, set);
    fill(ipc, A, busy, [1, 2, 3]);
    assert.equal(receiveOk(ipc, A, set).id, 1);
    fill(ipc, A, quiet, [100]);
    fill(ipc, A, busy, [4]);
    assert.deepEqual([receiveOk(ipc, A, set).id, receiveOk(ipc, A, set).id], [100, 2]);
  });

  it('moves members between sets and out, one set at a time', () => {
    const ipc = setup();
    const s1 = ipc.portAllocate(A, 'port_set').name;
    const s2 = ipc.portAllocate(A, 'port_set').name;
    const member = port(ipc, A);
    const memberId = ipc.portIdOf(A, member)!;
    ipc.portMoveMember(A, member, s1);
    assert.equal(ipc.setOf(memberId), ipc.portIdOf(A, s1));
    assertKr(ipc.portMoveMember(A, member, s2), KernReturn.SUCCESS);
    assert.equal(ipc.setOf(memberId), ipc.portIdOf(A, s2));
    fill(ipc, A, member, [1]);
    assert.equal(ipc.hasMessage(A, s1), false);
    assert.equal(ipc.hasMessage(A, s2), true);
    assertKr(ipc.portMoveMember(A, member, 0), KernReturn.SUCCESS);
    assert.equal(ipc.setOf(memberId), null);
    assert.equal(ipc.hasMessage(A, s2), false);
    assert.equal(ipc.hasMessage(A, member), true, 'the port itself still receives');
    assertKr(ipc.portMoveMember(A, member, 0), KernReturn.SUCCESS, 'already out');
    audit(ipc);
  });

  it('announces a member with queued messages joining a set', () => {
    const ipc = setup();
    const set = ipc.portAllocate(A, 'port_set').name;
    const member = port(ipc, A);
    fill(ipc, A, member, [1]);
    ipc.takeEvents();
    ipc.portMoveMember(A, member, set);
    assert.deepEqual(ipc.takeEvents(), [
      { kind: 'message-queued', portId: ipc.portIdOf(A, member), setId: ipc.portIdOf(A, set) },
    ]);
    fill(ipc, A, member, [2]);
    assert.deepEqual(ipc.takeEvents(), [
      { kind: 'message-queued', portId: ipc.portIdOf(A, member), setId: ipc.portIdOf(A, set) },
    ]);
  });

  it('checks member and set names', () => {
    const ipc = setup();
    const set = ipc.portAllocate(A, 'port_set').name;
    const member = port(ipc, A, 1);
    const sendOnly = transferSend(ipc, A, member, B);
    const bSet = ipc.portAllocate(B, 'port_set').name;
    assertKr(ipc.portMoveMember(A, set, set), KernReturn.INVALID_RIGHT);
    assertKr(ipc.portMoveMember(A, member, member), KernReturn.INVALID_RIGHT);
    assertKr(ipc.portMoveMember(A, member, 4242), KernReturn.INVALID_NAME);
    assertKr(ipc.portMoveMember(B, sendOnly, bSet), KernReturn.INVALID_RIGHT);
    assertKr(ipc.receive(B, sendOnly, 1024).kr, KernReturn.RCV_INVALID_NAME);
  });

  it('destroying a set leaves its members outside any set and emits port-died', () => {
    const ipc = setup();
    const set = ipc.portAllocate(A, 'port_set').name;
    const setId = ipc.portIdOf(A, set)!;
    const member = port(ipc, A);
    ipc.portMoveMember(A, member, set);
    fill(ipc, A, member, [1]);
    ipc.takeEvents();
    assertKr(ipc.portDestroy(A, set), KernReturn.SUCCESS);
    assert.deepEqual(ipc.takeEvents(), [{ kind: 'port-died', portId: setId }]);
    assert.equal(ipc.setOf(ipc.portIdOf(A, member)!), null);
    assert.equal(receiveOk(ipc, A, member).id, 1);
    assertKr(ipc.receive(A, set, 1024).kr, KernReturn.RCV_INVALID_NAME);
    const again = ipc.portAllocate(A, 'port_set').name;
    assertKr(ipc.portModRefs(A, again, 3, -1), KernReturn.SUCCESS);
    assertKr(ipc.portType(A, again).kr, KernReturn.INVALID_NAME);
    audit(ipc);
  });

  it('a member whose receive right moves away or dies leaves the set', () => {
    const ipc = setup();
    const set = ipc.portAllocate(A, 'port_set').name;
    const leaving = port(ipc, A);
    const dying = port(ipc, A);
    const staying = port(ipc, A);
    for (const member of [leaving, dying, staying]) ipc.portMoveMember(A, member, set);
    const inbox = port(ipc, B, 1);
    const toB = transferSend(ipc, B, inbox, A);
    sendOk(
      ipc,
      A,
      message(toB, Disposition.COPY_SEND, {
        descriptors: [portDescriptor(leaving, Disposition.MOVE_RECEIVE)],
      }),
    );
    ipc.portDestroy(A, dying);
    const setId = ipc.portIdOf(A, set)!;
    assert.deepEqual(ipc.state.sets[setId]?.members, [ipc.portIdOf(A, staying)]);
    const moved = receiveOk(ipc, B, inbox).descriptors[0];
    assert.ok(moved?.type === 'port');
    assert.equal(ipc.setOf(ipc.portIdOf(B, moved.name)!), null);
    assert.equal(ipc.portType(B, moved.name).type, PortType.RECEIVE);
    audit(ipc);
  });
});
