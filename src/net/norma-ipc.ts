/**
 * NORMA IPC: the part of a node that makes ports on other nodes look local (Mach's netmsg server,
 * moved into the kernel as NORMA did). It sits between one kernel's IPC core and the links to the
 * other nodes, and does four things:
 *
 * - **Delivery.** A message sent to a proxy (a port homed elsewhere) waits in the proxy's queue;
 *   this layer sends it to the port's node with a sequence number (per sending node and port,
 *   never reset while this node runs). The home queues it and acknowledges cumulatively; only then
 *   does the message leave the sender's queue. The home accepts exactly the next number it expects
 *   from that node for that port, answers a duplicate with the same acknowledgement, and a message
 *   it cannot queue yet (full, or a gap after a refusal) with `nack` naming the number it expects:
 *   the sender goes back to it. So every message is queued exactly once and in order per sender,
 *   and a full queue at the home stops the sender's queue, which blocks the sending task at its
 *   queue limit (no unbounded buffering anywhere). After a reconnect everything unacknowledged is
 *   sent again; the numbers make that harmless.
 * - **Rights.** Send and send-once rights travel inside messages by port id. The core counts, on
 *   the home, what each node holds (Ipc remote section); this layer carries the news: `acquire`
 *   when a right to a third node's port was passed on, `so-move` for a send-once right, `release`
 *   when a proxy is no longer used (with the number of send rights this node received for it).
 * - **Death.** A port that dies with remote holders sends them `dead`; a node that leaves the
 *   cluster (its lease expired, or it stopped) takes its ports with it: every proxy of a port that
 *   lived there dies here (dead names everywhere), and the rights it held here are forgotten
 *   (no-senders may fire).
 * - **Names.** A lookup that misses locally asks the cluster's name service; a registration is
 *   published there.
 *
 * - **Migration.** A task's ports move with it (`handOff` on the node it leaves, `prepareArrival`
 *   and `arrive` on the node it goes to); see "Moving ports" below.
 *
 * Where a port lives: its id carries the incarnation of the node that created it
 * (`<node>-<hex>.<serial>`), and that is where it lives unless it moved: the cluster's port
 * directory records the ports that moved, under the lease of the node they live on now, so a
 * record vanishes with its node. Frames between two nodes arrive in order; that and the per-node
 * counts are what make the right accounting safe (see the core's remote section).
 *
 * The links are an interface (NodeLinks): the real one is the TLS transport between node daemons;
 * an in-memory one connects kernels in one process for tests of this layer.
 */

import type { IpcEvent } from '../ipc/event.js';
import { type HandOff, type IpcSnapshot, importTasks, type KObject } from '../ipc/index.js';
import type { QueuedDescriptor, QueuedMessage } from '../ipc/message.js';
import type { PortId } from '../ipc/port.js';
import type { TransitRight } from '../ipc/right.js';
import type { Kernel } from '../kernel/kernel.js';
import type { IpcFrame, WireDescriptor, WireRight } from './wire-protocol.js';

/** How this layer reaches other nodes. Frames to one node arrive in the order they were sent. */
export interface NodeLinks {
  /**
   * Sends a frame to the node incarnation `to`. False when there is no connection now (the frame
   * is dropped): delivery is resumed by `peerUp` once the link is back.
   */
  send(to: string, frame: IpcFrame): boolean;
}

/** What this layer needs from the cluster: membership, the port directory and the name service. */
export interface ClusterView {
  /** True once the node incarnation has left the cluster (its ports are dead). */
  isGone(incarnation: string): boolean;
  /** Where the directory says ports that moved live now (ports it does not list are left out). */
  portLocations(portIds: readonly PortId[]): Promise<Map<PortId, string>>;
  /** Records in the directory that these ports live on this node now (until this node leaves). */
  setPortLocations(portIds: readonly PortId[]): Promise<void>;
  /** Withdraws this node's record of a port (it died here). */
  clearPortLocation(portId: PortId): Promise<void>;
  /** The port registered under `service` anywhere in the cluster, or null. */
  lookupName(service: string): Promise<PortId | null>;
  /** Publishes a registration made on this node; false when another node holds the name. */
  registerName(service: string, portId: PortId): Promise<boolean>;
  /** Withdraws a registration of this node (its port died). */
  unregisterName(service: string, portId: PortId): Promise<void>;
}

