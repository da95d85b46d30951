/**
 * The norma syscalls (src/abi/syscalls.ts), implemented against the kernel, the IPC core and the
 * memory objects. Each handler checks every pointer before it touches memory, returns a
 * kern_return, and blocks by returning `kernel.blockOn(...)`; when it is re-executed after a wake,
 * `previous` is the wait that blocked it (so a deadline survives retries) and `wake` says why.
 */
import { AccessMode, KernReturn, NotifyVariant, PortRight, type SyscallName } from '../abi/syscalls.js';
import { receiveWouldBlock, sendWouldBlock } from '../ipc/index.js';
import { entryNameBytesMax, serviceNameBytesMax, threadsPerTaskMax } from '../limits.js';
import type { block } from '../runtime/task-instance.js';
import type { Kernel, Task } from './kernel.js';
import { parseOutgoing, writeReceived } from './message-codec.js';
import type { ThreadState, Wait, WakeReason } from './thread.js';

export type SyscallHandler = (
  task: Task,
  thread: ThreadState,
  /** The i32 arguments as u32 (a signed one is read with `| 0`). */
  args: readonly number[],
  previous: Wait | null,
  wake: WakeReason | null,
) => number | typeof block;

/** Thrown by task_exit; the kernel ends the task with the code. */
export class TaskExitRequest {
  constructor(readonly code: number) {}
}

const msPerNs = 1_000_000n;

/** The deadline of a blocking call: kept from the first attempt, else computed from timeout_ms (-1: none). */
function deadlineOf(kernel: Kernel, task: Task, previous: Wait | null, timeoutMs: number): bigint | null {
  if (previous !== null && 'deadlineNs' in previous) return previous.deadlineNs;
  if (timeoutMs < 0) return null;
  return kernel.now(task) + BigInt(timeoutMs) * msPerNs;
}

