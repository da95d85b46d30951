// Export and import of the IPC state of a subset of tasks (ipc-snapshot.ts): moving tasks to another
// core, outside ports, notifications on import, refusals, encodings, validation of forged
// snapshots, and randomized runs checked against the original core going on without the others.
import { strict as assert } from 'node:assert';
import { Encoder } from 'cbor-x';
import {
  Disposition,
  KernReturn,
  NotifyId,
  NotifyVariant,
  PortRight,
  PortType,
} from '../../src/abi/syscalls.js';
import {
  exportTasks,
  Ipc,
  type IpcSnapshot,
  importTasks,
  type KObject,
  type OutgoingDescriptor,
  type PortId,
  type PortName,
  portNameDead,
  type QueuedMessage,
  type TaskId,
  validateIpcSnapshot,
} from '../../src/ipc/index.js';
import { spaceRemove } from '../../src/ipc/ipc-space.js';
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

const cbor = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  ...({ int64AsType: 'bigint' } as object),
});

/** Buffers (what cbor-x decodes byte strings to) as plain Uint8Arrays, recursively. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, plain(item)]));
  }
  return value;
}

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

/**
 * Tasks A and B on node n1 with a bit of everything: a service port in a port set with a request
 * from B queued on it (with a send-once reply right), a receive right in transit with its own
 * queue, a no-senders request, a dead-name request on a right to C's port.
 */
function twoTasks() {
  const ipc = setup();
  const service = port(ipc, A);
  const second = port(ipc, A);
  const set = ipc.portAllocate(A, 'port_set').name;
  assertKr(ipc.portMoveMember(A, service, set), KernReturn.SUCCESS);
  assertKr(ipc.portMoveMember(A, second, set), KernReturn.SUCCESS);
  const notify = port(ipc, A);
  assertKr(ipc.portRequestNotification(A, service, NotifyVariant.NO_SENDERS, notify), KernReturn.SUCCESS);

  const client = transferSend(ipc, A, service, B);
  const reply = port(ipc, B);
  sendOk(
    ipc,
    B,
    message(client, Disposition.COPY_SEND, {
      id: 10,
      replyName: reply,
      replyDisposition: Disposition.MAKE_SEND_ONCE,
      body: bytes(1, 2, 3),
    }),
  );

  // `moved` gets two messages, then its receive right travels in a message queued on `second`.
  const moved = port(ipc, A);
  sendOk(ipc, A, message(moved, Disposition.MAKE_SEND, { id: 20, body: bytes(7) }));
  sendOk(
    ipc,
    A,
    message(moved, Disposition.MAKE_SEND, {
      id: 21,
      descriptors: [{ type: 'ool', bytes: bytes(8, 9) }],
      body: bytes(8),
    }),
  );
  sendOk(
    ipc,
    A,
    message(second, Disposition.MAKE_SEND, {
      id: 30,
      descriptors: [portDescriptor(moved, Disposition.MOVE_RECEIVE)],
    }),
  );

  const cPort = port(ipc, C);
  const toC = transferSend(ipc, C, cPort, A);
  assertKr(ipc.portRequestNotification(A, toC, NotifyVariant.DEAD_NAME, notify), KernReturn.SUCCESS);
  ipc.takeEvents();
  audit(ipc);
  return { ipc, service, set, notify, client, reply, toC };
}