/** What a node that tasks leave gives the node they go to (NormaIpc.handOff), as it travels. */
export interface Migration {
  ipc: IpcSnapshot;
  holdings: HandOff['holdings'];
  /** Per moving port: the next sequence number the old home expected from each sending node. */
  expected: Record<PortId, Record<string, number>>;
  /** Name registrations of the moving ports. */
  names: { service: string; portId: PortId }[];
}

/** Imports a migration's IPC state with the task ids (and re-created kernel ports) of the restore. */
export type IpcImporter = (
  taskIds: Readonly<Record<number, number>>,
  kernelPorts: Readonly<Record<PortId, KObject>>,
) => void;

/** The sender side of one proxy: sequence numbers and how much of its queue is on the wire. */
interface Outbox {
  /** Sequence number of the first message in the proxy's queue. */
  base: number;
  /** How many messages from the head of the queue have been sent and await acknowledgement. */
  sent: number;
  /** The node the messages went to (they are resent on a change). */
  home: string | null;
  /** The home refused the message `base + sent` for lack of space: wait for `space`. */
  waiting: boolean;
}

/** Interval of name-service polls while a lookup waits for a name nobody has registered yet. */
const lookupPollMs = 200;

export class NormaIpc {
  readonly #kernel: Kernel;
  readonly #links: NodeLinks;
  readonly #cluster: ClusterView;
  readonly #log: (message: string) => void;
  /** This node's incarnation: the node part of the port ids its kernel allocates. */
  readonly self: string;
  readonly #outboxes = new Map<PortId, Outbox>();
  /** Next sequence number per remote port, kept when its proxy goes (numbers are never reused). */
  readonly #nextSeq = new Map<PortId, number>();
  /** Send rights this node received per proxy (reported by `release` when the proxy goes). */
  readonly #received = new Map<PortId, number>();
  /** Home side: next sequence number expected, by port and sending node. */
  readonly #expected = new Map<PortId, Map<string, number>>();
  /** Home side: nodes refused for a full queue, to be told when it has space, by port. */
  readonly #spaceWaiters = new Map<PortId, Set<string>>();
  readonly #lookups = new Set<string>();
  /**
   * Where ports that moved live now, as far as this node knows (its own moves, and answers from
   * the directory after a 'moved' refusal or a node's departure). Other ports live where their id
   * says they were created.
   */
  readonly #moved = new Map<PortId, string>();
  /** Ports on their way here from another node: senders wait (as for a full queue) until they land. */
  readonly #arriving = new Set<PortId>();
  /** Rights frames for arriving ports, applied once they have landed. */
  #held: [string, Extract<IpcFrame, { k: 'acquire' | 'so-move' | 'release' }>][] = [];
  #closed = false;
  /** The flush barriers waiting for acknowledgements (see flushBarrier). */
  readonly #barriers = new Set<() => void>();

