/**
 * The cluster directory: what the nodes of one norma cluster know of each other. Three tables, all
 * kept in etcd (etcd-directory.ts) or, for tests and single-process setups, in an in-memory etcd
 * (memory-directory.ts):
 *
 * - **members**: one record per live node (its address, pid and load), held by the node's lease;
 * - **names**: the network-wide name service (NORMA's netname server), a service name to the port
 *   registered under it, create-if-absent, held by the registering node's lease;
 * - **ports**: the port directory, a port id to the node that holds its receive right now, held by
 *   that node's lease.
 *
 * Everything a node writes is attached to its one lease, so a node that dies (or is cut off longer
 * than the lease TTL) vanishes from all three tables at once, and `leave()` empties them at once by
 * revoking the lease. This file is the pure part: the records, the interface, the key layout, the
 * value codec, and the subset of etcd the directory needs (`DirectoryStore`), which both the etcd
 * client and the in-memory etcd implement; the directory logic itself (etcd-directory.ts) is one
 * class over either store, so both implementations have the same semantics by construction and the
 * one test suite checks the logic and the two stores.
 *
 * **Values are JSON**, not CBOR (the snapshot format's encoding): the records are small and written
 * rarely (join, a load update, a registration), and an operator debugging a cluster reads them with
 * `etcdctl get --prefix /norma/`; CBOR would print as bytes. Decoding validates every record (a value
 * written by another program, or a version with another shape, is CLUSTER_RECORD_CORRUPT naming the
 * key); unknown fields are ignored, so a newer node may add fields without breaking older ones.
 *
 * Key layout, one cluster per prefix (several clusters may share one etcd):
 *
 *     /norma/<cluster>/members/<member name>   MemberRecord
 *     /norma/<cluster>/names/<service name>    NameRecord
 *     /norma/<cluster>/ports/<port id>         PortRecord
 */
import assert from 'node:assert/strict';
import { z } from 'zod';
import { NormaError } from '../errors.js';
import { clusterNameBytesMax, portIdBytesMax, serviceNameBytesMax } from '../limits.js';

/** A node's load as it reports it (the migration policy reads it). */
export interface MemberLoad {
  /** Tasks running on the node (frozen ones are not counted: they run nowhere). */
  readonly tasks: number;
  /** Threads ready to run. */
  readonly runnable: number;
  /** CPU use over the last interval, 0..1. */
  readonly cpu: number;
}

/** One live node of the cluster. */
export interface MemberRecord {
  /** The node's name in the cluster: unique among live members. */
  readonly name: string;
  /** Unique per start of the node: tells a restarted node from the one that held the name before. */
  readonly incarnation: string;
  /** Where other nodes reach its transport, `host:port`. */
  readonly address: string;
  readonly pid: number;
  /** ISO 8601. */
  readonly startedAt: string;
  readonly load: MemberLoad;
}

/** One registration of the network-wide name service. */
export interface NameRecord {
  /** The service name. */
  readonly name: string;
  /** The port registered under it. */
  readonly portId: string;
  /** The member that registered it (its lease holds the registration). */
  readonly node: string;
  readonly incarnation: string;
}

/** Where a port's receive right lives. */
export interface PortRecord {
  readonly portId: string;
  /** The member that holds the receive right. */
  readonly node: string;
  readonly incarnation: string;
}

export interface MemberEvent {
  readonly kind: 'joined' | 'left' | 'updated';
  readonly member: MemberRecord;
}

/** What a directory tells about its own link to etcd (`watchStatus`). */
export type StatusEvent =
  /** etcd does not answer: calls reject with CLUSTER_UNAVAILABLE until 'available'. */
  | { readonly kind: 'unavailable'; readonly error: NormaError }
  /** etcd answers again, and this node's records are in it. */
  | { readonly kind: 'available' }
  /**
   * This node's lease had expired (it was cut off longer than the TTL): a new lease was granted and
   * the member record, names and port locations re-put, except those another node took meanwhile,
   * which this node no longer holds.
   */
  | { readonly kind: 'rejoined'; readonly lostNames: string[]; readonly lostPorts: string[] }
  /**
   * This node's lease had expired and another node now holds its member name: this directory has
   * left the cluster for good (calls reject with CLUSTER_EVICTED).
   */
  | { readonly kind: 'evicted'; readonly holder: MemberRecord };