describe('ipc: export and import of tasks', () => {
  it('moves two tasks to another node under other task ids; they go on working', () => {
    const { ipc, service, set, notify, client, reply, toC } = twoTasks();
    const before = structuredClone(ipc.state);
    const snapshot = exportTasks(ipc, [A, B]);
    assert.deepEqual(ipc.state, before, 'export changes nothing');
    assert.deepEqual(validateIpcSnapshot(snapshot), []);
    assert.equal(snapshot.originNode, 'n1');
    assert.deepEqual(
      snapshot.outside.map((o) => o.id),
      [ipc.portIdOf(C, ipc.names(C)[0]!.name)],
    );

    // The target has tasks of its own, with the same numbers as A and B.
    const target = new Ipc('n2');
    target.createSpace(A);
    target.createSpace(B);
    const own = port(target, A, 1);
    sendOk(target, A, message(own, Disposition.COPY_SEND, { body: bytes(42) }));
    target.takeEvents();

    const [A2, B2] = [11, 12];
    const report = importTasks(target, snapshot, { taskIds: { [A]: A2, [B]: B2 } });
    assert.deepEqual(report, { ports: 5, sets: 1, messages: 4, reattached: 0, deadNames: 1 });
    audit(target);
    const events = target.takeEvents();
    const serviceId = ipc.portIdOf(A, service)!;
    const setId = ipc.portIdOf(A, set)!;
    assert.ok(events.some((e) => e.kind === 'message-queued' && e.portId === serviceId && e.setId === setId));

    // Names are the same; C's port is gone here, so the right to it is a dead name, and the
    // dead-name request fired (one more user reference).
    assert.equal(target.portType(A2, toC).type, PortType.DEAD_NAME);
    assert.equal(target.portGetRefs(A2, toC, PortRight.DEAD_NAME).refs, 2);
    const deadNote = receiveOk(target, A2, notify);
    assert.equal(deadNote.id, NotifyId.DEAD_NAME);
    assert.equal(u32(deadNote.body), toC);

    // The request from B, received through the set; the reply goes back through the send-once right.
    const request = receiveOk(target, A2, set);
    assert.equal(request.localName, service);
    assert.deepEqual([request.id, [...request.body]], [10, [1, 2, 3]]);
    sendOk(target, A2, message(request.replyName, Disposition.MOVE_SEND_ONCE, { id: 11, body: bytes(4) }));
    assert.deepEqual([...receiveOk(target, B2, reply).body], [4]);

    // The receive right in transit comes out with its queue.
    const carrier = receiveOk(target, A2, set);
    assert.equal(carrier.id, 30);
    const movedDescriptor = carrier.descriptors[0]!;
    assert.equal(movedDescriptor.type, 'port');
    const moved = movedDescriptor.type === 'port' ? movedDescriptor.name : 0;
    assert.equal(target.portType(A2, moved).type, PortType.RECEIVE);
    assert.equal(receiveOk(target, A2, moved).id, 20);
    const next = receiveOk(target, A2, moved);
    assert.deepEqual([next.id, next.descriptors], [21, [{ type: 'ool', bytes: bytes(8, 9) }]]);

    // The no-senders request on the service port, registered before the export, fires here.
    assertKr(target.portDeallocate(B2, client), KernReturn.SUCCESS);
    const noSenders = receiveOk(target, A2, notify);
    assert.deepEqual([noSenders.id, u32(noSenders.body)], [NotifyId.NO_SENDERS, 1]);

    // New ports get fresh ids of the target's node; the target's own task is untouched.
    const fresh = target.portAllocate(A2, 'receive').name;
    assert.match(target.portIdOf(A2, fresh)!, /^n2\./);
    assert.deepEqual([...receiveOk(target, A, own).body], [42]);
    audit(target);
  });

  it('restores a port set with its service order and a queue limit', () => {
    const ipc = setup();
    const [p1, p2, p3] = [port(ipc, A), port(ipc, A), port(ipc, A)];
    const set = ipc.portAllocate(A, 'port_set').name;
    for (const p of [p1, p2, p3]) ipc.portMoveMember(A, p, set);
    assertKr(ipc.portSetQlimit(A, p2, 1), KernReturn.SUCCESS);
    for (const [p, id] of [
      [p1, 1],
      [p2, 2],
      [p3, 3],
      [p1, 4],
    ] as const) {
      sendOk(ipc, A, message(p, Disposition.MAKE_SEND, { id }));
    }
    receiveOk(ipc, A, set); // p1 served: it goes to the back
    const snapshot = exportTasks(ipc, [A]);
    const target = new Ipc('n2');
    importTasks(target, snapshot, { taskIds: { [A]: 5 } });
    audit(target);
    const ids = [1, 2, 3].map(() => receiveOk(target, 5, set).id);
    assert.deepEqual(ids, [2, 3, 4]);
    sendOk(target, 5, message(p2, Disposition.MAKE_SEND));
    assert.equal(target.send(5, message(p2, Disposition.MAKE_SEND)), -1, 'qlimit 1 kept');
  });

  it('reattaches rights to outside ports alive in the target; the others become dead names', () => {
    const ipc = setup();
    const bPort = port(ipc, B);
    const toB = transferSend(ipc, B, bPort, A);
    const cPort = port(ipc, C);
    const toC = transferSend(ipc, C, cPort, A);
    const notify = port(ipc, A);
    ipc.portRequestNotification(A, toC, NotifyVariant.DEAD_NAME, notify);
    const aPort = port(ipc, A);
    const toA = transferSend(ipc, A, aPort, B);
    sendOk(
      ipc,
      A,
      message(aPort, Disposition.MAKE_SEND, {
        descriptors: [portDescriptor(toB, Disposition.COPY_SEND), portDescriptor(toC, Disposition.COPY_SEND)],
      }),
    );
    const [bId, cId, aId] = [ipc.portIdOf(B, bPort)!, ipc.portIdOf(C, cPort)!, ipc.portIdOf(A, aPort)!];
    const snapshot = exportTasks(ipc, [A]);
    assert.deepEqual(snapshot.outside, [
      { id: bId, kobject: null },
      { id: cId, kobject: null },
    ]);

    // A is frozen and destroyed here, C ends; later A is thawed on the same node.
    ipc.destroySpace(A);
    ipc.destroySpace(C);
    assert.equal(ipc.portType(B, toA).type, PortType.DEAD_NAME);
    const serial = ipc.state.nextSerial;
    const report = importTasks(ipc, snapshot, { taskIds: { [A]: 9 } });
    assert.deepEqual([report.reattached, report.deadNames], [2, 2]);
    audit(ipc);
    assert.equal(ipc.state.nextSerial, serial, 'ids of this node were already below the counter');

    // B's name for A's port died with it and stays dead, though the port lives again.
    assert.equal(ipc.isAlive(aId), true);
    assert.equal(ipc.portType(B, toA).type, PortType.DEAD_NAME);
    assert.equal(ipc.portIdOf(B, toA), null);
    assertKr(ipc.send(B, message(toA, Disposition.COPY_SEND)), KernReturn.SEND_INVALID_DEST);

    // The right to B's port works; the one to C's port is dead, and its request fired.
    sendOk(ipc, 9, message(toB, Disposition.COPY_SEND, { id: 5 }));
    assert.equal(receiveOk(ipc, B, bPort).id, 5);
    assert.equal(ipc.portType(9, toC).type, PortType.DEAD_NAME);
    assert.equal(u32(receiveOk(ipc, 9, notify).body), toC);
    const carried = receiveOk(ipc, 9, aPort);
    assert.deepEqual(
      carried.descriptors.map((d) => (d.type === 'port' ? d.name : -1)),
      [toB, portNameDead],
    );
    assert.equal(ipc.portGetRefs(9, toB, PortRight.SEND).refs, 2);
    audit(ipc);
    assertKr(ipc.portDestroy(B, bPort), KernReturn.SUCCESS);
    assert.equal(ipc.portType(9, toB).type, PortType.DEAD_NAME);
    audit(ipc);
  });

  it('moves the serial counter above the imported ids of its own node', () => {
    const { ipc } = twoTasks();
    const snapshot = exportTasks(ipc, [A]);
    const target = new Ipc('n1');
    importTasks(target, snapshot, { taskIds: { [A]: A } });
    audit(target);
    const serials = [...snapshot.ports, ...snapshot.sets, ...snapshot.outside]
      .map((p) => Number(p.id.split('.')[1]))
      .concat(snapshot.dead.map((id) => Number(id.split('.')[1])));
    const fresh = target.portIdOf(A, target.portAllocate(A, 'receive').name)!;
    assert.ok(Number(fresh.split('.')[1]) > Math.max(...serials), fresh);
  });

  it('fires a no-senders request when the send rights left behind were the last', () => {
    const ipc = setup();
    const watched = port(ipc, A);
    const idle = port(ipc, A);
    const named = port(ipc, A);
    const notify = port(ipc, A);
    for (const p of [watched, idle, named]) {
      ipc.portRequestNotification(A, p, NotifyVariant.NO_SENDERS, notify);
    }
    transferSend(ipc, A, watched, B);
    // The kernel keeps a send right to `named` (the name service): it comes back as the kernel's.
    const namedId = ipc.kernelCopySend(A, named).portId!;
    transferSend(ipc, A, named, B);
    const snapshot = exportTasks(ipc, [A]);
    assert.equal(snapshot.ports.find((p) => p.id === namedId)!.kernelSrights, 1);

    const target = new Ipc('n2');
    importTasks(target, snapshot, { taskIds: { [A]: 1 } });
    audit(target);
    // `watched` lost its only sender; `idle` never had one (nothing dropped); `named` keeps the kernel's.
    const note = receiveOk(target, 1, notify);
    assert.deepEqual([note.id, u32(note.body)], [NotifyId.NO_SENDERS, 1]);
    assert.equal(target.hasMessage(1, notify), false);
    assert.equal(target.state.ports[namedId]!.srights, 1);
    assert.equal(target.insertSendRight(1, namedId).kr, KernReturn.SUCCESS);
    assertKr(target.portDeallocate(1, named), KernReturn.SUCCESS);
    target.kernelReleaseSend(namedId);
    const last = receiveOk(target, 1, notify);
    // Make-send count: kernelCopySend twice from the receive right before the export.
    assert.deepEqual([last.id, u32(last.body)], [NotifyId.NO_SENDERS, 2]);
    audit(target);
  });

  it('reattaches rights to kernel ports the target re-created', () => {
    const ipc = setup();
    const kobject: KObject = { type: 'memory_object', id: 5 };
    const kport = ipc.allocateKernelPort(kobject);
    const name = ipc.insertSendRight(A, kport).name;
    const snapshot = exportTasks(ipc, [A]);
    assert.deepEqual(snapshot.outside, [{ id: kport, kobject }]);

    const without = new Ipc('n2');
    assert.equal(importTasks(without, snapshot, { taskIds: { [A]: 1 } }).deadNames, 1);
    assert.equal(without.portType(1, name).type, PortType.DEAD_NAME);
    audit(without);

    // The target kernel re-created the memory object under its own object id.
    const target = new Ipc('n2');
    const local: KObject = { type: 'memory_object', id: 77 };
    const report = importTasks(target, snapshot, { taskIds: { [A]: 1 }, kernelPorts: { [kport]: local } });
    assert.equal(report.reattached, 1);
    audit(target);
    assert.deepEqual(target.translateSend(1, name), {
      kr: KernReturn.SUCCESS,
      portId: kport,
      kobject: local,
    });
    target.takeEvents();
    assertKr(target.portDeallocate(1, name), KernReturn.SUCCESS);
    assert.deepEqual(target.takeEvents(), [{ kind: 'kernel-no-senders', portId: kport, kobject: local }]);
    audit(target);

    // A task's port cannot come back as a kernel port.
    const bPort = port(ipc, B);
    transferSend(ipc, B, bPort, A);
    const withTaskPort = exportTasks(ipc, [A]);
    const bId = ipc.portIdOf(B, bPort)!;
    assert.throws(
      () => importTasks(new Ipc('n2'), withTaskPort, { taskIds: { [A]: 1 }, kernelPorts: { [bId]: local } }),
      /outside port .* was a task's port/,
    );
  });

  it('refuses conflicts and leaves the target untouched', () => {
    const { ipc } = twoTasks();
    const snapshot = exportTasks(ipc, [A, B]);
    const target = new Ipc('n2');
    target.createSpace(12);
    port(target, 12);
    const refuse = (options: Parameters<typeof importTasks>[2], pattern: RegExp, into = target) => {
      const before = structuredClone(into.state);
      assert.throws(() => importTasks(into, snapshot, options), pattern);
      assert.deepEqual(into.state, before);
    };
    refuse({ taskIds: { [A]: 11, [B]: 12 } }, /task 12 \(task 2 in the snapshot\) already has an IPC space/);
    assert.equal(target.hasSpace(11), false);
    refuse({ taskIds: { [A]: 11 } }, /task 2 of the snapshot is not mapped/);
    refuse({ taskIds: { [A]: 11, [B]: 11 } }, /both map to task 11/);
    refuse({ taskIds: { [A]: -1, [B]: 13 } }, /maps to -1/);
    const included = snapshot.ports[0]!.id;
    refuse(
      { taskIds: { [A]: 11, [B]: 13 }, kernelPorts: { [included]: { type: 'memory_object', id: 1 } } },
      /kernelPorts .*task's port/,
    );
    // Thawing tasks that still run in the same core: their ports are alive.
    refuse({ taskIds: { [A]: 21, [B]: 22 } }, /is alive in the target/, ipc);
    // Importing the same snapshot twice.
    importTasks(target, snapshot, { taskIds: { [A]: 11, [B]: 13 } });
    refuse({ taskIds: { [A]: 21, [B]: 22 } }, /is alive in the target/);
    const forged = { ...snapshot, version: 2 } as unknown as IpcSnapshot;
    const before = structuredClone(target.state);
    assert.throws(
      () => importTasks(target, forged, { taskIds: { [A]: 31, [B]: 32 } }),
      /invalid IPC snapshot/,
    );
    assert.deepEqual(target.state, before);
    audit(target);
  });

  it('round-trips through cbor-x and structuredClone unchanged', () => {
    const { ipc } = twoTasks();
    const snapshot = exportTasks(ipc, [A, B]);
    assert.deepEqual(structuredClone(snapshot), snapshot);
    const encoded = cbor.encode(snapshot);
    const decoded: unknown = cbor.decode(encoded);
    assert.deepEqual(validateIpcSnapshot(decoded), []);
    assert.deepEqual(plain(decoded), snapshot);
    assert.equal(Buffer.compare(cbor.encode(decoded), encoded), 0, 're-encoding gives the same bytes');

    const viaCbor = new Ipc('n2');
    const direct = new Ipc('n2');
    importTasks(viaCbor, decoded as IpcSnapshot, { taskIds: { [A]: 1, [B]: 2 } });
    importTasks(direct, snapshot, { taskIds: { [A]: 1, [B]: 2 } });
    assert.deepEqual(viaCbor.state, direct.state);
    audit(viaCbor);
  });

  it('validation rejects malformed, truncated and forged snapshots', () => {
    const { ipc, toC } = twoTasks();
    const snapshot = exportTasks(ipc, [A, B]);
    const copy = (): IpcSnapshot => structuredClone(snapshot);
    const rejects = (value: unknown, pattern: RegExp) => {
      const problems = validateIpcSnapshot(value);
      assert.ok(
        problems.some((p) => pattern.test(p)),
        `expected ${pattern}, got ${JSON.stringify(problems)}`,
      );
    };

    rejects(null, /not an object/);
    rejects([], /not an object/);
    rejects({ ...copy(), version: 2 }, /version 2 is not 1/);
    rejects({ ...copy(), ports: undefined }, /ports is not an array/);

    // Truncated: a port is missing, so names, sets and queues point at nothing.
    const truncated = copy();
    const lost = truncated.ports.pop()!;
    rejects(truncated, new RegExp(lost.id.replace('.', '\\.')));

    // A name forged to point at a port the snapshot does not have.
    const forgedName = copy();
    const aSpace = forgedName.spaces[0]!;
    const entry = aSpace.entries.find((e) => e.name === toC)!;
    entry.object = 'n1.9999';
    rejects(forgedName, /right to n1\.9999, which the snapshot neither includes nor lists/);

    // A queue carrying the receive right of a port listed as outside.
    const stolen = copy();
    const outsideId = stolen.outside[0]!.id;
    stolen.ports[0]!.queue[0]!.descriptors.push({
      type: 'port',
      right: { kind: 'receive', port: outsideId },
    });
    rejects(stolen, /carries the receive right of .*, not included/);

    // A stale name (another generation), a free index that is in use, a port id of the wrong shape.
    const stale = copy();
    stale.spaces[0]!.entries[0]!.name += 1;
    rejects(stale, /not a current name/);
    const free = copy();
    free.spaces[0]!.freeIndices.push(1);
    rejects(free, /free index 1 in use/);
    const badId = copy();
    badId.dead.push('nonsense');
    rejects(badId, /dead\[\d+\]: "nonsense" is not a port id/);

    // Counts lower than what the snapshot itself holds; a receiver that does not hold the right.
    const counts = copy();
    counts.ports[0]!.srights = 0;
    rejects(counts, /srights 0, fewer than/);
    const receiver = copy();
    const transit = receiver.ports.find((p) => p.receiver.kind === 'transit')!;
    transit.receiver = { kind: 'transit', in: transit.id };
    rejects(receiver, /receive right in a cycle|receive rights in/);
    const bytesForged = copy() as unknown as { ports: { queue: { body: unknown }[] }[] };
    bytesForged.ports[0]!.queue[0]!.body = [1, 2];
    rejects(bytesForged, /body: not a byte array/);

    assert.deepEqual(validateIpcSnapshot(copy()), []);
  });

  it('validation never throws on corrupted snapshots, and what it accepts imports soundly', () => {
    const { ipc } = twoTasks();
    assertKr(ipc.portDestroy(C, ipc.names(C)[0]!.name), KernReturn.SUCCESS); // A's right to it dies
    const snapshot = exportTasks(ipc, [A, B]);
    assert.ok(snapshot.dead.length > 0 && snapshot.outside.length === 0);
    const random = prng(99);
    const replacements: unknown[] = [
      undefined,
      null,
      -1,
      0,
      1,
      256,
      2 ** 40,
      0.5,
      'x',
      'n1.1',
      {},
      [],
      bytes(1),
    ];
    // Every (container, key) of the snapshot's tree, so that one of them can be corrupted.
    const slots = (root: unknown): [Record<string | number, unknown>, string | number][] => {
      const found: [Record<string | number, unknown>, string | number][] = [];
      const walk = (value: unknown): void => {
        if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return;
        for (const key of Object.keys(value)) {
          const container = value as Record<string, unknown>;
          found.push([container, key]);
          walk(container[key]);
        }
      };
      walk(root);
      return found;
    };
    let accepted = 0;
    for (let round = 0; round < 1500; round++) {
      const forged = structuredClone(snapshot) as unknown;
      for (let n = 1 + Math.floor(random() * 2); n > 0; n--) {
        const all = slots(forged);
        const [container, key] = all[Math.floor(random() * all.length)]!;
        // Either a foreign value or a value from elsewhere in the snapshot (a plausible forgery).
        const donor = all[Math.floor(random() * all.length)]!;
        container[key] =
          random() < 0.5
            ? replacements[Math.floor(random() * replacements.length)]
            : structuredClone(donor[0][donor[1]]);
      }
      const problems = validateIpcSnapshot(forged);
      if (problems.length > 0) continue;
      accepted++;
      const target = new Ipc('n2');
      const tasks = (forged as IpcSnapshot).spaces.map((s) => s.task);
      importTasks(target, forged as IpcSnapshot, {
        taskIds: Object.fromEntries(tasks.map((t, i) => [t, 100 + i])),
      });
      assert.deepEqual(target.audit(), [], `round ${round}`);
    }
    assert.ok(accepted > 0, 'some corruptions are harmless (e.g. a message id)');
  });
});

