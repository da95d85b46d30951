import { strict as assert } from 'node:assert';
import { Disposition, KernReturn, PortRight, PortType } from '../../src/abi/syscalls.js';
import { Ipc, portNameDead, portNameNull } from '../../src/ipc/index.js';
import { namesPerTaskMax } from '../../src/limits.js';
import { A, assertKr, audit, B, message, port, receiveOk, sendOk, setup, transferSend } from './helpers.js';

describe('ipc: spaces and names', () => {
  it('allocates receive rights and port sets under fresh nonzero names', () => {
    const ipc = setup();
    const names = new Set<number>();
    for (let i = 0; i < 10; i++) {
      const { kr, name } = ipc.portAllocate(A, i % 2 === 0 ? 'receive' : 'port_set');
      assertKr(kr, KernReturn.SUCCESS);
      assert.notEqual(name, 0);
      names.add(name);
      assert.equal(ipc.portType(A, name).type, i % 2 === 0 ? PortType.RECEIVE : PortType.PORT_SET);
    }
    assert.equal(names.size, 10);
    audit(ipc);
  });

  it('accepts the raw PortRight values of the syscall and rejects the others', () => {
    const ipc = setup();
    assertKr(ipc.portAllocate(A, PortRight.RECEIVE).kr, KernReturn.SUCCESS);
    assertKr(ipc.portAllocate(A, PortRight.PORT_SET).kr, KernReturn.SUCCESS);
    for (const right of [PortRight.SEND, PortRight.SEND_ONCE, PortRight.DEAD_NAME, 7, -1]) {
      const result = ipc.portAllocate(A, right);
      assertKr(result.kr, KernReturn.INVALID_VALUE);
      assert.equal(result.name, portNameNull);
    }
  });

  it('gives each port a global id under the node id, never reused', () => {
    const ipc = setup();
    const first = port(ipc, A);
    const id = ipc.portIdOf(A, first);
    assert.match(id ?? '', /^n1\.\d+$/);
    ipc.portDestroy(A, first);
    const second = port(ipc, A);
    assert.notEqual(ipc.portIdOf(A, second), id);
    assert.equal(ipc.isAlive(id!), false);
  });

  it('does not hand a freed name out again soon (index + generation)', () => {
    const ipc = setup();
    const freed = port(ipc, A);
    assertKr(ipc.portDestroy(A, freed), KernReturn.SUCCESS);
    for (let i = 0; i < 1000; i++) assert.notEqual(port(ipc, A), freed);
    assertKr(ipc.portType(A, freed).kr, KernReturn.INVALID_NAME);
  });

  it('rejects forged, stale and other tasks names everywhere, never reaching another port', () => {
    const ipc = setup();
    const mine = port(ipc, A, 1);
    const stale = port(ipc, A);
    ipc.portDestroy(A, stale);
    const forged = [0, 1, 255, mine + 1, mine ^ 1, stale, portNameDead, -1, 1.5, Number.NaN, 2 ** 40];
    for (const name of forged) {
      assertKr(ipc.portType(A, name).kr, KernReturn.INVALID_NAME, `portType ${name}`);
      assertKr(ipc.portDestroy(A, name), KernReturn.INVALID_NAME, `portDestroy ${name}`);
      assertKr(ipc.portDeallocate(A, name), KernReturn.INVALID_NAME, `portDeallocate ${name}`);
      assertKr(ipc.portModRefs(A, name, PortRight.SEND, 1), KernReturn.INVALID_NAME);
      assertKr(ipc.portInsertRight(A, name, Disposition.MAKE_SEND), KernReturn.INVALID_NAME);
      assertKr(ipc.portGetRefs(A, name, PortRight.SEND).kr, KernReturn.INVALID_NAME);
      assertKr(ipc.portSetQlimit(A, name, 3), KernReturn.INVALID_NAME);
      assertKr(ipc.portMoveMember(A, name, 0), KernReturn.INVALID_NAME);
      assertKr(ipc.translateSend(A, name).kr, KernReturn.INVALID_NAME);
      assertKr(ipc.receive(A, name, 1024).kr, KernReturn.RCV_INVALID_NAME);
      assertKr(ipc.send(A, message(name, Disposition.COPY_SEND)), KernReturn.SEND_INVALID_DEST);
      assert.equal(ipc.portIdOf(A, name), null);
      assert.equal(ipc.hasMessage(A, name), false);
    }
    // B holds nothing: A's name means nothing in B's space.
    assertKr(ipc.send(B, message(mine, Disposition.COPY_SEND)), KernReturn.SEND_INVALID_DEST);
    assertKr(ipc.receive(B, mine, 1024).kr, KernReturn.RCV_INVALID_NAME);
    assertKr(ipc.portDestroy(B, mine), KernReturn.INVALID_NAME);
    assert.equal(ipc.portType(A, mine).type, PortType.RECEIVE | PortType.SEND);
    audit(ipc);
  });

  it('returns NO_SPACE when the space holds namesPerTaskMax names, and recovers after a free', () => {
    const ipc = new Ipc('n1');
    ipc.createSpace(A);
    let last = 0;
    for (let i = 0; i < namesPerTaskMax; i++) last = ipc.portAllocate(A, 'port_set').name;
    const full = ipc.portAllocate(A, 'receive');
    assertKr(full.kr, KernReturn.NO_SPACE);
    assert.equal(full.name, portNameNull);
    assertKr(ipc.portDestroy(A, last), KernReturn.SUCCESS);
    const reused = ipc.portAllocate(A, 'receive');
    assertKr(reused.kr, KernReturn.SUCCESS);
    assert.notEqual(reused.name, last, 'the reused index has a new generation');
    assert.equal(reused.name >>> 8, last >>> 8, 'every other index is in use');
  });

  it('throws on kernel misuse: a second space for a task, or calls on a task without one', () => {
    const ipc = setup();
    assert.throws(() => ipc.createSpace(A));
    assert.throws(() => ipc.portAllocate(99, 'receive'));
    assert.throws(() => ipc.receive(99, 256, 0));
    assert.equal(ipc.hasSpace(A), true);
    assert.equal(ipc.hasSpace(99), false);
  });

  it('destroying a space kills its receive rights and releases its send rights', () => {
    const ipc = setup();
    const doomed = port(ipc, A, 1);
    const doomedId = ipc.portIdOf(A, doomed)!;
    const bSend = transferSend(ipc, A, doomed, B);
    const bPort = port(ipc, B, 1);
    const aSend = transferSend(ipc, B, bPort, A);
    const set = ipc.portAllocate(A, 'port_set').name;
    assertKr(ipc.portMoveMember(A, doomed, set), KernReturn.SUCCESS);
    const setId = ipc.portIdOf(A, set)!;
    assertKr(ipc.portRequestNotification(B, bPort, 1, bPort), KernReturn.SUCCESS); // no-senders
    // B's own send right to bPort keeps it above zero until B deallocates it below.
    ipc.takeEvents();

    ipc.destroySpace(A);
    assert.equal(ipc.hasSpace(A), false);
    const died = ipc
      .takeEvents()
      .filter((e) => e.kind === 'port-died')
      .map((e) => e.portId);
    assert.deepEqual(died.sort(), [doomedId, setId].sort());
    assert.equal(ipc.portType(B, bSend).type, PortType.DEAD_NAME);
    assert.equal(aSend !== 0, true);
    // A's send right to bPort is gone: only B's own remains; dropping it fires no-senders.
    assertKr(ipc.portDeallocate(B, bPort), KernReturn.SUCCESS);
    const notification = receiveOk(ipc, B, bPort);
    assert.equal(notification.id, 70);
    audit(ipc);
  });

  it('lists names for diagnostics', () => {
    const ipc = setup();
    const name = port(ipc, A, 2);
    assert.deepEqual(ipc.names(A), [
      { name, type: PortType.RECEIVE | PortType.SEND, urefs: 2, portId: ipc.portIdOf(A, name) },
    ]);
    sendOk(ipc, A, message(name, Disposition.COPY_SEND));
    receiveOk(ipc, A, name);
  });
});
