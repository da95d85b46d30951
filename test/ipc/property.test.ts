// Randomized operation sequences (seeded, reproducible) checked against the invariants after every
// step, with a twin core restored from a structuredClone that must answer every call identically.
import { strict as assert } from 'node:assert';
import { Disposition, KernReturn, PortRight, PortType } from '../../src/abi/syscalls.js';
import { Ipc, type OutgoingDescriptor, type PortId, portNameDead, type TaskId } from '../../src/ipc/index.js';

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

const tasks: TaskId[] = [1, 2, 3];
const dispositions = [
  Disposition.MOVE_RECEIVE,
  Disposition.MOVE_SEND,
  Disposition.COPY_SEND,
  Disposition.MAKE_SEND,
  Disposition.MOVE_SEND_ONCE,
  Disposition.MAKE_SEND_ONCE,
];

/**
 * Checks, from the state alone and independently of invariants.ts, that each live port has exactly
 * one receive right and that the send-right counts match the rights that exist.
 */
function checkRights(ipc: Ipc): void {
  const state = ipc.state;
  const receive = new Map<PortId, number>();
  const send = new Map<PortId, number>();
  const bump = (map: Map<PortId, number>, id: PortId) => map.set(id, (map.get(id) ?? 0) + 1);
  for (const task of Object.values(state.spaces)) {
    for (const entry of Object.values(task.entries)) {
      if (entry.type & PortType.RECEIVE) bump(receive, entry.object);
      if (entry.type & PortType.SEND) bump(send, entry.object);
    }
  }
  for (const port of Object.values(state.ports)) {
    for (const msg of port.queue) {
      for (const right of [
        msg.dest,
        msg.reply,
        ...msg.descriptors.map((d) => (d.type === 'port' ? d.right : null)),
      ]) {
        if (right?.kind === 'receive') bump(receive, right.port);
        if (right?.kind === 'send') bump(send, right.port);
      }
    }
  }
  for (const [id, port] of Object.entries(state.ports)) {
    const holders = (receive.get(id) ?? 0) + (port.receiver.kind === 'kernel' ? 1 : 0);
    assert.equal(holders, 1, `port ${id} has ${holders} receive rights`);
    assert.equal(port.srights, (send.get(id) ?? 0) + port.kernelSrights, `port ${id} send-right count`);
  }
  for (const id of receive.keys())
    assert.ok(Object.hasOwn(state.ports, id), `receive right of dead port ${id}`);
}