// -------------------------------------------------------------------------------------------------
// Randomized: random operations, export of a random subset, import into another core; the exported
// tasks must then behave exactly as in the original core where the other tasks are gone.
// -------------------------------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A core and how the test's task ids map to its own. */
interface Core {
  ipc: Ipc;
  task: (t: TaskId) => TaskId;
}

const randomTasks: TaskId[] = [1, 2, 3, 4];
const anyDisposition = [
  Disposition.MOVE_RECEIVE,
  Disposition.MOVE_SEND,
  Disposition.COPY_SEND,
  Disposition.MAKE_SEND,
  Disposition.MOVE_SEND_ONCE,
  Disposition.MAKE_SEND_ONCE,
];

/**
 * Drives random operations on several cores in lockstep: choices are made from the first core's
 * state, each core runs the same call with its own task ids, and all must give the same answer.
 */
class Driver {
  cores: Core[];
  /** Kernel ports (same ids in every core). */
  kernelPorts: PortId[] = [];
  /** Send rights the kernel holds, per core (new ports have different ids in different cores). */
  held: PortId[][] = [];
  private readonly random: () => number;
  private readonly seed: number;

  constructor(seed: number, cores: Core[]) {
    this.seed = seed;
    this.random = prng(seed);
    this.cores = cores;
  }

