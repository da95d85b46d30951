/**
 * The IPC core: Mach port semantics as a pure state machine. The kernel parses messages out of guest
 * memory and calls this; the core knows nothing of WebAssembly, time or I/O. Everything it knows is
 * in `IpcState`, plain data (objects, arrays, strings, numbers, Uint8Array) that a snapshot can
 * encode as it is; an `Ipc` built on a structuredClone of the state behaves exactly like the
 * original.
 *
 * Conventions, as in Mach's ipc_right.c: every public method says under which conditions it may be
 * called and lists every code it returns. Calls that fail return an error and change nothing. A
 * missing space is a kernel bug, not a task error: it throws.
 *
 * Right accounting (checked by invariants.ts): a live port has exactly one receive right (in a
 * space, inside a queued message, or held by the kernel); `srights` counts the space entries with
 * send rights, the send rights inside queued messages and the kernel's; `sorights` counts send-once
 * entries, send-once rights inside queued messages and those held by notification requests. Dead
 * ports are removed from the state at once; rights that still point at them (in messages) are dead.
 */

import {
  Disposition,
  type DispositionCode,
  KernReturn,
  type KernReturnCode,
  NotifyId,
  NotifyVariant,
  PortRight,
  type PortRightCode,
  PortType,
} from '../abi/syscalls.js';
import {
  messageDescriptorsMax,
  messageSizeMax,
  portQueueLengthMax,
  proxyQueueLength,
  recycledMessageBytesMax,
  userRefsMax,
} from '../limits.js';
import { ByteRecycler } from './byte-recycler.js';
import type { IpcEvent } from './event.js';
import { auditIpcState } from './invariants.js';
import { exportTasks, type IpcSnapshot } from './ipc-snapshot.js';
import {
  newSpace,
  type SpaceState,
  spaceFull,
  spaceIndex,
  spaceInsert,
  spaceLookup,
  spaceNameOf,
  spaceNames,
  spaceRemove,
  spaceSendOnceNames,
  spaceUnindex,
} from './ipc-space.js';
import {
  type OutgoingMessage,
  type QueuedDescriptor,
  type QueuedMessage,
  type ReceivedDescriptor,
  type ReceivedMessage,
  receivedMessageSize,
} from './message.js';
import { notificationBody, notificationMessage } from './notification.js';
import {
  type KObject,
  newPort,
  type PortId,
  type PortName,
  type PortState,
  portNameDead,
  portNameNull,
  portQueueFull,
  type RemoteHolding,
  type TaskId,
} from './port.js';
import {
  newPortSet,
  type PortSetState,
  portSetRemoveMember,
  portSetSelect,
  portSetServed,
} from './port-set.js';
import {
  type EntryState,
  isPortDisposition,
  isSendDisposition,
  receivedDispositionOf,
  type TransitRight,
  type TransitRightKind,
  transitKindOf,
} from './right.js';

/** Version of the `IpcState` layout; a snapshot of another version must be migrated first. */
export const ipcStateVersion = 1;

/** `send` result when the destination queue is full: nothing happened; block the sender and retry. */
export const sendWouldBlock = -1;
/** `receive` result code when nothing is queued: nothing happened; block the receiver and retry. */
export const receiveWouldBlock = 'WOULD_BLOCK';

export interface IpcState {
  version: typeof ipcStateVersion;
  /** Serial of the next port or port set (ids are `${nodeId}.${serial}`, never reused). */
  nextSerial: number;
  /** Live ports only. */
  ports: Record<PortId, PortState>;
  /** Live port sets only. */
  sets: Record<PortId, PortSetState>;
  /** Task id (decimal string) -> space. */
  spaces: Record<string, SpaceState>;
  /** Events not yet taken by the kernel. */
  events: IpcEvent[];
}

export function newIpcState(): IpcState {
  return { version: ipcStateVersion, nextSerial: 1, ports: {}, sets: {}, spaces: {}, events: [] };
}

/** What `Ipc.handOff` gives the node the tasks move to. */
export interface HandOff {
  snapshot: IpcSnapshot;
  /** Per moving port: the rights other nodes hold to it, by node incarnation. */
  holdings: Record<PortId, Record<string, RemoteHolding>>;
}

export type SendResult = KernReturnCode | typeof sendWouldBlock;

export type ReceiveResult =
  | { kr: typeof KernReturn.SUCCESS; message: ReceivedMessage }
  | { kr: typeof KernReturn.RCV_TOO_LARGE; size: number }
  | { kr: typeof KernReturn.RCV_INVALID_NAME | typeof KernReturn.RCV_PORT_DIED }
  | { kr: typeof receiveWouldBlock };

/** A code and a name (0 unless kr is SUCCESS). */
export interface NameResult {
  kr: KernReturnCode;
  name: PortName;
}

/** A code and a port (null unless kr is SUCCESS). */
export interface PortResult {
  kr: KernReturnCode;
  portId: PortId | null;
}

/** `translateSend`: the port behind a send right and, for a kernel port, its kernel object. */
export interface TranslateResult extends PortResult {
  kobject: KObject | null;
}

/** One name of a space, for diagnostics and tests. */
export interface NameInfo {
  name: PortName;
  type: number;
  urefs: number;
  /** The port or set; for a dead name, the id of the port that died. */
  portId: PortId;
}

/** A right planned for copyin: validated, not yet moved. */
interface Copyin {
  name: PortName;
  disposition: DispositionCode;
  port: PortId;
  kind: TransitRightKind;
}

/** What one send has already planned to take from each name (dest, reply and body may share names). */
type Ledger = Map<PortName, { sendRefs: number; sendOnceMoved: boolean; receiveMoved: boolean }>;

const emptyBody = new Uint8Array(0);

export class Ipc {
  readonly nodeId: string;
  readonly state: IpcState;
  /** Where messages' bytes are copied at send, and come back once another node acknowledged them. */
  readonly #bytes = new ByteRecycler(recycledMessageBytesMax, 4096);

  /** Operates on `state` (a fresh one when omitted), allocating new port ids under `nodeId`. */
  constructor(nodeId: string, state?: IpcState) {
    if (state !== undefined && state.version !== ipcStateVersion) {
      throw new Error(`ipc: state version ${String(state.version)} is not ${ipcStateVersion}`);
    }
    this.nodeId = nodeId;
    this.state = state ?? newIpcState();
  }

  // -------------------------------------------------------------------------------------------
  // Spaces.
  // -------------------------------------------------------------------------------------------

  /** Creates the empty IPC space of `task`. Conditions: the task has no space (else throws). */
  createSpace(task: TaskId): void {
    if (!Number.isInteger(task)) throw new Error(`ipc: task id ${task} is not an integer`);
    if (this.findSpace(task) !== undefined) throw new Error(`ipc: task ${task} already has a space`);
    this.state.spaces[task] = newSpace(task);
  }

  /** True when `task` has a space. */
  hasSpace(task: TaskId): boolean {
    return this.findSpace(task) !== undefined;
  }