/**
 * The directory as one node sees it. Every call that talks to etcd rejects with CLUSTER_UNAVAILABLE
 * within `clusterCallMsMax` (per etcd round trip) when etcd does not answer, and at once while the
 * directory is unavailable; it recovers by itself (see `watchStatus`).
 */
export interface ClusterDirectory {
  readonly cluster: string;
  /** False from an 'unavailable' event until the next 'available' one. */
  readonly available: boolean;

  /**
   * Grants this node's lease and puts its member record. Rejects with CLUSTER_MEMBER_NAME_TAKEN when a
   * live member (another incarnation) holds the name. Once per directory.
   */
  join(self: MemberRecord): Promise<void>;
  /** Rewrites this node's member record with a new load. */
  updateLoad(load: MemberLoad): Promise<void>;
  /** The live members, by name. */
  members(): Promise<MemberRecord[]>;
  /**
   * Calls `listener` with a 'joined' event for each member there is when the watch starts, then
   * with every change: 'joined', 'updated' (a new load), 'left' (the node left, or its lease
   * expired). Survives etcd restarts: after a reconnection it reports what changed meanwhile.
   * Resolves once the watch is in place; the function it resolves to stops it.
   */
  watchMembers(listener: (event: MemberEvent) => void): Promise<() => void>;

  /**
   * Registers `portId` under the service `name` unless another port is registered under it:
   * 'taken'. Registering the same port again is 'registered' (a retry after a timeout is safe).
   */
  registerName(name: string, portId: string): Promise<'registered' | 'taken'>;
  /** Removes the registration if `name` still maps to `portId`; false otherwise. */
  unregisterName(name: string, portId: string): Promise<boolean>;
  lookupName(name: string): Promise<NameRecord | null>;
  /** Every registration, by name. */
  names(): Promise<NameRecord[]>;

  /** Records that the receive right of `portId` lives on this node now (a port received or created here). */
  setPortLocation(portId: string): Promise<void>;
  /** Removes the location if it is still this node (a port sent away or destroyed); false otherwise. */
  clearPortLocation(portId: string): Promise<boolean>;
  /** The member that holds the receive right of `portId`, or null when no live member says it does. */
  portLocation(portId: string): Promise<string | null>;

