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

export class NameService {
  constructor(
    private readonly ipc: Ipc,
    readonly state: NameServiceState = { entries: {} },
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
    if (!Object.hasOwn(this.state.entries, service)) return null;
    const entry = this.state.entries[service]!;
    return this.ipc.insertSendRight(task, entry.portId);
  }

  /** Drops registrations of a port that died (called on the IPC core's port-died event). */
  forgetPort(portId: string): void {
    for (const [service, entry] of Object.entries(this.state.entries)) {
      if (entry.portId !== portId) continue;
      delete this.state.entries[service];
      this.ipc.kernelReleaseSend(portId);
    }
  }

  /**
   * Re-registers a service of a restored snapshot. The kernel's send right to the port came back
   * with the IPC import (as a kernel-held right); a name already taken here keeps its current owner
   * and the restored right is released.
   */
  adopt(service: string, portId: string): void {
    if (Object.hasOwn(this.state.entries, service)) {
      this.ipc.kernelReleaseSend(portId);
      return;
    }
    this.#define(service, portId);
  }

  list(): { service: string; portId: string }[] {
    return Object.entries(this.state.entries).map(([service, entry]) => ({ service, portId: entry.portId }));
  }
}
