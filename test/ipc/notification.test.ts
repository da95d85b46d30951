import { strict as assert } from 'node:assert';
import {
  Disposition,
  KernReturn,
  NotifyId,
  NotifyVariant,
  PortRight,
  PortType,
} from '../../src/abi/syscalls.js';
import { receiveWouldBlock } from '../../src/ipc/index.js';
import { userRefsMax } from '../../src/limits.js';
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
  u32,
} from './helpers.js';

describe('ipc: notifications', () => {
  describe('dead name', () => {
    it('turns send rights into dead names and notifies with the name (plus one reference)', () => {
      const ipc = setup();
      const service = port(ipc, A, 1);
      const held = transferSend(ipc, A, service, B);
      assertKr(ipc.portModRefs(B, held, PortRight.SEND, 1), KernReturn.SUCCESS);
      const notify = port(ipc, B);
      assertKr(ipc.portRequestNotification(B, held, NotifyVariant.DEAD_NAME, notify), KernReturn.SUCCESS);
      assert.equal(ipc.hasMessage(B, notify), false);

      assertKr(ipc.portDestroy(A, service), KernReturn.SUCCESS);
      assert.equal(ipc.portType(B, held).type, PortType.DEAD_NAME);
      assert.equal(ipc.portGetRefs(B, held, PortRight.DEAD_NAME).refs, 3, 'two send references + one');
      const notification = receiveOk(ipc, B, notify);
      assert.equal(notification.id, NotifyId.DEAD_NAME);
      assert.equal(u32(notification.body), held);
      assertKr(ipc.portModRefs(B, held, PortRight.DEAD_NAME, -3), KernReturn.SUCCESS);
      assertKr(ipc.portType(B, held).kr, KernReturn.INVALID_NAME);
      audit(ipc);
    });

    it('send-once rights die into dead names too', () => {
      const ipc = setup();
      const reply = port(ipc, A);
      const inbox = port(ipc, B, 1);
      const toB = transferSend(ipc, B, inbox, A);
      sendOk(
        ipc,
        A,
        message(toB, Disposition.COPY_SEND, {
          replyName: reply,
          replyDisposition: Disposition.MAKE_SEND_ONCE,
        }),
      );
      const once = receiveOk(ipc, B, inbox).replyName;
      const notify = port(ipc, B);
      assertKr(ipc.portRequestNotification(B, once, NotifyVariant.DEAD_NAME, notify), KernReturn.SUCCESS);
      ipc.portDestroy(A, reply);
      assert.equal(ipc.portType(B, once).type, PortType.DEAD_NAME);
      assert.equal(ipc.portGetRefs(B, once, PortRight.DEAD_NAME).refs, 2);
      assert.equal(u32(receiveOk(ipc, B, notify).body), once);
      audit(ipc);
    });

    it('on a name that is already dead, notifies at once', () => {
      const ipc = setup();
      const service = port(ipc, A, 1);
      const held = transferSend(ipc, A, service, B);
      ipc.portDestroy(A, service);
      const notify = port(ipc, B);
      assertKr(ipc.portRequestNotification(B, held, NotifyVariant.DEAD_NAME, notify), KernReturn.SUCCESS);
      assert.equal(ipc.portGetRefs(B, held, PortRight.DEAD_NAME).refs, 2);
      const notification = receiveOk(ipc, B, notify);
      assert.deepEqual([notification.id, u32(notification.body)], [NotifyId.DEAD_NAME, held]);
      assertKr(ipc.portModRefs(B, held, PortRight.DEAD_NAME, userRefsMax - 2), KernReturn.SUCCESS);
      assertKr(
        ipc.portRequestNotification(B, held, NotifyVariant.DEAD_NAME, notify),
        KernReturn.UREFS_OVERFLOW,
      );
    });

    it('sends port-deleted when the rights go away before the port dies', () => {
      const ipc = setup();
      const service = port(ipc, A, 1);
      const held = transferSend(ipc, A, service, B);
      const notify = port(ipc, B);
      ipc.portRequestNotification(B, held, NotifyVariant.DEAD_NAME, notify);
      assertKr(ipc.portDeallocate(B, held), KernReturn.SUCCESS);
      const notification = receiveOk(ipc, B, notify);
      assert.deepEqual([notification.id, u32(notification.body)], [NotifyId.PORT_DELETED, held]);
      ipc.portDestroy(A, service);
      assertKr(ipc.receive(B, notify, 1024).kr, receiveWouldBlock);
      audit(ipc);
    });

    it('a moved send right cancels its request with port-deleted', () => {
      const ipc = setup();
      const service = port(ipc, A, 1);
      const held = transferSend(ipc, A, service, B);
      const notify = port(ipc, B);
      ipc.portRequestNotification(B, held, NotifyVariant.DEAD_NAME, notify);
      sendOk(ipc, B, message(held, Disposition.MOVE_SEND, { id: 5 }));
      assert.equal(receiveOk(ipc, B, notify).id, NotifyId.PORT_DELETED);
      assert.equal(receiveOk(ipc, A, service).id, 5);
    });

    it('replacing or cancelling a request destroys the previous send-once right', () => {
      const ipc = setup();
      const service = port(ipc, A, 1);
      const held = transferSend(ipc, A, service, B);
      const first = port(ipc, B);
      const second = port(ipc, B);
      ipc.portRequestNotification(B, held, NotifyVariant.DEAD_NAME, first);
      ipc.portRequestNotification(B, held, NotifyVariant.DEAD_NAME, second);
      assert.equal(receiveOk(ipc, B, first).id, NotifyId.SEND_ONCE);
      assertKr(ipc.portRequestNotification(B, held, NotifyVariant.DEAD_NAME, 0), KernReturn.SUCCESS);
      const cancelled = receiveOk(ipc, B, second);
      assert.equal(cancelled.id, NotifyId.SEND_ONCE);
      assert.equal(cancelled.body.length, 0);
      ipc.portDestroy(A, service);
      assert.equal(ipc.hasMessage(B, first) || ipc.hasMessage(B, second), false);
      audit(ipc);
    });

    it('validates its arguments', () => {
      const ipc = setup();
      const service = port(ipc, A, 1);
      const held = transferSend(ipc, A, service, B);
      const notify = port(ipc, B);
      const set = ipc.portAllocate(B, 'port_set').name;
      assertKr(ipc.portRequestNotification(B, held, 7, notify), KernReturn.INVALID_VALUE);
      assertKr(ipc.portRequestNotification(B, 999, NotifyVariant.DEAD_NAME, notify), KernReturn.INVALID_NAME);
      assertKr(ipc.portRequestNotification(B, held, NotifyVariant.DEAD_NAME, 999), KernReturn.INVALID_NAME);
      assertKr(ipc.portRequestNotification(B, held, NotifyVariant.DEAD_NAME, held), KernReturn.INVALID_RIGHT);
      assertKr(
        ipc.portRequestNotification(B, set, NotifyVariant.DEAD_NAME, notify),
        KernReturn.INVALID_RIGHT,
      );
      assertKr(
        ipc.portRequestNotification(B, held, NotifyVariant.NO_SENDERS, notify),
        KernReturn.INVALID_RIGHT,
      );
      audit(ipc);
    });
  });

  describe('no senders', () => {
    it('fires with the make-send count when the last send right goes', () => {
      const ipc = setup();
      const service = port(ipc, A);
      const notify = port(ipc, A);
      assertKr(ipc.portRequestNotification(A, service, NotifyVariant.NO_SENDERS, notify), KernReturn.SUCCESS);
      ipc.portInsertRight(A, service, Disposition.MAKE_SEND);
      ipc.portInsertRight(A, service, Disposition.MAKE_SEND);
      const b = transferSend(ipc, A, service, B);
      const c = transferSend(ipc, A, service, C);
      ipc.portModRefs(A, service, PortRight.SEND, -2);
      ipc.portDeallocate(B, b);
      assert.equal(ipc.hasMessage(A, notify), false);
      ipc.portDeallocate(C, c);
      const notification = receiveOk(ipc, A, notify);
      assert.equal(notification.id, NotifyId.NO_SENDERS);
      assert.equal(u32(notification.body), 2);
      // One shot.
      ipc.portInsertRight(A, service, Disposition.MAKE_SEND);
      ipc.portDeallocate(A, service);
      assert.equal(ipc.hasMessage(A, notify), false);
      audit(ipc);
    });

    it('counts send rights in transit: the destination right until the message is received', () => {
      const ipc = setup();
      const service = port(ipc, A, 1);
      const client = transferSend(ipc, A, service, B);
      ipc.portDeallocate(A, service);
      ipc.portRequestNotification(A, service, NotifyVariant.NO_SENDERS, service);
      sendOk(ipc, B, message(client, Disposition.MOVE_SEND, { id: 1 }));
      assert.equal(ipc.portType(B, client).kr, KernReturn.INVALID_NAME, 'B has no right left');
      const first = receiveOk(ipc, A, service);
      assert.equal(first.id, 1);
      const notification = receiveOk(ipc, A, service);
      assert.equal(notification.id, NotifyId.NO_SENDERS);
      audit(ipc);
    });

    it('counts send rights carried in queued messages, and fires when such a message is destroyed', () => {
      const ipc = setup();
      const service = port(ipc, A);
      const notify = port(ipc, A);
      ipc.portRequestNotification(A, service, NotifyVariant.NO_SENDERS, notify);
      const box = port(ipc, A);
      sendOk(
        ipc,
        A,
        message(box, Disposition.MAKE_SEND, {
          descriptors: [portDescriptor(service, Disposition.MAKE_SEND)],
        }),
      );
      assert.equal(ipc.hasMessage(A, notify), false);
      ipc.portDestroy(A, box);
      const notification = receiveOk(ipc, A, notify);
      assert.deepEqual([notification.id, u32(notification.body)], [NotifyId.NO_SENDERS, 1]);
      audit(ipc);
    });

    it('kernel-held send rights count too', () => {
      const ipc = setup();
      const service = port(ipc, A);
      ipc.portRequestNotification(A, service, NotifyVariant.NO_SENDERS, service);
      const held = ipc.kernelCopySend(A, service);
      ipc.kernelReleaseSend(held.portId!);
      assert.equal(receiveOk(ipc, A, service).id, NotifyId.NO_SENDERS);
    });

    it('a pending request dies with its port as a send-once notification', () => {
      const ipc = setup();
      const service = port(ipc, A);
      const notify = port(ipc, A);
      ipc.portRequestNotification(A, service, NotifyVariant.NO_SENDERS, notify);
      ipc.portDestroy(A, service);
      assert.equal(receiveOk(ipc, A, notify).id, NotifyId.SEND_ONCE);
      audit(ipc);
    });

    it('kernel ports report their last send right as an event', () => {
      const ipc = setup();
      const kport = ipc.allocateKernelPort({ type: 'memory_object', id: 9 });
      const { name } = ipc.insertSendRight(A, kport);
      const bName = ipc.insertSendRight(B, kport).name;
      ipc.takeEvents();
      ipc.portDeallocate(A, name);
      assert.deepEqual(ipc.takeEvents(), []);
      ipc.destroySpace(B);
      assert.deepEqual(ipc.takeEvents(), [
        { kind: 'kernel-no-senders', portId: kport, kobject: { type: 'memory_object', id: 9 } },
      ]);
      assert.notEqual(bName, 0);
    });
  });

  describe('send-once', () => {
    it('fires at the port when a send-once right is deallocated', () => {
      const ipc = setup();
      const reply = port(ipc, A);
      const inbox = port(ipc, B, 1);
      const toB = transferSend(ipc, B, inbox, A);
      sendOk(
        ipc,
        A,
        message(toB, Disposition.COPY_SEND, {
          replyName: reply,
          replyDisposition: Disposition.MAKE_SEND_ONCE,
        }),
      );
      const once = receiveOk(ipc, B, inbox).replyName;
      assertKr(ipc.portDeallocate(B, once), KernReturn.SUCCESS);
      const notification = receiveOk(ipc, A, reply);
      assert.equal(notification.id, NotifyId.SEND_ONCE);
      assert.equal(notification.replyName, 0);
      assert.equal(ipc.state.ports[ipc.portIdOf(A, reply)!]?.sorights, 0);
      audit(ipc);
    });

    it('fires when a message carrying one dies with its queue, or its holder dies', () => {
      const ipc = setup();
      const reply = port(ipc, A);
      const box = port(ipc, B, 1);
      const toBox = transferSend(ipc, B, box, A);
      sendOk(
        ipc,
        A,
        message(toBox, Disposition.COPY_SEND, {
          replyName: reply,
          replyDisposition: Disposition.MAKE_SEND_ONCE,
        }),
      );
      sendOk(
        ipc,
        A,
        message(toBox, Disposition.COPY_SEND, {
          replyName: reply,
          replyDisposition: Disposition.MAKE_SEND_ONCE,
        }),
      );
      receiveOk(ipc, B, box);
      ipc.portDestroy(B, box);
      assert.equal(receiveOk(ipc, A, reply).id, NotifyId.SEND_ONCE);
      ipc.destroySpace(B);
      assert.equal(receiveOk(ipc, A, reply).id, NotifyId.SEND_ONCE);
      assertKr(ipc.receive(A, reply, 1024).kr, receiveWouldBlock);
      audit(ipc);
    });

    it('notifications ignore the queue limit', () => {
      const ipc = setup();
      const reply = port(ipc, A);
      ipc.portSetQlimit(A, reply, 1);
      sendOk(ipc, A, message(reply, Disposition.MAKE_SEND));
      const box = port(ipc, A);
      for (let i = 0; i < 3; i++) {
        sendOk(
          ipc,
          A,
          message(box, Disposition.MAKE_SEND, {
            descriptors: [portDescriptor(reply, Disposition.MAKE_SEND_ONCE)],
          }),
        );
      }
      ipc.portDestroy(A, box);
      const ids = [0, 1, 2, 3].map(() => receiveOk(ipc, A, reply).id);
      assert.deepEqual(ids, [0, NotifyId.SEND_ONCE, NotifyId.SEND_ONCE, NotifyId.SEND_ONCE]);
      audit(ipc);
    });
  });
});
