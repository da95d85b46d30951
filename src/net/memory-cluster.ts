/**
 * Kernels of several nodes in one process, linked in memory: the in-memory implementation of the
 * links and the cluster view that NORMA IPC runs on (the real ones are the TLS transport and the
 * etcd directory). Frames go through the wire codec, so what a test sends is what would cross the
 * network, and arrive asynchronously, in order per pair of nodes. A node can be cut off (as if
 * SIGKILLed: nothing more from or to it, and the others see it leave).
 */

import type { PortId } from '../ipc/port.js';
import type { Kernel } from '../kernel/kernel.js';
import { type ClusterView, type NodeLinks, NormaIpc } from './norma-ipc.js';
import { decodeFrameBody, encodeFrame, type IpcFrame } from './wire-protocol.js';

interface MemoryNode {
  readonly kernel: Kernel;
  readonly ipc: NormaIpc;
  alive: boolean;
}

export class MemoryCluster {
  readonly #nodes = new Map<string, MemoryNode>();
  readonly #names = new Map<string, { portId: PortId; node: string }>();
  /** The port directory: ports that moved, by the node they live on now. */
  readonly #ports = new Map<PortId, string>();
  /** Frames in flight, in order: delivered one per macrotask turn to mimic a network. */
  readonly #inFlight: { from: string; to: string; frame: IpcFrame }[] = [];
  #delivering = false;
  /** Every frame sent, for tests that check what crossed the network. */
  readonly sent: { from: string; to: string; frame: IpcFrame }[] = [];

  /** Joins `kernel` (its nodeId is the incarnation) and returns its NORMA IPC layer. */
  join(kernel: Kernel, log: (message: string) => void = () => {}): NormaIpc {
    const self = kernel.nodeId;
    const links: NodeLinks = {
      send: (to, frame) => {
        const target = this.#nodes.get(to);
        if (target === undefined || !target.alive || !this.#nodes.get(self)!.alive) return false;
        this.sent.push({ from: self, to, frame });
        this.#inFlight.push({ from: self, to, frame: throughTheWire(frame) });
        this.#schedule();
        return true;
      },
    };
    const view: ClusterView = {
      isGone: (node) => this.#nodes.get(node)?.alive === false,
      portLocations: async (portIds) => {
        const found = new Map<PortId, string>();
        for (const portId of portIds) {
          const node = this.#ports.get(portId);
          if (node !== undefined) found.set(portId, node);
        }
        return found;
      },
      setPortLocations: async (portIds) => {
        for (const portId of portIds) this.#ports.set(portId, self);
      },
      clearPortLocation: async (portId) => {
        if (this.#ports.get(portId) === self) this.#ports.delete(portId);
      },
      lookupName: async (service) => {
        const entry = this.#names.get(service);
        return entry !== undefined && this.#nodes.get(entry.node)?.alive === true ? entry.portId : null;
      },
      registerName: async (service, portId) => {
        const entry = this.#names.get(service);
        if (entry !== undefined && entry.portId !== portId && this.#nodes.get(entry.node)?.alive === true) {
          return false;
        }
        this.#names.set(service, { portId, node: self });
        return true;
      },
      unregisterName: async (service, portId) => {
        if (this.#names.get(service)?.portId === portId) this.#names.delete(service);
      },
    };
    const ipc = new NormaIpc(kernel, links, view, log);
    this.#nodes.set(self, { kernel, ipc, alive: true });
    return ipc;
  }

  /** The node dies: nothing more comes from it, and every other node sees it leave. */
  kill(node: string): void {
    const dying = this.#nodes.get(node);
    if (dying === undefined) return;
    dying.alive = false;
    for (const [name, entry] of this.#names) if (entry.node === node) this.#names.delete(name);
    for (const [portId, at] of this.#ports) if (at === node) this.#ports.delete(portId);
    for (const [other, peer] of this.#nodes) if (other !== node && peer.alive) peer.ipc.nodeGone(node);
  }

  /** Resolves once no frame is in flight (every consequence of what was sent has been delivered). */
  async idle(): Promise<void> {
    for (let quiet = 0; quiet < 3; ) {
      await new Promise((resolve) => setImmediate(resolve));
      quiet = this.#inFlight.length === 0 && !this.#delivering ? quiet + 1 : 0;
    }
  }

  #schedule(): void {
    if (this.#delivering) return;
    this.#delivering = true;
    setImmediate(() => {
      this.#delivering = false;
      const batch = this.#inFlight.splice(0);
      for (const { from, to, frame } of batch) {
        const target = this.#nodes.get(to);
        if (target?.alive !== true || this.#nodes.get(from)?.alive !== true) continue;
        target.ipc.onFrame(from, frame);
      }
    });
  }
}

/** The frame as the receiving node would get it: encoded, then decoded and validated. */
function throughTheWire(frame: IpcFrame): IpcFrame {
  return decodeFrameBody(Buffer.concat(encodeFrame(frame).slice(1))) as IpcFrame;
}
