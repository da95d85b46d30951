/**
 * A node's membership in a cluster (`norma node start --cluster DIR --name n1 --etcd URL`): the
 * glue between its kernel's NORMA IPC layer, the TLS transport to the other nodes, and the cluster
 * directory in etcd. Decisions:
 *
 * - **One connection per direction.** A node sends to a peer only over the connection it dialed
 *   itself and reads from the connections others dialed. Frames from A to B therefore travel on one
 *   TCP stream, in order, which NORMA IPC relies on (acknowledgements, the order of acquire and
 *   release). While a connection is being made, frames for that node wait in a queue (bounded by the
 *   senders' queue limits); a connection that breaks is made again, and NORMA IPC resends every
 *   message not yet acknowledged (sequence numbers drop the doubles).
 * - **Where a port lives**: the node incarnation in its id, unless the port directory says it moved.
 *   An incarnation that left the cluster (its member record vanished with its lease, or its name
 *   came back with another incarnation) is dead, and so are its ports.
 * - **Membership** comes from watching the directory's members; a member that leaves is given to
 *   NORMA IPC as gone (dead names for its ports everywhere here, its rights here forgotten).
 * - **Forwarded commands**: a control request for another member (`--node`) travels as a `ctl`
 *   frame and its answer, and the log events before it, come back as `ctl-res` frames.
 * - **etcd down**: the directory rejects calls with CLUSTER_UNAVAILABLE and recovers by itself;
 *   meanwhile tasks keep running and local IPC and connections already made keep working.
 */

import { randomBytes } from 'node:crypto';
import type { ClusterDirectory, MemberRecord } from '../cluster/cluster-directory.js';
import { EtcdDirectory } from '../cluster/etcd-directory.js';
import { NormaError } from '../errors.js';
import type { PortId } from '../ipc/port.js';
import type { Kernel } from '../kernel/kernel.js';
import { rejectMessageLengthMax } from '../limits.js';
import { loadNodeCredentials } from '../net/cluster-credentials.js';
import { type ClusterView, type NodeLinks, NormaIpc } from '../net/norma-ipc.js';
import { type Peer, Transport } from '../net/transport.js';
import {
  type CallArg,
  type CallOp,
  type CallValue,
  callSchemas,
  type IpcFrame,
  type PeerFrame,
} from '../net/wire-protocol.js';
import type { MemberInfo, NameInfo } from './control-protocol.js';

export interface ClusterOptions {
  /** The cluster directory `norma cluster init` made (CA, cluster.json, node credentials). */
  readonly clusterDirectory: string;
  /** This node's name in the cluster. */
  readonly name: string;
  /** Where to listen for other nodes, host:port (port 0: any). */
  readonly listen: string;
  /** etcd client URLs. */
  readonly etcd: readonly string[];
  /** Lease TTL in seconds: a node that dies vanishes from the cluster this long after. */
  readonly leaseTtlSeconds?: number;
}

/** A kernel id for a node of a cluster: its name and a random part (a new one at every start). */
export function clusterIncarnation(name: string): string {
  return `${name}-${randomBytes(4).toString('hex')}`;
}

/** The answer to a forwarded control request: log events (lines), then the final line. */
export type ForwardedRequestHandler = (line: string, onLine: (line: string, final: boolean) => void) => void;

const loadIntervalMs = 2000;
/** A change of CPU use smaller than this is not reported. */
const loadCpuChangeMin = 0.05;
const reconnectDelayMs = 100;
/** A name sync after an outage that found names taken is repeated this often, this far apart. */
const nameSyncRetriesMax = 10;
const nameSyncRetryMs = 500;

/** Serves one call from another member (`from`: its incarnation). */
export type CallHandler = <Op extends CallOp>(
  op: Op,
  arg: CallArg<Op>,
  from: string,
) => Promise<CallValue<Op>>;