function run(seed: number, steps: number): void {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T | undefined =>
    items.length === 0 ? undefined : items[int(items.length)];

  let ipc = new Ipc('n1');
  let twin: Ipc | null = null;
  // What each task may legitimately hold: ports it allocated, was given by the kernel, or received.
  const seen = new Map<TaskId, Set<PortId>>();
  // The ports whose rights were carried in messages sent to each port.
  const sentTo = new Map<PortId, Set<PortId>>();
  const kernelPorts: PortId[] = [];
  for (const task of tasks) {
    ipc.createSpace(task);
    seen.set(task, new Set());
  }

  /** Calls `op` on the core and on its twin and requires the same answer. */
  const both = <T>(op: (core: Ipc) => T): T => {
    const result = op(ipc);
    if (twin !== null) assert.deepEqual(op(twin), result, `twin diverged at seed ${seed}`);
    return result;
  };
  const nameOf = (task: TaskId): number => {
    if (random() < 0.05) return pick([0, 1, 12345, portNameDead, 256])!;
    const names = ipc.hasSpace(task) ? ipc.names(task) : [];
    return pick(names)?.name ?? 256;
  };
  /** A name of `task` and, most of the time, a disposition its rights allow (else any). */
  const rightOf = (task: TaskId, header: boolean): { name: number; disposition: number } => {
    const entry = pick(ipc.names(task));
    const fits: number[] = [];
    if (entry !== undefined && random() < 0.85) {
      if (entry.type & PortType.RECEIVE) fits.push(Disposition.MAKE_SEND, Disposition.MAKE_SEND_ONCE);
      if (entry.type & PortType.RECEIVE && !header) fits.push(Disposition.MOVE_RECEIVE);
      if (entry.type & PortType.SEND) fits.push(Disposition.COPY_SEND, Disposition.MOVE_SEND);
      if (entry.type & PortType.SEND_ONCE) fits.push(Disposition.MOVE_SEND_ONCE);
    }
    return { name: entry?.name ?? nameOf(task), disposition: pick(fits) ?? pick(dispositions)! };
  };
  /** A receive right or port set of `task`, most of the time. */
  const receiveNameOf = (task: TaskId): number => {
    const names = ipc.names(task).filter((n) => n.type & (PortType.RECEIVE | PortType.PORT_SET));
    return random() < 0.9 ? (pick(names)?.name ?? nameOf(task)) : nameOf(task);
  };
  const remember = (task: TaskId, name: number) => {
    const id = ipc.portIdOf(task, name);
    if (id !== null) seen.get(task)!.add(id);
  };

  for (let step = 0; step < steps; step++) {
    if (step % 97 === 0) twin = new Ipc('n1', structuredClone(ipc.state));
    const task = pick(tasks)!;
    if (!ipc.hasSpace(task)) {
      both((core) => core.createSpace(task));
      seen.set(task, new Set());
      continue;
    }
    const roll = int(100);
    if (roll < 10) {
      const right = random() < 0.8 ? 'receive' : 'port_set';
      const result = both((core) => core.portAllocate(task, right));
      if (result.kr === KernReturn.SUCCESS) remember(task, result.name);
    } else if (roll < 15) {
      const name = nameOf(task);
      both((core) => core.portInsertRight(task, name, Disposition.MAKE_SEND));
    } else if (roll < 20) {
      const name = nameOf(task);
      both((core) => core.portDeallocate(task, name));
    } else if (roll < 23) {
      const name = nameOf(task);
      both((core) => core.portDestroy(task, name));
    } else if (roll < 28) {
      const right = pick([
        PortRight.SEND,
        PortRight.RECEIVE,
        PortRight.SEND_ONCE,
        PortRight.PORT_SET,
        PortRight.DEAD_NAME,
      ])!;
      const [name, delta] = [nameOf(task), int(4) - 2];
      both((core) => core.portModRefs(task, name, right, delta));
    } else if (roll < 32) {
      const setName = random() < 0.2 ? 0 : nameOf(task);
      const member = nameOf(task);
      both((core) => core.portMoveMember(task, member, setName));
    } else if (roll < 34) {
      const [name, limit] = [nameOf(task), 1 + int(3)];
      both((core) => core.portSetQlimit(task, name, limit));
    } else if (roll < 38) {
      const notify = random() < 0.1 ? 0 : nameOf(task);
      const [name, variant] = [nameOf(task), int(2)];
      both((core) => core.portRequestNotification(task, name, variant, notify));
    } else if (roll < 42) {
      // The kernel hands a right from one task to another (the name service).
      const from = nameOf(task);
      const to = pick(tasks)!;
      if (!ipc.hasSpace(to)) continue;
      const copied = both((core) => core.kernelCopySend(task, from));
      if (copied.kr === KernReturn.SUCCESS) {
        const inserted = both((core) => core.insertSendRight(to, copied.portId!));
        if (inserted.kr === KernReturn.SUCCESS) seen.get(to)!.add(copied.portId!);
        both((core) => core.kernelReleaseSend(copied.portId!));
      }
    } else if (roll < 44) {
      if (kernelPorts.length === 0 || random() < 0.3) {
        kernelPorts.push(both((core) => core.allocateKernelPort({ type: 'memory_object', id: step })));
        if (twin !== null) assert.equal(twin.state.nextSerial, ipc.state.nextSerial);
      }
      const kport = pick(kernelPorts)!;
      if (random() < 0.2) both((core) => core.destroyKernelPort(kport));
      else if (both((core) => core.insertSendRight(task, kport)).kr === KernReturn.SUCCESS)
        seen.get(task)!.add(kport);
    } else if (roll < 75) {
      const { name: destName, disposition: destDisposition } = rightOf(task, true);
      const reply = random() < 0.5 ? { name: 0, disposition: Disposition.NONE } : rightOf(task, true);
      const [replyName, replyDisposition] = [reply.name, reply.disposition];
      const descriptors: OutgoingDescriptor[] = [];
      for (let i = int(4); i > 0; i--) {
        if (random() < 0.2) descriptors.push({ type: 'ool', bytes: new Uint8Array(int(20)) });
        else descriptors.push({ type: 'port', ...rightOf(task, false) });
      }
      const destId = ipc.portIdOf(task, destName);
      const carried = [replyName, ...descriptors.map((d) => (d.type === 'port' ? d.name : 0))]
        .map((name) => ipc.portIdOf(task, name))
        .filter((id): id is PortId => id !== null);
      const body = new Uint8Array(int(8));
      const kr = both((core) =>
        core.send(task, {
          destName,
          destDisposition,
          replyName,
          replyDisposition,
          id: step,
          descriptors,
          body,
        }),
      );
      if (kr === KernReturn.SUCCESS && destId !== null) {
        const set = sentTo.get(destId) ?? new Set();
        for (const id of carried) set.add(id);
        sentTo.set(destId, set);
      }
    } else if (roll < 99 || random() < 0.5) {
      const capacity = random() < 0.1 ? int(40) : 1 << 16;
      const name = receiveNameOf(task);
      const result = both((core) => core.receive(task, name, capacity));
      if (result.kr === KernReturn.SUCCESS) {
        const from = ipc.portIdOf(task, result.message.localName)!;
        const names = [
          result.message.replyName,
          ...result.message.descriptors.map((d) => (d.type === 'port' ? d.name : 0)),
        ].filter((name) => name !== 0 && name !== portNameDead);
        for (const name of names) {
          const id = ipc.portIdOf(task, name);
          assert.ok(id !== null, `received name ${name} is live`);
          assert.ok(sentTo.get(from)?.has(id), `task ${task} received ${id}, never sent to ${from}`);
          seen.get(task)!.add(id);
        }
      }
    } else {
      both((core) => core.destroySpace(task));
    }

    both((core) => core.takeEvents());
    assert.deepEqual(ipc.audit(), [], `seed ${seed} step ${step}`);
    checkRights(ipc);
    for (const t of tasks) {
      if (!ipc.hasSpace(t)) continue;
      for (const entry of ipc.names(t)) {
        assert.ok(seen.get(t)!.has(entry.portId), `task ${t} holds ${entry.portId} it never received`);
      }
    }
  }
  if (twin !== null) assert.deepEqual(twin.state, ipc.state);
  ipc = twin ?? ipc;
  assert.deepEqual(ipc.audit(), []);
}

describe('ipc: randomized operation sequences', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`keeps every invariant (seed ${seed})`, () => {
      run(seed, 1500);
    });
  }
});
