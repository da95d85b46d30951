/**
 * The cluster directory in etcd: one class, `EtcdDirectory`, over a `DirectoryStore`, which is
 * either etcd itself (`EtcdDirectory.connect`, through the etcd3 client) or the in-memory etcd of
 * memory-directory.ts. The design:
 *
 * - **One lease per node.** `join` grants it and puts the member record; every name and port
 *   location the node writes is attached to it. A heartbeat renews it every TTL/3 (one keepalive
 *   round trip each, with a deadline: a keepalive stream left open can look healthy across a
 *   network partition). A node that dies stops renewing, and etcd deletes its keys once the TTL has
 *   run out: the other nodes' member watches see 'left'. `leave` revokes the lease.
 * - **Compare-and-swap, never read-then-write.** A name is registered by a put conditioned on the
 *   key's mod revision ('0': absent), so two nodes racing for a name cannot both win; unregistering
 *   and clearing a port location delete on the revision they read.
 * - **A bounded wait.** Every etcd round trip has a deadline (`clusterCallMsMax`). A call that meets
 *   a dead etcd rejects with CLUSTER_UNAVAILABLE, `available` turns false and an 'unavailable'
 *   event fires; from then on calls reject at once (no caller waits on a dead etcd) and the
 *   heartbeat probes every `clusterProbeIntervalMs` instead.
 * - **Recovery by itself.** When a probe gets through: if the lease still exists (etcd restarted
 *   and restored it), 'available' fires. If it expired (the node was cut off longer than the TTL, or
 *   a write found it gone), the directory grants a new lease and re-puts what this node holds, from
 *   its own ledger of what it wrote: the member record, then the names and port locations, each
 *   only if absent or still its own (another node may have taken a name meanwhile; those are
 *   dropped and reported in the 'rejoined' event), then 'available'. If another incarnation took
 *   the member name meanwhile, the directory is evicted for good (CLUSTER_EVICTED).
 * - **Watches survive restarts.** A member watch lists, then watches from the revision it listed
 *   at; the store resumes the watch after a reconnection from the last revision seen, so no change
 *   is lost; if etcd compacted that history meanwhile, the watch lists again and reports the
 *   difference.
 * - **Lazy etcd3.** The etcd3 client (gRPC, protobuf) is loaded by `connect` only: unit tests of
 *   the layers above run on the in-memory store without it.
 *
 * etcd3 pitfalls handled here: its default fault handling (a circuit breaker per host that stays
 * open 5 s, three retries per call) would delay recovery past a short lease TTL and multiply the
 * deadline, so both are replaced by pass-through policies; its watch reconnect backoff grows to
 * 30 s, so it is made constant; a watcher canceled by etcd emits 'error' (fatal without a listener);
 * and a watcher never cancelled keeps reconnecting forever, so `close` cancels them all.
 */
import assert from 'node:assert/strict';
import type { Etcd3, IKeyValue, IOptions, Watcher } from 'etcd3';
import { isNormaError, NormaError } from '../errors.js';
import {
  clusterCallMsMax,
  clusterCasAttemptsMax,
  clusterProbeIntervalMs,
  leaseTtlSecondsDefault,
} from '../limits.js';
import { checkNodeName } from '../net/cluster-credentials.js';
import {
  type ClusterDirectory,
  type ClusterKeys,
  clusterKeys,
  type DirectoryStore,
  decodeMember,
  decodeName,
  decodePort,
  encodeRecord,
  type MemberEvent,
  type MemberLoad,
  type MemberRecord,
  type NameRecord,
  type PortRecord,
  type PutResult,
  type StatusEvent,
  type StoreChange,
  type StoredKey,
} from './cluster-directory.js';

export interface DirectoryOptions {
  /** The cluster's name: its keys live under /norma/<cluster>/. */
  readonly cluster: string;
  /** The node's lease TTL (etcd may round it up). */
  readonly ttlSeconds?: number;
}