interface PendingCall {
  to: string;
  name: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** How long a call waits for its answer (a hand-off includes the old home's flush barrier). */
const callTimeoutMsDefault = 30_000;

export class ClusterMember {
  readonly ipc: NormaIpc;
  readonly #kernel: Kernel;
  readonly #transport: Transport;
  readonly #directory: ClusterDirectory;
  readonly #log: (message: string) => void;
  /** Live members by incarnation (this node included). */
  readonly #members = new Map<string, MemberRecord>();
  /** Incarnations seen leaving: their ports are dead. */
  readonly #gone = new Set<string>();
  /** The connection this node dialed, per incarnation, or the frames waiting for it. */
  readonly #outbound = new Map<string, Peer | PeerFrame[]>();
  readonly #forwarded = new Map<number, (line: string, final: boolean) => void>();
  #nextForward = 1;
  readonly #calls = new Map<number, PendingCall>();
  #nextCall = 1;
  #callHandler: CallHandler = async (op) => {
    throw new NormaError('NODE_BAD_REQUEST', `this node does not serve ${op} calls`);
  };
  #loadTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #syncingNames = false;
  #syncNamesAgain = false;
  #handleForwarded: ForwardedRequestHandler = () => {};

  private constructor(
    kernel: Kernel,
    transport: Transport,
    directory: ClusterDirectory,
    log: (m: string) => void,
  ) {
    this.#kernel = kernel;
    this.#transport = transport;
    this.#directory = directory;
    this.#log = log;
    const links: NodeLinks = { send: (to, frame) => this.#send(to, frame) };
    const view: ClusterView = {
      isGone: (incarnation) => this.#gone.has(incarnation),
      portLocations: (portIds) => this.#portLocations(portIds),
      setPortLocations: async (portIds) => {
        await Promise.all(portIds.map((portId) => this.#directory.setPortLocation(portId)));
      },
      clearPortLocation: async (portId) => {
        await this.#directory.clearPortLocation(portId);
      },
      lookupName: async (service) => (await this.#directory.lookupName(service))?.portId ?? null,
      registerName: async (service, portId) =>
        (await this.#directory.registerName(service, portId)) === 'registered',
      unregisterName: async (service, portId) => {
        await this.#directory.unregisterName(service, portId);
      },
    };
    this.ipc = new NormaIpc(kernel, links, view, log);
  }

  /** Joins the cluster: credentials, transport, directory, membership. */
  static async join(
    kernel: Kernel,
    options: ClusterOptions,
    log: (message: string) => void,
  ): Promise<ClusterMember> {
    const credentials = await loadNodeCredentials(options.clusterDirectory, options.name, {
      issueIfMissing: true,
    });
    const [host, port] = splitListen(options.listen);
    // Peers that dial in before the member exists wait in the transport's backlog until adopted.
    const early: Peer[] = [];
    let adopt = (peer: Peer): void => {
      early.push(peer);
    };
    const transport = await Transport.listen({
      host,
      port,
      credentials,
      incarnation: kernel.nodeId,
      onPeer: (peer) => adopt(peer),
      log,
    });
    const directory = await EtcdDirectory.connect({
      cluster: credentials.cluster,
      endpoints: options.etcd,
      ...(options.leaseTtlSeconds === undefined ? {} : { ttlSeconds: options.leaseTtlSeconds }),
    });
    try {
      const member = new ClusterMember(kernel, transport, directory, log);
      adopt = (peer) => member.#adopt(peer);
      for (const peer of early) member.#adopt(peer);
      await member.#start(options.name);
      return member;
    } catch (error) {
      await transport.close();
      await directory.close();
      throw error;
    }
  }

  get name(): string {
    return this.#transport.node;
  }

  get address(): string {
    return this.#transport.address;
  }

  get cluster(): string {
    return this.#directory.cluster;
  }

  /** Handles control requests other members forward here. */
  serveForwarded(handler: ForwardedRequestHandler): void {
    this.#handleForwarded = handler;
  }

  async #start(name: string): Promise<void> {
    const self: MemberRecord = {
      name,
      incarnation: this.#kernel.nodeId,
      address: this.#transport.address,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      load: { ...this.#kernel.load(), cpu: 0 },
    };
    this.#members.set(self.incarnation, self);
    await this.#directory.watchMembers((event) => {
      if (event.kind === 'left') this.#incarnationGone(event.member.incarnation, event.member.name);
      else this.#memberSeen(event.member);
    });
    this.#directory.watchStatus((event) => {
      this.#log(`cluster directory: ${event.kind}`);
      if (event.kind === 'available' || event.kind === 'rejoined') void this.#syncNames();
    });
    await this.#directory.join(self); // the watch reports every member, this one included
    let cpu = process.cpuUsage();
    let at = performance.now();
    let reported = self.load;
    const unreported = { tasks: -1, runnable: -1, cpu: -1 };
    this.#loadTimer = setInterval(() => {
      const used = process.cpuUsage(cpu);
      const now = performance.now();
      const share = Math.min(1, (used.user + used.system) / 1000 / Math.max(1, now - at));
      cpu = process.cpuUsage();
      at = now;
      const load = { ...this.#kernel.load(), cpu: Math.round(share * 100) / 100 };
      // Every write is an event at every member: only a change is worth one.
      const changed =
        load.tasks !== reported.tasks ||
        load.runnable !== reported.runnable ||
        Math.abs(load.cpu - reported.cpu) >= loadCpuChangeMin;
      if (!changed) return;
      reported = load;
      this.#directory.updateLoad(load).catch(() => {
        // Not written (etcd is down): written at the first tick after it is back.
        if (reported === load) reported = unreported;
      });
    }, loadIntervalMs);
    this.#loadTimer.unref();
  }

  /**
   * After an outage of etcd: registrations this node's tasks made or ended meanwhile could not be
   * published or withdrawn then (nothing retries them), so the cluster's names are brought in line
   * with the kernel's: names of this incarnation the kernel no longer holds are withdrawn, and the
   * kernel's registrations are published (one another node holds stays local, as at registration).
   * Another node may still hold a name it is about to withdraw (its own sync runs when it sees etcd
   * again), so a sync that found names taken is repeated a few times. A sync that etcd interrupts is
   * done again at the next 'available'.
   */
  async #syncNames(retry = 0): Promise<void> {
    if (this.#syncingNames) {
      this.#syncNamesAgain = true;
      return;
    }
    this.#syncingNames = true;
    let taken = false;
    try {
      do {
        this.#syncNamesAgain = false;
        taken = false;
        const self = this.#kernel.nodeId;
        const holds = (service: string, portId: string): boolean =>
          this.#kernel.names.list().some((n) => n.service === service && n.portId === portId);
        const published = await this.#directory.names();
        for (const record of published) {
          if (this.#closed) return;
          if (record.incarnation !== self || holds(record.name, record.portId)) continue;
          if (await this.#directory.unregisterName(record.name, record.portId)) {
            this.#log(`name service: "${record.name}" withdrawn after the outage`);
          }
        }
        for (const { service, portId } of this.#kernel.names.list()) {
          if (this.#closed) return;
          if (published.some((r) => r.name === service && r.portId === portId && r.incarnation === self)) {
            continue;
          }
          if ((await this.#directory.registerName(service, portId)) === 'taken') {
            taken = true;
            continue;
          }
          // Forgotten while it was being published: withdrawn again.
          if (!holds(service, portId)) await this.#directory.unregisterName(service, portId);
          else this.#log(`name service: "${service}" published after the outage`);
        }
      } while (this.#syncNamesAgain && !this.#closed);
    } catch (error) {
      taken = false;
      if (!this.#closed) {
        this.#log(`name service: cannot update the cluster's names after the outage: ${String(error)}`);
      }
    } finally {
      this.#syncingNames = false;
    }
    if (taken && retry < nameSyncRetriesMax && !this.#closed) {
      setTimeout(() => void this.#syncNames(retry + 1), nameSyncRetryMs).unref();
    }
  }

  #memberSeen(member: MemberRecord): void {
    for (const [incarnation, known] of this.#members) {
      // The same name with a new incarnation: the old one died (and restarted).
      if (known.name === member.name && incarnation !== member.incarnation) {
        this.#incarnationGone(incarnation, known.name);
      }
    }
    if (!this.#gone.has(member.incarnation)) this.#members.set(member.incarnation, member);
  }

  /** The node incarnation left the cluster (or never was a member): it and its ports are dead. */
  #incarnationGone(incarnation: string, name: string): void {
    if (incarnation === this.#kernel.nodeId) return;
    this.#members.delete(incarnation);
    if (this.#gone.has(incarnation)) return;
    this.#gone.add(incarnation);
    this.#log(`node ${name} (${incarnation}) left the cluster`);
    for (const [id, pending] of this.#calls) {
      if (pending.to !== incarnation) continue;
      this.#calls.delete(id);
      clearTimeout(pending.timer);
      pending.reject(new NormaError('NET_PEER_UNREACHABLE', `node ${name} left the cluster`));
    }
    const outbound = this.#outbound.get(incarnation);
    this.#outbound.delete(incarnation);
    if (outbound !== undefined && !Array.isArray(outbound)) outbound.close();
    this.ipc.nodeGone(incarnation);
  }

  /** Where the directory records ports that moved: the live incarnation of the member named there. */
  async #portLocations(portIds: readonly PortId[]): Promise<Map<PortId, string>> {
    const names = await Promise.all(portIds.map((portId) => this.#directory.portLocation(portId)));
    const found = new Map<PortId, string>();
    portIds.forEach((portId, index) => {
      const member = names[index] === null ? undefined : this.#named(names[index]!);
      if (member !== undefined) found.set(portId, member.incarnation);
    });
    return found;
  }

  // -------------------------------------------------------------------------------------------
  // Links.
  // -------------------------------------------------------------------------------------------

  #send(to: string, frame: PeerFrame): boolean {
    if (this.#closed || this.#gone.has(to)) return false;
    const outbound = this.#outbound.get(to);
    if (outbound === undefined) {
      this.#outbound.set(to, [frame]);
      void this.#dial(to);
      return true;
    }
    if (Array.isArray(outbound)) {
      outbound.push(frame);
      return true;
    }
    try {
      outbound.send(frame);
      return true;
    } catch {
      this.#outbound.delete(to);
      return this.#send(to, frame);
    }
  }

  async #dial(to: string): Promise<void> {
    let member = this.#members.get(to);
    if (member === undefined) {
      // A port of a node this one has not heard of yet: ask the directory.
      try {
        for (const known of await this.#directory.members()) this.#memberSeen(known);
      } catch (error) {
        this.#log(`cannot reach node ${to}: ${String(error)}`);
      }
      member = this.#members.get(to);
      if (member === undefined) {
        this.#outbound.delete(to);
        this.#incarnationGone(to, to);
        return;
      }
    }
    while (!this.#closed && !this.#gone.has(to)) {
      try {
        const peer = await this.#transport.connect(member.address);
        if (peer.incarnation !== to) {
          peer.close();
          this.#incarnationGone(member.incarnation, member.name);
          return;
        }
        const waiting = this.#outbound.get(to);
        this.#outbound.set(to, peer);
        peer.on('frame', (frame) => this.#onFrame(peer, frame));
        peer.on('close', () => {
          if (this.#outbound.get(to) === peer) this.#outbound.delete(to);
          if (!this.#closed && !this.#gone.has(to)) {
            // Reconnect at once and resend what was not acknowledged.
            this.#outbound.set(to, []);
            setTimeout(() => void this.#dial(to), reconnectDelayMs);
          }
        });
        for (const frame of Array.isArray(waiting) ? waiting : []) peer.send(frame);
        this.ipc.peerUp(to);
        return;
      } catch (error) {
        this.#log(`connecting to ${member.name} at ${member.address}: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, reconnectDelayMs * 5));
      }
    }
  }

  /** A connection another node dialed: only read from it. */
  #adopt(peer: Peer): void {
    peer.on('frame', (frame) => this.#onFrame(peer, frame));
  }

  #onFrame(peer: Peer, frame: PeerFrame): void {
    switch (frame.k) {
      case 'ctl':
        this.#handleForwarded(frame.line, (line, final) => {
          this.#send(peer.incarnation, { k: 'ctl-res', id: frame.id, line, final });
        });
        return;
      case 'ctl-res': {
        const pending = this.#forwarded.get(frame.id);
        if (pending === undefined) return;
        if (frame.final) this.#forwarded.delete(frame.id);
        pending(frame.line, frame.final);
        return;
      }
      case 'call':
        void this.#answer(peer.incarnation, frame);
        return;
      case 'reply': {
        const pending = this.#calls.get(frame.id);
        if (pending === undefined || pending.to !== peer.incarnation) return;
        this.#calls.delete(frame.id);
        clearTimeout(pending.timer);
        if (frame.error !== undefined) {
          const { code, message, hint } = frame.error;
          pending.reject(
            new NormaError(
              code as never,
              `node ${pending.name}: ${message}`,
              hint === undefined ? {} : { hint },
            ),
          );
        } else pending.resolve(frame.value);
        return;
      }
      case 'ping':
      case 'pong':
        return;
      default:
        this.ipc.onFrame(peer.incarnation, frame as IpcFrame);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Calls between node daemons (task migration).
  // -------------------------------------------------------------------------------------------

  /** Answers calls from other members with `handler` (its errors travel back with their codes). */
  serveCalls(handler: CallHandler): void {
    this.#callHandler = handler;
  }

  /**
   * Calls `op` on the member named `name` (or with that incarnation) and checks its answer.
   * Rejects with NET_PEER_UNREACHABLE when it cannot be reached or leaves, NET_TIMEOUT after
   * `timeoutMs`, or the error the other node answered.
   */
  async call<Op extends CallOp>(
    name: string,
    op: Op,
    arg: CallArg<Op>,
    timeoutMs = callTimeoutMsDefault,
  ): Promise<CallValue<Op>> {
    const member = this.#member(name);
    const id = this.#nextCall++;
    const value = await new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#calls.delete(id);
        reject(
          new NormaError('NET_CALL_TIMEOUT', `node ${member.name} did not answer ${op} in ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.#calls.set(id, { to: member.incarnation, name: member.name, resolve, reject, timer });
      if (!this.#send(member.incarnation, { k: 'call', id, op, arg })) {
        this.#calls.delete(id);
        clearTimeout(timer);
        reject(new NormaError('NET_PEER_UNREACHABLE', `node ${member.name} cannot be reached`));
      }
    });
    const checked = callSchemas[op].value.safeParse(value);
    if (!checked.success) {
      throw new NormaError(
        'NET_FRAME_MALFORMED',
        `node ${member.name} answered ${op} with a malformed value`,
      );
    }
    return checked.data as CallValue<Op>;
  }

  async #answer(from: string, frame: Extract<PeerFrame, { k: 'call' }>): Promise<void> {
    let reply: Extract<PeerFrame, { k: 'reply' }>;
    try {
      const arg = callSchemas[frame.op].arg.safeParse(frame.arg);
      if (!arg.success) throw new NormaError('NET_FRAME_MALFORMED', `malformed ${frame.op} call`);
      reply = { k: 'reply', id: frame.id, value: await this.#callHandler(frame.op, arg.data as never, from) };
    } catch (error) {
      const failure =
        error instanceof NormaError ? error : new NormaError('MOVE_FAILED', `${frame.op}: ${String(error)}`);
      reply = {
        k: 'reply',
        id: frame.id,
        error: {
          code: failure.code,
          message: failure.message.slice(0, rejectMessageLengthMax),
          ...(failure.hint === undefined ? {} : { hint: failure.hint.slice(0, rejectMessageLengthMax) }),
        },
      };
    }
    this.#send(from, reply);
  }

  /** A live member by name or incarnation. */
  #member(name: string): MemberRecord {
    const member = this.#members.get(name) ?? this.#named(name);
    if (member === undefined) {
      throw new NormaError('NODE_UNKNOWN', `no live member of cluster ${this.cluster} is named ${name}`);
    }
    return member;
  }

  /** True once the node incarnation has left the cluster. */
  isGone(incarnation: string): boolean {
    return this.#gone.has(incarnation);
  }

  #named(name: string): MemberRecord | undefined {
    return [...this.#members.values()].find((m) => m.name === name);
  }

  /** The name of the live member with this incarnation (for messages), or the incarnation. */
  memberName(incarnation: string): string {
    return this.#members.get(incarnation)?.name ?? incarnation;
  }

  // -------------------------------------------------------------------------------------------
  // What the control API asks.
  // -------------------------------------------------------------------------------------------

  /** Sends a control request line to member `name`; its answer lines come to `onLine`. */
  forward(name: string, line: string, onLine: (line: string, final: boolean) => void): void {
    const member = this.#member(name);
    const id = this.#nextForward++;
    this.#forwarded.set(id, onLine);
    if (!this.#send(member.incarnation, { k: 'ctl', id, line })) {
      this.#forwarded.delete(id);
      throw new NormaError('NET_PEER_UNREACHABLE', `node ${name} cannot be reached`);
    }
  }

  isSelf(name: string): boolean {
    return name === this.name;
  }

  async members(): Promise<MemberInfo[]> {
    const members = await this.#directory.members();
    return members.map((m) => ({ ...m, self: m.incarnation === this.#kernel.nodeId }));
  }

  async names(): Promise<NameInfo[]> {
    return (await this.#directory.names()).map((n) => ({ name: n.name, portId: n.portId, node: n.node }));
  }

  /** Leaves the cluster (its names and records go at once) and closes every connection. */
  async leave(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.ipc.close();
    if (this.#loadTimer !== null) clearInterval(this.#loadTimer);
    await this.#directory
      .leave()
      .catch((error: unknown) => this.#log(`leaving the cluster: ${String(error)}`));
    await this.#directory.close().catch(() => undefined);
    await this.#transport.close();
  }
}

function splitListen(listen: string): [string, number] {
  const match = /^(.*):(\d{1,5})$/.exec(listen);
  const port = match === null ? Number.NaN : Number(match[2]);
  if (match === null || !(port >= 0 && port <= 65535) || match[1] === '') {
    throw new NormaError('USAGE', `--listen ${JSON.stringify(listen)} is not host:port`);
  }
  return [match[1]!.replace(/^\[(.*)\]$/, '$1'), port];
}
