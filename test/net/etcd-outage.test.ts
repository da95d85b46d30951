// etcd stopped while two node daemons run, then started again on the same data and port: what an
// operator sees. Real processes throughout: etcd, `norma node start --detach` for n1 and n2, every
// command a child process. The three tests are the phases of one story and run in order (each
// depends on the one before). Every wait polls a condition, with a bound; the latencies are printed
// for the record.
//
// The tasks: counter-server (registers "counter"), counter-client (N increments, then GET; without
// `keep` it stops the server), right-broker (holds a right to "counter" and hands copies out under
// "broker:counter"), broker-client (gets the right from the broker and uses it).
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorCodes } from '../../src/errors.js';
import { clusterCallMsMax } from '../../src/limits.js';
import { exited, ok, on, poll, spawnTask, task, waitForTask } from '../node/node-helpers.js';
import type { CliResult } from '../support/cli.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import type { TestEtcd } from '../support/etcd.js';
import { taskModulePath } from '../support/fixtures.js';

const module = taskModulePath;
/** The nodes' lease TTL, in seconds. */
const leaseTtl = 2;
/** A cluster command that meets a dead etcd fails within one etcd call, plus the CLI's own start. */
const failMsMax = clusterCallMsMax + 2000;
/** Once etcd is healthy again, each node answers `norma nodes` within this. */
const recoverMsMax = 10_000;
/** Attempts of a poll (100 ms apart, each a CLI call) for a state the nodes reach by themselves. */
const settleAttempts = 30;

interface Members {
  members: { name: string; incarnation: string; self: boolean; load: { tasks: number } }[];
}