export function makeSyscallHandlers(kernel: Kernel, _task: () => Task): Record<SyscallName, SyscallHandler> {
  const { ipc, names, memoryObjects, pager } = kernel;

  /** Stores a u32 result, or returns INVALID_ADDRESS when the pointer is bad. */
  const store = (task: Task, pointer: number, value: number): number => {
    if (!task.instance.memory.inBounds(pointer, 4)) return KernReturn.INVALID_ADDRESS;
    task.instance.memory.setU32(pointer, value);
    return KernReturn.SUCCESS;
  };

  const readString = (task: Task, pointer: number, length: number, max: number): string | number => {
    if (length <= 0 || length > max) return KernReturn.INVALID_VALUE;
    if (!task.instance.memory.inBounds(pointer, length)) return KernReturn.INVALID_ADDRESS;
    return task.instance.memory.utf8(pointer, length);
  };

  const rightOf = (code: number): 'receive' | 'port_set' | null =>
    code === PortRight.RECEIVE ? 'receive' : code === PortRight.PORT_SET ? 'port_set' : null;

  const releaseMapping = (task: Task, mappingId: number, unmap: boolean): number => {
    const mapping = memoryObjects.mapping(task.state.id, mappingId);
    if (mapping === undefined) return KernReturn.NOT_FOUND;
    if (mapping.acquired === 0 && !unmap) return KernReturn.MEMORY_NOT_ACQUIRED;
    if (
      mapping.acquired === AccessMode.WRITE &&
      task.instance.memory.inBounds(mapping.address, mapping.size)
    ) {
      pager.write(
        mapping.objectId,
        mapping.offset,
        task.instance.memory.bytes(mapping.address, mapping.size),
      );
    }
    const objectId = mapping.objectId;
    if (unmap) memoryObjects.unmap(mapping);
    else memoryObjects.release(mapping);
    kernel.wakeWhere((wait) => wait.kind === 'acquire' && wait.objectId === objectId);
    return KernReturn.SUCCESS;
  };

  return {
    port_allocate: (task, _thread, [right, nameOut]) => {
      const kind = rightOf(right!);
      if (kind === null) return KernReturn.INVALID_VALUE;
      if (!task.instance.memory.inBounds(nameOut!, 4)) return KernReturn.INVALID_ADDRESS;
      const result = ipc.portAllocate(task.state.id, kind);
      if (result.kr !== KernReturn.SUCCESS) return result.kr;
      return store(task, nameOut!, result.name!);
    },
    port_destroy: (task, _thread, [name]) => ipc.portDestroy(task.state.id, name!),
    port_deallocate: (task, _thread, [name]) => ipc.portDeallocate(task.state.id, name!),
    port_mod_refs: (task, _thread, [name, right, delta]) =>
      ipc.portModRefs(task.state.id, name!, right! as never, delta! | 0),
    port_insert_right: (task, _thread, [name, disposition]) =>
      ipc.portInsertRight(task.state.id, name!, disposition! as never),
    port_type: (task, _thread, [name, typeOut]) => {
      if (!task.instance.memory.inBounds(typeOut!, 4)) return KernReturn.INVALID_ADDRESS;
      const result = ipc.portType(task.state.id, name!);
      if (result.kr !== KernReturn.SUCCESS) return result.kr;
      return store(task, typeOut!, result.type!);
    },
    port_get_refs: (task, _thread, [name, right, refsOut]) => {
      if (!task.instance.memory.inBounds(refsOut!, 4)) return KernReturn.INVALID_ADDRESS;
      const result = ipc.portGetRefs(task.state.id, name!, right! as never);
      if (result.kr !== KernReturn.SUCCESS) return result.kr;
      return store(task, refsOut!, result.refs!);
    },
    port_move_member: (task, _thread, [member, set]) => ipc.portMoveMember(task.state.id, member!, set!),
    port_set_qlimit: (task, _thread, [name, limit]) => ipc.portSetQlimit(task.state.id, name!, limit!),
    port_request_notification: (task, _thread, [name, variant, notify]) => {
      if (variant !== NotifyVariant.DEAD_NAME && variant !== NotifyVariant.NO_SENDERS)
        return KernReturn.INVALID_VALUE;
      return ipc.portRequestNotification(task.state.id, name!, variant as never, notify!);
    },

    msg_send: (task, thread, [pointer, size, timeoutMs], previous, wake) => {
      if (wake === 'timeout') return KernReturn.SEND_TIMED_OUT;
      const parsed = parseOutgoing(task.instance.memory, pointer!, size!);
      if (!('message' in parsed)) return parsed.kr;
      const kr = ipc.send(task.state.id, parsed.message);
      if (kr !== sendWouldBlock) return kr;
      if (timeoutMs === 0) return KernReturn.SEND_TIMED_OUT;
      return kernel.blockOn(thread, {
        kind: 'send',
        portId: ipc.portIdOf(task.state.id, parsed.message.destName)!,
        deadlineNs: deadlineOf(kernel, task, previous, timeoutMs! | 0),
      });
    },
    msg_receive: (task, thread, [name, buffer, capacity, timeoutMs], previous, wake) => {
      if (wake === 'timeout') return KernReturn.RCV_TIMED_OUT;
      const memory = task.instance.memory;
      if (!memory.inBounds(buffer!, capacity!)) return KernReturn.INVALID_ADDRESS;
      // The core forgets a name whose port died; a thread that was waiting on it learns it here.
      if (previous?.kind === 'receive' && !ipc.isAlive(previous.portId)) return KernReturn.RCV_PORT_DIED;
      const result = ipc.receive(task.state.id, name!, capacity!);
      if (result.kr === receiveWouldBlock) {
        if (timeoutMs === 0) return KernReturn.RCV_TIMED_OUT;
        return kernel.blockOn(thread, {
          kind: 'receive',
          name: name!,
          portId: ipc.portIdOf(task.state.id, name!)!,
          deadlineNs: deadlineOf(kernel, task, previous, timeoutMs! | 0),
        });
      }
      if (result.kr === KernReturn.RCV_TOO_LARGE) {
        if (capacity! >= 8) memory.setU32(buffer! + 4, result.size);
        return KernReturn.RCV_TOO_LARGE;
      }
      if (result.kr !== KernReturn.SUCCESS) return result.kr;
      writeReceived(memory, buffer!, result.message);
      return KernReturn.SUCCESS;
    },

    thread_create: (task, _thread, [entryPointer, entryLength, arg, stack, stackSize, tidOut]) => {
      const entry = readString(task, entryPointer!, entryLength!, entryNameBytesMax);
      if (typeof entry === 'number') return entry;
      if (!task.instance.memory.inBounds(tidOut!, 4)) return KernReturn.INVALID_ADDRESS;
      if (!task.image.info.threadEntries.includes(entry)) {
        return typeof task.instance.exports[entry] === 'function'
          ? KernReturn.INVALID_ARGUMENT
          : KernReturn.NOT_FOUND;
      }
      const alive = task.state.threads.filter((t) => t.status !== 'exited').length;
      if (alive >= threadsPerTaskMax) return KernReturn.RESOURCE_SHORTAGE;
      let stackPointer: number | null = null;
      if (task.image.info.stackPointerExport !== null) {
        if (stackSize === 0 || !task.instance.memory.inBounds(stack!, stackSize!))
          return KernReturn.INVALID_ADDRESS;
        stackPointer = (stack! + stackSize!) & ~15;
      }
      const created = kernel.createThread(task, entry, arg!, stackPointer);
      return store(task, tidOut!, created.id);
    },
    thread_join: (task, thread, [tid, timeoutMs], previous, wake) => {
      if (tid === thread.id) return KernReturn.INVALID_ARGUMENT;
      const target = task.state.threads.find((t) => t.id === tid);
      if (target === undefined) return KernReturn.NOT_FOUND;
      if (target.status === 'exited') return KernReturn.SUCCESS;
      if (wake === 'timeout' || timeoutMs === 0) return KernReturn.OPERATION_TIMED_OUT;
      return kernel.blockOn(thread, {
        kind: 'join',
        threadId: tid!,
        deadlineNs: deadlineOf(kernel, task, previous, timeoutMs! | 0),
      });
    },
    thread_yield: (_task, thread) => kernel.blockOn(thread, { kind: 'yield', result: 0 }),
    thread_self: (_task, thread) => thread.id,
    clock_sleep: (task, thread, [ms], previous, wake) => {
      if ((ms! | 0) < 0) return KernReturn.INVALID_VALUE;
      if (wake === 'timeout' || ms === 0) return KernReturn.SUCCESS;
      return kernel.blockOn(thread, { kind: 'sleep', deadlineNs: deadlineOf(kernel, task, previous, ms!)! });
    },

    name_register: (task, _thread, [pointer, length, name]) => {
      const service = readString(task, pointer!, length!, serviceNameBytesMax);
      if (typeof service === 'number') return service;
      const kr = names.register(task.state.id, service, name!);
      if (kr === KernReturn.SUCCESS)
        kernel.wakeWhere((wait) => wait.kind === 'lookup' && wait.service === service);
      return kr;
    },
    name_lookup: (task, thread, [pointer, length, timeoutMs, nameOut], previous, wake) => {
      const service = readString(task, pointer!, length!, serviceNameBytesMax);
      if (typeof service === 'number') return service;
      if (!task.instance.memory.inBounds(nameOut!, 4)) return KernReturn.INVALID_ADDRESS;
      const found = names.lookup(task.state.id, service);
      if (found !== null)
        return found.kr === KernReturn.SUCCESS ? store(task, nameOut!, found.name!) : found.kr;
      if (wake === 'timeout' || timeoutMs === 0) return KernReturn.OPERATION_TIMED_OUT;
      kernel.lookupRemote(service);
      return kernel.blockOn(thread, {
        kind: 'lookup',
        service,
        deadlineNs: deadlineOf(kernel, task, previous, timeoutMs! | 0),
      });
    },

    memory_object_create: (task, _thread, [size, nameOut]) => {
      if (!task.instance.memory.inBounds(nameOut!, 4)) return KernReturn.INVALID_ADDRESS;
      const created = memoryObjects.create(size!, (id) =>
        ipc.allocateKernelPort({ type: 'memory_object', id }),
      );
      if (created.object === undefined) return created.kr;
      pager.create(created.object.id, created.object.size);
      const right = ipc.insertSendRight(task.state.id, created.object.portId);
      if (right.kr !== KernReturn.SUCCESS) return right.kr;
      return store(task, nameOut!, right.name!);
    },
    memory_object_map: (task, _thread, [name, offset, size, address, mappingOut]) => {
      const target = ipc.translateSend(task.state.id, name!);
      if (target.kr !== KernReturn.SUCCESS) return target.kr;
      if (target.kobject?.type !== 'memory_object') return KernReturn.INVALID_CAPABILITY;
      if (!task.instance.memory.inBounds(address!, size!) || !task.instance.memory.inBounds(mappingOut!, 4)) {
        return KernReturn.INVALID_ADDRESS;
      }
      const mapped = memoryObjects.map(task.state.id, target.kobject.id, offset!, size!, address!);
      if (mapped.mapping === undefined) return mapped.kr;
      return store(task, mappingOut!, mapped.mapping.id);
    },
    memory_object_acquire: (task, thread, [mappingId, mode, timeoutMs], previous, wake) => {
      const mapping = memoryObjects.mapping(task.state.id, mappingId!);
      if (mapping === undefined) return KernReturn.NOT_FOUND;
      if (wake === 'timeout') return KernReturn.OPERATION_TIMED_OUT;
      const result = memoryObjects.acquire(mapping, mode!);
      if (result === 'would-block') {
        if (timeoutMs === 0) return KernReturn.OPERATION_TIMED_OUT;
        return kernel.blockOn(thread, {
          kind: 'acquire',
          objectId: mapping.objectId,
          deadlineNs: deadlineOf(kernel, task, previous, timeoutMs! | 0),
        });
      }
      if (result.kr !== KernReturn.SUCCESS) return result.kr;
      pager.read(mapping.objectId, mapping.offset, task.instance.memory.bytes(mapping.address, mapping.size));
      return KernReturn.SUCCESS;
    },
    memory_object_release: (task, _thread, [mappingId]) => releaseMapping(task, mappingId!, false),
    memory_object_unmap: (task, _thread, [mappingId]) => releaseMapping(task, mappingId!, true),

    task_exit: (_task, _thread, [code]) => {
      throw new TaskExitRequest(code! | 0);
    },
  };
}