  /**
   * Destroys the space of `task` (ipc_space_destroy) and every right in it: receive rights die
   * (their ports are destroyed, with their queues), send rights are released (which may fire
   * no-senders), send-once rights are destroyed unused (send-once notifications), port sets are
   * destroyed, dead-name requests are cancelled (port-deleted notifications).
   * Conditions: the task has a space (else throws).
   */
  destroySpace(task: TaskId): void {
    const space = this.space(task);
    // Gone first, so that port deaths below do not turn names of this space into dead names.
    delete this.state.spaces[task];
    for (const name of spaceNames(space)) {
      const entry = space.entries[String(name)];
      if (entry === undefined) continue;
      if (entry.request !== null) {
        const to = entry.request;
        entry.request = null;
        this.notify(to, NotifyId.PORT_DELETED, notificationBody(name));
      }
      if ((entry.type & PortType.PORT_SET) !== 0) this.destroySet(entry.object);
      if ((entry.type & PortType.SEND) !== 0) this.releaseSend(entry.object);
      if ((entry.type & PortType.SEND_ONCE) !== 0) this.destroySendOnce(entry.object);
      if ((entry.type & PortType.RECEIVE) !== 0) this.killPorts([entry.object]);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Port operations on names (the port_* syscalls).
  // -------------------------------------------------------------------------------------------

  /**
   * Creates a port (its receive right) or a port set under a new name (mach_port_allocate).
   * `right` is 'receive' / 'port_set' or the raw PortRight value of the syscall.
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS        The name denotes the new receive right (qlimit portQueueLengthDefault) or set.
   *   INVALID_VALUE  `right` is neither RECEIVE nor PORT_SET.
   *   NO_SPACE       The space holds namesPerTaskMax names.
   */
  portAllocate(task: TaskId, right: 'receive' | 'port_set' | number): NameResult {
    const space = this.space(task);
    const receive = right === 'receive' || right === PortRight.RECEIVE;
    const portSet = right === 'port_set' || right === PortRight.PORT_SET;
    if (!receive && !portSet) return { kr: KernReturn.INVALID_VALUE, name: portNameNull };
    if (spaceFull(space)) return { kr: KernReturn.NO_SPACE, name: portNameNull };
    const id = this.allocateId();
    const type = receive ? PortType.RECEIVE : PortType.PORT_SET;
    const name = spaceInsert(space, { object: id, type, urefs: 0, request: null })!;
    if (receive) this.state.ports[id] = newPort(id, { kind: 'space', task, name }, null);
    else this.state.sets[id] = newPortSet(id, task, name);
    return { kr: KernReturn.SUCCESS, name };
  }

  /**
   * Removes every right `name` denotes and frees the name (mach_port_destroy). A receive right
   * dies: the port is destroyed, its queue with it, and every send right to it becomes a dead name.
   * Send rights are released, a send-once right is destroyed (send-once notification), a port set
   * is destroyed (its members stay, outside any set). A dead-name request on the name is cancelled
   * with a port-deleted notification.
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS       The name is free.
   *   INVALID_NAME  The name denotes no right.
   */
  portDestroy(task: TaskId, name: PortName): KernReturnCode {
    const space = this.space(task);
    if (spaceLookup(space, name) === undefined) return KernReturn.INVALID_NAME;
    const entry = this.removeEntry(space, name);
    // Send before receive, as Mach does: the no-senders notification may fire, then the port dies.
    if ((entry.type & PortType.SEND) !== 0) this.releaseSend(entry.object);
    if ((entry.type & PortType.SEND_ONCE) !== 0) this.destroySendOnce(entry.object);
    if ((entry.type & PortType.PORT_SET) !== 0) this.destroySet(entry.object);
    if ((entry.type & PortType.RECEIVE) !== 0) this.killPorts([entry.object]);
    return KernReturn.SUCCESS;
  }

  /**
   * Releases one user reference of a send right or a dead name, or the send-once right, that `name`
   * denotes (mach_port_deallocate). When a send right loses its last reference the name keeps only
   * its receive right, if any, or is freed (a dead-name request on it is cancelled: port-deleted
   * notification). A destroyed send-once right sends a send-once notification.
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS        One reference was released.
   *   INVALID_NAME   The name denotes no right.
   *   INVALID_RIGHT  The name denotes only a receive right or a port set.
   */
  portDeallocate(task: TaskId, name: PortName): KernReturnCode {
    const space = this.space(task);
    const entry = spaceLookup(space, name);
    if (entry === undefined) return KernReturn.INVALID_NAME;
    if ((entry.type & PortType.SEND) !== 0) {
      this.addSendRefs(space, name, entry, -1);
    } else if ((entry.type & PortType.SEND_ONCE) !== 0) {
      this.removeEntry(space, name);
      this.destroySendOnce(entry.object);
    } else if ((entry.type & PortType.DEAD_NAME) !== 0) {
      entry.urefs--;
      if (entry.urefs === 0) this.removeEntry(space, name);
    } else {
      return KernReturn.INVALID_RIGHT;
    }
    return KernReturn.SUCCESS;
  }

  /**
   * Adds `delta` user references to one kind of right `name` denotes (mach_port_mod_refs). SEND and
   * DEAD_NAME take any delta that keeps the count in 0..userRefsMax (reaching 0 releases the right);
   * RECEIVE, SEND_ONCE and PORT_SET take 0 (no effect) or -1 (destroy that right, as portDestroy
   * would, but leaving the other rights of the name: a name with send and receive rights whose
   * receive right is destroyed becomes a dead name).
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS          The count changed (or delta was 0).
   *   INVALID_VALUE    `right` is not a PortRight value; delta is not an integer, is not 0/-1 for
   *                    RECEIVE, SEND_ONCE or PORT_SET, or would take the count below 0.
   *   INVALID_NAME     The name denotes no right.
   *   INVALID_RIGHT    The name does not denote a right of kind `right`.
   *   UREFS_OVERFLOW   The count would exceed userRefsMax.
   */
  portModRefs(task: TaskId, name: PortName, right: PortRightCode, delta: number): KernReturnCode {
    const space = this.space(task);
    if (!isPortRight(right) || !Number.isInteger(delta)) return KernReturn.INVALID_VALUE;
    const entry = spaceLookup(space, name);
    if (entry === undefined) return KernReturn.INVALID_NAME;
    switch (right) {
      case PortRight.SEND:
      case PortRight.DEAD_NAME: {
        const bit = right === PortRight.SEND ? PortType.SEND : PortType.DEAD_NAME;
        if ((entry.type & bit) === 0) return KernReturn.INVALID_RIGHT;
        const urefs = entry.urefs + delta;
        if (urefs < 0) return KernReturn.INVALID_VALUE;
        if (urefs > userRefsMax) return KernReturn.UREFS_OVERFLOW;
        if (right === PortRight.SEND) {
          this.addSendRefs(space, name, entry, delta);
        } else {
          entry.urefs = urefs;
          if (urefs === 0) this.removeEntry(space, name);
        }
        return KernReturn.SUCCESS;
      }
      case PortRight.RECEIVE:
      case PortRight.SEND_ONCE:
      case PortRight.PORT_SET: {
        const bit =
          right === PortRight.RECEIVE
            ? PortType.RECEIVE
            : right === PortRight.SEND_ONCE
              ? PortType.SEND_ONCE
              : PortType.PORT_SET;
        if ((entry.type & bit) === 0) return KernReturn.INVALID_RIGHT;
        if (delta !== 0 && delta !== -1) return KernReturn.INVALID_VALUE;
        if (delta === 0) return KernReturn.SUCCESS;
        if (right === PortRight.RECEIVE) {
          // killPorts detaches the receive right from this entry: the entry goes (receive only)
          // or keeps its send rights, which then become a dead name.
          this.killPorts([entry.object]);
        } else {
          this.removeEntry(space, name);
          if (right === PortRight.SEND_ONCE) this.destroySendOnce(entry.object);
          else this.destroySet(entry.object);
        }
        return KernReturn.SUCCESS;
      }
    }
  }

  /**
   * Makes a send right from the receive right `name` denotes and adds it under the same name
   * (mach_port_insert_right with MAKE_SEND on the task's own name): one more user reference, and
   * one more in the make-send count.
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS         The name has one more send reference.
   *   INVALID_VALUE   `disposition` is not MAKE_SEND.
   *   INVALID_NAME    The name denotes no right.
   *   INVALID_RIGHT   The name does not denote a receive right.
   *   UREFS_OVERFLOW  The send right already has userRefsMax references.
   */
  portInsertRight(task: TaskId, name: PortName, disposition: number): KernReturnCode {
    const space = this.space(task);
    if (disposition !== Disposition.MAKE_SEND) return KernReturn.INVALID_VALUE;
    const entry = spaceLookup(space, name);
    if (entry === undefined) return KernReturn.INVALID_NAME;
    if ((entry.type & PortType.RECEIVE) === 0) return KernReturn.INVALID_RIGHT;
    if (entry.urefs + 1 > userRefsMax) return KernReturn.UREFS_OVERFLOW;
    const port = this.livePort(entry.object);
    port.mscount++;
    if ((entry.type & PortType.SEND) === 0) {
      entry.type |= PortType.SEND;
      port.srights++;
    }
    entry.urefs++;
    return KernReturn.SUCCESS;
  }

  /**
   * The PortType bits of the rights `name` denotes (mach_port_type).
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS       `type` holds the bits.
   *   INVALID_NAME  The name denotes no right (`type` is 0).
   */
  portType(task: TaskId, name: PortName): { kr: KernReturnCode; type: number } {
    const entry = spaceLookup(this.space(task), name);
    if (entry === undefined) return { kr: KernReturn.INVALID_NAME, type: 0 };
    return { kr: KernReturn.SUCCESS, type: entry.type };
  }

  /**
   * The user references of one kind of right `name` denotes (mach_port_get_refs): the count for SEND
   * and DEAD_NAME, 1 or 0 for RECEIVE, SEND_ONCE and PORT_SET; 0 when the name has no right of that
   * kind.
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS        `refs` holds the count.
   *   INVALID_VALUE  `right` is not a PortRight value.
   *   INVALID_NAME   The name denotes no right.
   */
  portGetRefs(task: TaskId, name: PortName, right: PortRightCode): { kr: KernReturnCode; refs: number } {
    const space = this.space(task);
    if (!isPortRight(right)) return { kr: KernReturn.INVALID_VALUE, refs: 0 };
    const entry = spaceLookup(space, name);
    if (entry === undefined) return { kr: KernReturn.INVALID_NAME, refs: 0 };
    const has = (bit: number): boolean => (entry.type & bit) !== 0;
    let refs: number;
    switch (right) {
      case PortRight.SEND:
        refs = has(PortType.SEND) ? entry.urefs : 0;
        break;
      case PortRight.DEAD_NAME:
        refs = has(PortType.DEAD_NAME) ? entry.urefs : 0;
        break;
      case PortRight.RECEIVE:
        refs = has(PortType.RECEIVE) ? 1 : 0;
        break;
      case PortRight.SEND_ONCE:
        refs = has(PortType.SEND_ONCE) ? 1 : 0;
        break;
      case PortRight.PORT_SET:
        refs = has(PortType.PORT_SET) ? 1 : 0;
        break;
    }
    return { kr: KernReturn.SUCCESS, refs };
  }

  /**
   * Moves the receive right `member` into the port set `setName`, out of the set it was in, or out
   * of any set when `setName` is 0 (mach_port_move_member). A port that joins a set goes to the
   * back of the set's service order; if it has queued messages, a message-queued event names the
   * set so that receivers blocked on it retry.
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS        The membership changed (or was already so).
   *   INVALID_NAME   `member`, or a nonzero `setName`, denotes no right.
   *   INVALID_RIGHT  `member` is not a receive right, or `setName` is not a port set.
   */
  portMoveMember(task: TaskId, member: PortName, setName: PortName): KernReturnCode {
    const space = this.space(task);
    const entry = spaceLookup(space, member);
    if (entry === undefined) return KernReturn.INVALID_NAME;
    if ((entry.type & PortType.RECEIVE) === 0) return KernReturn.INVALID_RIGHT;
    let set: PortSetState | undefined;
    if (setName !== portNameNull) {
      const setEntry = spaceLookup(space, setName);
      if (setEntry === undefined) return KernReturn.INVALID_NAME;
      if ((setEntry.type & PortType.PORT_SET) === 0) return KernReturn.INVALID_RIGHT;
      set = this.findSet(setEntry.object)!;
    }
    const port = this.livePort(entry.object);
    if (port.set === (set?.id ?? null)) return KernReturn.SUCCESS;
    this.leaveSet(port);
    if (set !== undefined) {
      set.members.push(port.id);
      port.set = set.id;
      if (port.queue.length > 0) this.emit({ kind: 'message-queued', portId: port.id, setId: set.id });
    }
    return KernReturn.SUCCESS;
  }

  /**
   * Sets the queue limit of the port whose receive right `name` denotes (mach_port_set_attributes
   * MACH_PORT_LIMITS_INFO). Raising it past the current length emits queue-space.
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS        The limit is `limit`.
   *   INVALID_NAME   The name denotes no right.
   *   INVALID_RIGHT  The name does not denote a receive right.
   *   INVALID_VALUE  `limit` is not an integer in 1..portQueueLengthMax.
   */
  portSetQlimit(task: TaskId, name: PortName, limit: number): KernReturnCode {
    const space = this.space(task);
    const entry = spaceLookup(space, name);
    if (entry === undefined) return KernReturn.INVALID_NAME;
    if ((entry.type & PortType.RECEIVE) === 0) return KernReturn.INVALID_RIGHT;
    if (!Number.isInteger(limit) || limit < 1 || limit > portQueueLengthMax) return KernReturn.INVALID_VALUE;
    const port = this.livePort(entry.object);
    const wasFull = portQueueFull(port);
    port.qlimit = limit;
    if (wasFull && !portQueueFull(port)) this.emit({ kind: 'queue-space', portId: port.id });
    return KernReturn.SUCCESS;
  }

  /**
   * Registers a notification request (mach_port_request_notification). The core makes a send-once
   * right from the receive right `notifyName`; the notification is a message sent through it.
   * `notifyName` 0 cancels the request. A request that is replaced or cancelled has its send-once
   * right destroyed, which sends a send-once notification to its port (what Mach's caller would
   * cause by deallocating the `previous` right it gets back).
   *   DEAD_NAME:  `name` denotes a send, send-once or receive right. When the port dies while the
   *               name holds send or send-once rights, the name becomes a dead name with one extra
   *               user reference and DEAD_NAME (body: the name) is sent. When the name's rights go
   *               away first, PORT_DELETED (body: the name) is sent instead. On a dead name the
   *               notification is sent at once (with the extra reference).
   *   NO_SENDERS: `name` denotes a receive right. When the count of send rights to the port (in
   *               spaces, in queued messages, held by the kernel) next drops to zero, NO_SENDERS
   *               (body: the make-send count) is sent and the request ends. If the port dies first,
   *               the request's right is destroyed (send-once notification).
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS         The request is registered (or cancelled, or the notification sent at once).
   *   INVALID_VALUE   `variant` is not a NotifyVariant.
   *   INVALID_NAME    `name`, or a nonzero `notifyName`, denotes no right.
   *   INVALID_RIGHT   `name` holds no right of the kind the variant needs, or `notifyName` is not a
   *                   receive right.
   *   UREFS_OVERFLOW  DEAD_NAME on a dead name that already has userRefsMax references.
   */
  portRequestNotification(
    task: TaskId,
    name: PortName,
    variant: number,
    notifyName: PortName,
  ): KernReturnCode {
    const space = this.space(task);
    if (variant !== NotifyVariant.DEAD_NAME && variant !== NotifyVariant.NO_SENDERS) {
      return KernReturn.INVALID_VALUE;
    }
    const entry = spaceLookup(space, name);
    if (entry === undefined) return KernReturn.INVALID_NAME;
    let notify: PortId | null = null;
    if (notifyName !== portNameNull) {
      const notifyEntry = spaceLookup(space, notifyName);
      if (notifyEntry === undefined) return KernReturn.INVALID_NAME;
      if ((notifyEntry.type & PortType.RECEIVE) === 0) return KernReturn.INVALID_RIGHT;
      notify = notifyEntry.object;
    }
    if (variant === NotifyVariant.NO_SENDERS) {
      if ((entry.type & PortType.RECEIVE) === 0) return KernReturn.INVALID_RIGHT;
      const port = this.livePort(entry.object);
      const previous = port.nsRequest;
      port.nsRequest = notify === null ? null : this.makeSendOnce(notify);
      if (previous !== null) this.destroySendOnce(previous);
      return KernReturn.SUCCESS;
    }
    if ((entry.type & PortType.DEAD_NAME) !== 0) {
      if (notify === null) return KernReturn.SUCCESS;
      if (entry.urefs + 1 > userRefsMax) return KernReturn.UREFS_OVERFLOW;
      entry.urefs++;
      this.notify(this.makeSendOnce(notify), NotifyId.DEAD_NAME, notificationBody(name));
      return KernReturn.SUCCESS;
    }
    if ((entry.type & (PortType.SEND | PortType.SEND_ONCE | PortType.RECEIVE)) === 0) {
      return KernReturn.INVALID_RIGHT;
    }
    const previous = entry.request;
    entry.request = notify === null ? null : this.makeSendOnce(notify);
    if (previous !== null) this.destroySendOnce(previous);
    return KernReturn.SUCCESS;
  }

  // -------------------------------------------------------------------------------------------
  // Kernel ports and kernel-held rights.
  // -------------------------------------------------------------------------------------------

  /**
   * Creates a kernel port: its receive right is held by the kernel and it is tagged with `kobject`.
   * Tasks get send rights to it with insertSendRight; they may carry them in messages but not send
   * to it (SEND_INVALID_DEST: kernel objects are driven by syscalls). When its last send right goes
   * away a kernel-no-senders event is emitted (each time the count drops to zero).
   */
  allocateKernelPort(kobject: KObject): PortId {
    const id = this.allocateId();
    this.state.ports[id] = newPort(id, { kind: 'kernel' }, { type: kobject.type, id: kobject.id });
    return id;
  }

  /**
   * Destroys a kernel port: every send right to it becomes a dead name (dead-name notifications).
   * Returns:
   *   SUCCESS           The port is dead.
   *   INVALID_ARGUMENT  `portId` is not a live kernel port.
   */
  destroyKernelPort(portId: PortId): KernReturnCode {
    const port = this.findPort(portId);
    if (port === undefined || port.receiver.kind !== 'kernel') return KernReturn.INVALID_ARGUMENT;
    this.killPorts([portId]);
    return KernReturn.SUCCESS;
  }

  /**
   * Gives `task` a send right to `portId`: made from the receive right for a kernel port (make-send
   * count + 1), copied from the kernel's own send right otherwise (see kernelCopySend), so the
   * kernel hands out only what it holds. Merges into the name the space already has for the port.
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS         `name` denotes the send right (one more user reference).
   *   DEAD_NAME       The port has been destroyed (or never existed).
   *   INVALID_RIGHT   Not a kernel port, and the kernel holds no send right to it.
   *   NO_SPACE        The space is full.
   *   UREFS_OVERFLOW  The task's send right already has userRefsMax references.
   */
  insertSendRight(task: TaskId, portId: PortId): NameResult {
    const space = this.space(task);
    const port = this.findPort(portId);
    if (port === undefined) return { kr: KernReturn.DEAD_NAME, name: portNameNull };
    const kernelPort = port.receiver.kind === 'kernel';
    if (!kernelPort && port.kernelSrights === 0) return { kr: KernReturn.INVALID_RIGHT, name: portNameNull };
    let name = spaceNameOf(space, portId);
    if (name !== undefined) {
      const entry = spaceLookup(space, name)!;
      if (entry.urefs + 1 > userRefsMax) return { kr: KernReturn.UREFS_OVERFLOW, name: portNameNull };
      if ((entry.type & PortType.SEND) === 0) {
        spaceUnindex(space, name, entry);
        entry.type |= PortType.SEND;
        spaceIndex(space, name, entry);
        port.srights++;
      }
      entry.urefs++;
    } else {
      name = spaceInsert(space, { object: portId, type: PortType.SEND, urefs: 1, request: null });
      if (name === undefined) return { kr: KernReturn.NO_SPACE, name: portNameNull };
      port.srights++;
    }
    if (kernelPort) port.mscount++;
    return { kr: KernReturn.SUCCESS, name };
  }

  /**
   * The kernel takes a send right of its own to the port `name` denotes, copied from a send right
   * or made from a receive right (netname_check_in). It counts like any send right (no-senders
   * waits for it) until kernelReleaseSend.
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS        `portId` is the port; the kernel holds one more send right to it.
   *   INVALID_NAME   The name denotes no right.
   *   INVALID_RIGHT  The name denotes no send or receive right (send-once, port set, dead name).
   */
  kernelCopySend(task: TaskId, name: PortName): PortResult {
    const entry = spaceLookup(this.space(task), name);
    if (entry === undefined) return { kr: KernReturn.INVALID_NAME, portId: null };
    if ((entry.type & (PortType.SEND | PortType.RECEIVE)) === 0) {
      return { kr: KernReturn.INVALID_RIGHT, portId: null };
    }
    const port = this.livePort(entry.object);
    if ((entry.type & PortType.SEND) === 0) port.mscount++;
    port.srights++;
    port.kernelSrights++;
    return { kr: KernReturn.SUCCESS, portId: port.id };
  }

  /** Releases a send right taken with kernelCopySend (no effect if the port has died since). */
  kernelReleaseSend(portId: PortId): void {
    const port = this.findPort(portId);
    if (port === undefined) return;
    if (port.kernelSrights === 0) throw new Error(`ipc: the kernel holds no send right to ${portId}`);
    port.kernelSrights--;
    this.releaseSend(portId);
  }

  /**
   * The port behind the send right `name` denotes, for kernel-object syscalls.
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS        `portId` is the port, `kobject` its kernel object (null for a task's port).
   *   INVALID_NAME   The name denotes no right.
   *   DEAD_NAME      The name is a dead name.
   *   INVALID_RIGHT  The name denotes no send right.
   */
  translateSend(task: TaskId, name: PortName): TranslateResult {
    const entry = spaceLookup(this.space(task), name);
    if (entry === undefined) return { kr: KernReturn.INVALID_NAME, portId: null, kobject: null };
    if ((entry.type & PortType.DEAD_NAME) !== 0)
      return { kr: KernReturn.DEAD_NAME, portId: null, kobject: null };
    if ((entry.type & PortType.SEND) === 0)
      return { kr: KernReturn.INVALID_RIGHT, portId: null, kobject: null };
    const port = this.livePort(entry.object);
    return { kr: KernReturn.SUCCESS, portId: port.id, kobject: port.kobject };
  }

  // -------------------------------------------------------------------------------------------
  // Messages.
  // -------------------------------------------------------------------------------------------

  /**
   * Sends a message (mach_msg_send). Everything is validated before anything moves: on any error,
   * and on sendWouldBlock, no right has moved and no notification was sent. Then the rights are
   * copied in (in order: destination, reply, descriptors), the body and OOL bytes are copied, and
   * the message is queued on the destination port (message-queued event), wherever its receive
   * right is (a space, or in transit: the message travels with the queue).
   *
   * Send-once rights are consumed by the send. A message sent through a send-once right ignores the
   * queue limit (as in Mach: replies never block). A message that carries the receive right of its
   * destination port, or of a port that (through receive rights in transit) holds the destination's
   * receive right, would form a cycle nobody can ever receive from: as in Mach it is destroyed
   * instead of queued (its receive rights die) and the send returns SUCCESS.
   *
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS              Queued (or destroyed as circular, see above).
   *   sendWouldBlock       The destination queue is full and the destination right is a send
   *                        right: block the sender, retry on queue-space (or port-died).
   *   SEND_TOO_LARGE       More than messageDescriptorsMax descriptors, or receivedMessageSize is
   *                        above messageSizeMax.
   *   SEND_INVALID_HEADER  `destDisposition` is not a send or send-once disposition.
   *   SEND_INVALID_DEST    The destination name does not hold the right the disposition needs (a
   *                        forged, stale or dead name), or denotes a kernel port.
   *   SEND_INVALID_REPLY   The reply disposition is invalid (must be NONE when replyName is 0), or
   *                        the reply name does not hold the right it needs.
   *   SEND_INVALID_DATA    A descriptor has an unknown type.
   *   SEND_INVALID_RIGHT   A port descriptor has an invalid disposition, or its name does not hold
   *                        the right it needs (counting what the header and earlier descriptors
   *                        of the same message take: two MOVE_SENDs need two references).
   */
  send(task: TaskId, message: OutgoingMessage): SendResult {
    const space = this.space(task);
    if (message.descriptors.length > messageDescriptorsMax) return KernReturn.SEND_TOO_LARGE;
    for (const descriptor of message.descriptors) {
      if (descriptor.type !== 'port' && descriptor.type !== 'ool') return KernReturn.SEND_INVALID_DATA;
    }
    if (receivedMessageSize(message) > messageSizeMax) return KernReturn.SEND_TOO_LARGE;
    if (!isSendDisposition(message.destDisposition)) return KernReturn.SEND_INVALID_HEADER;

    const ledger: Ledger = new Map();
    const dest = this.planCopyin(space, message.destName, message.destDisposition, ledger);
    if (dest === undefined) return KernReturn.SEND_INVALID_DEST;
    const destPort = this.livePort(dest.port);
    if (destPort.receiver.kind === 'kernel') return KernReturn.SEND_INVALID_DEST;

    let reply: Copyin | null = null;
    if (message.replyName === portNameNull) {
      if (message.replyDisposition !== Disposition.NONE) return KernReturn.SEND_INVALID_REPLY;
    } else {
      if (!isSendDisposition(message.replyDisposition)) return KernReturn.SEND_INVALID_REPLY;
      const planned = this.planCopyin(space, message.replyName, message.replyDisposition, ledger);
      if (planned === undefined) return KernReturn.SEND_INVALID_REPLY;
      reply = planned;
    }

    const body: (Copyin | Uint8Array)[] = [];
    for (const descriptor of message.descriptors) {
      if (descriptor.type === 'ool') {
        body.push(descriptor.bytes);
        continue;
      }
      if (!isPortDisposition(descriptor.disposition)) return KernReturn.SEND_INVALID_RIGHT;
      const planned = this.planCopyin(space, descriptor.name, descriptor.disposition, ledger);
      if (planned === undefined) return KernReturn.SEND_INVALID_RIGHT;
      body.push(planned);
    }

    if (destPort.receiver.kind === 'remote') {
      // Only send and send-once rights cross nodes: a receive right would move a port (task
      // migration moves ports), a right to a kernel object would leave its object behind.
      if (reply !== null && this.findPort(reply.port)?.kobject != null) return KernReturn.SEND_INVALID_REPLY;
      for (const item of body) {
        if (item instanceof Uint8Array) continue;
        if (item.kind === 'receive' || this.findPort(item.port)?.kobject != null) {
          return KernReturn.SEND_INVALID_RIGHT;
        }
      }
    }

    if (dest.kind === 'send' && portQueueFull(destPort)) return sendWouldBlock;

    // Validated: from here on nothing fails.
    const queued: QueuedMessage = {
      dest: this.copyin(space, dest, dest.port),
      reply: reply === null ? null : this.copyin(space, reply, dest.port),
      id: message.id,
      descriptors: body.map(
        (item): QueuedDescriptor =>
          item instanceof Uint8Array
            ? { type: 'ool', bytes: this.#bytes.copy(item) }
            : { type: 'port', right: this.copyin(space, item, dest.port) },
      ),
      body: this.#bytes.copy(message.body),
    };
    const carriedReceives = queued.descriptors.flatMap((d) =>
      d.type === 'port' && d.right.kind === 'receive' ? [d.right.port] : [],
    );
    if (carriedReceives.length > 0 && this.wouldCycle(dest.port, carriedReceives)) {
      const dying: PortId[] = [];
      this.destroyMessage(queued, dying);
      this.killPorts(dying);
      return KernReturn.SUCCESS;
    }
    this.enqueue(destPort, queued);
    return KernReturn.SUCCESS;
  }

  /**
   * Receives the first message of the port or port set `name` denotes (mach_msg_receive). Through a
   * set, members are served in turn: the first member (in service order) with a message delivers
   * and goes to the back. The rights in the message are copied out into the space: a send right
   * merges into the name the space has for its port (user references capped at userRefsMax), a
   * send-once right gets a new name, a receive right merges with the space's send rights to the
   * port or gets a new name. A right whose port died in transit comes out as portNameDead; a right
   * that cannot get a name because the space is full is destroyed and comes out as 0. The
   * destination send right is released then (it counted for no-senders while queued).
   * Conditions: the task has a space.
   * Returns:
   *   SUCCESS            `message` holds the message; it left the queue (queue-space event if
   *                      the queue stops being full).
   *   RCV_TOO_LARGE      receivedMessageSize(message) (`size`) is above capacityBytes; the
   *                      message stays first in the queue.
   *   RCV_INVALID_NAME   The name denotes no receive right or port set (forged, stale, moved).
   *   receiveWouldBlock  Nothing is queued: block the receiver, retry on message-queued.
   * RCV_PORT_DIED is never returned by the core: the kernel answers it to a thread that was
   * blocked when the port or set died (port-died event), since its name is gone by then.
   */
  receive(task: TaskId, name: PortName, capacityBytes: number): ReceiveResult {
    const space = this.space(task);
    const entry = spaceLookup(space, name);
    if (entry === undefined) return { kr: KernReturn.RCV_INVALID_NAME };
    let port: PortState | undefined;
    let set: PortSetState | undefined;
    if ((entry.type & PortType.RECEIVE) !== 0) {
      port = this.livePort(entry.object);
    } else if ((entry.type & PortType.PORT_SET) !== 0) {
      set = this.findSet(entry.object)!;
      port = portSetSelect(set, (id) => this.findPort(id));
    } else {
      return { kr: KernReturn.RCV_INVALID_NAME };
    }
    const msg = port?.queue[0];
    if (port === undefined || msg === undefined) return { kr: receiveWouldBlock };
    const size = receivedMessageSize(msg);
    if (size > capacityBytes) return { kr: KernReturn.RCV_TOO_LARGE, size };

    const wasFull = portQueueFull(port);
    port.queue.shift();
    if (set !== undefined) portSetServed(set, port.id);
    if (wasFull && !portQueueFull(port)) this.emit({ kind: 'queue-space', portId: port.id });

    const localName = spaceNameOf(space, port.id)!;
    if (msg.dest.kind === 'send') this.releaseSend(port.id);
    else port.sorights--;
    const reply = msg.reply === null ? null : this.copyout(space, msg.reply);
    const descriptors = msg.descriptors.map(
      (d): ReceivedDescriptor => (d.type === 'ool' ? d : { type: 'port', ...this.copyout(space, d.right) }),
    );
    return {
      kr: KernReturn.SUCCESS,
      message: {
        replyName: reply?.name ?? portNameNull,
        replyDisposition: reply?.disposition ?? Disposition.NONE,
        localName,
        id: msg.id,
        descriptors,
        body: msg.body,
      },
    };
  }

  /** True when a receive on `name` would not answer receiveWouldBlock now (a message, maybe too large). */
  hasMessage(task: TaskId, name: PortName): boolean {
    const entry = spaceLookup(this.space(task), name);
    if (entry === undefined) return false;
    if ((entry.type & PortType.RECEIVE) !== 0) return this.livePort(entry.object).queue.length > 0;
    if ((entry.type & PortType.PORT_SET) !== 0) {
      return portSetSelect(this.findSet(entry.object)!, (id) => this.findPort(id)) !== undefined;
    }
    return false;
  }

  /** Events since the last call, oldest first; see event.ts for what each means to the kernel. */
  takeEvents(): IpcEvent[] {
    const events = this.state.events;
    this.state.events = [];
    return events;
  }

  // -------------------------------------------------------------------------------------------
  // Queries for the kernel.
  // -------------------------------------------------------------------------------------------

  /**
   * The port or port set `name` denotes in `task`'s space (for any live right: receive, send,
   * send-once, set), or null for a free, stale or dead name. A blocked thread waits on this id.
   */
  portIdOf(task: TaskId, name: PortName): PortId | null {
    const entry = spaceLookup(this.space(task), name);
    if (entry === undefined || (entry.type & PortType.DEAD_NAME) !== 0) return null;
    return entry.object;
  }

  /** The port set the live port `portId` is a member of, or null. */
  setOf(portId: PortId): PortId | null {
    return this.findPort(portId)?.set ?? null;
  }

  /** True while `portId` denotes a live port or port set. */
  isAlive(portId: PortId): boolean {
    return this.findPort(portId) !== undefined || this.findSet(portId) !== undefined;
  }

  /** The kernel object of a live kernel port, or null. */
  kobjectOf(portId: PortId): KObject | null {
    return this.findPort(portId)?.kobject ?? null;
  }

  /** Every name of `task`'s space, ascending. Conditions: the task has a space. */
  names(task: TaskId): NameInfo[] {
    const space = this.space(task);
    return spaceNames(space).map((name) => {
      const entry = space.entries[String(name)]!;
      return { name, type: entry.type, urefs: entry.urefs, portId: entry.object };
    });
  }

  /** Violations of the state's invariants (empty when sound); see invariants.ts. */
  audit(): string[] {
    return auditIpcState(this.state);
  }

  // -------------------------------------------------------------------------------------------
  // Remote ports (NORMA IPC). The network layer (src/net/norma-ipc.ts) drives these; the core
  // only keeps the counts straight. A port homed on another node is represented here by a proxy
  // (receiver 'remote'): tasks hold ordinary rights to it, and messages sent to it wait in its
  // queue until the port's node acknowledges them (so the queue limit bounds what is in flight).
  // A port homed here counts, per node, the rights other nodes hold (PortState.remote): a send
  // right shipped away counts until that node releases it, so no-senders sees every node.
  //
  // Why the counts are per node and may go negative: when node A passes a send right it got
  // from the home H on to node B, A tells H "+1 for B" (right-exported) before its own release
  // can follow on the same ordered link, but B's release of that right may reach H first. With
  // one total, that early release could touch zero and fire a false no-senders; with per-node
  // counts, A's holding stays positive until A's release, which comes after A's "+1 for B".
  // -------------------------------------------------------------------------------------------

  /** True when `portId` is a proxy here: the port lives on another node. */
  isRemote(portId: PortId): boolean {
    return this.findPort(portId)?.receiver.kind === 'remote';
  }

  /** True when `portId` is a live port whose receive right is on this node (not a proxy). */
  isHomedHere(portId: PortId): boolean {
    const port = this.findPort(portId);
    return port !== undefined && port.receiver.kind !== 'remote';
  }

  /**
   * A send or send-once right that arrived from node `from` inside a message about to be
   * delivered here (deliverRemote): counts it and returns the right the message holds. A port
   * not known here gets a proxy. The caller has ruled out ports that died here (a dead right is
   * simply `{ kind, port }` with a port id not in the state).
   */
  importRight(kind: 'send' | 'send-once', portId: PortId, from: string): TransitRight {
    const port = this.findPort(portId) ?? this.createProxy(portId);
    if (kind === 'send') {
      port.srights++;
    } else {
      port.sorights++;
      // A send-once right to a port homed here comes back from the node that held it.
      if (port.receiver.kind !== 'remote') this.addHolding(port, from, 0, -1);
    }
    return { kind, port: portId };
  }

  /**
   * The kernel takes a send right of its own to a port the cluster's name service answered for a
   * lookup that missed here; released with kernelReleaseSend. Made from the receive right when
   * the port lives here (another node registered a name for it), else on its proxy (made if
   * needed). Returns true for a remote port: its home must count the right (`acquire`).
   * Conditions: the port lives here, or is not a dead port of this node.
   */
  kernelTakeSend(portId: PortId): boolean {
    const port = this.findPort(portId) ?? this.createProxy(portId);
    const remote = port.receiver.kind === 'remote';
    if (!remote) port.mscount++;
    port.srights++;
    port.kernelSrights++;
    return remote;
  }

  /**
   * Whether a message from the network for `portId`, sent through a right of `destKind`, can be
   * queued here now: 'ok'; 'full' (a send right to a full queue: the sender keeps it and waits for
   * queue space); 'dead' (no such port: it died or never lived here); 'remote' (a proxy here: the
   * port lives elsewhere now).
   */
  remoteDeliverable(portId: PortId, destKind: 'send' | 'send-once'): 'ok' | 'full' | 'dead' | 'remote' {
    const port = this.findPort(portId);
    if (port === undefined || port.kobject !== null) return 'dead';
    if (port.receiver.kind === 'remote') return 'remote';
    if (destKind === 'send' && portQueueFull(port)) return 'full';
    return 'ok';
  }

  /**
   * Queues a message that arrived from node `from`, after remoteDeliverable said 'ok' and its
   * carried rights were imported. Its destination right counts here now (a send right until it is
   * received; a send-once right comes back from `from`).
   */
  deliverRemote(msg: QueuedMessage, from: string): void {
    const port = this.livePort(msg.dest.port);
    if (msg.dest.kind === 'send') {
      port.srights++;
    } else {
      port.sorights++;
      this.addHolding(port, from, 0, -1);
    }
    this.enqueue(port, msg);
  }

  /** The messages waiting in the queue of the proxy `portId` (oldest first), for transmission. */
  proxyQueue(portId: PortId): readonly QueuedMessage[] {
    const port = this.findPort(portId);
    return port?.receiver.kind === 'remote' ? port.queue : [];
  }

  /**
   * Node `to`, where the port of the proxy `portId` lives, acknowledged the first `count` messages
   * of the proxy's queue: they leave it, their destination rights are used up, and every other
   * right they carry now belongs to `to`: a right to a port homed here counts as held by `to`; a
   * right to another remote port is reported (right-exported) so that its node learns about it.
   */
  takeAcknowledged(portId: PortId, count: number, to: string): void {
    const port = this.livePort(portId);
    if (port.receiver.kind !== 'remote' || count > port.queue.length) {
      throw new Error(`ipc: ${count} acknowledged on ${portId}, which has ${port.queue.length} queued`);
    }
    const wasFull = portQueueFull(port);
    const acknowledged = port.queue.splice(0, count);
    for (const msg of acknowledged) {
      if (msg.reply !== null) this.exportRight(msg.reply, to);
      for (const descriptor of msg.descriptors) {
        if (descriptor.type === 'port') this.exportRight(descriptor.right, to);
        else this.#bytes.give(descriptor.bytes);
      }
      this.#bytes.give(msg.body);
      if (msg.dest.kind === 'send') port.srights--;
      else port.sorights--;
    }
    if (wasFull && !portQueueFull(port)) this.emit({ kind: 'queue-space', portId });
    this.checkSenders(port);
  }

  /**
   * Node `node` now holds one more right to the port `portId` homed here: it got it from a third
   * node (that node's right-exported), or by a name lookup. False when the port is not homed here
   * (dead, or moved): the caller tells `node`.
   */
  remoteAcquire(portId: PortId, node: string, right: 'send' | 'send-once'): boolean {
    const port = this.findPort(portId);
    if (port === undefined || port.receiver.kind === 'remote') return false;
    this.addHolding(port, node, right === 'send' ? 1 : 0, right === 'send-once' ? 1 : 0);
    return true;
  }

  /** A send-once right to `portId` (homed here) moved from node `from` to node `to`. */
  remoteTransferSendOnce(portId: PortId, from: string, to: string): boolean {
    const port = this.findPort(portId);
    if (port === undefined || port.receiver.kind === 'remote') return false;
    this.addHolding(port, from, 0, -1);
    this.addHolding(port, to, 0, 1);
    return true;
  }

  /** Node `node` released `count` send rights to `portId` (homed here): no-senders may fire. */
  remoteRelease(portId: PortId, node: string, count: number): void {
    const port = this.findPort(portId);
    if (port === undefined || port.receiver.kind === 'remote') return;
    this.addHolding(port, node, -count, 0);
    this.checkSenders(port);
  }

  /**
   * Node `node` is gone: the rights it held to ports homed here go with it (no-senders may fire;
   * each send-once right it held is destroyed unused, which sends a send-once notification).
   */
  forgetNode(node: string): void {
    for (const port of Object.values(this.state.ports)) {
      const held = port.remote?.[node];
      if (held === undefined) continue;
      delete port.remote![node];
      for (let i = 0; i < held.sendOnce; i++) this.destroySendOnce(port.id);
      this.checkSenders(port);
    }
  }

  /** Removes the proxy `portId` if it is still unused (see proxy-unused); true when removed. */
  dropProxy(portId: PortId): boolean {
    const port = this.findPort(portId);
    if (port === undefined || port.receiver.kind !== 'remote') return false;
    if (port.srights > 0 || port.sorights > 0 || port.queue.length > 0) return false;
    delete this.state.ports[portId];
    return true;
  }

  /**
   * The remote port behind the proxy `portId` died (or its node did): every right to it here
   * becomes a dead name (dead-name notifications), and the messages waiting to go are destroyed.
   */
  killProxy(portId: PortId): void {
    if (this.isRemote(portId)) this.killPorts([portId]);
  }

  /** Proxies here (ports whose receive right lives on another node). */
  proxies(): PortId[] {
    return Object.values(this.state.ports)
      .filter((port) => port.receiver.kind === 'remote')
      .map((port) => port.id);
  }

  /**
   * The tasks move to node `to` (task migration): their IPC state leaves this node without dying.
   * Returns it as `exportTasks` gives it (the live state: messages queued since a freeze are in
   * it), with, for each port whose receive right moves, the rights other nodes hold to it (this
   * node's included) for its new home to count. Here, every right the tasks hold or their queued
   * messages carry is handed to `to` as if a message had carried it (rights to ports homed here
   * count as held by `to`; rights to other nodes' ports are reported with right-exported), and a
   * moving port that rights here still point at becomes a proxy of its new home (nothing else
   * needs this node afterwards). Name registrations of the moving ports go with them: the caller
   * drops them from the name service without releasing (their kernel rights are in the export).
   * Conditions: the tasks have spaces, hold no memory-object rights (kernel ports stay here).
   */
  handOff(tasks: readonly TaskId[], to: string): HandOff {
    const snapshot = exportTasks(this, tasks);
    const moving = new Set(snapshot.ports.map((p) => p.id));
    const give = (right: TransitRight): void => {
      if (right.kind === 'receive') return;
      const port = this.findPort(right.port);
      if (port === undefined) return; // a dead right
      if (!moving.has(right.port)) {
        this.exportRight(right, to);
        return;
      }
      // Counted again where the port arrives (importTasks).
      if (right.kind === 'send') port.srights--;
      else port.sorights--;
    };
    for (const task of tasks) {
      const space = this.findSpace(task);
      if (space === undefined) continue;
      delete this.state.spaces[task];
      for (const name of spaceNames(space)) {
        const entry = space.entries[String(name)]!;
        if ((entry.type & PortType.PORT_SET) !== 0) delete this.state.sets[entry.object];
        if ((entry.type & PortType.SEND) !== 0) give({ kind: 'send', port: entry.object });
        if ((entry.type & PortType.SEND_ONCE) !== 0) give({ kind: 'send-once', port: entry.object });
        if (entry.request !== null) give({ kind: 'send-once', port: entry.request });
      }
    }
    const holdings: Record<PortId, Record<string, RemoteHolding>> = {};
    for (const id of moving) {
      const port = this.livePort(id);
      for (const msg of port.queue.splice(0)) {
        give(msg.dest);
        if (msg.reply !== null) give(msg.reply);
        for (const descriptor of msg.descriptors) if (descriptor.type === 'port') give(descriptor.right);
      }
      if (port.nsRequest !== null) give({ kind: 'send-once', port: port.nsRequest });
    }
    for (const id of moving) {
      const port = this.livePort(id);
      // The name registrations (kernel rights) move with the port.
      port.srights -= port.kernelSrights;
      const held: Record<string, RemoteHolding> = { ...port.remote };
      delete held[to];
      if (port.srights > 0 || port.sorights > 0) {
        held[this.nodeId] = { send: port.srights, sendOnce: port.sorights };
        const proxy = this.createProxy(id); // in place of the port
        proxy.srights = port.srights;
        proxy.sorights = port.sorights;
      } else {
        delete this.state.ports[id];
      }
      holdings[id] = held;
    }
    return { snapshot, holdings };
  }

  private createProxy(portId: PortId): PortState {
    const port = newPort(portId, { kind: 'remote' }, null);
    port.qlimit = proxyQueueLength;
    this.state.ports[portId] = port;
    return port;
  }

  /** Adds to what `node` holds of `port`; a holding back at zero is removed. */
  private addHolding(port: PortState, node: string, send: number, sendOnce: number): void {
    port.remote ??= {};
    const held = port.remote[node] ?? { send: 0, sendOnce: 0 };
    held.send += send;
    held.sendOnce += sendOnce;
    if (held.send === 0 && held.sendOnce === 0) delete port.remote[node];
    else port.remote[node] = held;
  }

  /** A right carried by a message that node `to` acknowledged: it is `to`'s now. */
  private exportRight(right: TransitRight, to: string): void {
    const port = this.findPort(right.port);
    if (port === undefined || right.kind === 'receive') return; // a dead right; receive rights never leave
    if (port.receiver.kind === 'remote') {
      this.emit({ kind: 'right-exported', portId: port.id, right: right.kind, to });
      if (right.kind === 'send') port.srights--;
      else port.sorights--;
      this.checkSenders(port);
      return;
    }
    if (right.kind === 'send') {
      port.srights--;
      this.addHolding(port, to, 1, 0);
    } else {
      port.sorights--;
      this.addHolding(port, to, 0, 1);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Internals: lookups.
  // -------------------------------------------------------------------------------------------

  private findSpace(task: TaskId): SpaceState | undefined {
    // Integer keys (no string conversion); Object.prototype has no integer-keyed properties.
    return Number.isInteger(task) && task >= 0 ? this.state.spaces[task] : undefined;
  }

  private space(task: TaskId): SpaceState {
    const space = this.findSpace(task);
    if (space === undefined) throw new Error(`ipc: task ${task} has no IPC space`);
    return space;
  }

  private findPort(id: PortId): PortState | undefined {
    return Object.hasOwn(this.state.ports, id) ? this.state.ports[id] : undefined;
  }

  /** A port that the invariants say is alive (an entry with live rights points at it). */
  private livePort(id: PortId): PortState {
    const port = this.findPort(id);
    if (port === undefined) throw new Error(`ipc: port ${id} should be alive`);
    return port;
  }

  private findSet(id: PortId): PortSetState | undefined {
    return Object.hasOwn(this.state.sets, id) ? this.state.sets[id] : undefined;
  }

  private allocateId(): PortId {
    return `${this.nodeId}.${this.state.nextSerial++}`;
  }

  private emit(event: IpcEvent): void {
    this.state.events.push(event);
  }

  // -------------------------------------------------------------------------------------------
  // Internals: rights.
  // -------------------------------------------------------------------------------------------

  /** Frees `name`; a dead-name request on it is cancelled with a port-deleted notification. */
  private removeEntry(space: SpaceState, name: PortName): EntryState {
    const entry = spaceRemove(space, name);
    if (entry.request !== null) {
      const to = entry.request;
      entry.request = null;
      this.notify(to, NotifyId.PORT_DELETED, notificationBody(name));
    }
    return entry;
  }

  /**
   * Adds `delta` (already validated) to the send references of `name`; at zero the entry's send
   * right is released: the name keeps its receive right, or is freed.
   */
  private addSendRefs(space: SpaceState, name: PortName, entry: EntryState, delta: number): void {
    entry.urefs += delta;
    if (entry.urefs > 0) return;
    this.dropSendBit(space, name, entry);
    this.releaseSend(entry.object);
  }

  /** The entry no longer holds a send right (the caller accounts for the right itself). */
  private dropSendBit(space: SpaceState, name: PortName, entry: EntryState): void {
    if ((entry.type & PortType.RECEIVE) !== 0) {
      entry.type &= ~PortType.SEND;
      entry.urefs = 0;
    } else {
      this.removeEntry(space, name);
    }
  }

  /** One send right to `id` is gone; at zero, no-senders fires. Nothing for a dead port. */
  private releaseSend(id: PortId): void {
    const port = this.findPort(id);
    if (port === undefined) return;
    port.srights--;
    if (port.srights < 0) throw new Error(`ipc: send-right count of ${id} went negative`);
    this.checkSenders(port);
  }

  /**
   * After a right to `port` went away: a proxy with nothing left is reported unused; a port with
   * no send right left on any node fires its no-senders request (and kernel-no-senders).
   */
  private checkSenders(port: PortState): void {
    if (port.srights > 0) return;
    if (port.receiver.kind === 'remote') {
      if (port.sorights === 0 && port.queue.length === 0)
        this.emit({ kind: 'proxy-unused', portId: port.id });
      return;
    }
    if (port.remote !== undefined && Object.values(port.remote).some((held) => held.send !== 0)) return;
    if (port.nsRequest !== null) {
      const to = port.nsRequest;
      port.nsRequest = null;
      this.notify(to, NotifyId.NO_SENDERS, notificationBody(port.mscount));
    }
    if (port.kobject !== null)
      this.emit({ kind: 'kernel-no-senders', portId: port.id, kobject: port.kobject });
  }

  /** Makes a send-once right to `id` (alive: the caller holds its receive right) for a request. */
  private makeSendOnce(id: PortId): PortId {
    this.livePort(id).sorights++;
    return id;
  }

  /** A send-once right to `id` is destroyed unused: it carries a send-once notification there. */
  private destroySendOnce(id: PortId): void {
    this.notify(id, NotifyId.SEND_ONCE, emptyBody);
  }

  /**
   * Sends a notification through the send-once right `to` (which moves into the message and keeps
   * counting in sorights until received). A right to a dead port just vanishes.
   */
  private notify(to: PortId, id: (typeof NotifyId)[keyof typeof NotifyId], body: Uint8Array): void {
    const port = this.findPort(to);
    if (port === undefined) return;
    this.enqueue(port, notificationMessage(to, id, body));
  }

  private enqueue(port: PortState, msg: QueuedMessage): void {
    port.queue.push(msg);
    this.emit({ kind: 'message-queued', portId: port.id, setId: port.set });
  }

  private leaveSet(port: PortState): void {
    if (port.set === null) return;
    const set = this.findSet(port.set);
    if (set !== undefined) portSetRemoveMember(set, port.id);
    port.set = null;
  }

  /** Destroys a port set; its members stay where they are, outside any set. */
  private destroySet(id: PortId): void {
    const set = this.findSet(id);
    if (set === undefined) return;
    for (const member of set.members) {
      const port = this.findPort(member);
      if (port !== undefined) port.set = null;
    }
    delete this.state.sets[id];
    this.emit({ kind: 'port-died', portId: id });
  }

  /**
   * Destroys ports (their receive rights die), and transitively every port whose receive right is
   * in a message queued on one of them. A work list, not recursion: chains of receive rights in
   * transit can be long, and a port already dead is skipped, so this always ends.
   */
  private killPorts(ids: PortId[]): void {
    const work = [...ids];
    while (work.length > 0) {
      const id = work.pop()!;
      const port = this.findPort(id);
      if (port === undefined) continue;
      this.detachReceive(port);
      this.leaveSet(port);
      delete this.state.ports[id];
      this.emit({ kind: 'port-died', portId: id });
      if (port.remote !== undefined) {
        const nodes = Object.keys(port.remote);
        if (nodes.length > 0) this.emit({ kind: 'remote-holders-orphaned', portId: id, nodes });
      }
      for (const space of Object.values(this.state.spaces)) this.deadenNames(space, id);
      if (port.nsRequest !== null) {
        const to = port.nsRequest;
        port.nsRequest = null;
        this.destroySendOnce(to);
      }
      const queue = port.queue;
      port.queue = [];
      for (const msg of queue) this.destroyMessage(msg, work);
    }
  }

  /** Takes the receive right of a dying port out of the entry that holds it, if a space does. */
  private detachReceive(port: PortState): void {
    const receiver = port.receiver;
    if (receiver.kind !== 'space') return;
    const space = this.findSpace(receiver.task);
    if (space === undefined) return;
    const entry = spaceLookup(space, receiver.name);
    if (entry === undefined || entry.object !== port.id || (entry.type & PortType.RECEIVE) === 0) return;
    if (entry.type === PortType.RECEIVE) {
      this.removeEntry(space, receiver.name);
    } else {
      // Send rights remain under the name; deadenNames turns them into a dead name.
      entry.type &= ~PortType.RECEIVE;
    }
  }

  /** The space's send and send-once names for the dead port `id` become dead names. */
  private deadenNames(space: SpaceState, id: PortId): void {
    const names = [...spaceSendOnceNames(space, id)];
    const name = spaceNameOf(space, id);
    if (name !== undefined) names.unshift(name);
    for (const dead of names) {
      const entry = spaceLookup(space, dead)!;
      spaceUnindex(space, dead, entry);
      // A send right keeps its user references as dead-name references; a send-once right has 1.
      entry.type = PortType.DEAD_NAME;
      if (entry.request !== null) {
        const to = entry.request;
        entry.request = null;
        // The notification holds a reference, as in Mach, so the name stays dead until handled.
        entry.urefs = Math.min(userRefsMax, entry.urefs + 1);
        this.notify(to, NotifyId.DEAD_NAME, notificationBody(dead));
      }
    }
  }

  /** Destroys the rights a message holds; receive rights are added to `dying`. */
  private destroyMessage(msg: QueuedMessage, dying: PortId[]): void {
    this.destroyTransitRight(msg.dest, dying);
    if (msg.reply !== null) this.destroyTransitRight(msg.reply, dying);
    for (const descriptor of msg.descriptors) {
      if (descriptor.type === 'port') this.destroyTransitRight(descriptor.right, dying);
    }
  }

  private destroyTransitRight(right: TransitRight, dying: PortId[]): void {
    switch (right.kind) {
      case 'send':
        this.releaseSend(right.port);
        break;
      case 'send-once':
        this.destroySendOnce(right.port);
        break;
      case 'receive':
        dying.push(right.port);
        break;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Internals: copyin and copyout.
  // -------------------------------------------------------------------------------------------

  /** Checks that `name` can give a right with `disposition`, given what the message already takes. */
  private planCopyin(
    space: SpaceState,
    name: PortName,
    disposition: DispositionCode,
    ledger: Ledger,
  ): Copyin | undefined {
    const entry = spaceLookup(space, name);
    if (entry === undefined) return undefined;
    let use = ledger.get(name);
    if (use === undefined) {
      use = { sendRefs: 0, sendOnceMoved: false, receiveMoved: false };
      ledger.set(name, use);
    }
    const has = (bit: number): boolean => (entry.type & bit) !== 0;
    switch (disposition) {
      case Disposition.MOVE_SEND:
      case Disposition.COPY_SEND:
        if (!has(PortType.SEND) || entry.urefs - use.sendRefs < 1) return undefined;
        if (disposition === Disposition.MOVE_SEND) use.sendRefs++;
        break;
      case Disposition.MAKE_SEND:
      case Disposition.MAKE_SEND_ONCE:
        if (!has(PortType.RECEIVE) || use.receiveMoved) return undefined;
        break;
      case Disposition.MOVE_SEND_ONCE:
        if (!has(PortType.SEND_ONCE) || use.sendOnceMoved) return undefined;
        use.sendOnceMoved = true;
        break;
      case Disposition.MOVE_RECEIVE:
        if (!has(PortType.RECEIVE) || use.receiveMoved) return undefined;
        use.receiveMoved = true;
        break;
      default:
        return undefined;
    }
    return { name, disposition, port: entry.object, kind: transitKindOf(disposition) };
  }

  /** Moves a planned right out of the space into a message queued on `destId`. */
  private copyin(space: SpaceState, copy: Copyin, destId: PortId): TransitRight {
    const entry = spaceLookup(space, copy.name)!;
    const port = this.livePort(copy.port);
    switch (copy.disposition) {
      case Disposition.MOVE_SEND:
        entry.urefs--;
        // With references left, the entry keeps its send right and the message gets another one;
        // otherwise the entry's own send right moves into the message.
        if (entry.urefs > 0) port.srights++;
        else this.dropSendBit(space, copy.name, entry);
        break;
      case Disposition.COPY_SEND:
        port.srights++;
        break;
      case Disposition.MAKE_SEND:
        port.srights++;
        port.mscount++;
        break;
      case Disposition.MAKE_SEND_ONCE:
        port.sorights++;
        break;
      case Disposition.MOVE_SEND_ONCE:
        this.removeEntry(space, copy.name);
        break;
      case Disposition.MOVE_RECEIVE:
        if (entry.type === PortType.RECEIVE) {
          this.removeEntry(space, copy.name);
        } else {
          entry.type &= ~PortType.RECEIVE;
        }
        this.leaveSet(port);
        // As in Mach, the new holder starts its own make-send count.
        port.mscount = 0;
        port.receiver = { kind: 'transit', in: destId };
        this.emit({ kind: 'receive-moved', portId: port.id, task: space.task, name: copy.name });
        break;
    }
    return { kind: copy.kind, port: copy.port };
  }

  /**
   * True when queueing a message on `dest` that carries the receive rights `carried` would put a
   * port's receive right inside its own queue, directly or through receive rights in transit.
   */
  private wouldCycle(dest: PortId, carried: readonly PortId[]): boolean {
    const seen = new Set<PortId>();
    let id: PortId | undefined = dest;
    while (id !== undefined && !seen.has(id)) {
      if (carried.includes(id)) return true;
      seen.add(id);
      const receiver: PortState['receiver'] | undefined = this.findPort(id)?.receiver;
      id = receiver?.kind === 'transit' ? receiver.in : undefined;
    }
    return false;
  }

  /** Moves a right out of a received message into the space. */
  private copyout(space: SpaceState, right: TransitRight): { name: PortName; disposition: DispositionCode } {
    const disposition = receivedDispositionOf(right.kind);
    const port = this.findPort(right.port);
    if (port === undefined) return { name: portNameDead, disposition };
    const existing = right.kind === 'send-once' ? undefined : spaceNameOf(space, right.port);
    if (existing !== undefined) {
      const entry = spaceLookup(space, existing)!;
      if (right.kind === 'send') {
        if ((entry.type & PortType.SEND) !== 0) {
          // The entry already counts as one send right: the incoming one merges into it.
          entry.urefs = Math.min(userRefsMax, entry.urefs + 1);
          port.srights--;
        } else {
          entry.type |= PortType.SEND;
          entry.urefs = 1;
        }
      } else {
        entry.type |= PortType.RECEIVE;
        port.receiver = { kind: 'space', task: space.task, name: existing };
      }
      return { name: existing, disposition };
    }
    const type =
      right.kind === 'send'
        ? PortType.SEND
        : right.kind === 'send-once'
          ? PortType.SEND_ONCE
          : PortType.RECEIVE;
    const name = spaceInsert(space, {
      object: right.port,
      type,
      urefs: right.kind === 'receive' ? 0 : 1,
      request: null,
    });
    if (name === undefined) {
      // No name left: the right is destroyed, as Mach does when copyout fails.
      const dying: PortId[] = [];
      this.destroyTransitRight(right, dying);
      this.killPorts(dying);
      return { name: portNameNull, disposition };
    }
    if (right.kind === 'receive') port.receiver = { kind: 'space', task: space.task, name };
    return { name, disposition };
  }
}

function isPortRight(right: number): right is PortRightCode {
  return Number.isInteger(right) && right >= PortRight.SEND && right <= PortRight.DEAD_NAME;
}
