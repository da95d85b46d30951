// NORMA IPC between kernels linked in memory (MemoryCluster): remote delivery, rights crossing
// nodes and their accounting (no-senders, send-once), flow control, and the death of ports and
// nodes. The same layer runs between node daemons over TLS in test/net/cluster.test.ts.
import { strict as assert } from 'node:assert';
import { Disposition, KernReturn, NotifyId, NotifyVariant, PortType } from '../../src/abi/syscalls.js';
import type { Kernel } from '../../src/kernel/kernel.js';
import { proxyQueueBytesMax, proxyQueueLength } from '../../src/limits.js';
import { MemoryCluster } from '../../src/net/memory-cluster.js';
import { assertKr, message, port, portDescriptor } from '../ipc/helpers.js';
import { runTask, startTask, taskModule, testKernel } from '../support/fixtures.js';

/** A task id for IPC spaces driven directly by a test (no WebAssembly behind them). */
const T = 1000;

function node(name: string): Kernel {
  return testKernel({ nodeId: `${name}-0000000${name.length}` });
}

/** Three kernels joined in one in-memory cluster, each with a bare IPC space for task T. */
function threeNodes(): { cluster: MemoryCluster; a: Kernel; b: Kernel; c: Kernel } {
  const cluster = new MemoryCluster();
  const [a, b, c] = [node('a'), node('b'), node('c')];
  for (const kernel of [a, b, c]) {
    cluster.join(kernel);
    kernel.ipc.createSpace(T);
  }
  return { cluster, a, b, c };
}

/** Registers a fresh receive right of T on `home` as `service` and returns its name there. */
function serve(home: Kernel, service: string): number {
  const name = port(home.ipc, T);
  assertKr(home.names.register(T, service, name), KernReturn.SUCCESS);
  return name;
}

/** Looks `service` up from `kernel` through the cluster; the send right's name in T's space. */
async function lookup(cluster: MemoryCluster, kernel: Kernel, service: string): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const found = kernel.names.lookup(T, service);
    if (found !== null) {
      assertKr(found.kr, KernReturn.SUCCESS);
      return found.name!;
    }
    kernel.lookupRemote(service);
    await cluster.idle();
  }
  throw new Error(`${service} not found`);
}

function send(kernel: Kernel, msg: Parameters<Kernel['ipc']['send']>[1]): void {
  assertKr(kernel.ipc.send(T, msg), KernReturn.SUCCESS);
  kernel.ipcChanged();
}

function receive(kernel: Kernel, name: number) {
  const result = kernel.ipc.receive(T, name, 1 << 20);
  assert.equal(result.kr, KernReturn.SUCCESS, `receive: ${String(result.kr)}`);
  kernel.ipcChanged();
  return (result as Extract<typeof result, { message: unknown }>).message;
}

function audit(...kernels: Kernel[]): void {
  for (const kernel of kernels) assert.deepEqual(kernel.ipc.audit(), [], kernel.nodeId);
}

/** What other nodes hold of the port `name` of T on `home`, by node. */
function holdings(home: Kernel, name: number): Record<string, unknown> {
  const portId = home.ipc.portIdOf(T, name)!;
  return { ...(home.ipc.state.ports[portId]!.remote ?? {}) };
}

