import { strict as assert } from 'node:assert';
import {
  exited,
  ok,
  on,
  spawnTask,
  startNode,
  stopNode,
  task,
  tempStore,
  uninterrupted,
  waitForLog,
  waitForTask,
} from './node-helpers.js';

const frozenLine = /^frozen ([0-9a-f]{16})$/;

describe('the node daemon: freeze and thaw on the same node', function () {
  this.timeout(180_000);
  const store = tempStore();

  before(async () => {
    await startNode(store);
  });

  after(async () => {
    await stopNode(store);
  });

  it('a frozen server keeps its queue: clients that send meanwhile lose no request', async () => {
    const server = await spawnTask(store, 'tasks/build/counter-server.wasm');
    await waitForLog(store, server, 'registered "counter"');
    // Frozen mid-way through this client's 300000 round trips (or after them: both must work).
    const busy = await spawnTask(store, 'tasks/build/counter-client.wasm', '--', '300000', 'keep');
    const frozen = frozenLine.exec((await ok(store, 'freeze', 'counter-server')).trim());
    assert.ok(frozen, 'freeze prints `frozen <snapshot-id>`');
    const snapshot = frozen[1]!;
    const info = await task(store, server);
    assert.equal(info.status, 'frozen');
    assert.equal(info.lastSnapshot, snapshot);
    assert.equal(info.threads, 0);

    // A client started now sends its first request to the frozen server: it waits in its queue.
    const late = await spawnTask(store, 'tasks/build/counter-client.wasm', '--', '1000', 'keep');
    for (let i = 0; i < 3; i++) assert.equal((await task(store, late)).status, 'running');
    const again = await on(store, 'freeze', String(server));
    assert.equal(again.code, 65);
    assert.match(again.stderr, /TASK_NOT_RUNNING/);

    assert.equal((await ok(store, 'thaw', snapshot.slice(0, 8))).trim(), `${server} counter-server`);
    assert.equal((await task(store, server)).status, 'running');
    const counts: number[] = [];
    for (const client of [busy, late]) {
      await waitForTask(store, client, 'exited', exited);
      const printed = /^counter = (\d+)\n$/.exec(await ok(store, 'logs', String(client)));
      assert.ok(printed);
      counts.push(Number(printed[1]));
    }
    // Each saw at least its own increments; the one that finished last saw all of them.
    assert.ok(counts[0]! >= 300000 && counts[1]! >= 1000, String(counts));
    assert.equal(Math.max(...counts), 301000);

    // Every request counted once: 301000 increments and 2 gets; then 1 increment, 1 get, 1 stop.
    const last = await spawnTask(store, 'tasks/build/counter-client.wasm', '--', '1');
    await waitForTask(store, last, 'exited', exited);
    assert.equal(
      await ok(store, 'logs', String(last)),
      'counter = 301001\nserver stopped after 301005 requests\n',
    );
    await waitForTask(store, server, 'exited', exited);
    assert.equal(
      await ok(store, 'logs', String(server)),
      'counter-server: registered "counter"\ncounter-server: stopped after 301005 requests, counter = 301001\n',
    );
  });

  it('a preemptible cpu-job frozen and thawed gives the output of an uninterrupted run', async () => {
    const job = await spawnTask(store, '--preempt', 'tasks/build/cpu-job.wasm', '--', '5000000');
    const first = frozenLine.exec((await ok(store, 'freeze', String(job))).trim());
    assert.ok(first);
    assert.equal((await ok(store, 'thaw', first[1]!)).trim(), `${job} cpu-job`);
    const second = await on(store, 'freeze', String(job));
    // It may have finished meanwhile on a fast machine; if not, a second round trip.
    if (second.code === 0) await ok(store, 'thaw', frozenLine.exec(second.stdout.trim())![1]!);
    await waitForTask(store, job, 'exited', exited);
    assert.equal(await ok(store, 'logs', String(job)), await uninterrupted('cpu-job', ['5000000'], true));
  });

  it('thawing a snapshot twice, or an old one of a frozen task, is refused (SNAPSHOT_CONFLICT)', async () => {
    const server = await spawnTask(store, '--name', 'conflicted', 'tasks/build/counter-server.wasm');
    await waitForLog(store, server, 'registered');
    const first = frozenLine.exec((await ok(store, 'freeze', 'conflicted')).trim())![1]!;
    await ok(store, 'thaw', first);
    const twice = await on(store, 'thaw', first);
    assert.equal(twice.code, 65, twice.stderr);
    assert.match(twice.stderr, /SNAPSHOT_CONFLICT/);
    const second = frozenLine.exec((await ok(store, 'freeze', 'conflicted')).trim())![1]!;
    const old = await on(store, 'thaw', first);
    assert.equal(old.code, 65);
    assert.match(old.stderr, new RegExp(`frozen on this node at snapshot ${second}`));
    // Killing a frozen task drops it (its ports die); its snapshot can then be thawed anew.
    assert.equal((await ok(store, 'kill', 'conflicted')).trim(), `dropped ${server} conflicted`);
    const [line] = (await ok(store, 'thaw', first)).trim().split('\n');
    const [id, name] = line!.split(' ');
    assert.equal(name, 'conflicted');
    assert.notEqual(Number(id), server);
    assert.equal((await task(store, Number(id))).status, 'running');
    await ok(store, 'kill', id!);
  });

  it('a snapshot id that does not exist is SNAPSHOT_NOT_FOUND', async () => {
    const result = await on(store, 'thaw', 'abcdef0123456789');
    assert.equal(result.code, 66);
    assert.match(result.stderr, /SNAPSHOT_NOT_FOUND/);
  });
});
