/**
 * The cluster directory's one suite, run against both stores: the in-memory etcd and a real etcd
 * (started per suite, on free ports, with 1 s leases). Each failure a test provokes is one the
 * store really has: a node process SIGKILLed (a child process for etcd), etcd killed and restarted
 * on the same data, one node cut off by a TCP proxy, history compacted under a cut-off watch.
 *
 * Tests wait on events (member watches, status events), never on fixed sleeps; each wait has a
 * bound that is part of the assertion (a node that dies must vanish within a few TTLs), and the
 * latencies are measured and printed for the record.
 */
import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import type {
  ClusterDirectory,
  MemberEvent,
  MemberRecord,
  StatusEvent,
} from '../../src/cluster/cluster-directory.js';
import { EtcdDirectory } from '../../src/cluster/etcd-directory.js';
import { MemoryEtcd } from '../../src/cluster/memory-directory.js';
import { isNormaError } from '../../src/errors.js';
import { clusterCallMsMax, clusterProbeIntervalMs } from '../../src/limits.js';
import { startEtcd, startTcpProxy, type TcpProxy, type TestEtcd } from '../support/etcd.js';

/** The lease TTL of every test node. */
const ttlSeconds = 1;
/** A node that stops renewing must be gone from the directory within this (etcd checks expiry every 500 ms). */
const vanishMsMax = 3 * ttlSeconds * 1000;
/** Bound on any awaited event that has no tighter one. */
const eventMsMax = 10_000;

/** What the suite needs from a store, and the failures it can provoke in it. */
interface Backend {
  readonly name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A new node's directory in `cluster`. */
  open(cluster: string): Promise<ClusterDirectory>;
  /** A node (in its own process where the store allows) that joined as `member`, registered `name` and holds `portId`. */
  startNode(cluster: string, member: MemberRecord, name: string, portId: string): Promise<{ kill(): void }>;
  /** A node whose link to the store the test can cut and heal. */
  openCuttable(cluster: string): Promise<{ directory: ClusterDirectory; cut(): void; heal(): void }>;
  /** An outage of the whole store, and its end (same data). */
  stopStore(): Promise<void>;
  restartStore(): Promise<void>;
  /** Discards the store's history up to now. */
  compact(): Promise<void>;
  /** Ends the lease of member `name` (whose directory is `directory`) behind its back. */
  expireLease(directory: ClusterDirectory, cluster: string, name: string): Promise<void>;
}

class MemoryBackend implements Backend {
  readonly name = 'memory';
  #etcd = new MemoryEtcd();

  async setup(): Promise<void> {
    this.#etcd = new MemoryEtcd();
  }

  async teardown(): Promise<void> {}

  async open(cluster: string): Promise<ClusterDirectory> {
    return this.#etcd.directory({ cluster, ttlSeconds });
  }

