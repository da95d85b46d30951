/**
 * The cluster directory without etcd: `MemoryEtcd` is an in-process etcd (keys with mod revisions,
 * leases that expire on time, compare-and-swap puts, watches that resume from a revision), and
 * `memoryEtcd.directory(options)` is a node's directory on it: the same `EtcdDirectory` class as on
 * a real etcd, over one client of the fake. Several directories on one MemoryEtcd are several nodes
 * of one cluster, so the layers above (migration, failover, the name service) are tested in one
 * process, without etcd, with the same semantics as in production.
 *
 * What tests can do to it, each what etcd or the network can do:
 * - `stop()` / `start()`: an etcd outage. Every call rejects with CLUSTER_UNAVAILABLE; leases do
 *   not expire while it is down, and `start()` gives each a full TTL again (etcd does the same when
 *   a leader is elected after a restart).
 * - `partition(directory)` / `heal(directory)`: one node cut off. Its calls reject; its watches
 *   deliver nothing until healed (then everything they missed); its lease keeps running out.
 * - `kill(directory)`: the node's process dies. It never calls again, so its lease expires.
 * - `expireLease(directory)`: its lease expires now (as if the TTL had run out).
 * - `compact()`: the history is discarded, so a watch that has to resume fails ('reset').
 *
 * Calls answer asynchronously (as a network would) but never time out. Lease expiry uses real
 * timers (unref'd), at the granted TTL, like etcd minus its up-to-500 ms expiry check.
 */
import assert from 'node:assert/strict';
import { NormaError } from '../errors.js';
import type {
  ClusterDirectory,
  DirectoryStore,
  PutResult,
  StoreChange,
  StoredKey,
} from './cluster-directory.js';
import { type DirectoryOptions, EtcdDirectory } from './etcd-directory.js';

interface Entry {
  readonly value: string;
  readonly lease: string;
  readonly modRevision: number;
}

interface LeaseState {
  readonly id: string;
  readonly ttlSeconds: number;
  readonly owner: MemoryEtcdClient;
  readonly keys: Set<string>;
  timer: NodeJS.Timeout | null;
}

interface Change {
  readonly revision: number;
  readonly change: { kind: 'put'; key: string; value: string } | { kind: 'delete'; key: string };
}

interface Watch {
  readonly client: MemoryEtcdClient;
  readonly prefix: string;
  readonly onChange: (change: StoreChange) => void;
  /** The first revision not delivered yet. */
  next: number;
}

export class MemoryEtcd {
  #revision = 0;
  #nextLeaseId = 1;
  readonly #entries = new Map<string, Entry>();
  readonly #leases = new Map<string, LeaseState>();
  /** Every change since the last compaction, oldest first (only what some watch has yet to see is kept). */
  #history: Change[] = [];
  #compactedThrough = 0;
  readonly #watches = new Set<Watch>();
  readonly #clients = new WeakMap<ClusterDirectory, MemoryEtcdClient>();
  #up = true;
  #delivery: NodeJS.Immediate | null = null;

  /** False during an outage (`stop()`). */
  get up(): boolean {
    return this.#up;
  }

  /** A new node's directory on this etcd. */
  directory(options: DirectoryOptions): ClusterDirectory {
    const client = new MemoryEtcdClient(this);
    const directory = new EtcdDirectory(client, options);
    this.#clients.set(directory, client);
    return directory;
  }