  int(n: number): number {
    return Math.floor(this.random() * n);
  }

  pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[this.int(items.length)];
  }

  chance(p: number): boolean {
    return this.random() < p;
  }

  /** Runs `op` on every core; all answers must be equal. */
  all<T>(what: string, op: (ipc: Ipc, task: (t: TaskId) => TaskId) => T): T {
    const results = this.cores.map((core) => op(core.ipc, core.task));
    for (const result of results.slice(1)) assert.deepEqual(result, results[0], `seed ${this.seed}: ${what}`);
    return results[0]!;
  }

  private get first(): Core {
    return this.cores[0]!;
  }

  names(task: TaskId) {
    return this.first.ipc.names(this.first.task(task));
  }

  name(task: TaskId): PortName {
    if (this.chance(0.05)) return this.pick([0, 1, 12345, portNameDead, 256])!;
    return this.pick(this.names(task))?.name ?? 256;
  }

  /** A name and, most of the time, a disposition its rights allow. */
  right(task: TaskId, header: boolean): { name: PortName; disposition: number } {
    const entry = this.pick(this.names(task));
    const fits: number[] = [];
    if (entry !== undefined && this.chance(0.85)) {
      if (entry.type & PortType.RECEIVE) fits.push(Disposition.MAKE_SEND, Disposition.MAKE_SEND_ONCE);
      if (entry.type & PortType.RECEIVE && !header) fits.push(Disposition.MOVE_RECEIVE);
      if (entry.type & PortType.SEND) fits.push(Disposition.COPY_SEND, Disposition.MOVE_SEND);
      if (entry.type & PortType.SEND_ONCE) fits.push(Disposition.MOVE_SEND_ONCE);
    }
    return {
      name: entry?.name ?? this.name(task),
      disposition: this.pick(fits) ?? this.pick(anyDisposition)!,
    };
  }

  receiveName(task: TaskId): PortName {
    const names = this.names(task).filter((n) => n.type & (PortType.RECEIVE | PortType.PORT_SET));
    return this.chance(0.9) ? (this.pick(names)?.name ?? this.name(task)) : this.name(task);
  }

  /** One random operation. `lifecycle` allows creating and destroying spaces and kernel ports. */
  step(tasks: readonly TaskId[], step: number, lifecycle: boolean): void {
    const task = this.pick(tasks)!;
    if (!this.first.ipc.hasSpace(this.first.task(task))) {
      if (lifecycle) this.all('createSpace', (ipc, t) => ipc.createSpace(t(task)));
      return;
    }
    const roll = this.int(100);
    const at = `step ${step} roll ${roll}`;
    if (roll < 8) {
      const right = this.chance(0.8) ? 'receive' : 'port_set';
      this.all(at, (ipc, t) => ipc.portAllocate(t(task), right));
    } else if (roll < 12) {
      const name = this.name(task);
      this.all(at, (ipc, t) => ipc.portInsertRight(t(task), name, Disposition.MAKE_SEND));
    } else if (roll < 16) {
      const name = this.name(task);
      this.all(at, (ipc, t) => ipc.portDeallocate(t(task), name));
    } else if (roll < 18) {
      const name = this.name(task);
      this.all(at, (ipc, t) => ipc.portDestroy(t(task), name));
    } else if (roll < 22) {
      const right = this.pick([
        PortRight.SEND,
        PortRight.RECEIVE,
        PortRight.SEND_ONCE,
        PortRight.PORT_SET,
        PortRight.DEAD_NAME,
      ])!;
      const [name, delta] = [this.name(task), this.int(4) - 2];
      this.all(at, (ipc, t) => ipc.portModRefs(t(task), name, right, delta));
    } else if (roll < 26) {
      const setName = this.chance(0.2) ? 0 : this.name(task);
      const member = this.name(task);
      this.all(at, (ipc, t) => ipc.portMoveMember(t(task), member, setName));
    } else if (roll < 28) {
      const [name, limit] = [this.name(task), 1 + this.int(3)];
      this.all(at, (ipc, t) => ipc.portSetQlimit(t(task), name, limit));
    } else if (roll < 33) {
      // Mostly a request that fits the name: no-senders on a receive right, dead-name on the others.
      const entry = this.pick(this.names(task));
      const fits = entry !== undefined && this.chance(0.8);
      const name = fits ? entry.name : this.name(task);
      const variant = fits
        ? entry.type & PortType.RECEIVE && this.chance(0.7)
          ? NotifyVariant.NO_SENDERS
          : NotifyVariant.DEAD_NAME
        : this.int(2);
      const notify = this.chance(0.1) ? 0 : fits ? this.receiveName(task) : this.name(task);
      this.all(at, (ipc, t) => ipc.portRequestNotification(t(task), name, variant, notify));
    } else if (roll < 39) {
      // The kernel hands a right from one task to another (the name service).
      const from = this.name(task);
      const to = this.pick(tasks)!;
      if (!this.first.ipc.hasSpace(this.first.task(to))) return;
      this.all(at, (ipc, t) => {
        const copied = ipc.kernelCopySend(t(task), from);
        if (copied.kr !== KernReturn.SUCCESS) return [copied.kr];
        const inserted = ipc.insertSendRight(t(to), copied.portId!);
        ipc.kernelReleaseSend(copied.portId!);
        return [copied.kr, inserted];
      });
    } else if (roll < 41) {
      // The kernel keeps a send right (a name registered with the name service).
      const name = this.name(task);
      const ids = this.cores.map((core) => core.ipc.kernelCopySend(core.task(task), name));
      for (const id of ids) assert.equal(id.kr, ids[0]!.kr, `seed ${this.seed}: ${at}`);
      if (ids[0]!.kr === KernReturn.SUCCESS) this.held.push(ids.map((id) => id.portId!));
    } else if (roll < 43) {
      const index = this.int(this.held.length + 1);
      const ids = this.held[index];
      if (ids === undefined) return;
      this.held.splice(index, 1);
      this.cores.forEach((core, i) => {
        core.ipc.kernelReleaseSend(ids[i]!);
      });
    } else if (roll < 45) {
      if (lifecycle && (this.kernelPorts.length === 0 || this.chance(0.3))) {
        assert.equal(this.cores.length, 1, 'kernel ports are made before the cores split');
        this.kernelPorts.push(this.first.ipc.allocateKernelPort({ type: 'memory_object', id: step }));
      }
      const kport = this.pick(this.kernelPorts);
      if (kport === undefined) return;
      if (this.chance(0.15)) this.all(at, (ipc) => ipc.destroyKernelPort(kport));
      else this.all(at, (ipc, t) => ipc.insertSendRight(t(task), kport));
    } else if (roll < 74) {
      const dest = this.right(task, true);
      const reply = this.chance(0.5) ? { name: 0, disposition: Disposition.NONE } : this.right(task, true);
      const descriptors: OutgoingDescriptor[] = [];
      for (let i = this.int(4); i > 0; i--) {
        if (this.chance(0.2)) descriptors.push({ type: 'ool', bytes: new Uint8Array(this.int(20)).fill(i) });
        else descriptors.push({ type: 'port', ...this.right(task, false) });
      }
      const body = new Uint8Array(this.int(8)).fill(step & 0xff);
      this.all(at, (ipc, t) =>
        ipc.send(t(task), {
          destName: dest.name,
          destDisposition: dest.disposition,
          replyName: reply.name,
          replyDisposition: reply.disposition,
          id: 1000 + step,
          descriptors,
          body,
        }),
      );
    } else if (roll < 99 || !lifecycle) {
      const capacity = this.chance(0.1) ? this.int(40) : 1 << 16;
      const name = this.receiveName(task);
      this.all(at, (ipc, t) => ipc.receive(t(task), name, capacity));
    } else {
      this.all(at, (ipc, t) => ipc.destroySpace(t(task)));
    }
    for (const core of this.cores) {
      core.ipc.takeEvents();
      assert.deepEqual(core.ipc.audit(), [], `seed ${this.seed} ${at}`);
    }
  }
}