  async startNode(
    cluster: string,
    member: MemberRecord,
    name: string,
    portId: string,
  ): Promise<{ kill(): void }> {
    const directory = await this.open(cluster);
    await directory.join(member);
    assert.equal(await directory.registerName(name, portId), 'registered');
    await directory.setPortLocation(portId);
    return { kill: () => this.#etcd.kill(directory) };
  }

  async openCuttable(cluster: string): Promise<{ directory: ClusterDirectory; cut(): void; heal(): void }> {
    const directory = await this.open(cluster);
    return { directory, cut: () => this.#etcd.partition(directory), heal: () => this.#etcd.heal(directory) };
  }

  async stopStore(): Promise<void> {
    this.#etcd.stop();
  }

  async restartStore(): Promise<void> {
    this.#etcd.start();
  }

  async compact(): Promise<void> {
    this.#etcd.compact();
  }

  async expireLease(directory: ClusterDirectory): Promise<void> {
    this.#etcd.expireLease(directory);
  }
}

/** A node process for the SIGKILL case: joins, registers, says "ready", then waits to be killed. */
const nodeScript = `
const { EtcdDirectory } = await import(process.env.NORMA_DIRECTORY_MODULE);
const { endpoint, cluster, ttlSeconds, member, name, portId } = JSON.parse(process.env.NORMA_NODE);
const directory = await EtcdDirectory.connect({ endpoints: [endpoint], cluster, ttlSeconds });
await directory.join(member);
if ((await directory.registerName(name, portId)) !== 'registered') throw new Error('name taken');
await directory.setPortLocation(portId);
process.stdout.write('ready\\n');
setInterval(() => {}, 60_000);
`;

class EtcdBackend implements Backend {
  readonly name = 'etcd';
  #etcd: TestEtcd | null = null;
  readonly #children = new Set<ChildProcess>();
  readonly #proxies = new Set<{ close(): Promise<void> }>();

  get #store(): TestEtcd {
    assert.ok(this.#etcd !== null, 'etcd is not started');
    return this.#etcd;
  }

  async setup(): Promise<void> {
    this.#etcd = await startEtcd();
  }

  async teardown(): Promise<void> {
    for (const child of this.#children) child.kill('SIGKILL');
    for (const proxy of this.#proxies) await proxy.close();
    await this.#etcd?.stop();
    this.#etcd = null;
  }

  open(cluster: string): Promise<ClusterDirectory> {
    return EtcdDirectory.connect({ endpoints: [this.#store.endpoint], cluster, ttlSeconds });
  }

  async startNode(
    cluster: string,
    member: MemberRecord,
    name: string,
    portId: string,
  ): Promise<{ kill(): void }> {
    const child = spawn(process.execPath, ['--input-type=module', '-e', nodeScript], {
      env: {
        ...process.env,
        NORMA_DIRECTORY_MODULE: new URL('../../src/cluster/etcd-directory.js', import.meta.url).href,
        NORMA_NODE: JSON.stringify({
          endpoint: this.#store.endpoint,
          cluster,
          ttlSeconds,
          member,
          name,
          portId,
        }),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.#children.add(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', (chunk: string) => {
        if (chunk.includes('ready')) resolve();
      });
      child.once('exit', (code) =>
        reject(new Error(`the node process exited (${code}) before it was ready`)),
      );
    });
    return {
      kill: () => {
        child.kill('SIGKILL');
        this.#children.delete(child);
      },
    };
  }

  async openCuttable(cluster: string): Promise<{ directory: ClusterDirectory; cut(): void; heal(): void }> {
    const proxy = await startTcpProxy(this.#store.endpoint);
    this.#proxies.add(proxy);
    const directory = await EtcdDirectory.connect({ endpoints: [proxy.endpoint], cluster, ttlSeconds });
    return { directory, cut: () => proxy.cut(), heal: () => proxy.heal() };
  }

  stopStore(): Promise<void> {
    return this.#store.kill();
  }

  restartStore(): Promise<void> {
    return this.#store.restart();
  }

  async compact(): Promise<void> {
    await this.#withClient(async (client) => {
      const { header } = await client.get('/').exec();
      await client.kv.compact({ revision: header.revision, physical: true });
    });
  }

  async expireLease(_directory: ClusterDirectory, cluster: string, name: string): Promise<void> {
    await this.#withClient(async (client) => {
      const { kvs } = await client.get(`/norma/${cluster}/members/${name}`).exec();
      assert.ok(kvs[0] !== undefined, `member ${name} is not in etcd`);
      await client.leaseClient.leaseRevoke({ ID: kvs[0].lease });
    });
  }

  /** An etcd client of the test's own, as an operator's etcdctl would be. */
  async #withClient(use: (client: Etcd3) => Promise<void>): Promise<void> {
    const client = new Etcd3({ hosts: this.#store.endpoint });
    try {
      await use(client);
    } finally {
      client.close();
    }
  }
}

/** Every event a source emits, kept, so that a test can wait for one that may already have come. */
class Events<T> {
  readonly #seen: T[] = [];
  readonly #waiters = new Set<{ match: (event: T) => boolean; resolve: (event: T) => void }>();

  readonly push = (event: T): void => {
    for (const waiter of this.#waiters) {
      if (waiter.match(event)) {
        this.#waiters.delete(waiter);
        waiter.resolve(event);
        return;
      }
    }
    this.#seen.push(event);
  };

  /** The first event (already seen and not yet taken, or to come) that `match` accepts; fails after `limitMs`. */
  take(what: string, match: (event: T) => boolean, limitMs = eventMsMax): Promise<T> {
    const index = this.#seen.findIndex(match);
    if (index !== -1) return Promise.resolve(this.#seen.splice(index, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (event: T) => {
          clearTimeout(timer);
          resolve(event);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`no ${what} within ${limitMs} ms (seen: ${JSON.stringify(this.#seen)})`));
      }, limitMs);
      this.#waiters.add(waiter);
    });
  }

  /** Events seen and not taken. */
  get pending(): readonly T[] {
    return this.#seen;
  }
}