  /** An outage of the whole etcd. */
  stop(): void {
    this.#up = false;
    for (const lease of this.#leases.values()) this.#disarm(lease);
  }

  /** The end of an outage: every lease gets a full TTL again. */
  start(): void {
    this.#up = true;
    for (const lease of this.#leases.values()) this.#arm(lease);
    this.#deliverSoon();
  }

  partition(directory: ClusterDirectory): void {
    this.#client(directory).reachable = false;
  }

  heal(directory: ClusterDirectory): void {
    this.#client(directory).reachable = true;
    this.#deliverSoon();
  }

  /** The node's process dies: it never reaches this etcd again, and its lease runs out. */
  kill(directory: ClusterDirectory): void {
    const client = this.#client(directory);
    client.reachable = false;
    client.dead = true;
  }

  /** Expires the leases `directory` holds, now. */
  expireLease(directory: ClusterDirectory): void {
    const client = this.#client(directory);
    for (const lease of [...this.#leases.values()]) if (lease.owner === client) this.revoke(lease.id);
  }

  /** Discards the history: watches that must resume from before now are reset. */
  compact(): void {
    this.#history = [];
    this.#compactedThrough = this.#revision;
  }

  #client(directory: ClusterDirectory): MemoryEtcdClient {
    const client = this.#clients.get(directory);
    assert.ok(client !== undefined, 'not a directory of this MemoryEtcd');
    return client;
  }

  // -------------------------------------------------------------------------------------------
  // The operations, for MemoryEtcdClient (which checks reachability first).

  grant(owner: MemoryEtcdClient, ttlSeconds: number): { id: string; ttlSeconds: number } {
    const lease: LeaseState = {
      id: String(this.#nextLeaseId++),
      ttlSeconds,
      owner,
      keys: new Set(),
      timer: null,
    };
    this.#leases.set(lease.id, lease);
    this.#arm(lease);
    return { id: lease.id, ttlSeconds };
  }

  renew(id: string): boolean {
    const lease = this.#leases.get(id);
    if (lease === undefined) return false;
    this.#arm(lease);
    return true;
  }

  revoke(id: string): void {
    const lease = this.#leases.get(id);
    if (lease === undefined) return;
    this.#disarm(lease);
    this.#leases.delete(id);
    for (const key of [...lease.keys]) this.#delete(key);
  }

  get(key: string): StoredKey | null {
    const entry = this.#entries.get(key);
    return entry === undefined ? null : stored(key, entry);
  }

  list(prefix: string): { keys: StoredKey[]; revision: string } {
    const keys: StoredKey[] = [];
    for (const [key, entry] of this.#entries) if (key.startsWith(prefix)) keys.push(stored(key, entry));
    keys.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { keys, revision: String(this.#revision) };
  }

  put(key: string, value: string, leaseId: string, ifModRevision: string | null): PutResult {
    const current = this.#entries.get(key);
    if (ifModRevision !== null && String(current?.modRevision ?? 0) !== ifModRevision) {
      return { kind: 'conflict', current: current === undefined ? null : stored(key, current) };
    }
    const lease = this.#leases.get(leaseId);
    if (lease === undefined) return { kind: 'lease-lost' };
    if (current !== undefined) this.#leases.get(current.lease)?.keys.delete(key);
    const revision = ++this.#revision;
    this.#entries.set(key, { value, lease: leaseId, modRevision: revision });
    lease.keys.add(key);
    this.#record({ revision, change: { kind: 'put', key, value } });
    return { kind: 'written' };
  }

  deleteIf(key: string, ifModRevision: string): boolean {
    const current = this.#entries.get(key);
    if (current === undefined || String(current.modRevision) !== ifModRevision) return false;
    this.#delete(key);
    return true;
  }

  #delete(key: string): void {
    const current = this.#entries.get(key);
    if (current === undefined) return;
    this.#leases.get(current.lease)?.keys.delete(key);
    this.#entries.delete(key);
    this.#record({ revision: ++this.#revision, change: { kind: 'delete', key } });
  }

  watch(
    client: MemoryEtcdClient,
    prefix: string,
    afterRevision: string,
    onChange: Watch['onChange'],
  ): () => void {
    const watch: Watch = { client, prefix, onChange, next: Number(afterRevision) + 1 };
    this.#watches.add(watch);
    this.#deliverSoon();
    return () => this.#watches.delete(watch);
  }

  #record(change: Change): void {
    this.#history.push(change);
    this.#deliverSoon();
  }

  /** Delivers pending changes to every watch whose client is reachable, on the next turn (as etcd would, later). */
  #deliverSoon(): void {
    if (this.#delivery !== null) return;
    this.#delivery = setImmediate(() => {
      this.#delivery = null;
      if (!this.#up) return;
      for (const watch of [...this.#watches]) {
        if (!watch.client.reachable || !this.#watches.has(watch)) continue;
        if (watch.next <= this.#compactedThrough) {
          this.#watches.delete(watch);
          watch.onChange({ kind: 'reset' });
          continue;
        }
        for (const { revision, change } of this.#history) {
          if (revision < watch.next) continue;
          watch.next = revision + 1;
          if (change.key.startsWith(watch.prefix)) watch.onChange(change);
          if (!this.#watches.has(watch)) break;
        }
        watch.next = Math.max(watch.next, this.#revision + 1);
      }
      // What every watch has seen, nobody can ask for again: drop it (etcd's auto-compaction).
      let oldest = this.#revision + 1;
      for (const watch of this.#watches) oldest = Math.min(oldest, watch.next);
      if (oldest - 1 > this.#compactedThrough) {
        this.#history = this.#history.filter((change) => change.revision >= oldest);
        this.#compactedThrough = oldest - 1;
      }
    });
  }

  #arm(lease: LeaseState): void {
    this.#disarm(lease);
    lease.timer = setTimeout(() => this.revoke(lease.id), lease.ttlSeconds * 1000);
    lease.timer.unref();
  }

  #disarm(lease: LeaseState): void {
    if (lease.timer !== null) clearTimeout(lease.timer);
    lease.timer = null;
  }
}

/** One node's connection to a MemoryEtcd. */
class MemoryEtcdClient implements DirectoryStore {
  reachable = true;
  dead = false;
  #closed = false;
  readonly #cancels = new Set<() => void>();

  constructor(private readonly etcd: MemoryEtcd) {}

  grantLease(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    return this.#run('grant a lease', () => this.etcd.grant(this, ttlSeconds));
  }

  renewLease(id: string): Promise<boolean> {
    return this.#run('renew the lease', () => this.etcd.renew(id));
  }

  revokeLease(id: string): Promise<void> {
    return this.#run('revoke the lease', () => this.etcd.revoke(id));
  }

  get(key: string): Promise<StoredKey | null> {
    return this.#run(`read ${key}`, () => this.etcd.get(key));
  }

  list(prefix: string): Promise<{ keys: StoredKey[]; revision: string }> {
    return this.#run(`list ${prefix}`, () => this.etcd.list(prefix));
  }

  put(key: string, value: string, lease: string, ifModRevision: string | null): Promise<PutResult> {
    return this.#run(`write ${key}`, () => this.etcd.put(key, value, lease, ifModRevision));
  }

  deleteIf(key: string, ifModRevision: string): Promise<boolean> {
    return this.#run(`delete ${key}`, () => this.etcd.deleteIf(key, ifModRevision));
  }

  watch(prefix: string, afterRevision: string, onChange: (change: StoreChange) => void): () => void {
    if (this.#closed) return () => {};
    const cancel = this.etcd.watch(this, prefix, afterRevision, onChange);
    this.#cancels.add(cancel);
    return () => {
      this.#cancels.delete(cancel);
      cancel();
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const cancel of this.#cancels) cancel();
    this.#cancels.clear();
  }

  /**
   * Answers on a later turn, as over a network; fails as a refused connection would. A killed node's
   * calls never answer: its process is gone, so nothing after them runs.
   */
  async #run<T>(what: string, operation: () => T): Promise<T> {
    if (this.dead) return new Promise<never>(() => {});
    await new Promise((resolve) => setImmediate(resolve));
    if (this.#closed) throw new NormaError('CLUSTER_UNAVAILABLE', `cannot ${what}: the client is closed`);
    if (!this.etcd.up || !this.reachable) {
      throw new NormaError(
        'CLUSTER_UNAVAILABLE',
        `cannot ${what} in the in-memory etcd: it is not reachable`,
      );
    }
    return operation();
  }
}

function stored(key: string, entry: Entry): StoredKey {
  return { key, value: entry.value, modRevision: String(entry.modRevision) };
}