/**
 * Makes the rights that an import leaves behind vanish silently in `ipc` (the original core):
 * send-once rights to included ports held by spaces not exported (entries and dead-name requests),
 * by no-senders requests on ports not included, and inside messages queued on ports not included.
 * The import does not send the notifications their destruction would; everything else the other
 * tasks' end does (rights released, ports dying) is what the import does too.
 */
function silenceLostSendOnce(ipc: Ipc, exported: ReadonlySet<TaskId>, included: ReadonlySet<PortId>): void {
  const state = ipc.state;
  const drop = (id: PortId): void => {
    if (Object.hasOwn(state.ports, id)) state.ports[id]!.sorights--;
  };
  for (const space of Object.values(state.spaces)) {
    if (exported.has(space.task)) continue;
    for (const name of Object.keys(space.entries).map(Number)) {
      const entry = space.entries[name]!;
      if (entry.request !== null && included.has(entry.request)) {
        drop(entry.request);
        entry.request = null;
      }
      if (entry.type === PortType.SEND_ONCE && included.has(entry.object)) {
        if (entry.request !== null) drop(entry.request);
        entry.request = null;
        drop(entry.object);
        spaceRemove(space, name);
      }
    }
  }
  const gone = (right: { kind: string; port: PortId }) =>
    right.kind === 'send-once' && included.has(right.port);
  for (const port of Object.values(state.ports)) {
    if (included.has(port.id)) continue;
    if (port.nsRequest !== null && included.has(port.nsRequest)) {
      drop(port.nsRequest);
      port.nsRequest = null;
    }
    for (const msg of port.queue) {
      if (msg.reply !== null && gone(msg.reply)) {
        drop(msg.reply.port);
        msg.reply = { kind: 'send-once', port: 'gone.1' };
      }
      for (const d of msg.descriptors) {
        if (d.type === 'port' && gone(d.right)) {
          drop(d.right.port);
          d.right = { kind: 'send-once', port: 'gone.1' };
        }
      }
    }
  }
}

