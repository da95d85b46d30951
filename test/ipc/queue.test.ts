import { strict as assert } from 'node:assert';
import { Disposition, KernReturn, PortRight } from '../../src/abi/syscalls.js';
import { sendWouldBlock } from '../../src/ipc/index.js';
import { portQueueLengthDefault, portQueueLengthMax } from '../../src/limits.js';
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

describe('ipc: queue limits', () => {
  it('answers sendWouldBlock on a full queue, with no side effect, and queue-space after a receive', () => {
    const ipc = setup();
    const inbox = port(ipc, B, 1);
    const inboxId = ipc.portIdOf(B, inbox)!;
    const dest = transferSend(ipc, B, inbox, A);
    const carried = port(ipc, A, 1);
    assertKr(ipc.portModRefs(A, dest, PortRight.SEND, 1), KernReturn.SUCCESS);
    for (let i = 0; i < portQueueLengthDefault; i++)
      sendOk(ipc, A, message(dest, Disposition.COPY_SEND, { id: i }));
    ipc.takeEvents();
    const before = structuredClone({ ...ipc.state, events: [] });
    const blocked = message(dest, Disposition.MOVE_SEND, {
      replyName: carried,
      replyDisposition: Disposition.MAKE_SEND_ONCE,
      descriptors: [portDescriptor(carried, Disposition.MOVE_RECEIVE)],
    });
    assert.equal(ipc.send(A, blocked), sendWouldBlock);
    assert.deepEqual(structuredClone({ ...ipc.state, events: [] }), before);
    assert.deepEqual(ipc.takeEvents(), []);

    assert.equal(receiveOk(ipc, B, inbox).id, 0);
    assert.deepEqual(ipc.takeEvents(), [{ kind: 'queue-space', portId: inboxId }]);
    sendOk(ipc, A, blocked);
    // Only the transition from full to not full is announced.
    receiveOk(ipc, B, inbox);
    receiveOk(ipc, B, inbox);
    assert.deepEqual(
      ipc.takeEvents().filter((e) => e.kind === 'queue-space'),
      [{ kind: 'queue-space', portId: inboxId }],
    );
    audit(ipc);
  });

  it('portSetQlimit accepts 1..portQueueLengthMax and announces room it makes', () => {
    const ipc = setup();
    const name = port(ipc, A);
    const id = ipc.portIdOf(A, name)!;
    for (const limit of [0, -1, portQueueLengthMax + 1, 2.5]) {
      assertKr(ipc.portSetQlimit(A, name, limit), KernReturn.INVALID_VALUE, `limit ${limit}`);
    }
    const set = ipc.portAllocate(A, 'port_set').name;
    assertKr(ipc.portSetQlimit(A, set, 3), KernReturn.INVALID_RIGHT);
    assertKr(ipc.portSetQlimit(A, name, 1), KernReturn.SUCCESS);
    sendOk(ipc, A, message(name, Disposition.MAKE_SEND));
    assert.equal(ipc.send(A, message(name, Disposition.MAKE_SEND)), sendWouldBlock);
    ipc.takeEvents();
    assertKr(ipc.portSetQlimit(A, name, portQueueLengthMax), KernReturn.SUCCESS);
    assert.deepEqual(ipc.takeEvents(), [{ kind: 'queue-space', portId: id }]);
    for (let i = 1; i < portQueueLengthMax; i++) sendOk(ipc, A, message(name, Disposition.MAKE_SEND));
    assert.equal(ipc.send(A, message(name, Disposition.MAKE_SEND)), sendWouldBlock);
  });

  it('messages through send-once rights ignore the limit (replies never block)', () => {
    const ipc = setup();
    const name = port(ipc, A);
    ipc.portSetQlimit(A, name, 1);
    sendOk(ipc, A, message(name, Disposition.MAKE_SEND));
    sendOk(ipc, A, message(name, Disposition.MAKE_SEND_ONCE));
    sendOk(ipc, A, message(name, Disposition.MAKE_SEND_ONCE));
    assert.equal(ipc.send(A, message(name, Disposition.MAKE_SEND)), sendWouldBlock);
    receiveOk(ipc, A, name);
    receiveOk(ipc, A, name);
    assert.equal(ipc.send(A, message(name, Disposition.MAKE_SEND)), sendWouldBlock, 'still at the limit');
    receiveOk(ipc, A, name);
    sendOk(ipc, A, message(name, Disposition.MAKE_SEND));
    audit(ipc);
  });

  it('a message to a full queue of a port in transit also waits', () => {
    const ipc = setup();
    const moving = port(ipc, A, 1);
    ipc.portSetQlimit(A, moving, 1);
    sendOk(ipc, A, message(moving, Disposition.COPY_SEND));
    const inbox = port(ipc, B, 1);
    const toB = transferSend(ipc, B, inbox, A);
    sendOk(
      ipc,
      A,
      message(toB, Disposition.COPY_SEND, {
        descriptors: [portDescriptor(moving, Disposition.MOVE_RECEIVE)],
      }),
    );
    assert.equal(ipc.send(A, message(moving, Disposition.COPY_SEND)), sendWouldBlock);
    const descriptor = receiveOk(ipc, B, inbox).descriptors[0];
    assert.ok(descriptor?.type === 'port');
    receiveOk(ipc, B, descriptor.name);
    sendOk(ipc, A, message(moving, Disposition.COPY_SEND));
    audit(ipc);
  });
});
