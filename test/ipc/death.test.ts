import { strict as assert } from 'node:assert';
import { Disposition, KernReturn, NotifyId, PortType } from '../../src/abi/syscalls.js';
import { Ipc, receiveWouldBlock } from '../../src/ipc/index.js';
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

describe('ipc: port death and cleanup', () => {
  it('destroying a port destroys its queue, recursively through the receive rights it carries', () => {
    const ipc = setup();
    const outer = port(ipc, A);
    const middle = port(ipc, A);
    const inner = port(ipc, A, 1);
    const ids = [outer, middle, inner].map((name) => ipc.portIdOf(A, name)!);
    const bInner = transferSend(ipc, A, inner, B);
    const reply = port(ipc, B);
    // inner's receive right goes into middle's queue, middle's into outer's.
    sendOk(
      ipc,
      A,
      message(middle, Disposition.MAKE_SEND, {
        descriptors: [portDescriptor(inner, Disposition.MOVE_RECEIVE)],
      }),
    );
    sendOk(
      ipc,
      A,
      message(outer, Disposition.MAKE_SEND, {
        descriptors: [portDescriptor(middle, Disposition.MOVE_RECEIVE)],
      }),
    );
    // A message waiting in inner's queue carries a send-once right to B's reply port.
    sendOk(
      ipc,
      B,
      message(bInner, Disposition.COPY_SEND, {
        replyName: reply,
        replyDisposition: Disposition.MAKE_SEND_ONCE,
      }),
    );
    assert.equal(ipc.portType(A, inner).type, PortType.SEND);
    audit(ipc);
    ipc.takeEvents();

    assertKr(ipc.portDestroy(A, outer), KernReturn.SUCCESS);
    const died = ipc
      .takeEvents()
      .filter((e) => e.kind === 'port-died')
      .map((e) => e.portId);
    assert.deepEqual(died.sort(), [...ids].sort());
    for (const id of ids) assert.equal(ipc.isAlive(id), false);
    assert.equal(ipc.portType(A, inner).type, PortType.DEAD_NAME);
    assert.equal(ipc.portType(B, bInner).type, PortType.DEAD_NAME);
    assert.equal(receiveOk(ipc, B, reply).id, NotifyId.SEND_ONCE);
    assert.deepEqual(Object.keys(ipc.state.ports).sort(), [ipc.portIdOf(B, reply)!]);
    audit(ipc);
  });

  it('a message carrying the receive right of its own destination is destroyed, not queued', () => {
    const ipc = setup();
    const self = port(ipc, A, 1);
    const id = ipc.portIdOf(A, self)!;
    const bSend = transferSend(ipc, A, self, B);
    sendOk(ipc, A, message(self, Disposition.COPY_SEND, { id: 1 }));
    assertKr(
      ipc.send(
        A,
        message(self, Disposition.MOVE_SEND, {
          descriptors: [portDescriptor(self, Disposition.MOVE_RECEIVE)],
        }),
      ),
      KernReturn.SUCCESS,
    );
    assert.equal(ipc.isAlive(id), false);
    assertKr(ipc.portType(A, self).kr, KernReturn.INVALID_NAME, 'A moved both its rights');
    assert.equal(ipc.portType(B, bSend).type, PortType.DEAD_NAME);
    audit(ipc);
  });

  it('a cycle through receive rights in transit is destroyed (Q inside P, then P into Q)', () => {
    const ipc = setup();
    const p = port(ipc, A, 1);
    const q = port(ipc, A, 1);
    const [pId, qId] = [ipc.portIdOf(A, p)!, ipc.portIdOf(A, q)!];
    sendOk(
      ipc,
      A,
      message(p, Disposition.COPY_SEND, { descriptors: [portDescriptor(q, Disposition.MOVE_RECEIVE)] }),
    );
    assert.equal(ipc.isAlive(qId), true);
    sendOk(
      ipc,
      A,
      message(q, Disposition.COPY_SEND, { descriptors: [portDescriptor(p, Disposition.MOVE_RECEIVE)] }),
    );
    assert.equal(ipc.isAlive(pId), false);
    assert.equal(ipc.isAlive(qId), false);
    assert.equal(ipc.portType(A, p).type, PortType.DEAD_NAME);
    assert.equal(ipc.portType(A, q).type, PortType.DEAD_NAME);
    audit(ipc);
  });

  it('a message into a port in transit elsewhere is queued (no false cycle)', () => {
    const ipc = setup();
    const p = port(ipc, A, 1);
    const q = port(ipc, A, 1);
    const r = port(ipc, A, 1);
    sendOk(
      ipc,
      A,
      message(p, Disposition.COPY_SEND, { descriptors: [portDescriptor(q, Disposition.MOVE_RECEIVE)] }),
    );
    sendOk(
      ipc,
      A,
      message(q, Disposition.COPY_SEND, { descriptors: [portDescriptor(r, Disposition.MOVE_RECEIVE)] }),
    );
    assert.equal(Object.keys(ipc.state.ports).length, 3);
    const qName = receiveOk(ipc, A, p).descriptors[0];
    assert.ok(qName?.type === 'port');
    assert.equal(qName.name, q);
    const rName = receiveOk(ipc, A, q).descriptors[0];
    assert.ok(rName?.type === 'port');
    assert.equal(rName.name, r);
    audit(ipc);
  });

  it('cleans up a long chain of receive rights in transit without recursion', () => {
    const ipc = new Ipc('n1');
    ipc.createSpace(A);
    const names = Array.from({ length: 20001 }, () => port(ipc, A));
    // Port i holds port i+1's receive right in its queue; built from the tail so each send is cheap.
    for (let i = names.length - 2; i >= 0; i--) {
      sendOk(
        ipc,
        A,
        message(names[i]!, Disposition.MAKE_SEND, {
          descriptors: [portDescriptor(names[i + 1]!, Disposition.MOVE_RECEIVE)],
        }),
      );
    }
    assert.equal(Object.keys(ipc.state.ports).length, 20001);
    assert.equal(ipc.names(A).length, 1);
    ipc.portDestroy(A, names[0]!);
    assert.equal(Object.keys(ipc.state.ports).length, 0);
    assert.equal(ipc.names(A).length, 0);
  });

  it('wakes blocked threads: port-died for the port, receivers get RCV_INVALID_NAME on retry', () => {
    const ipc = setup();
    const name = port(ipc, A, 1);
    const id = ipc.portIdOf(A, name)!;
    const bSend = transferSend(ipc, A, name, B);
    assertKr(ipc.receive(A, name, 1024).kr, receiveWouldBlock);
    ipc.takeEvents();
    ipc.portDestroy(A, name);
    assert.deepEqual(ipc.takeEvents(), [{ kind: 'port-died', portId: id }]);
    assertKr(ipc.receive(A, name, 1024).kr, KernReturn.RCV_INVALID_NAME);
    assertKr(ipc.send(B, message(bSend, Disposition.COPY_SEND)), KernReturn.SEND_INVALID_DEST);
  });

  it('destroying a space destroys the receive rights queued on its ports, whoever sent them', () => {
    const ipc = setup();
    const bPort = port(ipc, B, 1);
    const toB = transferSend(ipc, B, bPort, A);
    const aPort = port(ipc, A, 1);
    const aId = ipc.portIdOf(A, aPort)!;
    // A sends its port's receive right to B; B does not receive it before dying.
    sendOk(
      ipc,
      A,
      message(toB, Disposition.COPY_SEND, { descriptors: [portDescriptor(aPort, Disposition.MOVE_RECEIVE)] }),
    );
    ipc.destroySpace(B);
    assert.equal(ipc.isAlive(aId), false);
    assert.equal(ipc.portType(A, aPort).type, PortType.DEAD_NAME);
    assert.equal(ipc.portType(A, toB).type, PortType.DEAD_NAME);
    audit(ipc);
  });
});