describe('NORMA IPC (kernels linked in memory)', () => {
  it('runs the counter service on one node and its client on another', async () => {
    const cluster = new MemoryCluster();
    const [a, b] = [node('a'), node('b')];
    cluster.join(a);
    cluster.join(b);
    const server = await startTask(a, { module: taskModule('counter-server'), name: 'counter-server' });
    const client = await runTask(b, { module: taskModule('counter-client'), args: ['counter-client', '25'] });
    assert.equal(client.stdout, 'counter = 25\nserver stopped after 27 requests\n');
    assert.equal(
      (await server.done).stdout,
      'counter-server: registered "counter"\ncounter-server: stopped after 27 requests, counter = 25\n',
    );
    await cluster.idle();
    audit(a, b);
    assert.deepEqual(b.ipc.proxies(), [], 'the client node keeps no proxy once its task is gone');
  });

  it('publishes the names of a restored task in the cluster, as it does new registrations', async () => {
    const { cluster, a, b } = threeNodes();
    const inbox = port(a.ipc, T);
    // What a restore leaves: a kernel-held send right to the port, then the name adopted.
    const { portId } = a.ipc.kernelCopySend(T, inbox);
    a.names.adopt('restored', portId!);
    const found = await lookup(cluster, b, 'restored');
    assert.equal(b.ipc.portIdOf(T, found), portId);
    audit(a, b);
  });

  it("finds through the cluster a name another node gave to this node's own port, and keeps its own name", async () => {
    const { cluster, a, b } = threeNodes();
    const inbox = serve(a, 's1');
    const onB = await lookup(cluster, b, 's1');
    assertKr(b.names.register(T, 's2', onB), KernReturn.SUCCESS);
    await cluster.idle();
    // a has no "s2": the cluster names b's registration, a port that lives on a.
    const viaB = await lookup(cluster, a, 's2');
    assert.equal(a.ipc.portIdOf(T, viaB), a.ipc.portIdOf(T, inbox));
    const own = a.names.lookup(T, 's1');
    assert.equal(own?.kr, KernReturn.SUCCESS, "a's own registration still holds its right");
    send(a, message(own!.name!, Disposition.COPY_SEND, { id: 7 }));
    assert.equal(receive(a, inbox).id, 7);
    audit(a, b);
  });

  it('passes a send right along three nodes and uses it at the far end', async () => {
    const cluster = new MemoryCluster();
    const [a, b, c] = [node('a'), node('b'), node('c')];
    for (const kernel of [a, b, c]) cluster.join(kernel);
    const server = await startTask(a, { module: taskModule('counter-server'), name: 'counter-server' });
    const broker = await startTask(b, {
      module: taskModule('right-broker'),
      args: ['right-broker', 'counter'],
    });
    const client = await runTask(c, {
      module: taskModule('broker-client'),
      args: ['broker-client', 'counter', '7'],
    });
    assert.equal(client.stdout, 'counter = 7\n');
    assert.equal(
      (await broker.done).stdout,
      'right-broker: serving "broker:counter"\nright-broker: handed out 1 rights\n',
    );
    // The right came from a, went to b, then to c: c's requests reached a directly.
    const direct = cluster.sent.filter(
      (s) => s.from === c.nodeId && s.to === a.nodeId && s.frame.k === 'msg',
    );
    assert.equal(direct.length, 8);
    const stopper = await runTask(c, { module: taskModule('counter-client'), args: ['counter-client', '1'] });
    assert.equal(stopper.stdout, 'counter = 8\nserver stopped after 11 requests\n');
    await server.done;
    await cluster.idle();
    audit(a, b, c);
    for (const kernel of [b, c]) assert.deepEqual(kernel.ipc.proxies(), []);
  });

  it('moves a port to another node while two others keep sending: each message once, in order, and the old node is not needed', async () => {
    const cluster = new MemoryCluster();
    const [a, b, c] = [node('a'), node('b'), node('c')];
    const [normaA, normaB] = [cluster.join(a), cluster.join(b)];
    cluster.join(c);
    for (const kernel of [a, b, c]) kernel.ipc.createSpace(T);
    // Task M on a receives on `inbox`, registered as "mover"; T on a, b and c hold send rights.
    const M = 2000;
    a.ipc.createSpace(M);
    const inbox = port(a.ipc, M);
    assertKr(a.ipc.portSetQlimit(M, inbox, 64), KernReturn.SUCCESS);
    assertKr(a.names.register(M, 'mover', inbox), KernReturn.SUCCESS);
    const portId = a.ipc.portIdOf(M, inbox)!;
    const fromA = await lookup(cluster, a, 'mover');
    const fromB = await lookup(cluster, b, 'mover');
    const fromC = await lookup(cluster, c, 'mover');
    const say = (kernel: Kernel, name: number, id: number): void =>
      send(kernel, message(name, Disposition.COPY_SEND, { id }));

    say(c, fromC, 1);
    say(b, fromB, 101);
    await cluster.idle();
    say(c, fromC, 2); // in flight while b prepares
    await normaB.prepareArrival([portId]);
    say(c, fromC, 3);
    say(b, fromB, 102); // b's proxy: queued there while the port is on its way
    const migration = await normaA.handOff([M], b.nodeId);
    // a's task kept a send right: the port is a proxy of its new home there, with a proxy's window.
    assert.equal(a.ipc.state.ports[portId]?.qlimit, proxyQueueLength);
    say(c, fromC, 4); // reaches a after the hand-off: refused as moved, sent on to b
    say(a, fromA, 201); // a keeps a send right: its proxy sends to b now
    // As the restorer does: the IPC state, then the names (adopted and published).
    await normaB.arrive(migration, a.nodeId, async (importIpc) => {
      importIpc({ [M]: M }, {});
      for (const { service, portId } of migration.names) b.names.adopt(service, portId);
    });
    say(c, fromC, 5);
    await cluster.idle();
    cluster.kill(a.nodeId); // nothing on a is needed any more
    say(c, fromC, 6);
    say(b, fromB, 103);
    await cluster.idle();

    const received: number[] = [];
    while (b.ipc.hasMessage(M, inbox)) {
      const result = b.ipc.receive(M, inbox, 1 << 20);
      assertKr(result.kr, KernReturn.SUCCESS);
      received.push((result as Extract<typeof result, { message: unknown }>).message.id);
    }
    assert.deepEqual(
      received.filter((id) => id < 100),
      [1, 2, 3, 4, 5, 6],
    );
    assert.deepEqual(
      received.filter((id) => id > 100 && id < 200),
      [101, 102, 103],
    );
    assert.deepEqual(
      received.filter((id) => id > 200),
      [201],
    );
    assert.equal(b.ipc.isHomedHere(portId), true);
    assert.deepEqual(b.ipc.proxies(), [], 'b holds the port itself now, no proxy of it');
    // The name moved too: c finds it on b (a and its registration are gone).
    const again = await lookup(cluster, c, 'mover');
    assert.equal(c.ipc.portIdOf(T, again), portId);
    audit(b, c);
  });

  it('counts rights per node: no-senders fires once no node holds a send right', async () => {
    const { cluster, a, b, c } = threeNodes();
    const service = serve(a, 'svc');
    const notify = port(a.ipc, T);
    assertKr(a.ipc.portRequestNotification(T, service, NotifyVariant.NO_SENDERS, notify), KernReturn.SUCCESS);
    a.names.forgetPort(a.ipc.portIdOf(T, service)!); // the name service lets go of its right
    a.ipcChanged();
    // No-senders fired for the name service's right only if nobody else held one: look it up first.
    const onB = await lookup(cluster, b, 'svc').catch(() => 0);
    assert.equal(onB, 0, 'after the registration is gone, lookups fail');
    assert.equal(a.ipc.hasMessage(T, notify), true, 'no-senders after the last (kernel) right');
    receive(a, notify);

    // Again with remote holders: b gets a right by lookup and passes copies to c.
    assertKr(a.ipc.portInsertRight(T, service, Disposition.MAKE_SEND), KernReturn.SUCCESS);
    assertKr(a.names.register(T, 'svc2', service), KernReturn.SUCCESS);
    assertKr(a.ipc.portRequestNotification(T, service, NotifyVariant.NO_SENDERS, notify), KernReturn.SUCCESS);
    const bRight = await lookup(cluster, b, 'svc2');
    const cInbox = serve(c, 'inbox');
    const toC = await lookup(cluster, b, 'inbox');
    send(
      b,
      message(toC, Disposition.MOVE_SEND, { descriptors: [portDescriptor(bRight, Disposition.COPY_SEND)] }),
    );
    await cluster.idle();
    const atC = receive(c, cInbox);
    const cRight = atC.descriptors[0]!;
    assert.equal(cRight.type, 'port');
    // a drops its own rights and the registration: b and c still hold send rights.
    assertKr(a.ipc.portModRefs(T, service, 0, -1), KernReturn.SUCCESS);
    a.names.forgetPort(a.ipc.portIdOf(T, service)!);
    a.ipcChanged();
    await cluster.idle();
    assert.equal(a.ipc.hasMessage(T, notify), false, 'b and c still hold send rights');
    assertKr(b.ipc.portDeallocate(T, bRight), KernReturn.SUCCESS);
    b.ipcChanged();
    await cluster.idle();
    assert.equal(a.ipc.hasMessage(T, notify), false, 'c still holds one');
    assertKr(c.ipc.portDeallocate(T, (cRight as { name: number }).name), KernReturn.SUCCESS);
    c.ipcChanged();
    await cluster.idle();
    const ns = receive(a, notify);
    assert.equal(ns.id, NotifyId.NO_SENDERS);
    assert.deepEqual(holdings(a, service), {});
    audit(a, b, c);
  });

  it('delivers a reply through a send-once right that crossed two nodes', async () => {
    const { cluster, a, b, c } = threeNodes();
    const inboxB = serve(b, 'b-inbox');
    const inboxC = serve(c, 'c-inbox');
    const replyPort = port(a.ipc, T);
    const toB = await lookup(cluster, a, 'b-inbox');
    const bToC = await lookup(cluster, b, 'c-inbox');
    // a asks b with a send-once reply right; b forwards the request (and the right) to c; c answers.
    send(
      a,
      message(toB, Disposition.COPY_SEND, {
        replyName: replyPort,
        replyDisposition: Disposition.MAKE_SEND_ONCE,
        id: 1,
      }),
    );
    await cluster.idle();
    const atB = receive(b, inboxB);
    send(
      b,
      message(bToC, Disposition.COPY_SEND, {
        replyName: atB.replyName,
        replyDisposition: Disposition.MOVE_SEND_ONCE,
        id: 2,
      }),
    );
    await cluster.idle();
    const atC = receive(c, inboxC);
    assert.equal(atC.replyDisposition, Disposition.MOVE_SEND_ONCE);
    send(c, message(atC.replyName, Disposition.MOVE_SEND_ONCE, { id: 3, body: new Uint8Array([42]) }));
    await cluster.idle();
    const answer = receive(a, replyPort);
    assert.equal(answer.id, 3);
    assert.deepEqual([...answer.body], [42]);
    assert.deepEqual(holdings(a, replyPort), {}, 'the send-once right is used up everywhere');
    audit(a, b, c);
  });

  /** Sends `body`-sized messages from b to a's port `inbox` (qlimit 3) until b's proxy is full. */
  async function fillWindow(bodyBytes: number): Promise<{ sent: number; proxyQlimit: number }> {
    const { cluster, a, b } = threeNodes();
    const inbox = serve(a, 'inbox');
    assertKr(a.ipc.portSetQlimit(T, inbox, 3), KernReturn.SUCCESS);
    const dest = await lookup(cluster, b, 'inbox');
    let sent = 0;
    for (let i = 0; i < 200; i++) {
      const kr = b.ipc.send(
        T,
        message(dest, Disposition.COPY_SEND, { id: i, body: new Uint8Array(bodyBytes) }),
      );
      b.ipcChanged();
      if (kr !== KernReturn.SUCCESS) break;
      sent++;
      await cluster.idle();
    }
    const proxy = b.ipc.state.ports[b.ipc.portIdOf(T, dest)!]!;
    assert.equal(b.ipc.send(T, message(dest, Disposition.COPY_SEND)), -1, 'sendWouldBlock');
    // Receiving at a lets the rest through, in order, each exactly once.
    const ids: number[] = [];
    while (ids.length < sent) {
      if (!a.ipc.hasMessage(T, inbox)) {
        await cluster.idle();
        continue;
      }
      ids.push(receive(a, inbox).id);
    }
    assert.deepEqual(ids, [...Array(sent).keys()]);
    await cluster.idle();
    assert.equal(a.ipc.hasMessage(T, inbox), false, 'nothing doubled');
    audit(a, b);
    return { sent, proxyQlimit: proxy.qlimit };
  }

  it('bounds what is in flight: a sender blocks at the queue limit of the remote port', async () => {
    // 3 queued at a, and the proxy's own window (proxyQueueLength messages) waiting at b.
    const { sent, proxyQlimit } = await fillWindow(8);
    assert.equal(proxyQlimit, proxyQueueLength);
    assert.equal(sent, 3 + proxyQueueLength);
  });

  it('bounds what is in flight in bytes: large messages block the sender at proxyQueueBytesMax', async () => {
    const bodyBytes = 100 * 1024;
    const { sent } = await fillWindow(bodyBytes);
    // The proxy takes messages until it holds proxyQueueBytesMax or more.
    assert.equal(sent, 3 + Math.ceil(proxyQueueBytesMax / bodyBytes));
    assert.ok(Math.ceil(proxyQueueBytesMax / bodyBytes) < proxyQueueLength, 'the bytes are the bound here');
  });

  it('delivers every body intact while the bytes of acknowledged messages are reused for the next sends', async () => {
    const { cluster, a, b } = threeNodes();
    const inbox = serve(a, 'inbox');
    assertKr(a.ipc.portSetQlimit(T, inbox, 4), KernReturn.SUCCESS);
    const dest = await lookup(cluster, b, 'inbox');
    const bodyOf = (i: number): Uint8Array => new Uint8Array(8192).map((_, j) => (i * 7 + j) & 0xff);
    const source = new Uint8Array(8192);
    let sent = 0;
    let received = 0;
    while (received < 300) {
      // The sender's buffer is overwritten after each send (Mach copies at send).
      while (sent < 300) {
        source.set(bodyOf(sent));
        const kr = b.ipc.send(T, message(dest, Disposition.COPY_SEND, { id: sent, body: source }));
        b.ipcChanged();
        if (kr !== KernReturn.SUCCESS) break;
        sent++;
      }
      await cluster.idle();
      while (a.ipc.hasMessage(T, inbox)) {
        const got = receive(a, inbox);
        assert.equal(got.id, received);
        assert.deepEqual(got.body, bodyOf(received), `the body of message ${received}`);
        received++;
      }
      a.ipcChanged();
    }
    audit(a, b);
  });

  it('a flush barrier waits for every message sent to another node to be acknowledged, and times out', async () => {
    const cluster = new MemoryCluster();
    const [a, b] = [node('a'), node('b')];
    cluster.join(a);
    const normaB = cluster.join(b);
    for (const kernel of [a, b]) kernel.ipc.createSpace(T);
    const inbox = serve(a, 'inbox');
    assertKr(a.ipc.portSetQlimit(T, inbox, 1), KernReturn.SUCCESS);
    const dest = await lookup(cluster, b, 'inbox');
    await normaB.flushBarrier(0); // nothing sent: passes at once
    // The first is queued at a (acknowledged); the second is refused there for a full queue.
    send(b, message(dest, Disposition.COPY_SEND, { id: 1 }));
    send(b, message(dest, Disposition.COPY_SEND, { id: 2 }));
    await cluster.idle();
    await assert.rejects(normaB.flushBarrier(30), /1 port\(s\) on other nodes have not acknowledged/);
    let passed = false;
    const barrier = normaB.flushBarrier(10_000).then(() => {
      passed = true;
    });
    await cluster.idle();
    assert.equal(passed, false, 'not before a has room for the second message');
    assert.equal(receive(a, inbox).id, 1);
    a.ipcChanged();
    await barrier;
    assert.equal(receive(a, inbox).id, 2);
  });

  it('turns rights into dead names when the remote port dies or its node dies', async () => {
    const { cluster, a, b, c } = threeNodes();
    const doomed = serve(a, 'doomed');
    serve(c, 'survivor');
    const onB = await lookup(cluster, b, 'doomed');
    const survivorOnB = await lookup(cluster, b, 'survivor');
    const watch = port(b.ipc, T);
    assertKr(b.ipc.portRequestNotification(T, onB, NotifyVariant.DEAD_NAME, watch), KernReturn.SUCCESS);
    assertKr(a.ipc.portDestroy(T, doomed), KernReturn.SUCCESS);
    a.ipcChanged();
    await cluster.idle();
    assert.equal(receive(b, watch).id, NotifyId.DEAD_NAME);
    assert.equal(b.ipc.portType(T, onB).type & PortType.DEAD_NAME, PortType.DEAD_NAME);
    assertKr(b.ipc.send(T, message(onB, Disposition.COPY_SEND)), KernReturn.SEND_INVALID_DEST);

    cluster.kill(c.nodeId);
    await cluster.idle(); // b asks the directory whether the port had moved on first
    assert.equal(b.ipc.portType(T, survivorOnB).type & PortType.DEAD_NAME, PortType.DEAD_NAME);
    assert.equal(await b.names.lookup(T, 'survivor'), null);
    audit(a, b);
  });

  it('refuses to send receive rights and memory-object rights to another node', async () => {
    const { cluster, a, b } = threeNodes();
    serve(a, 'inbox');
    const dest = await lookup(cluster, b, 'inbox');
    const mine = port(b.ipc, T);
    assertKr(
      b.ipc.send(
        T,
        message(dest, Disposition.COPY_SEND, {
          descriptors: [portDescriptor(mine, Disposition.MOVE_RECEIVE)],
        }),
      ),
      KernReturn.SEND_INVALID_RIGHT,
    );
    assert.equal(b.ipc.portType(T, mine).type, PortType.RECEIVE, 'nothing moved');
    const object = b.ipc.insertSendRight(T, b.ipc.allocateKernelPort({ type: 'memory_object', id: 1 })).name;
    for (const descriptor of [
      portDescriptor(object, Disposition.COPY_SEND),
      portDescriptor(object, Disposition.MOVE_SEND),
    ]) {
      assertKr(
        b.ipc.send(T, message(dest, Disposition.COPY_SEND, { descriptors: [descriptor] })),
        KernReturn.SEND_INVALID_RIGHT,
      );
    }
    assertKr(
      b.ipc.send(
        T,
        message(dest, Disposition.COPY_SEND, { replyName: object, replyDisposition: Disposition.COPY_SEND }),
      ),
      KernReturn.SEND_INVALID_REPLY,
    );
    assert.equal(b.ipc.portGetRefs(T, object, 0).refs, 1, 'the memory-object right stayed');
    audit(a, b);
  });
});