export interface EtcdDirectoryOptions extends DirectoryOptions {
  /** etcd client URLs, `http://host:port`. */
  readonly endpoints: readonly string[];
}

/** A lease as the store granted it. */
interface Lease {
  readonly id: string;
  readonly ttlSeconds: number;
}

type Phase = 'idle' | 'joined' | 'evicted' | 'left' | 'closed';

/** How a conditional write judges the key it found in the way: true if this node may overwrite it. */
type Overwritable = (current: StoredKey) => boolean;

export class EtcdDirectory implements ClusterDirectory {
  readonly cluster: string;
  readonly #store: DirectoryStore;
  readonly #keys: ClusterKeys;
  readonly #ttlSeconds: number;
  #phase: Phase = 'idle';
  #self: MemberRecord | null = null;
  #lease: Lease | null = null;
  /** The ledger: what this node wrote and holds, re-put after its lease expired. */
  readonly #names = new Map<string, string>();
  readonly #ports = new Set<string>();
  /** True from a new lease until everything in the ledger is attached to it. */
  #stale = false;
  readonly #lost = { names: [] as string[], ports: [] as string[] };
  #rejoining: Promise<void> | null = null;
  #available = true;
  #outage: NormaError | null = null;
  /** When the outage began (ISO 8601), for the messages of the calls it refuses. */
  #outageSince = '';
  #timer: NodeJS.Timeout | null = null;
  #beating = false;
  readonly #statusListeners = new Set<(event: StatusEvent) => void>();
  readonly #watches = new Set<() => void>();

  constructor(store: DirectoryStore, options: DirectoryOptions) {
    this.cluster = options.cluster;
    this.#keys = clusterKeys(options.cluster);
    this.#store = store;
    this.#ttlSeconds = options.ttlSeconds ?? leaseTtlSecondsDefault;
    assert.ok(
      Number.isInteger(this.#ttlSeconds) && this.#ttlSeconds >= 1,
      'lease TTL: whole seconds, at least 1',
    );
  }

  /** A directory on a real etcd. Connects lazily: an etcd that is down shows at the first call. */
  static async connect(options: EtcdDirectoryOptions): Promise<EtcdDirectory> {
    return new EtcdDirectory(await Etcd3Store.open(options.endpoints), options);
  }

  get available(): boolean {
    return this.#available;
  }

  async join(self: MemberRecord): Promise<void> {
    checkNodeName(self.name);
    assert.equal(this.#phase, 'idle', 'join: once per directory');
    await this.#call(async () => {
      const lease = await this.#store.grantLease(this.#ttlSeconds);
      let holder: MemberRecord | 'lease-lost' | null;
      try {
        holder = await this.#putMember(self, lease);
      } catch (error) {
        await this.#store.revokeLease(lease.id).catch(() => undefined);
        throw error;
      }
      if (holder !== null) {
        await this.#store.revokeLease(lease.id).catch(() => undefined);
        if (holder === 'lease-lost') {
          throw new NormaError(
            'CLUSTER_UNAVAILABLE',
            'etcd dropped the new lease at once (is its clock sane?)',
          );
        }
        throw new NormaError(
          'CLUSTER_MEMBER_NAME_TAKEN',
          `member ${self.name} of cluster ${this.cluster} is already live: pid ${holder.pid} at ${holder.address}, started ${holder.startedAt}`,
        );
      }
      this.#self = self;
      this.#lease = lease;
      this.#phase = 'joined';
      this.#schedule();
    });
  }