function member(name: string): MemberRecord {
  return {
    name,
    incarnation: randomUUID(),
    address: `127.0.0.1:${7000 + name.length}`,
    pid: process.pid,
    startedAt: new Date().toISOString(),
    load: { tasks: 0, runnable: 0, cpu: 0 },
  };
}

function isMember(kind: MemberEvent['kind'], name: string): (event: MemberEvent) => boolean {
  return (event) => event.kind === kind && event.member.name === name;
}

function isStatus(kind: StatusEvent['kind']): (event: StatusEvent) => boolean {
  return (event) => event.kind === kind;
}

async function rejects(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isNormaError(error), `expected a NormaError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

async function timed<T>(operation: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await operation();
  return { result, ms: performance.now() - started };
}

function report(backend: Backend, what: string, ms: number): void {
  console.log(`      [${backend.name}] ${what}: ${ms.toFixed(1)} ms`);
}

for (const backend of [new MemoryBackend(), new EtcdBackend()]) {
  describe(`cluster directory (${backend.name})`, function () {
    this.timeout(30_000);
    let cluster = '';
    const opened: ClusterDirectory[] = [];

    async function node(): Promise<ClusterDirectory> {
      const directory = await backend.open(cluster);
      opened.push(directory);
      return directory;
    }

    async function joined(name: string): Promise<{ directory: ClusterDirectory; self: MemberRecord }> {
      const directory = await node();
      const self = member(name);
      await directory.join(self);
      return { directory, self };
    }

    async function watching(directory: ClusterDirectory): Promise<Events<MemberEvent>> {
      const events = new Events<MemberEvent>();
      await directory.watchMembers(events.push);
      return events;
    }

    function statusOf(directory: ClusterDirectory): Events<StatusEvent> {
      const events = new Events<StatusEvent>();
      directory.watchStatus(events.push);
      return events;
    }

    before(() => backend.setup());
    after(() => backend.teardown());
    beforeEach(() => {
      cluster = `t-${randomUUID().slice(0, 8)}`;
    });
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((directory) => directory.close()));
    });

    it('joins: the member is listed, with its record', async () => {
      const a = await node();
      const self = member('a');
      const join = await timed(() => a.join(self));
      report(backend, 'join (lease grant + put)', join.ms);
      assert.deepEqual(await a.members(), [self]);
      const { self: b } = await joined('b');
      assert.deepEqual(await a.members(), [self, b]);
      assert.equal(a.available, true);
    });

    it('refuses a second live node under the same name', async () => {
      const { directory: a, self } = await joined('a');
      const twin = await node();
      await rejects(twin.join(member('a')), 'CLUSTER_MEMBER_NAME_TAKEN');
      assert.deepEqual(await a.members(), [self]);
    });

    it('watches members join, update their load and leave', async () => {
      const { directory: a, self } = await joined('a');
      const events = await watching(a);
      assert.deepEqual(await events.take('a joined', isMember('joined', 'a')), {
        kind: 'joined',
        member: self,
      });
      const { directory: b } = await joined('b');
      await events.take('b joined', isMember('joined', 'b'));
      await b.updateLoad({ tasks: 3, runnable: 1, cpu: 0.5 });
      const updated = await events.take('b updated', isMember('updated', 'b'));
      assert.deepEqual(updated.member.load, { tasks: 3, runnable: 1, cpu: 0.5 });
      await b.leave();
      await events.take('b left', isMember('left', 'b'));
      assert.deepEqual(events.pending, []);
    });

    it('drops a node that stops renewing its lease (SIGKILL), with its names and port locations', async () => {
      const { directory: a } = await joined('a');
      const events = await watching(a);
      const doomed = await backend.startNode(cluster, member('x'), 'x-service', 'x-port-1');
      await events.take('x joined', isMember('joined', 'x'));
      assert.equal((await a.lookupName('x-service'))?.node, 'x');
      assert.equal(await a.portLocation('x-port-1'), 'x');
      const killedAt = performance.now();
      doomed.kill();
      await events.take('x left', isMember('left', 'x'), vanishMsMax);
      report(backend, `SIGKILL to 'left' (TTL ${ttlSeconds} s)`, performance.now() - killedAt);
      assert.equal(await a.lookupName('x-service'), null);
      assert.equal(await a.portLocation('x-port-1'), null);
      assert.deepEqual(await a.names(), []);
    });

    it('registers names once: a second port gets "taken", the same port again "registered"', async () => {
      const { directory: a } = await joined('a');
      const { directory: b } = await joined('b');
      const registered = await timed(() => a.registerName('echo', 'port-a1'));
      report(backend, 'registerName', registered.ms);
      assert.equal(registered.result, 'registered');
      assert.equal(await b.registerName('echo', 'port-b1'), 'taken');
      assert.equal(await a.registerName('echo', 'port-a1'), 'registered');
      assert.equal(await b.registerName('clock', 'port-b2'), 'registered');
      const lookup = await timed(() => b.lookupName('echo'));
      report(backend, 'lookupName', lookup.ms);
      assert.equal(lookup.result?.portId, 'port-a1');
      assert.equal(lookup.result?.node, 'a');
      assert.equal(await b.lookupName('nobody'), null);
      assert.deepEqual(
        (await a.names()).map(({ name, portId, node }) => ({ name, portId, node })),
        [
          { name: 'clock', portId: 'port-b2', node: 'b' },
          { name: 'echo', portId: 'port-a1', node: 'a' },
        ],
      );
    });

    it('unregisters a name only for the port it maps to', async () => {
      const { directory: a } = await joined('a');
      const { directory: b } = await joined('b');
      assert.equal(await a.registerName('echo', 'port-a1'), 'registered');
      assert.equal(await b.unregisterName('echo', 'port-b1'), false);
      assert.equal(await a.unregisterName('echo', 'port-other'), false);
      assert.equal((await b.lookupName('echo'))?.portId, 'port-a1');
      assert.equal(await a.unregisterName('echo', 'port-a1'), true);
      assert.equal(await a.lookupName('echo'), null);
      assert.equal(await a.unregisterName('echo', 'port-a1'), false);
      assert.equal(await b.registerName('echo', 'port-b1'), 'registered');
    });

    it('keeps port locations: set, look up, move, clear only by the holder', async () => {
      const { directory: a } = await joined('a');
      const { directory: b } = await joined('b');
      assert.equal(await a.portLocation('port-1'), null);
      await a.setPortLocation('port-1');
      assert.equal(await b.portLocation('port-1'), 'a');
      assert.equal(await b.clearPortLocation('port-1'), false);
      assert.equal(await b.portLocation('port-1'), 'a');
      // The port moves to b: b sets it, a's late clear must not erase it.
      await b.setPortLocation('port-1');
      assert.equal(await a.clearPortLocation('port-1'), false);
      assert.equal(await a.portLocation('port-1'), 'b');
      assert.equal(await b.clearPortLocation('port-1'), true);
      assert.equal(await a.portLocation('port-1'), null);
    });

    it('leave() removes the member, its names and its port locations at once', async () => {
      const { directory: a } = await joined('a');
      const { directory: b } = await joined('b');
      const events = await watching(a);
      await b.registerName('b-service', 'b-port');
      await b.setPortLocation('b-port');
      await b.leave();
      assert.deepEqual(
        (await a.members()).map((m) => m.name),
        ['a'],
      );
      assert.equal(await a.lookupName('b-service'), null);
      assert.equal(await a.portLocation('b-port'), null);
      await events.take('b left', isMember('left', 'b'));
    });

    it('rejects calls promptly while the store is down, and recovers when it is back', async () => {
      const { directory: a, self } = await joined('a');
      const { directory: b } = await joined('b');
      const status = statusOf(a);
      const events = await watching(b);
      await a.registerName('a-service', 'a-port');
      await a.setPortLocation('a-port');

      await backend.stopStore();
      const stoppedAt = performance.now();
      const first = await timed(() => rejects(a.lookupName('a-service'), 'CLUSTER_UNAVAILABLE'));
      report(backend, 'first call after the store stopped rejects in', first.ms);
      assert.ok(first.ms < clusterCallMsMax + 500, `took ${first.ms} ms`);
      await status.take('unavailable', isStatus('unavailable'), clusterCallMsMax + 1000);
      report(backend, "store stopped to 'unavailable'", performance.now() - stoppedAt);
      assert.equal(a.available, false);
      const next = await timed(() => rejects(a.registerName('other', 'other-port'), 'CLUSTER_UNAVAILABLE'));
      assert.ok(next.ms < 100, `a call while unavailable took ${next.ms} ms`);

      const restartedAt = performance.now();
      await backend.restartStore();
      await status.take('available', isStatus('available'), clusterProbeIntervalMs + clusterCallMsMax + 1000);
      report(
        backend,
        "store restart begun to 'available' (etcd's own start included)",
        performance.now() - restartedAt,
      );
      assert.equal(a.available, true);
      assert.deepEqual(
        (await a.members()).map((m) => m.name),
        ['a', 'b'],
      );
      assert.equal((await b.lookupName('a-service'))?.portId, 'a-port');
      assert.equal(await b.portLocation('a-port'), 'a');
      assert.deepEqual(await a.members().then((all) => all.find((m) => m.name === 'a')), self);
      // b's watch survived the restart: it sees a node that joins now.
      await joined('c');
      await events.take('c joined', isMember('joined', 'c'));
    });

    it('rejoins after a cut longer than the TTL: re-puts its records, except a name taken meanwhile', async () => {
      const { directory: a } = await joined('a');
      const events = await watching(a);
      const link = await backend.openCuttable(cluster);
      opened.push(link.directory);
      const status = statusOf(link.directory);
      const self = member('b');
      await link.directory.join(self);
      await link.directory.registerName('kept', 'b-port-1');
      await link.directory.registerName('contested', 'b-port-2');
      await link.directory.setPortLocation('b-port-1');
      await events.take('b joined', isMember('joined', 'b'));

      link.cut();
      const cutAt = performance.now();
      await status.take('unavailable', isStatus('unavailable'), clusterCallMsMax + 1000);
      await events.take('b left', isMember('left', 'b'), vanishMsMax + clusterCallMsMax);
      report(backend, "cut to 'left' as seen by another node", performance.now() - cutAt);
      assert.equal(await a.lookupName('kept'), null);
      assert.equal(await a.portLocation('b-port-1'), null);
      assert.equal(await a.registerName('contested', 'a-port'), 'registered');

      link.heal();
      const healedAt = performance.now();
      const rejoined = await status.take('rejoined', isStatus('rejoined'));
      await status.take('available', isStatus('available'));
      report(backend, "healed to 'available' (rejoined)", performance.now() - healedAt);
      assert.deepEqual(rejoined, { kind: 'rejoined', lostNames: ['contested'], lostPorts: [] });
      await events.take('b joined again', isMember('joined', 'b'));
      assert.equal((await a.lookupName('kept'))?.node, 'b');
      assert.equal((await a.lookupName('contested'))?.node, 'a');
      assert.equal(await a.portLocation('b-port-1'), 'b');
      assert.deepEqual(await a.members().then((all) => all.find((m) => m.name === 'b')), self);
      // What b holds now is attached to its new lease: leave() removes it at once.
      await link.directory.leave();
      assert.equal(await a.lookupName('kept'), null);
      assert.equal(await a.portLocation('b-port-1'), null);
    });

    it('rejoins when its lease ends behind its back; a write that meets the lost lease is applied after', async () => {
      const { directory: a } = await joined('a');
      const events = await watching(a);
      const { directory: b, self } = await joined('b');
      const status = statusOf(b);
      assert.equal(await b.registerName('b-service', 'b-port-1'), 'registered');
      await b.setPortLocation('b-port-1');
      await events.take('b joined', isMember('joined', 'b'));

      await backend.expireLease(b, cluster, 'b');
      await events.take('b left', isMember('left', 'b'));
      assert.equal(await b.registerName('b-other', 'b-port-2'), 'registered');
      assert.deepEqual(await status.take('rejoined', isStatus('rejoined')), {
        kind: 'rejoined',
        lostNames: [],
        lostPorts: [],
      });
      assert.deepEqual(await events.take('b joined again', isMember('joined', 'b')), {
        kind: 'joined',
        member: self,
      });
      assert.deepEqual(
        (await a.names()).map(({ name, node }) => `${name}@${node}`),
        ['b-other@b', 'b-service@b'],
      );
      assert.equal(await a.portLocation('b-port-1'), 'b');
      assert.deepEqual(status.pending, [], 'etcd never was unavailable');
      await b.leave();
      assert.deepEqual(await a.names(), []);
      assert.equal(await a.portLocation('b-port-1'), null);
    });

    it('keeps a name unregistered while a recovery re-puts the others', async () => {
      const { directory: b } = await joined('b');
      const names = Array.from({ length: 8 }, (_, i) => `gone-${i}`);
      for (const name of names) assert.equal(await b.registerName(name, `port-${name}`), 'registered');
      assert.equal(await b.registerName('kept', 'port-kept'), 'registered');
      await backend.expireLease(b, cluster, 'b');
      const status = statusOf(b);
      // The first write after the loss starts the recovery; the unregisters land at every point of it.
      const trigger = b.registerName('trigger', 'port-trigger');
      const removals: Promise<boolean>[] = [];
      for (const name of names) {
        removals.push(b.unregisterName(name, `port-${name}`));
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(await trigger, 'registered');
      // Each may find its record already gone with the lease (false): what matters is it stays gone.
      await Promise.all(removals);
      await status.take('rejoined', isStatus('rejoined'));
      assert.deepEqual(
        (await b.names()).map((record) => record.name),
        ['kept', 'trigger'],
        'the name never unregistered was put again, and no unregistered name came back',
      );
    });

    it('a member watch cut off while history is compacted lists again and reports the difference', async () => {
      const { directory: a } = await joined('a');
      const { directory: b } = await joined('b');
      const link = await backend.openCuttable(cluster);
      opened.push(link.directory);
      const events = await watching(link.directory);
      await events.take('a joined', isMember('joined', 'a'));
      await events.take('b joined', isMember('joined', 'b'));

      link.cut();
      await b.leave();
      await joined('c');
      await a.updateLoad({ tasks: 1, runnable: 1, cpu: 0.25 });
      await backend.compact();
      link.heal();

      await events.take('b left', isMember('left', 'b'));
      await events.take('c joined', isMember('joined', 'c'));
      const updated = await events.take('a updated', isMember('updated', 'a'));
      assert.equal(updated.member.load.tasks, 1);
      assert.deepEqual(events.pending, [], 'nothing else: the relist reports only what changed');
      assert.deepEqual(await a.members().then((all) => all.map((m) => m.name)), ['a', 'c']);
    });

    it('fails a join while the store is down, then says when it is back', async () => {
      const a = await node();
      const status = statusOf(a);
      await backend.stopStore();
      try {
        await rejects(a.join(member('a')), 'CLUSTER_UNAVAILABLE');
        await status.take('unavailable', isStatus('unavailable'));
      } finally {
        await backend.restartStore();
      }
      await status.take('available', isStatus('available'));
      await a.join(member('a'));
      assert.deepEqual(
        (await a.members()).map((m) => m.name),
        ['a'],
      );
    });
  });
}

describe('cluster directory (etcd that hangs)', function () {
  this.timeout(30_000);
  let etcd: TestEtcd;
  let proxy: TcpProxy;
  let directory: ClusterDirectory | null = null;

  before(async () => {
    etcd = await startEtcd();
    proxy = await startTcpProxy(etcd.endpoint);
  });
  after(async () => {
    await directory?.close();
    await proxy.close();
    await etcd.stop();
  });

  it('fails a call after clusterCallMsMax when etcd accepts it and never answers', async () => {
    directory = await EtcdDirectory.connect({ endpoints: [proxy.endpoint], cluster: 'hang', ttlSeconds });
    await directory.join(member('a'));
    proxy.silence();
    const call = await timed(() => rejects(directory!.lookupName('anything'), 'CLUSTER_UNAVAILABLE'));
    assert.ok(call.ms >= clusterCallMsMax - 50, `rejected after ${call.ms} ms: before the deadline`);
    assert.ok(call.ms < clusterCallMsMax + 1000, `rejected after ${call.ms} ms: long after the deadline`);
    assert.equal(directory.available, false);
    proxy.heal();
  });
});