  /** Calls `listener` on every StatusEvent until the returned function is called. */
  watchStatus(listener: (event: StatusEvent) => void): () => void;
  /** Revokes the lease: this node's member record, names and port locations vanish at once. */
  leave(): Promise<void>;
  /** Stops renewing and watching and closes the connection (the lease expires by itself, unless left). */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// The store: the subset of etcd the directory uses.

/** A key as the store holds it. */
export interface StoredKey {
  readonly key: string;
  readonly value: string;
  /** The store revision of the key's last write: what a compare-and-swap compares. */
  readonly modRevision: string;
}

export type PutResult =
  | { readonly kind: 'written' }
  /** The key's mod revision was not the expected one; `current` is the key now (null: absent). */
  | { readonly kind: 'conflict'; readonly current: StoredKey | null }
  /** The lease does not exist (any more): nothing was written. */
  | { readonly kind: 'lease-lost' };

export type StoreChange =
  | { readonly kind: 'put'; readonly key: string; readonly value: string }
  | { readonly kind: 'delete'; readonly key: string }
  /** The watch could not resume where it stopped (history compacted): list again and diff. */
  | { readonly kind: 'reset' };

/**
 * etcd's semantics, reduced to what the directory needs. Revisions are decimal strings (etcd's
 * int64s). Every call rejects with a NormaError CLUSTER_UNAVAILABLE when the store does not answer
 * within the store's call limit; other rejections are bugs.
 */
export interface DirectoryStore {
  /** Grants a lease; the store may round the TTL up (etcd's minimum is 1.5 election timeouts). */
  grantLease(ttlSeconds: number): Promise<{ readonly id: string; readonly ttlSeconds: number }>;
  /** Renews the lease for its whole TTL; false when the store no longer has it (expired or revoked). */
  renewLease(id: string): Promise<boolean>;
  /** Revokes the lease, deleting its keys; a lease already gone is not an error. */
  revokeLease(id: string): Promise<void>;
  get(key: string): Promise<StoredKey | null>;
  /** The keys under `prefix` and the store revision they were read at. */
  list(prefix: string): Promise<{ readonly keys: StoredKey[]; readonly revision: string }>;
  /**
   * Writes `value` attached to lease `lease` if the key's mod revision is `ifModRevision` ('0': the
   * key is absent), or unconditionally when it is null.
   */
  put(key: string, value: string, lease: string, ifModRevision: string | null): Promise<PutResult>;
  /** Deletes the key if its mod revision is still `ifModRevision`; false otherwise. */
  deleteIf(key: string, ifModRevision: string): Promise<boolean>;
  /**
   * Reports every change under `prefix` after store revision `afterRevision`, in order, across
   * reconnections, until the returned function is called.
   */
  watch(prefix: string, afterRevision: string, onChange: (change: StoreChange) => void): () => void;
  /** Releases the connection; pending calls reject. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Keys.

export interface ClusterKeys {
  readonly members: string;
  readonly names: string;
  readonly ports: string;
  member(name: string): string;
  name(name: string): string;
  port(portId: string): string;
}

const clusterNamePattern = /^[A-Za-z0-9._-]+$/;

/** Checks a cluster name (the key prefix of its records). Member names are node names (checkNodeName). */
export function checkClusterName(name: string): void {
  if (!clusterNamePattern.test(name) || Buffer.byteLength(name) > clusterNameBytesMax) {
    throw new NormaError(
      'USAGE',
      `invalid cluster name ${JSON.stringify(name)}: use 1 to ${clusterNameBytesMax} letters, digits, '.', '_' or '-'`,
    );
  }
}

export function clusterKeys(cluster: string): ClusterKeys {
  checkClusterName(cluster);
  const root = `/norma/${cluster}/`;
  const members = `${root}members/`;
  const names = `${root}names/`;
  const ports = `${root}ports/`;
  return {
    members,
    names,
    ports,
    member: (name) => members + name,
    name: (name) => {
      assert.ok(name.length > 0 && Buffer.byteLength(name) <= serviceNameBytesMax, 'service name length');
      return names + name;
    },
    port: (portId) => {
      assert.ok(portId.length > 0 && Buffer.byteLength(portId) <= portIdBytesMax, 'port id length');
      return ports + portId;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Values.

const memberSchema = z.object({
  name: z.string().min(1),
  incarnation: z.string().min(1),
  address: z.string(),
  pid: z.number().int(),
  startedAt: z.string(),
  load: z.object({
    tasks: z.number().int().nonnegative(),
    runnable: z.number().int().nonnegative(),
    cpu: z.number().min(0).max(1),
  }),
}) satisfies z.ZodType<MemberRecord>;

const nameSchema = z.object({
  name: z.string().min(1),
  portId: z.string().min(1),
  node: z.string().min(1),
  incarnation: z.string().min(1),
}) satisfies z.ZodType<NameRecord>;

const portSchema = z.object({
  portId: z.string().min(1),
  node: z.string().min(1),
  incarnation: z.string().min(1),
}) satisfies z.ZodType<PortRecord>;

/** A key and its value, as read or as a watch reports it. */
type KeyValue = Pick<StoredKey, 'key' | 'value'>;

export function encodeRecord(record: MemberRecord | NameRecord | PortRecord): string {
  return JSON.stringify(record);
}

/** Decodes a member record; its name must be the last part of its key. */
export function decodeMember(keys: ClusterKeys, stored: KeyValue): MemberRecord {
  const record = decode(stored, memberSchema);
  if (keys.member(record.name) !== stored.key) corrupt(stored, `it names member ${record.name}`);
  return record;
}

export function decodeName(keys: ClusterKeys, stored: KeyValue): NameRecord {
  const record = decode(stored, nameSchema);
  if (keys.name(record.name) !== stored.key) corrupt(stored, `it names service ${record.name}`);
  return record;
}

export function decodePort(keys: ClusterKeys, stored: KeyValue): PortRecord {
  const record = decode(stored, portSchema);
  if (keys.port(record.portId) !== stored.key) corrupt(stored, `it names port ${record.portId}`);
  return record;
}

function decode<T>(stored: KeyValue, schema: z.ZodType<T>): T {
  let json: unknown;
  try {
    json = JSON.parse(stored.value);
  } catch {
    corrupt(stored, 'it is not JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) corrupt(stored, z.prettifyError(parsed.error));
  return parsed.data;
}

function corrupt(stored: KeyValue, why: string): never {
  throw new NormaError('CLUSTER_RECORD_CORRUPT', `the value of ${stored.key} is not a norma record: ${why}`);
}
