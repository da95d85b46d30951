import { strict as assert } from 'node:assert';
import { decode, encode } from 'cbor-x';
import { Disposition, NotifyVariant } from '../../src/abi/syscalls.js';
import { auditIpcState, Ipc, type IpcState } from '../../src/ipc/index.js';
import { A, B, C, message, port, portDescriptor, receiveOk, sendOk, setup, transferSend } from './helpers.js';

/** Throws unless `value` is plain data: null, booleans, numbers, strings, arrays, plain objects, Uint8Array. */
function assertPlainData(value: unknown, path = 'state'): void {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return;
  if (typeof value === 'number') {
    assert.ok(Number.isFinite(value), `${path} is not a finite number`);
    return;
  }
  assert.equal(typeof value, 'object', `${path} is a ${typeof value}`);
  if (value instanceof Uint8Array) return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      assertPlainData(item, `${path}[${i}]`);
    });
    return;
  }
  assert.equal(Object.getPrototypeOf(value), Object.prototype, `${path} is not a plain object`);
  for (const [key, item] of Object.entries(value as object)) assertPlainData(item, `${path}.${key}`);
}

/** Builds a state with every kind of thing in it: rights of each kind, sets, requests, queued rights, dead names. */
function richState(): Ipc {
  const ipc = setup();
  const service = port(ipc, A, 2);
  const set = ipc.portAllocate(A, 'port_set').name;
  ipc.portMoveMember(A, service, set);
  const notify = port(ipc, A);
  ipc.portRequestNotification(A, service, NotifyVariant.NO_SENDERS, notify);
  const client = transferSend(ipc, A, service, B);
  ipc.portRequestNotification(B, client, NotifyVariant.DEAD_NAME, port(ipc, B));
  const reply = port(ipc, B);
  const carried = port(ipc, B, 1);
  sendOk(
    ipc,
    B,
    message(client, Disposition.COPY_SEND, {
      id: 3,
      replyName: reply,
      replyDisposition: Disposition.MAKE_SEND_ONCE,
      descriptors: [
        portDescriptor(carried, Disposition.MOVE_RECEIVE),
        { type: 'ool', bytes: new Uint8Array([1, 2, 3]) },
      ],
      body: new Uint8Array([4, 5]),
    }),
  );
  const doomed = port(ipc, C, 1);
  transferSend(ipc, C, doomed, B);
  ipc.portDestroy(C, doomed);
  const kport = ipc.allocateKernelPort({ type: 'memory_object', id: 1 });
  ipc.insertSendRight(C, kport);
  return ipc;
}

/** A fixed script of operations; returns every result. */
function script(ipc: Ipc): unknown[] {
  const results: unknown[] = [];
  const aNames = ipc.names(A).map((n) => n.name);
  const bNames = ipc.names(B).map((n) => n.name);
  for (const name of aNames) results.push(ipc.receive(A, name, 1 << 20));
  for (const name of ipc.names(A).map((n) => n.name)) results.push(ipc.receive(A, name, 1 << 20));
  results.push(ipc.portAllocate(C, 'receive'));
  for (const name of bNames) results.push(ipc.portDeallocate(B, name));
  results.push(ipc.portDestroy(A, aNames[0]!));
  for (const name of ipc.names(B).map((n) => n.name)) results.push(ipc.receive(B, name, 1 << 20));
  ipc.destroySpace(C);
  results.push(ipc.takeEvents());
  results.push(ipc.names(A), ipc.names(B));
  return results;
}

describe('ipc: state', () => {
  it('is plain data', () => {
    const ipc = richState();
    assertPlainData(ipc.state);
    script(ipc);
    assertPlainData(ipc.state);
  });

  it('a structuredClone loaded into a new Ipc behaves identically', () => {
    const original = richState();
    const copy = new Ipc('n1', structuredClone(original.state));
    assert.deepEqual(copy.audit(), []);
    assert.deepEqual(script(copy), script(original));
    assert.deepEqual(copy.state, original.state);
    assert.deepEqual(original.audit(), []);
  });

  it('survives a cbor-x round trip', () => {
    const original = richState();
    const decoded = decode(encode(original.state)) as IpcState;
    assert.deepEqual(auditIpcState(decoded), []);
    const copy = new Ipc('n1', decoded);
    const normalize = (value: unknown): unknown =>
      JSON.parse(
        JSON.stringify(value, (_key, item: unknown) =>
          ArrayBuffer.isView(item) ? [...(item as Uint8Array)] : item,
        ),
      );
    assert.deepEqual(normalize(script(copy)), normalize(script(original)));
    assert.deepEqual(normalize(copy.state), normalize(original.state));
  });

  it('refuses a state of another version', () => {
    const state = { ...new Ipc('n1').state, version: 2 } as unknown as IpcState;
    assert.throws(() => new Ipc('n1', state), /version/);
  });

  it('keeps allocating fresh ids after a restore on another node', () => {
    const original = richState();
    const moved = new Ipc('n2', structuredClone(original.state));
    const name = moved.portAllocate(A, 'receive').name;
    const id = moved.portIdOf(A, name)!;
    assert.match(id, /^n2\./);
    assert.equal(Object.hasOwn(original.state.ports, id), false);
    assert.equal(receiveOk(moved, A, moved.names(A)[0]!.name).id, 3);
  });
});
