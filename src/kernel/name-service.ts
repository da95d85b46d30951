/**
 * The node's name service (NORMA's netname server): a string maps to a send right that the kernel
 * holds (counted like any send right), so a server checks its port in once and any task can look it up and get its own send
 * right. A registration vanishes when its port dies. The state is plain data; later issues keep the
 * network-wide directory in etcd behind the same operations.
 */
import { KernReturn } from '../abi/syscalls.js';
import type { Ipc } from '../ipc/index.js';

export interface NameServiceState {
  entries: Record<string, { portId: string }>;
}

/** A registration made or ended on this node (the cluster's name service is told). */
export type NameChangeListener = (
  change: 'registered' | 'forgotten',
  service: string,
  portId: string,
) => void;

export class NameService {
  /**
   * Answers from the cluster's name service for lookups that missed here, each a send right the
   * kernel holds until the waiting lookup takes it (one answer serves one retry of the lookup).
   */
  readonly #offers = new Map<string, string>();

  constructor(
    private readonly ipc: Ipc,
    readonly state: NameServiceState = { entries: {} },
    private readonly onChange: NameChangeListener = () => {},
  ) {}

  /**
   * Registers `name` (a send or receive right of `task`) under `service`.
   * Returns SUCCESS, NAME_EXISTS, INVALID_NAME or INVALID_RIGHT.
   */
  register(task: number, service: string, name: number): number {
    if (Object.hasOwn(this.state.entries, service)) return KernReturn.NAME_EXISTS;
    const taken = this.ipc.kernelCopySend(task, name);
    if (taken.kr !== KernReturn.SUCCESS) return taken.kr;
    this.#define(service, taken.portId!);
    this.onChange('registered', service, taken.portId!);
    return KernReturn.SUCCESS;
  }

  /** Defined, not assigned: `entries.__proto__ = ...` would replace the prototype instead. */
  #define(service: string, portId: string): void {
    Object.defineProperty(this.state.entries, service, {
      value: { portId },
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }

  /** Gives `task` a send right to the service's port; null when nothing is registered under it. */
  lookup(task: number, service: string): { kr: number; name?: number } | null {
    // Own entries only: "toString" or "constructor" must not find Object.prototype's.
    if (!Object.hasOwn(this.state.entries, service)) {
      const offered = this.#offers.get(service);
      if (offered === undefined) return null;
      this.#offers.delete(service);
      const result = this.ipc.insertSendRight(task, offered);
      this.ipc.kernelReleaseSend(offered);
      return result;
    }
    const entry = this.state.entries[service]!;
    return this.ipc.insertSendRight(task, entry.portId);
  }

  /**
   * The cluster's answer to a lookup that missed here: `portId` is a port (on any node, this one
   * too) to which the kernel now holds a send right of its own. Replaces (and releases) an answer
   * nobody took.
   */
  offerRemote(service: string, portId: string): void {
    const previous = this.#offers.get(service);
    this.#offers.set(service, portId);
    if (previous !== undefined) this.ipc.kernelReleaseSend(previous);
  }

  /** Drops registrations of a port that died (called on the IPC core's port-died event). */
  forgetPort(portId: string): void {
    for (const [service, entry] of Object.entries(this.state.entries)) {
      if (entry.portId !== portId) continue;
      delete this.state.entries[service];
      this.ipc.kernelReleaseSend(portId);
      this.onChange('forgotten', service, portId);
    }
    for (const [service, offered] of this.#offers) if (offered === portId) this.#offers.delete(service);
  }

  /**
   * Registrations of ports that leave with their tasks for another node: they go too, without a
   * release here (the kernel's rights went with the ports: Ipc.handOff). The caller moves their
   * registrations in the cluster's name service.
   */
  handOff(portIds: ReadonlySet<string>): { service: string; portId: string }[] {
    const moved = this.list().filter((entry) => portIds.has(entry.portId));
    for (const { service } of moved) delete this.state.entries[service];
    return moved;
  }

  /**
   * Re-registers a service of a restored snapshot, or of a task that moved here; in a cluster it is
   * published like any registration. The kernel's send right to the port came back with the IPC
   * import (as a kernel-held right); a name already taken here keeps its current owner and the
   * restored right is released.
   */
  adopt(service: string, portId: string): void {
    if (Object.hasOwn(this.state.entries, service)) {
      this.ipc.kernelReleaseSend(portId);
      return;
    }
    this.#define(service, portId);
    this.onChange('registered', service, portId);
  }

  list(): { service: string; portId: string }[] {
    return Object.entries(this.state.entries).map(([service, entry]) => ({ service, portId: entry.portId }));
  }
}