  async updateLoad(load: MemberLoad): Promise<void> {
    await this.#call(async () => {
      const self = { ...this.#member(), load };
      this.#self = self;
      await this.#write(this.#keys.member(self.name), () => encodeRecord(this.#self!), null);
    });
  }

  members(): Promise<MemberRecord[]> {
    return this.#call(async () => {
      const { keys } = await this.#store.list(this.#keys.members);
      return keys.map((stored) => decodeMember(this.#keys, stored)).sort(byName);
    });
  }

  watchMembers(listener: (event: MemberEvent) => void): Promise<() => void> {
    return this.#call(async () => {
      const watch = new MemberWatch(this.#store, this.#keys, listener);
      await watch.start();
      const stop = (): void => {
        this.#watches.delete(stop);
        watch.stop();
      };
      this.#watches.add(stop);
      return stop;
    });
  }

  registerName(name: string, portId: string): Promise<'registered' | 'taken'> {
    return this.#call(async () => {
      const self = this.#member();
      const record: NameRecord = { name, portId, node: self.name, incarnation: self.incarnation };
      const written = await this.#write(
        this.#keys.name(name),
        () => encodeRecord(record),
        (current) => sameName(decodeName(this.#keys, current), record),
        () => this.#names.set(name, portId),
      );
      return written ? 'registered' : 'taken';
    });
  }

  unregisterName(name: string, portId: string): Promise<boolean> {
    return this.#call(async () => {
      this.#member();
      // Out of the ledger first, so that a recovery under way does not put it back; the delete
      // waits for that recovery, which may have re-put it before it saw the ledger change.
      if (this.#names.get(name) === portId) this.#names.delete(name);
      if (this.#rejoining !== null) await this.#rejoining;
      return this.#deleteIf(
        this.#keys.name(name),
        (current) => decodeName(this.#keys, current).portId === portId,
      );
    });
  }

  lookupName(name: string): Promise<NameRecord | null> {
    return this.#call(async () => {
      const stored = await this.#store.get(this.#keys.name(name));
      return stored === null ? null : decodeName(this.#keys, stored);
    });
  }

  names(): Promise<NameRecord[]> {
    return this.#call(async () => {
      const { keys } = await this.#store.list(this.#keys.names);
      return keys.map((stored) => decodeName(this.#keys, stored)).sort(byName);
    });
  }

  setPortLocation(portId: string): Promise<void> {
    return this.#call(async () => {
      const self = this.#member();
      const record: PortRecord = { portId, node: self.name, incarnation: self.incarnation };
      await this.#write(
        this.#keys.port(portId),
        () => encodeRecord(record),
        null,
        () => this.#ports.add(portId),
      );
    });
  }

  clearPortLocation(portId: string): Promise<boolean> {
    return this.#call(async () => {
      const self = this.#member();
      this.#ports.delete(portId); // first: see unregisterName
      if (this.#rejoining !== null) await this.#rejoining;
      return this.#deleteIf(this.#keys.port(portId), (current) =>
        isMine(decodePort(this.#keys, current), self),
      );
    });
  }

  portLocation(portId: string): Promise<string | null> {
    return this.#call(async () => {
      const stored = await this.#store.get(this.#keys.port(portId));
      return stored === null ? null : decodePort(this.#keys, stored).node;
    });
  }

  watchStatus(listener: (event: StatusEvent) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  async leave(): Promise<void> {
    await this.#call(async () => {
      const lease = this.#lease;
      this.#member();
      this.#phase = 'left';
      this.#stopHeartbeat();
      this.#names.clear();
      this.#ports.clear();
      if (lease !== null) await this.#store.revokeLease(lease.id);
    });
  }

  async close(): Promise<void> {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    this.#stopHeartbeat();
    for (const stop of [...this.#watches]) stop();
    this.#statusListeners.clear();
    await this.#store.close();
  }

  // -------------------------------------------------------------------------------------------
  // Calls, writes, recovery.

  /** Runs one directory call: at once CLUSTER_UNAVAILABLE while etcd is known to be down. */
  async #call<T>(operation: () => Promise<T>): Promise<T> {
    assert.notEqual(this.#phase, 'closed', 'the directory is closed');
    if (this.#phase === 'evicted') {
      throw new NormaError('CLUSTER_EVICTED', `another node took the member name ${this.#self?.name}`);
    }
    if (!this.#available) {
      throw new NormaError(
        'CLUSTER_UNAVAILABLE',
        `etcd is unavailable since ${this.#outageSince}: ${this.#outage?.message}`,
        { cause: this.#outage },
      );
    }
    try {
      return await operation();
    } catch (error) {
      if (isNormaError(error, 'CLUSTER_UNAVAILABLE')) this.#markUnavailable(error);
      throw error;
    }
  }

  /** The member record of this node; asserts that it joined and has not left. */
  #member(): MemberRecord {
    if (this.#phase === 'evicted') throw new NormaError('CLUSTER_EVICTED', 'this node was evicted');
    assert.ok(this.#phase === 'joined' && this.#self !== null, 'the node has not joined the cluster');
    return this.#self;
  }

  /**
   * Writes `key` under the current lease: unconditionally (`overwritable` null), or if it is absent
   * or `overwritable` accepts what is there. A write counts only if the lease it used is still the
   * node's lease when it completes (else the lease expired meanwhile and it is written again under
   * the new one); `commit` records it in the ledger in that same turn, before any recovery can read
   * the ledger. Returns false when another holder is in the way.
   */
  async #write(
    key: string,
    value: () => string,
    overwritable: Overwritable | null,
    commit: () => void = () => {},
  ): Promise<boolean> {
    let expected: string | null = overwritable === null ? null : '0';
    for (let attempt = 0; attempt < clusterCasAttemptsMax; attempt++) {
      if (this.#rejoining !== null) await this.#rejoining;
      this.#member();
      const lease = this.#lease!;
      const result: PutResult = await this.#store.put(key, value(), lease.id, expected);
      if (result.kind === 'lease-lost' || (result.kind === 'written' && this.#lease !== lease)) {
        await this.#rejoin(lease);
        continue;
      }
      if (result.kind === 'written') {
        commit();
        return true;
      }
      if (result.current === null) expected = '0';
      else if (overwritable?.(result.current)) expected = result.current.modRevision;
      else return false;
    }
    throw contention(key);
  }

  /** Deletes `key` if it is there and `deletable` accepts it; false otherwise. */
  async #deleteIf(key: string, deletable: (current: StoredKey) => boolean): Promise<boolean> {
    for (let attempt = 0; attempt < clusterCasAttemptsMax; attempt++) {
      const current = await this.#store.get(key);
      if (current === null || !deletable(current)) return false;
      if (await this.#store.deleteIf(key, current.modRevision)) return true;
    }
    throw contention(key);
  }

  /**
   * Puts the member record under `lease` unless another incarnation holds the name. Returns null
   * when written, else the holder (or 'lease-lost' when the lease is already gone).
   */
  async #putMember(self: MemberRecord, lease: Lease): Promise<MemberRecord | 'lease-lost' | null> {
    const key = this.#keys.member(self.name);
    let expected = '0';
    for (let attempt = 0; attempt < clusterCasAttemptsMax; attempt++) {
      const result = await this.#store.put(key, encodeRecord(self), lease.id, expected);
      if (result.kind === 'written') return null;
      if (result.kind === 'lease-lost') return 'lease-lost';
      if (result.current === null) {
        expected = '0';
        continue;
      }
      const holder = decodeMember(this.#keys, result.current);
      if (holder.incarnation !== self.incarnation) return holder;
      expected = result.current.modRevision;
    }
    throw contention(key);
  }

  /**
   * Recovers from the loss of the lease `lost` (null: finishes a recovery that etcd cut short). One
   * recovery at a time, shared by everyone who found the lease gone; a loss already recovered from
   * returns at once.
   */
  #rejoin(lost: Lease | null): Promise<void> {
    const needed = lost === null ? this.#stale : lost === this.#lease;
    if (this.#rejoining === null && needed && this.#phase === 'joined') {
      this.#stale = true;
      this.#rejoining = this.#recover(lost).finally(() => {
        this.#rejoining = null;
      });
    }
    return this.#rejoining ?? Promise.resolve();
  }

  /**
   * Grants a new lease in place of `lost` (if not null) and attaches everything in the ledger to the
   * lease. Rejects with CLUSTER_UNAVAILABLE if etcd fails meanwhile: the next probe finishes the job.
   */
  async #recover(lost: Lease | null): Promise<void> {
    const self = this.#member();
    if (lost !== null) {
      const lease = await this.#store.grantLease(this.#ttlSeconds);
      const holder = await this.#putMember(self, lease);
      if (holder !== null && holder !== 'lease-lost') {
        await this.#store.revokeLease(lease.id).catch(() => undefined);
        this.#evict(holder);
        return;
      }
      if (this.#phase !== 'joined') {
        await this.#store.revokeLease(lease.id).catch(() => undefined);
        return;
      }
      this.#lease = lease;
      if (holder === 'lease-lost') return; // the probe after this one grants again
    }
    const lease = this.#lease!;
    for (const [name, portId] of [...this.#names]) {
      if (this.#names.get(name) !== portId) continue; // unregistered meanwhile
      const record: NameRecord = { name, portId, node: self.name, incarnation: self.incarnation };
      const mine = (current: StoredKey): boolean => sameName(decodeName(this.#keys, current), record);
      if (await this.#reattach(this.#keys.name(name), encodeRecord(record), lease, mine)) continue;
      if (this.#names.get(name) !== portId) continue;
      this.#names.delete(name);
      this.#lost.names.push(name);
    }
    for (const portId of [...this.#ports]) {
      if (!this.#ports.has(portId)) continue; // cleared meanwhile
      const record: PortRecord = { portId, node: self.name, incarnation: self.incarnation };
      const mine = (current: StoredKey): boolean => isMine(decodePort(this.#keys, current), self);
      if (await this.#reattach(this.#keys.port(portId), encodeRecord(record), lease, mine)) continue;
      if (!this.#ports.delete(portId)) continue;
      this.#lost.ports.push(portId);
    }
    if (this.#lease !== lease || this.#phase !== 'joined') return;
    this.#stale = false;
    const lostNames = this.#lost.names.splice(0);
    const lostPorts = this.#lost.ports.splice(0);
    this.#emit({ kind: 'rejoined', lostNames, lostPorts });
  }

  /** Puts a ledger entry under `lease` if absent or still this node's; false if another holder took it. */
  async #reattach(key: string, value: string, lease: Lease, mine: Overwritable): Promise<boolean> {
    let expected = '0';
    for (let attempt = 0; attempt < clusterCasAttemptsMax; attempt++) {
      const result = await this.#store.put(key, value, lease.id, expected);
      if (result.kind === 'written') return true;
      if (result.kind === 'lease-lost') {
        throw new NormaError(
          'CLUSTER_UNAVAILABLE',
          'the new lease expired while this node re-put its records',
        );
      }
      if (result.current === null) expected = '0';
      else if (stillMine(mine, result.current)) expected = result.current.modRevision;
      else return false;
    }
    throw contention(key);
  }

  #evict(holder: MemberRecord): void {
    this.#phase = 'evicted';
    this.#lease = null;
    this.#names.clear();
    this.#ports.clear();
    this.#lost.names.length = 0;
    this.#lost.ports.length = 0;
    this.#stopHeartbeat();
    this.#emit({ kind: 'evicted', holder });
  }

  // -------------------------------------------------------------------------------------------
  // Heartbeat and availability.

  /** Arms the next beat: a renewal every TTL/3 while joined, a probe every clusterProbeIntervalMs while unavailable. */
  #schedule(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const probing = !this.#available || this.#stale;
    if (this.#phase === 'closed' || this.#phase === 'left' || this.#phase === 'evicted') return;
    if (this.#phase === 'idle' && !probing) return;
    const delayMs = probing ? clusterProbeIntervalMs : (this.#lease!.ttlSeconds * 1000) / 3;
    this.#timer = setTimeout(() => void this.#beat(), delayMs);
    this.#timer.unref();
  }

  async #beat(): Promise<void> {
    this.#timer = null;
    if (this.#beating) return;
    this.#beating = true;
    try {
      if (this.#phase === 'joined') {
        const lease = this.#lease!;
        if (!(await this.#store.renewLease(lease.id))) await this.#rejoin(lease);
        else await this.#rejoin(null);
      } else {
        await this.#store.get(this.#keys.members);
      }
      if (this.#phase === 'joined' || this.#phase === 'idle') this.#markAvailable();
    } catch (error) {
      // Not only CLUSTER_UNAVAILABLE: a corrupt member record in the way of the re-put
      // (CLUSTER_RECORD_CORRUPT) also keeps the directory unavailable until an operator removes it.
      if (!(error instanceof NormaError)) throw error;
      if (this.#phase === 'joined' || this.#phase === 'idle') this.#markUnavailable(error);
    } finally {
      this.#beating = false;
    }
    this.#schedule();
  }

  #markUnavailable(error: NormaError): void {
    this.#outage = error;
    if (!this.#available) return;
    this.#available = false;
    this.#outageSince = new Date().toISOString();
    this.#emit({ kind: 'unavailable', error });
    if (!this.#beating) this.#schedule();
  }

  #markAvailable(): void {
    if (this.#available || this.#stale) return;
    this.#available = true;
    this.#outage = null;
    this.#emit({ kind: 'available' });
  }

  #stopHeartbeat(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #emit(event: StatusEvent): void {
    for (const listener of [...this.#statusListeners]) listener(event);
  }
}

/**
 * A member watch: lists the members, reports them as joined, then reports every change from the
 * revision it listed at. When the store cannot resume (history compacted), it lists again, retrying
 * while etcd is down, and reports the difference.
 */
class MemberWatch {
  #known = new Map<string, MemberRecord>();
  #cancel: (() => void) | null = null;
  #stopped = false;

  constructor(
    private readonly store: DirectoryStore,
    private readonly keys: ClusterKeys,
    private readonly listener: (event: MemberEvent) => void,
  ) {}

  async start(): Promise<void> {
    const { keys, revision } = await this.store.list(this.keys.members);
    if (this.#stopped) return;
    this.#sync(keys);
    this.#cancel = this.store.watch(this.keys.members, revision, (change) => this.#change(change));
  }

  stop(): void {
    this.#stopped = true;
    this.#cancel?.();
    this.#cancel = null;
  }

  #change(change: StoreChange): void {
    if (this.#stopped) return;
    if (change.kind === 'reset') {
      this.#cancel?.();
      this.#cancel = null;
      void this.#restart();
      return;
    }
    const name = change.key.slice(this.keys.members.length);
    if (change.kind === 'delete') {
      const member = this.#known.get(name);
      if (member === undefined) return;
      this.#known.delete(name);
      this.listener({ kind: 'left', member });
      return;
    }
    let member: MemberRecord;
    try {
      member = decodeMember(this.keys, change);
    } catch {
      return; // members() reports the corrupt key (CLUSTER_RECORD_CORRUPT); a watch has no caller to tell
    }
    const kind = this.#known.has(name) ? 'updated' : 'joined';
    this.#known.set(name, member);
    this.listener({ kind, member });
  }

  async #restart(): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.start();
        return;
      } catch (error) {
        if (!isNormaError(error, 'CLUSTER_UNAVAILABLE')) throw error;
        await new Promise((resolve) => setTimeout(resolve, clusterProbeIntervalMs));
      }
    }
  }

  /** Reports the difference between what the watch knew and `keys` (a listing). */
  #sync(keys: StoredKey[]): void {
    const now = new Map<string, MemberRecord>();
    for (const stored of keys) {
      try {
        const member = decodeMember(this.keys, stored);
        now.set(member.name, member);
      } catch {
        // as in #change
      }
    }
    for (const [name, member] of this.#known) {
      if (!now.has(name)) this.listener({ kind: 'left', member });
    }
    for (const [name, member] of now) {
      const before = this.#known.get(name);
      if (before === undefined) this.listener({ kind: 'joined', member });
      else if (JSON.stringify(before) !== JSON.stringify(member)) this.listener({ kind: 'updated', member });
    }
    this.#known = now;
  }
}

// ---------------------------------------------------------------------------------------------
// The etcd store.

type Etcd3Module = typeof import('etcd3');
type FaultHandling = NonNullable<IOptions['faultHandling']>;

/** DirectoryStore on etcd through the etcd3 client; every round trip has a deadline of clusterCallMsMax. */
class Etcd3Store implements DirectoryStore {
  readonly #watchers = new Set<Watcher>();
  #closed = false;

  private constructor(
    private readonly etcd3: Etcd3Module,
    private readonly client: Etcd3,
    /** The endpoints, as the messages of CLUSTER_UNAVAILABLE name them. */
    private readonly endpoints: string,
  ) {}

  static async open(endpoints: readonly string[]): Promise<Etcd3Store> {
    assert.ok(endpoints.length > 0, 'at least one etcd endpoint');
    const etcd3 = await import('etcd3');
    const { noop } = await import('cockatiel');
    const watchRetry: NonNullable<FaultHandling['watchBackoff']> = {
      duration: clusterProbeIntervalMs,
      next: () => watchRetry,
    };
    const client = new etcd3.Etcd3({
      hosts: [...endpoints],
      faultHandling: { host: () => noop, global: noop, watchBackoff: watchRetry },
      // gRPC would otherwise wait up to 2 minutes between reconnection attempts to a restarted etcd.
      grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 },
    });
    return new Etcd3Store(etcd3, client, endpoints.join(','));
  }

  grantLease(ttlSeconds: number): Promise<Lease> {
    return this.#run('grant a lease', async () => {
      const granted = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }, deadline());
      return { id: granted.ID, ttlSeconds: Number(granted.TTL) };
    });
  }

  renewLease(id: string): Promise<boolean> {
    return this.#run('renew the lease', async () => {
      const stream = await this.client.leaseClient.leaseKeepAlive(deadline());
      try {
        const response = await new Promise<{ TTL: string }>((resolve, reject) => {
          stream.on('data', resolve);
          stream.on('error', (error: Error) => reject(this.etcd3.castGrpcError(error)));
          stream.write({ ID: id });
        });
        return response.TTL !== '0';
      } finally {
        stream.end();
      }
    });
  }

  revokeLease(id: string): Promise<void> {
    return this.#run('revoke the lease', async () => {
      try {
        await this.client.leaseClient.leaseRevoke({ ID: id }, deadline());
      } catch (error) {
        if (!(error instanceof this.etcd3.EtcdLeaseInvalidError)) throw error;
      }
    });
  }

  get(key: string): Promise<StoredKey | null> {
    return this.#run(`read ${key}`, async () => {
      const response = await this.client.get(key).options(deadline()).exec();
      const kv = response.kvs[0];
      return kv === undefined ? null : stored(kv);
    });
  }

  list(prefix: string): Promise<{ keys: StoredKey[]; revision: string }> {
    return this.#run(`list ${prefix}`, async () => {
      const response = await this.client.getAll().prefix(prefix).options(deadline()).exec();
      return { keys: response.kvs.map(stored), revision: response.header.revision };
    });
  }

  put(key: string, value: string, lease: string, ifModRevision: string | null): Promise<PutResult> {
    return this.#run(`write ${key}`, async () => {
      try {
        if (ifModRevision === null) {
          await this.client.put(key).value(value).lease(lease).options(deadline()).exec();
          return { kind: 'written' };
        }
        const response = await this.client
          .if(key, 'Mod', '==', ifModRevision)
          .then(this.client.put(key).value(value).lease(lease))
          .else(this.client.get(key))
          .options(deadline())
          .commit();
        if (response.succeeded) return { kind: 'written' };
        const kv = response.responses[0]?.response_range.kvs[0];
        return { kind: 'conflict', current: kv === undefined ? null : stored(kv) };
      } catch (error) {
        if (error instanceof this.etcd3.EtcdLeaseInvalidError) return { kind: 'lease-lost' };
        throw error;
      }
    });
  }

  deleteIf(key: string, ifModRevision: string): Promise<boolean> {
    return this.#run(`delete ${key}`, async () => {
      const response = await this.client
        .if(key, 'Mod', '==', ifModRevision)
        .then(this.client.delete().key(key))
        .options(deadline())
        .commit();
      return response.succeeded;
    });
  }

  watch(prefix: string, afterRevision: string, onChange: (change: StoreChange) => void): () => void {
    // A watcher made on a closed client would try to reconnect forever.
    if (this.#closed) return () => {};
    const watcher = this.client
      .watch()
      .prefix(prefix)
      .startRevision((BigInt(afterRevision) + 1n).toString())
      .watcher();
    watcher.on('put', (kv: IKeyValue) => onChange({ kind: 'put', ...stored(kv) }));
    watcher.on('delete', (kv: IKeyValue) => onChange({ kind: 'delete', key: kv.key.toString() }));
    // etcd canceled the watch (its start revision was compacted): the watcher is gone for good.
    watcher.on('error', () => {
      this.#watchers.delete(watcher);
      onChange({ kind: 'reset' });
    });
    this.#watchers.add(watcher);
    return () => {
      if (!this.#watchers.delete(watcher)) return;
      watcher.cancel().catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    const cancels = [...this.#watchers].map((watcher) => watcher.cancel().catch(() => undefined));
    this.#watchers.clear();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(cancels),
      new Promise((resolve) => {
        timer = setTimeout(resolve, clusterCallMsMax);
      }),
    ]);
    clearTimeout(timer);
    this.client.close();
  }

  /** Runs one round trip; a failure to reach etcd (or an etcd that cannot serve) becomes CLUSTER_UNAVAILABLE. */
  async #run<T>(what: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      const { isRecoverableError, ClientClosedError, GRPCGenericError, EtcdError } = this.etcd3;
      const unreachable =
        (error instanceof Error && isRecoverableError(error)) ||
        error instanceof ClientClosedError ||
        (error instanceof Error &&
          (error.constructor === GRPCGenericError || error.constructor === EtcdError));
      if (!unreachable) throw error;
      // gRPC ends its messages with an empty "Resolution note: ".
      const why = (error as Error).message.replace(/\.?\s*Resolution note:\s*$/, '');
      throw new NormaError('CLUSTER_UNAVAILABLE', `cannot ${what} in etcd at ${this.endpoints}: ${why}`, {
        cause: error,
      });
    }
  }
}

function deadline(): { deadline: number } {
  return { deadline: Date.now() + clusterCallMsMax };
}

function stored(kv: IKeyValue): StoredKey {
  return { key: kv.key.toString(), value: kv.value.toString(), modRevision: kv.mod_revision };
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function sameName(a: NameRecord, b: NameRecord): boolean {
  return a.portId === b.portId && a.node === b.node && a.incarnation === b.incarnation;
}

function isMine(record: { node: string; incarnation: string }, self: MemberRecord): boolean {
  return record.node === self.name && record.incarnation === self.incarnation;
}

/** A value that is not a record at all is not this node's: it is left for the operator. */
function stillMine(mine: Overwritable, current: StoredKey): boolean {
  try {
    return mine(current);
  } catch (error) {
    if (isNormaError(error, 'CLUSTER_RECORD_CORRUPT')) return false;
    throw error;
  }
}

function contention(key: string): NormaError {
  return new NormaError(
    'CLUSTER_UNAVAILABLE',
    `${key} changed under ${clusterCasAttemptsMax} attempts in a row to write it`,
    { hint: 'Another program is writing the key in a loop: find it with `etcdctl watch --prefix /norma/`.' },
  );
}