  constructor(kernel: Kernel, links: NodeLinks, cluster: ClusterView, log: (message: string) => void) {
    this.#kernel = kernel;
    this.#links = links;
    this.#cluster = cluster;
    this.#log = log;
    this.self = kernel.nodeId;
    kernel.attachNetwork({
      ipcEvents: (events) => this.#onIpcEvents(events),
      lookupName: (service) => this.#lookupName(service),
      nameRegistered: (service, portId) => this.#publishName(service, portId),
      nameForgotten: (service, portId) => {
        this.#cluster.unregisterName(service, portId).catch((error: unknown) => {
          this.#log(`name service: cannot withdraw "${service}": ${String(error)}`);
        });
      },
    });
  }

  close(): void {
    this.#closed = true;
  }

  /** The incarnation `portId` lives on now, or null when that node is gone (the port is dead). */
  locate(portId: PortId): string | null {
    const at = this.#moved.get(portId) ?? originOf(portId);
    return this.#cluster.isGone(at) ? null : at;
  }

  // -------------------------------------------------------------------------------------------
  // Sender side.
  // -------------------------------------------------------------------------------------------

  #onIpcEvents(events: readonly IpcEvent[]): void {
    const ipc = this.#kernel.ipc;
    for (const event of events) {
      switch (event.kind) {
        case 'message-queued':
          if (ipc.isRemote(event.portId)) this.#flush(event.portId);
          break;
        case 'queue-space': {
          const waiters = this.#spaceWaiters.get(event.portId);
          if (waiters === undefined) break;
          this.#spaceWaiters.delete(event.portId);
          for (const node of waiters) this.#links.send(node, { k: 'space', port: event.portId });
          break;
        }
        case 'right-exported': {
          // A right that went to the port's own node is counted there on arrival (importRight).
          const home = this.locate(event.portId);
          if (home === null || home === event.to) break;
          if (event.right === 'send') {
            this.#links.send(home, { k: 'acquire', port: event.portId, node: event.to });
          } else {
            this.#links.send(home, { k: 'so-move', port: event.portId, from: this.self, to: event.to });
          }
          break;
        }
        case 'proxy-unused':
          this.#release(event.portId);
          break;
        case 'remote-holders-orphaned':
          for (const node of event.nodes) this.#links.send(node, { k: 'dead', port: event.portId });
          break;
        case 'port-died':
          this.#forgetPort(event.portId);
          break;
        default:
          break;
      }
    }
  }

  /** Sends what the proxy's queue holds beyond what is on the wire (or everything, to a new home). */
  #flush(portId: PortId): void {
    if (this.#closed) return;
    const ipc = this.#kernel.ipc;
    const queue = ipc.proxyQueue(portId);
    if (queue.length === 0) return;
    const box = this.#outbox(portId);
    const home = this.locate(portId);
    if (home === null) {
      ipc.killProxy(portId);
      this.#kernel.ipcChanged();
      return;
    }
    if (home !== box.home) {
      box.home = home;
      box.sent = 0;
      box.waiting = false;
    }
    if (box.waiting) return; // until the home says it has space
    while (box.sent < queue.length) {
      const seq = box.base + box.sent;
      if (!this.#links.send(home, this.#messageFrame(portId, seq, queue[box.sent]!))) {
        box.sent = 0; // resent from the first unacknowledged one when the link is back
        return;
      }
      box.sent++;
    }
  }

  #outbox(portId: PortId): Outbox {
    let box = this.#outboxes.get(portId);
    if (box === undefined) {
      box = { base: this.#nextSeq.get(portId) ?? 1, sent: 0, home: null, waiting: false };
      this.#outboxes.set(portId, box);
    }
    return box;
  }

  /** A right as it crosses the wire: dead when its port is gone here (the receiver makes a dead name). */
  #wireRight(right: TransitRight): WireRight {
    const kind = right.kind === 'send' ? 's' : 'o';
    return this.#kernel.ipc.isAlive(right.port)
      ? { kind, port: right.port }
      : { kind, port: right.port, dead: true };
  }

  #messageFrame(portId: PortId, seq: number, msg: QueuedMessage): IpcFrame {
    return {
      k: 'msg',
      port: portId,
      seq,
      dest: msg.dest.kind === 'send' ? 's' : 'o',
      id: msg.id,
      reply: msg.reply === null ? null : this.#wireRight(msg.reply),
      descriptors: msg.descriptors.map(
        (d): WireDescriptor =>
          d.type === 'ool' ? { t: 'ool', bytes: d.bytes } : { t: 'port', right: this.#wireRight(d.right) },
      ),
      body: msg.body,
    };
  }

  #release(portId: PortId): void {
    const ipc = this.#kernel.ipc;
    const home = this.locate(portId);
    if (!ipc.dropProxy(portId)) return;
    this.#closeOutbox(portId);
    const received = this.#received.get(portId) ?? 0;
    this.#received.delete(portId);
    if (home !== null && received > 0)
      this.#links.send(home, { k: 'release', port: portId, count: received });
  }

  /** The proxy is gone: its sequence numbers go on where they stopped if it comes back. */
  #closeOutbox(portId: PortId): void {
    const box = this.#outboxes.get(portId);
    if (box === undefined) return;
    this.#nextSeq.set(portId, box.base);
    this.#outboxes.delete(portId);
    if (this.#barriers.size > 0) this.#checkBarriers();
  }

  #forgetPort(portId: PortId): void {
    if (this.#moved.get(portId) === this.self) {
      this.#cluster.clearPortLocation(portId).catch((error: unknown) => {
        this.#log(`port directory: cannot withdraw ${portId}: ${String(error)}`);
      });
    }
    this.#closeOutbox(portId);
    this.#received.delete(portId);
    this.#spaceWaiters.delete(portId);
    this.#expected.delete(portId);
  }

  // -------------------------------------------------------------------------------------------
  // Frames from other nodes.
  // -------------------------------------------------------------------------------------------

  /** Handles one (validated) frame from the node incarnation `from`. */
  onFrame(from: string, frame: IpcFrame): void {
    if (this.#closed) return;
    switch (frame.k) {
      case 'msg':
        this.#onMessage(from, frame);
        break;
      case 'ack':
        this.#onAck(from, frame.port, frame.seq);
        break;
      case 'nack':
        this.#onNack(from, frame.port, frame.expected, frame.reason);
        break;
      case 'space': {
        const box = this.#outboxes.get(frame.port);
        if (box?.waiting) {
          box.waiting = false;
          this.#flush(frame.port);
        }
        break;
      }
      case 'acquire':
      case 'so-move':
      case 'release':
        if (this.#arriving.has(frame.port)) this.#held.push([from, frame]);
        else if (!this.#forwardMoved(frame, from)) this.#onRights(from, frame);
        break;
      case 'dead':
        this.#kernel.ipc.killProxy(frame.port);
        this.#kernel.ipcChanged();
        break;
    }
  }

  /**
   * A rights frame for a port that moved away from here (its sender did not know yet) goes on to
   * the port's new home, on behalf of the node it came from.
   */
  #forwardMoved(frame: Extract<IpcFrame, { k: 'acquire' | 'so-move' | 'release' }>, from: string): boolean {
    if (this.#kernel.ipc.isHomedHere(frame.port)) return false;
    const home = this.locate(frame.port);
    if (home === null || home === this.self || !this.#moved.has(frame.port)) return false;
    this.#links.send(home, frame.k === 'release' ? { ...frame, node: frame.node ?? from } : frame);
    return true;
  }

  #onRights(from: string, frame: Extract<IpcFrame, { k: 'acquire' | 'so-move' | 'release' }>): void {
    switch (frame.k) {
      case 'acquire':
        if (!this.#kernel.ipc.remoteAcquire(frame.port, frame.node, 'send')) {
          this.#links.send(frame.node, { k: 'dead', port: frame.port });
        }
        break;
      case 'so-move':
        if (!this.#kernel.ipc.remoteTransferSendOnce(frame.port, frame.from, frame.to)) {
          this.#links.send(frame.to, { k: 'dead', port: frame.port });
        }
        this.#kernel.ipcChanged();
        break;
      case 'release':
        this.#kernel.ipc.remoteRelease(frame.port, frame.node ?? from, frame.count);
        this.#kernel.ipcChanged();
        break;
    }
  }

  #onMessage(from: string, frame: Extract<IpcFrame, { k: 'msg' }>): void {
    const ipc = this.#kernel.ipc;
    const expected = this.#expected.get(frame.port)?.get(from) ?? 1;
    if (frame.seq < expected) {
      this.#links.send(from, { k: 'ack', port: frame.port, seq: expected - 1 });
      return;
    }
    let deliverable = ipc.remoteDeliverable(frame.port, frame.dest === 's' ? 'send' : 'send-once');
    if (this.#arriving.has(frame.port)) deliverable = 'full';
    else if (deliverable === 'dead' && this.#moved.has(frame.port) && this.locate(frame.port) !== this.self) {
      deliverable = 'remote';
    }
    if (deliverable === 'dead') {
      this.#links.send(from, { k: 'dead', port: frame.port });
      return;
    }
    if (deliverable !== 'ok' || frame.seq > expected) {
      if (deliverable === 'full') {
        let waiters = this.#spaceWaiters.get(frame.port);
        if (waiters === undefined) {
          waiters = new Set();
          this.#spaceWaiters.set(frame.port, waiters);
        }
        waiters.add(from);
      }
      const reason = deliverable === 'ok' || deliverable === 'full' ? 'full' : 'moved';
      // Only the first refusal of a run matters: the sender goes back to `expected` either way.
      if (frame.seq === expected || deliverable !== 'ok') {
        this.#links.send(from, { k: 'nack', port: frame.port, expected, reason });
      }
      return;
    }
    const right = (wire: WireRight): TransitRight => this.#importRight(wire, from);
    const msg: QueuedMessage = {
      dest: { kind: frame.dest === 's' ? 'send' : 'send-once', port: frame.port },
      reply: frame.reply === null ? null : right(frame.reply),
      id: frame.id,
      descriptors: frame.descriptors.map(
        (d): QueuedDescriptor =>
          d.t === 'ool' ? { type: 'ool', bytes: d.bytes } : { type: 'port', right: right(d.right) },
      ),
      body: frame.body,
    };
    ipc.deliverRemote(msg, from);
    let senders = this.#expected.get(frame.port);
    if (senders === undefined) {
      senders = new Map();
      this.#expected.set(frame.port, senders);
    }
    senders.set(from, expected + 1);
    this.#links.send(from, { k: 'ack', port: frame.port, seq: frame.seq });
    this.#kernel.ipcChanged();
  }

  /** Counts a right that arrived from `from`; a right to a port that died here stays dead. */
  #importRight(wire: WireRight, from: string): TransitRight {
    const kind = wire.kind === 's' ? 'send' : 'send-once';
    const ipc = this.#kernel.ipc;
    // A port that lived here and is not here any more has died (one that moved on is elsewhere).
    if (wire.dead === true || (!ipc.isAlive(wire.port) && this.locate(wire.port) === this.self)) {
      return { kind, port: wire.port };
    }
    const wasProxy = ipc.isRemote(wire.port) || !ipc.isAlive(wire.port);
    const transit = ipc.importRight(kind, wire.port, from);
    if (wasProxy && kind === 'send') this.#received.set(wire.port, (this.#received.get(wire.port) ?? 0) + 1);
    return transit;
  }

  #onAck(from: string, portId: PortId, seq: number): void {
    const box = this.#outboxes.get(portId);
    if (box === undefined || box.home !== from) return;
    const count = seq - box.base + 1;
    if (count <= 0 || count > box.sent) return; // a duplicate acknowledgement
    box.base += count;
    box.sent -= count;
    this.#kernel.ipc.takeAcknowledged(portId, count, from);
    this.#kernel.ipcChanged();
    if (this.#barriers.size > 0) this.#checkBarriers();
  }

  #onNack(from: string, portId: PortId, expected: number, reason: 'full' | 'moved'): void {
    const box = this.#outboxes.get(portId);
    if (box === undefined || box.home !== from) return;
    // Everything before `expected` was queued there; a gap means acknowledgements are in flight.
    if (expected > box.base) this.#onAck(from, portId, expected - 1);
    box.sent = 0;
    if (reason === 'full') {
      box.waiting = true;
      return;
    }
    // The port left that node: the directory says where it went (its new home recorded it there
    // before the move). Nothing goes out until it answers.
    box.home = null;
    box.waiting = true;
    this.#relocate([portId], from);
  }

  /**
   * Asks the directory where ports that were at `left` (which refused them, or left the cluster)
   * live now: a live new home gets what their proxies hold; a port with no other home is dead.
   */
  #relocate(portIds: readonly PortId[], left: string): void {
    const settle = (found: Map<PortId, string>): void => {
      if (this.#closed) return;
      const ipc = this.#kernel.ipc;
      for (const portId of portIds) {
        if (!ipc.isRemote(portId)) continue;
        const at = found.get(portId);
        if (at === undefined || at === left || at === this.self || this.#cluster.isGone(at)) {
          ipc.killProxy(portId);
          continue;
        }
        this.#moved.set(portId, at);
        const box = this.#outboxes.get(portId);
        if (box !== undefined) box.waiting = false;
        this.#flush(portId);
      }
      this.#kernel.ipcChanged();
    };
    this.#cluster.portLocations(portIds).then(settle, (error: unknown) => {
      this.#log(
        `port directory: cannot locate ${portIds.length} port(s) that left ${left}: ${String(error)}`,
      );
      settle(new Map());
    });
  }

  // -------------------------------------------------------------------------------------------
  // Moving ports (task migration). The node the tasks go to records their ports in the directory
  // and holds senders off (prepareArrival); the node they leave hands everything over at once
  // (handOff): the live IPC state, the rights other nodes hold, the sequence numbers it expects
  // from each sender, the name registrations. From then on it refuses messages for those ports
  // with 'moved' (the sender asks the directory and goes on at the new home from where it was:
  // the sequence numbers came along, so nothing is lost or queued twice), and passes rights frames
  // on. Afterwards nothing there is needed: a node that learns the old one died asks the
  // directory before declaring its ports dead.
  // -------------------------------------------------------------------------------------------

  /**
   * Waits until every message queued on a proxy here now has been acknowledged by its port's node
   * (what the leaving tasks sent must not depend on this node afterwards). Rejects after `timeoutMs`.
   */
  async flushBarrier(timeoutMs: number): Promise<void> {
    const ipc = this.#kernel.ipc;
    const targets = new Map<PortId, number>();
    for (const portId of ipc.proxies()) {
      const queued = ipc.proxyQueue(portId).length;
      if (queued > 0) targets.set(portId, this.#outbox(portId).base + queued);
    }
    /** True once every target is acknowledged, or its proxy is gone (dead: nothing to wait for). */
    const passed = (): boolean => {
      for (const [portId, target] of targets) {
        const box = this.#outboxes.get(portId);
        if (!ipc.isRemote(portId) || box === undefined || box.base >= target) targets.delete(portId);
      }
      return targets.size === 0;
    };
    if (passed()) return;
    // Checked again at each acknowledgement and proxy death (#checkBarriers), not polled.
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!passed()) return;
        this.#barriers.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#barriers.delete(check);
        reject(
          new Error(`${targets.size} port(s) on other nodes have not acknowledged messages sent to them`),
        );
      }, timeoutMs);
      this.#barriers.add(check);
    });
  }

  /** Flush barriers re-check their ports (after an acknowledgement, or a proxy's end). */
  #checkBarriers(): void {
    for (const check of this.#barriers) check();
  }

  /** The tasks' ports will arrive from another node: record them here, hold their senders off. */
  async prepareArrival(portIds: readonly PortId[]): Promise<void> {
    for (const portId of portIds) this.#arriving.add(portId);
    try {
      await this.#cluster.setPortLocations(portIds);
    } catch (error) {
      this.cancelArrival(portIds);
      throw error;
    }
  }

  /** The move failed: the ports did not come; their records here are withdrawn. */
  cancelArrival(portIds: readonly PortId[]): void {
    for (const portId of portIds) {
      if (!this.#arriving.delete(portId)) continue;
      this.#cluster.clearPortLocation(portId).catch(() => {});
      this.#landed(portId);
    }
  }

  /**
   * The tasks leave for node `to` (which prepared their arrival): their IPC state leaves the
   * kernel (Ipc.handOff), their ports' registrations leave the name service, and this node will
   * send whatever concerns those ports to `to`. The result is what `arrive` needs there.
   */
  async handOff(tasks: readonly number[], to: string): Promise<Migration> {
    const ipc = this.#kernel.ipc;
    const { snapshot, holdings } = ipc.handOff(tasks, to);
    const moving = new Set(snapshot.ports.map((p) => p.id));
    const expected: Record<PortId, Record<string, number>> = {};
    for (const portId of moving) {
      expected[portId] = Object.fromEntries(this.#expected.get(portId) ?? []);
      this.#expected.delete(portId);
      this.#moved.set(portId, to);
      this.#nextSeq.delete(portId);
      // What stays here is a proxy holding the rights that stayed (its holding is counted there).
      if (ipc.isRemote(portId)) this.#received.set(portId, holdings[portId]![this.self]!.send);
      // Senders waiting for room here try again, and are sent on.
      this.#landed(portId);
    }
    const names = this.#kernel.names.handOff(moving);
    this.#kernel.ipcChanged();
    for (const { service, portId } of names) {
      await this.#cluster.unregisterName(service, portId).catch((error: unknown) => {
        this.#log(`name service: cannot move "${service}": ${String(error)}`);
      });
    }
    return { ipc: snapshot, holdings, expected, names };
  }

  /**
   * The tasks' state arrived from `from` (its handOff): `restore` imports it into the kernel with
   * the importer given (as part of restoring the tasks). Proxies here of the arriving ports
   * become the ports: of what they had sent, the messages `from` had queued came in its state,
   * the others stay queued here after them.
   */
  async arrive<T>(
    migration: Migration,
    from: string,
    restore: (importIpc: IpcImporter) => Promise<T>,
  ): Promise<T> {
    const ipc = this.#kernel.ipc;
    const ports = migration.ipc.ports.map((p) => p.id);
    for (const portId of ports) {
      if (!ipc.isRemote(portId)) continue;
      const box = this.#outboxes.get(portId);
      const queued = ipc.proxyQueue(portId).length;
      if (box !== undefined && queued > 0) {
        const taken = Math.min(
          queued,
          Math.max(0, (migration.expected[portId]?.[this.self] ?? 1) - box.base),
        );
        if (taken > 0) ipc.takeAcknowledged(portId, taken, from);
      }
      this.#outboxes.delete(portId);
      this.#nextSeq.delete(portId);
      this.#received.delete(portId);
    }
    try {
      return await restore((taskIds, kernelPorts) =>
        importTasks(ipc, migration.ipc, {
          taskIds,
          kernelPorts,
          migration: {
            holdings: migration.holdings,
            importRight: (kind, id) => {
              this.#importRight({ kind: kind === 'send' ? 's' : 'o', port: id }, from);
              return ipc.isAlive(id);
            },
          },
        }),
      );
    } finally {
      for (const portId of ports) {
        if (!ipc.isHomedHere(portId)) continue;
        const senders = new Map(Object.entries(migration.expected[portId] ?? {}));
        senders.delete(this.self);
        this.#expected.set(portId, senders);
        this.#moved.set(portId, this.self);
        this.#arriving.delete(portId);
        this.#landed(portId);
      }
      this.cancelArrival(ports);
      this.#kernel.ipcChanged();
    }
  }

  /** Senders held off from an arriving port (or refused for a full queue) may try again. */
  #landed(portId: PortId): void {
    const waiters = this.#spaceWaiters.get(portId);
    this.#spaceWaiters.delete(portId);
    for (const node of waiters ?? []) this.#links.send(node, { k: 'space', port: portId });
    const held = this.#held.filter(([, frame]) => frame.port === portId);
    if (held.length === 0) return;
    this.#held = this.#held.filter(([, frame]) => frame.port !== portId);
    for (const [from, frame] of held) if (!this.#forwardMoved(frame, from)) this.#onRights(from, frame);
  }

  // -------------------------------------------------------------------------------------------
  // Membership.
  // -------------------------------------------------------------------------------------------

  /** The link to `node` is (back) up: resend everything unacknowledged that goes there. */
  peerUp(node: string): void {
    for (const [portId, box] of this.#outboxes) {
      if (box.home !== node) continue;
      box.sent = 0;
      box.waiting = false;
      this.#flush(portId);
    }
  }

  /**
   * The node incarnation `node` left the cluster: its ports are dead here, the rights it held to
   * ports here are gone, and nothing more will come from it.
   */
  nodeGone(node: string): void {
    const ipc = this.#kernel.ipc;
    ipc.forgetNode(node);
    // Proxies of ports that lived there: dead, unless they had moved on (the directory knows).
    const stranded = ipc.proxies().filter((portId) => {
      const at = this.#moved.get(portId) ?? originOf(portId);
      return at === node || this.#cluster.isGone(at);
    });
    if (stranded.length > 0) this.#relocate(stranded, node);
    for (const senders of this.#expected.values()) senders.delete(node);
    for (const waiters of this.#spaceWaiters.values()) waiters.delete(node);
    this.#kernel.ipcChanged();
  }

  // -------------------------------------------------------------------------------------------
  // Names.
  // -------------------------------------------------------------------------------------------

  #lookupName(service: string): void {
    if (this.#lookups.has(service) || this.#closed) return;
    this.#lookups.add(service);
    this.#cluster.lookupName(service).then(
      (portId) => {
        this.#lookups.delete(service);
        if (this.#closed) return;
        const home = portId === null ? null : this.locate(portId);
        if (portId !== null && home !== null) {
          const ipc = this.#kernel.ipc;
          if (home === this.self && !ipc.isHomedHere(portId)) return; // moving here: the next poll finds it
          // The kernel holds a send right of its own until the lookup takes it (whichever node the
          // port lives on); a remote home counts it for this node from the acquire on (a release
          // follows on the same link).
          if (ipc.kernelTakeSend(portId)) {
            this.#links.send(home, { k: 'acquire', port: portId, node: this.self });
            this.#received.set(portId, (this.#received.get(portId) ?? 0) + 1);
          }
          this.#kernel.names.offerRemote(service, portId);
          this.#kernel.wakeWhere((wait) => wait.kind === 'lookup' && wait.service === service);
          return;
        }
        if (this.#kernel.hasLookupWaiters(service)) {
          setTimeout(() => {
            if (this.#kernel.hasLookupWaiters(service)) this.#lookupName(service);
          }, lookupPollMs).unref();
        }
      },
      (error: unknown) => {
        this.#lookups.delete(service);
        this.#log(`name service: lookup of "${service}" failed: ${String(error)}`);
        if (this.#kernel.hasLookupWaiters(service)) {
          setTimeout(() => this.#lookupName(service), lookupPollMs * 5).unref();
        }
      },
    );
  }

  #publishName(service: string, portId: PortId): void {
    this.#cluster.registerName(service, portId).then(
      (published) => {
        if (!published) {
          this.#log(
            `name service: "${service}" is registered by another node; the local registration stays local`,
          );
        }
      },
      (error: unknown) => this.#log(`name service: cannot publish "${service}": ${String(error)}`),
    );
  }
}

/** The node incarnation in a port id (`<incarnation>.<serial>`). */
function originOf(portId: PortId): string {
  return portId.slice(0, portId.lastIndexOf('.'));
}