/** Notification messages appended by the import (or by the other tasks' end), in a fixed order. */
function sortTails(ipc: Ipc, prefixes: ReadonlyMap<PortId, number>): void {
  const key = (msg: QueuedMessage) => `${msg.id}:${[...msg.body].join(',')}`;
  for (const [id, length] of prefixes) {
    const port = ipc.state.ports[id];
    if (port === undefined) continue;
    const tail = port.queue.slice(length);
    for (const msg of tail) assert.equal(msg.descriptors.length + (msg.reply === null ? 0 : 1), 0);
    tail.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    port.queue = [...port.queue.slice(0, length), ...tail];
  }
}

/** The part of a core's state the exported tasks own, in the test's task ids. */
function view(core: Core, tasks: readonly TaskId[], ports: readonly PortId[]) {
  const state = core.ipc.state;
  const back = new Map(tasks.map((t) => [core.task(t), t]));
  const task = (t: TaskId) => back.get(t) ?? -1;
  return {
    spaces: tasks.map((t) => {
      const { task: _, freeIndices, freeHead, ...space } = state.spaces[core.task(t)]!;
      return { ...space, free: freeIndices.slice(freeHead) };
    }),
    ports: ports.map((id) => {
      const port = state.ports[id];
      if (port === undefined) return null;
      const receiver = port.receiver;
      return {
        ...port,
        receiver: receiver.kind === 'space' ? { ...receiver, task: task(receiver.task) } : receiver,
      };
    }),
    sets: Object.values(state.sets)
      .filter((set) => back.has(set.task))
      .map((set) => ({ ...set, task: task(set.task) }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
  };
}

function runRandom(seed: number): void {
  const driver = new Driver(seed, [{ ipc: new Ipc('n1'), task: (t) => t }]);
  const origin = driver.cores[0]!.ipc;
  for (const t of randomTasks) origin.createSpace(t);
  for (let step = 0; step < 500; step++) driver.step(randomTasks, step, true);

  // Rights across tasks, then requests on many names, so that imports fire notifications.
  for (const t of randomTasks) {
    if (!origin.hasSpace(t)) continue;
    for (const { name, type } of origin.names(t)) {
      const to = driver.pick(randomTasks)!;
      if (type & PortType.RECEIVE && to !== t && origin.hasSpace(to) && driver.chance(0.5)) {
        transferSend(origin, t, name, to);
      }
    }
  }
  for (const t of randomTasks) {
    if (!origin.hasSpace(t)) continue;
    const receives = origin.names(t).filter((n) => n.type & PortType.RECEIVE);
    for (const { name, type } of origin.names(t)) {
      const notify = driver.pick(receives);
      if (notify === undefined || !driver.chance(0.5) || type & PortType.PORT_SET) continue;
      const variant = type & PortType.RECEIVE ? NotifyVariant.NO_SENDERS : NotifyVariant.DEAD_NAME;
      origin.portRequestNotification(t, name, variant, notify.name);
    }
  }
  origin.takeEvents();
  audit(origin);

  // Export a random non-empty subset of the tasks that have a space.
  let withSpace = randomTasks.filter((t) => origin.hasSpace(t));
  if (withSpace.length === 0) {
    origin.createSpace(1);
    withSpace = [1];
  }
  const exported = withSpace.filter(() => driver.chance(0.6));
  if (exported.length === 0) exported.push(driver.pick(withSpace)!);
  const before = structuredClone(origin.state);
  const snapshot = exportTasks(origin, exported);
  assert.deepEqual(origin.state, before, 'export is a pure read');
  assert.deepEqual(validateIpcSnapshot(snapshot), []);
  assert.deepEqual(validateIpcSnapshot(cbor.decode(cbor.encode(snapshot))), []);

  // The reference: the original core where the other tasks end (their lost send-once rights
  // vanishing silently, as on import).
  const included = new Set(snapshot.ports.map((p) => p.id));
  const reference = new Ipc('n1', structuredClone(origin.state));
  silenceLostSendOnce(reference, new Set(exported), included);
  for (const t of randomTasks) if (!exported.includes(t) && reference.hasSpace(t)) reference.destroySpace(t);
  reference.takeEvents();
  assert.deepEqual(reference.audit(), [], `seed ${seed}: reference`);

  // The target: another node, with or without tasks of its own, or a fresh core of the same node
  // (as after a restart: it must not allocate the imported ids again).
  const sameNode = seed % 3 === 0;
  const target = new Ipc(sameNode ? 'n1' : 'n2');
  if (!sameNode && seed % 2 === 0) {
    for (const t of randomTasks) {
      target.createSpace(t);
      const own = port(target, t, 1);
      sendOk(target, t, message(own, Disposition.COPY_SEND, { body: bytes(t) }));
    }
  }
  const shift = (t: TaskId) => (exported.includes(t) ? t + 10 : t);
  const kernelPorts = Object.fromEntries(
    Object.values(origin.state.ports)
      .filter((p) => p.kobject !== null)
      .map((p) => [p.id, p.kobject!]),
  );
  const taskIds = Object.fromEntries(exported.map((t) => [t, t + 10]));
  importTasks(target, snapshot, { taskIds, kernelPorts });
  assert.deepEqual(target.audit(), [], `seed ${seed}: after import`);
  target.takeEvents();

  const refCore: Core = { ipc: reference, task: (t) => t };
  const targetCore: Core = { ipc: target, task: shift };
  const prefixes = new Map(snapshot.ports.map((p) => [p.id, p.queue.length]));
  sortTails(reference, prefixes);
  sortTails(target, prefixes);
  const ports = snapshot.ports.map((p) => p.id);
  assert.deepEqual(view(targetCore, exported, ports), view(refCore, exported, ports), `seed ${seed}: state`);

  // Go on in both: every call must answer the same.
  driver.cores = [refCore, targetCore];
  driver.held = driver.held.filter((ids) => included.has(ids[0]!)).map((ids) => [ids[0]!, ids[0]!]);
  for (let step = 500; step < 900; step++) driver.step(exported, step, false);
  // And what each receives next, until every queue is empty.
  for (const t of exported) {
    if (!reference.hasSpace(t)) continue;
    for (const { name, type } of reference.names(t)) {
      if ((type & (PortType.RECEIVE | PortType.PORT_SET)) === 0) continue;
      for (let i = 0; i < 2000; i++) {
        const result = driver.all(`drain ${t}:${name}`, (ipc, task) => ipc.receive(task(t), name, 1 << 20));
        if (result.kr !== KernReturn.SUCCESS) break;
      }
    }
  }
  assert.deepEqual(target.audit(), []);
  assert.deepEqual(reference.audit(), []);
}

describe('ipc: export and import, randomized', () => {
  for (let seed = 1; seed <= 24; seed++) {
    it(`imported tasks behave as in the original core (seed ${seed})`, () => {
      runRandom(seed);
    });
  }
});
