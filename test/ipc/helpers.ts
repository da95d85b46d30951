// Shared fixtures of the IPC tests: a core with a few spaces, message builders, and receive helpers.
import { strict as assert } from 'node:assert';
import { Disposition, type DispositionCode, KernReturn, kernReturnName } from '../../src/abi/syscalls.js';
import {
  Ipc,
  type OutgoingDescriptor,
  type OutgoingMessage,
  type PortName,
  type ReceivedMessage,
  type TaskId,
} from '../../src/ipc/index.js';

export const A: TaskId = 1;
export const B: TaskId = 2;
export const C: TaskId = 3;

/** A core on node `n1` with spaces for tasks A, B and C. */
export function setup(): Ipc {
  const ipc = new Ipc('n1');
  for (const task of [A, B, C]) ipc.createSpace(task);
  return ipc;
}

export function codeName(kr: number | string): string {
  return typeof kr === 'string' ? kr : kernReturnName(kr);
}

/** Asserts a kern_return, naming both codes on failure. */
export function assertKr(actual: number | string, expected: number | string, what = ''): void {
  assert.equal(codeName(actual), codeName(expected), what);
}

/** Allocates a receive right (optionally with `sendRefs` send references under the same name). */
export function port(ipc: Ipc, task: TaskId, sendRefs = 0): PortName {
  const { kr, name } = ipc.portAllocate(task, 'receive');
  assertKr(kr, KernReturn.SUCCESS, 'portAllocate');
  for (let i = 0; i < sendRefs; i++) assertKr(ipc.portInsertRight(task, name, Disposition.MAKE_SEND), 0);
  return name;
}

export function message(
  destName: PortName,
  destDisposition: number,
  extra: Partial<Omit<OutgoingMessage, 'destName' | 'destDisposition'>> = {},
): OutgoingMessage {
  return {
    destName,
    destDisposition,
    replyName: 0,
    replyDisposition: Disposition.NONE,
    id: 0,
    descriptors: [],
    body: new Uint8Array(0),
    ...extra,
  };
}

export function portDescriptor(name: PortName, disposition: DispositionCode): OutgoingDescriptor {
  return { type: 'port', name, disposition };
}

/** Sends and asserts SUCCESS. */
export function sendOk(ipc: Ipc, task: TaskId, msg: OutgoingMessage): void {
  assertKr(ipc.send(task, msg), KernReturn.SUCCESS, 'send');
}

/** Receives and asserts SUCCESS. */
export function receiveOk(ipc: Ipc, task: TaskId, name: PortName, capacity = 1 << 24): ReceivedMessage {
  const result = ipc.receive(task, name, capacity);
  if (result.kr !== KernReturn.SUCCESS) assert.fail(`receive: ${codeName(result.kr)}`);
  return result.message;
}

/**
 * Hands `to` a send right to the port `task` names `name` (a receive right with send rights) through
 * the kernel, the way the name service would: kernelCopySend then insertSendRight.
 */
export function transferSend(ipc: Ipc, task: TaskId, name: PortName, to: TaskId): PortName {
  const copied = ipc.kernelCopySend(task, name);
  assertKr(copied.kr, KernReturn.SUCCESS, 'kernelCopySend');
  const inserted = ipc.insertSendRight(to, copied.portId!);
  assertKr(inserted.kr, KernReturn.SUCCESS, 'insertSendRight');
  ipc.kernelReleaseSend(copied.portId!);
  return inserted.name;
}

export function u32(body: Uint8Array): number {
  assert.equal(body.length, 4, 'notification body is a u32');
  return new DataView(body.buffer, body.byteOffset, 4).getUint32(0, true);
}

/** Asserts the state is sound. */
export function audit(ipc: Ipc): void {
  assert.deepEqual(ipc.audit(), []);
}