describe('etcd outage under a running cluster (two node daemons)', function () {
  this.timeout(30_000);
  let cluster: TestCluster | null = null;
  let etcd: TestEtcd;
  let stores: Record<string, string> = {};
  /** Each member's incarnation before the outage: the same after it means nobody restarted or was evicted. */
  let incarnations: Record<string, string> = {};
  /** counter-server on n1, running from before the outage. */
  let server = 0;

  before(async function () {
    this.timeout(60_000);
    cluster = await startCluster(['n1', 'n2'], { leaseTtl });
    ({ etcd, stores } = cluster);
  });

  after(async function () {
    this.timeout(60_000);
    await cluster?.stop();
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    for (const [name, store] of Object.entries(stores)) {
      let log: string;
      try {
        log = readFileSync(join(store, 'node.log'), 'utf8');
      } catch {
        log = '(no node.log)';
      }
      process.stderr.write(`--- ${name}: node.log\n${log.split('\n').slice(-40).join('\n')}\n`);
    }
  });

  it('before the outage: both nodes are members, tasks run, names reach the other node', async () => {
    const n1 = members(JSON.parse(await ok(stores.n1!, 'nodes', '--json')) as Members);
    const n2 = members(JSON.parse(await ok(stores.n2!, 'nodes', '--json')) as Members);
    assert.deepEqual(n1.names, ['n1', 'n2']);
    assert.deepEqual(n2.names, ['n1', 'n2']);
    assert.deepEqual(n1.incarnations, n2.incarnations);
    incarnations = n1.incarnations;

    server = await spawnTask(stores.n1!, module('counter-server'));
    await poll('"counter" of n1 in the names n2 lists', async () =>
      (await names(stores.n2!)).counter === 'n1' ? true : undefined,
    );
    // right-broker looks "counter" up through etcd now: n2 holds a right to n1's port from here on.
    const broker = await spawnTask(stores.n2!, module('right-broker'), '--', 'counter', '1');
    await poll('right-broker serving', async () =>
      (await ok(stores.n2!, 'logs', String(broker))).includes('serving') ? true : undefined,
    );
    await poll('n2 to see the load of n1: one task', async () =>
      (await loadOf(stores.n2!, 'n1')) === 1 ? true : undefined,
    );
    const client = await spawnTask(stores.n1!, module('counter-client'), '--', '2', 'keep');
    await waitForTask(stores.n1!, client, 'exits', exited);
    assert.equal(await ok(stores.n1!, 'logs', String(client)), 'counter = 2\n');
  });

  it('etcd stopped: cluster commands fail fast with CLUSTER_UNAVAILABLE, the rest goes on', async () => {
    await etcd.kill();

    // The first command may be the one that finds etcd gone: it waits for one etcd call at most.
    const first = await timed(() => on(stores.n1!, 'nodes'));
    report('first `norma nodes` after etcd was killed', first.ms);
    assertUnavailable(first.result, false);
    assert.ok(first.ms < failMsMax, `norma nodes took ${first.ms} ms`);
    for (const [node, command, json] of [
      ['n1', 'nodes', true],
      ['n2', 'nodes', false],
      ['n2', 'nodes', true],
      ['n1', 'names', false],
      ['n2', 'names', true],
    ] as const) {
      const call = await timed(() => on(stores[node]!, command, ...(json ? ['--json'] : [])));
      assertUnavailable(call.result, json);
      assert.ok(call.ms < failMsMax, `norma ${command} on ${node} took ${call.ms} ms`);
    }

    // Both daemons answer; one forwards a command to the other (over the cluster's own links).
    assert.equal((await task(stores.n1!, server)).status, 'running');
    const forwarded = JSON.parse(await ok(stores.n1!, 'ps', '--json', '--node', 'n2')) as {
      tasks: { name: string; status: string }[];
    };
    assert.deepEqual(
      forwarded.tasks.map((t) => [t.name, t.status]),
      [['right-broker', 'running']],
    );

    // A new task, and IPC between two tasks of one node: a client on n1 finds the server on n1.
    const local = await spawnTask(stores.n1!, module('counter-client'), '--', '3', 'keep');
    await waitForTask(stores.n1!, local, 'exits', exited);
    assert.equal(await ok(stores.n1!, 'logs', String(local)), 'counter = 5\n');

    // IPC across nodes through a port n2 knows from before the outage: broker-client on n2 gets
    // the right from right-broker (a name of n2) and calls n1's server with it.
    const remote = await spawnTask(stores.n2!, module('broker-client'), '--', 'counter', '4');
    await waitForTask(stores.n2!, remote, 'exits', exited);
    assert.equal(await ok(stores.n2!, 'logs', String(remote)), 'counter = 9\n');

    // The server that ran from before the outage served all of that and ends now, on request,
    // with the count of everything it handled. Its name goes with it (etcd is told later).
    const last = await spawnTask(stores.n1!, module('counter-client'), '--', '1');
    await waitForTask(stores.n1!, last, 'exits', exited);
    assert.equal(
      await ok(stores.n1!, 'logs', String(last)),
      'counter = 10\nserver stopped after 15 requests\n',
    );
    const stopped = await waitForTask(stores.n1!, server, 'exits', exited);
    assert.equal(stopped.exit?.code, 0);
    assert.equal(
      await ok(stores.n1!, 'logs', String(server)),
      'counter-server: registered "counter"\ncounter-server: stopped after 15 requests, counter = 10\n',
    );

    // A server started during the outage registers its name on its node (etcd is told later).
    const during = await spawnTask(stores.n2!, module('counter-server'));
    await poll('the server on n2 registered', async () =>
      (await ok(stores.n2!, 'logs', String(during))).includes('registered') ? true : undefined,
    );
    const nearby = await spawnTask(stores.n2!, module('counter-client'), '--', '1', 'keep');
    await waitForTask(stores.n2!, nearby, 'exits', exited);
    assert.equal(await ok(stores.n2!, 'logs', String(nearby)), 'counter = 1\n');

    // Still refused, and at once: the node knows etcd is down and does not wait for it again (a
    // command that needs no etcd, on the same node, is the measure of "at once").
    const withoutEtcd = await timed(() => on(stores.n2!, 'ps'));
    const again = await timed(() => on(stores.n2!, 'nodes', '--json'));
    report('`norma nodes` while etcd is known to be down', again.ms);
    assertUnavailable(again.result, true);
    assert.ok(
      again.ms < withoutEtcd.ms + clusterCallMsMax / 2,
      `norma nodes took ${again.ms} ms, norma ps ${withoutEtcd.ms} ms: it waited for etcd`,
    );
  });

  it('etcd back: the same members, the names caught up, lookups cross nodes again', async () => {
    await etcd.restart();
    const healthyAt = performance.now();
    for (const name of ['n1', 'n2']) {
      const listed = await poll(
        `norma nodes on ${name} to work again`,
        async () => {
          const result = await on(stores[name]!, 'nodes', '--json');
          if (result.code === 0) return members(JSON.parse(result.stdout) as Members);
          assertUnavailable(result, true);
          return undefined;
        },
        settleAttempts,
      );
      assert.deepEqual(listed.names, ['n1', 'n2']);
      assert.deepEqual(listed.incarnations, incarnations, 'the same node processes, neither evicted');
    }
    const recoveredMs = performance.now() - healthyAt;
    report('etcd healthy again to `norma nodes` working on both nodes', recoveredMs);
    assert.ok(recoveredMs < recoverMsMax, `recovered in ${recoveredMs} ms`);

    // The load n1 reports caught up: its server ended during the outage.
    await poll(
      'n2 to see the load of n1: no task',
      async () => ((await loadOf(stores.n2!, 'n1')) === 0 ? true : undefined),
      settleAttempts,
    );

    // The name service caught up with the outage: the name of n2's server, registered during it,
    // is published; those of n1's server and of right-broker, both ended during it, are withdrawn.
    let listed: Record<string, string> = {};
    await poll(
      'the names registered and withdrawn during the outage to reach etcd',
      async () => {
        listed = await names(stores.n1!);
        return JSON.stringify(listed) === JSON.stringify({ counter: 'n2' }) ? true : undefined;
      },
      settleAttempts,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; n1 lists ${JSON.stringify(listed)}`);
    });
    assert.deepEqual(await names(stores.n2!), { counter: 'n2' });

    // A client on n1 looks "counter" up across nodes and stops n2's server.
    const across = await spawnTask(stores.n1!, module('counter-client'), '--', '4');
    await waitForTask(stores.n1!, across, 'exits', exited);
    assert.equal(
      await ok(stores.n1!, 'logs', String(across)),
      'counter = 5\nserver stopped after 8 requests\n',
    );
    await poll('"counter" withdrawn', async () =>
      Object.keys(await names(stores.n1!)).length === 0 ? true : undefined,
    );

    // A name registered after the outage reaches the other node, and so do its clients.
    await spawnTask(stores.n1!, module('counter-server'));
    await poll('"counter" of n1 in the names n2 lists', async () =>
      (await names(stores.n2!)).counter === 'n1' ? true : undefined,
    );
    const back = await spawnTask(stores.n2!, module('counter-client'), '--', '3');
    await waitForTask(stores.n2!, back, 'exits', exited);
    assert.equal(
      await ok(stores.n2!, 'logs', String(back)),
      'counter = 3\nserver stopped after 5 requests\n',
    );
  });

  /** A cluster command refused for the outage: a nonzero exit, the code, what failed, what to do. */
  function assertUnavailable(result: CliResult, json: boolean): void {
    assert.equal(result.code, 69, `exit code ${result.code} (EX_UNAVAILABLE expected): ${result.stdout}`);
    assert.equal(result.stdout, '');
    let error: { code?: string; message?: string; hint?: string };
    if (json) {
      error = (JSON.parse(result.stderr) as { error: typeof error }).error;
    } else {
      const printed = /^norma: ([A-Z_]+): (.*)\n {2}hint: (.*)\n$/s.exec(result.stderr);
      assert.ok(printed, `unexpected error output: ${result.stderr}`);
      error = { code: printed[1], message: printed[2], hint: printed[3] };
    }
    assert.equal(error.code, 'CLUSTER_UNAVAILABLE', result.stderr);
    assert.ok(error.message?.includes(etcd.endpoint), `the message names etcd's URL: ${result.stderr}`);
    assert.equal(error.hint, errorCodes.CLUSTER_UNAVAILABLE);
  }
});

function members(listed: Members): { names: string[]; incarnations: Record<string, string> } {
  return {
    names: listed.members.map((m) => m.name),
    incarnations: Object.fromEntries(listed.members.map((m) => [m.name, m.incarnation])),
  };
}

/** The number of tasks member `name` reports, as the node of `store` lists it. */
async function loadOf(store: string, name: string): Promise<number | undefined> {
  const listed = JSON.parse(await ok(store, 'nodes', '--json')) as Members;
  return listed.members.find((m) => m.name === name)?.load.tasks;
}

/** The cluster's name service as the node of `store` lists it: service name to node. */
async function names(store: string): Promise<Record<string, string>> {
  const listed = JSON.parse(await ok(store, 'names', '--json')) as {
    names: { name: string; node: string }[];
  };
  return Object.fromEntries(listed.names.map((n) => [n.name, n.node]));
}

async function timed(call: () => Promise<CliResult>): Promise<{ result: CliResult; ms: number }> {
  const started = performance.now();
  const result = await call();
  return { result, ms: performance.now() - started };
}

function report(what: string, ms: number): void {
  console.log(`      ${what}: ${ms.toFixed(0)} ms`);
}
