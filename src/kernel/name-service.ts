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
    this.state.entries[service] = { portId: taken.portId! };
    return KernReturn.SUCCESS;
  }

  /** Gives `task` a send right to the service's port; null when nothing is registered under it. */
  lookup(task: number, service: string): { kr: number; name?: number } | null {
    const entry = this.state.entries[service];
    if (entry === undefined) return null;
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

  list(): { service: string; portId: string }[] {
    return Object.entries(this.state.entries).map(([service, entry]) => ({ service, portId: entry.portId }));
  }
}
