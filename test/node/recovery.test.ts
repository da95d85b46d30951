import { strict as assert } from 'node:assert';
import type { SnapshotSummary } from '../../src/snapshot/store.js';
import {
  exited,
  ok,
  on,
  poll,
  spawnTask,
  startNode,
  stopNode,
  task,
  tempStore,
  waitForLog,
  waitForTask,
} from './node-helpers.js';

describe('the node daemon: periodic checkpoints and crash recovery', function () {
  this.timeout(180_000);

  it('--checkpoint-every keeps only the last --keep checkpoints', async () => {
    const store = tempStore();
    let server = 0;
    try {
      await startNode(store);
      server = await spawnTask(
        store,
        '--checkpoint-every',
        '50',
        '--keep',
        '3',
        'tasks/build/counter-server.wasm',
      );
      const info = await waitForTask(
        store,
        server,
        '8 checkpoints taken',
        (t) => (t.checkpoint?.taken ?? 0) >= 8,
      );
      assert.equal(info.checkpoint?.everyMs, 50);
      assert.ok(info.checkpoint!.kept.length <= 3);
      assert.match(await ok(store, 'ps'), /every 50 ms, [0-3]\/3 kept/);
    } finally {
      await stopNode(store);
    }
    // The store is the node's while it runs; once stopped, it holds the 3 latest checkpoints.
    const list = JSON.parse(await ok(store, 'snapshot', 'ls', '--json')) as SnapshotSummary[];
    const checkpoints = list.filter((s) => s.label === 'counter-server');
    assert.equal(checkpoints.length, 3, JSON.stringify(list));
  });

  it('after SIGKILL, the next node lists the task as lost with its last checkpoint, and thaws it', async () => {
    const store = tempStore();
    try {
      const { pid } = await startNode(store);
      const server = await spawnTask(
        store,
        '--checkpoint-every',
        '50',
        '--keep',
        '2',
        'tasks/build/counter-server.wasm',
      );
      await waitForLog(store, server, 'registered "counter"');
      const client = await spawnTask(store, 'tasks/build/counter-client.wasm', '--', '50', 'keep');
      await waitForTask(store, client, 'exited', exited);
      // The checkpoint in flight when the client ended may predate its last request, and ps counts a
      // checkpoint just before the journal names it: after three more, the journal names one with all 50.
      const taken = (await task(store, server)).checkpoint!.taken;
      const before = await waitForTask(
        store,
        server,
        '3 more checkpoints',
        (t) => t.checkpoint!.taken >= taken + 3,
      );
      assert.ok(before.lastSnapshot);

      process.kill(pid, 'SIGKILL');
      await poll('the node to be gone', async () => ((await on(store, 'ps')).code === 69 ? true : undefined));

      const restarted = await poll('a new node to start', async () => {
        const result = await on(store, 'node', 'start', '--detach');
        // The dead node's store lock goes with its last file descriptor: retry if it lingers.
        if (result.code === 73 && /STORE_UNAVAILABLE/.test(result.stderr)) return undefined;
        assert.equal(result.code, 0, result.stderr);
        return result.stdout;
      });
      const lost = await task(store, server);
      assert.equal(lost.status, 'lost');
      const snapshot = lost.lastSnapshot!;
      assert.ok(lost.checkpoint!.kept.includes(snapshot));
      assert.match(
        restarted,
        new RegExp(
          `^recoverable: counter-server \\(last snapshot ${snapshot}\\): norma thaw ${snapshot}$`,
          'm',
        ),
      );
      assert.match(
        await ok(store, 'ps'),
        new RegExp(`^${server}\\s+counter-server\\s+lost\\s+-\\s+-\\s+${snapshot}`, 'm'),
      );
      const status = JSON.parse(await ok(store, 'node', 'status', '--json'));
      assert.deepEqual(status.recoverable, [
        { id: server, name: 'counter-server', status: 'lost', lastSnapshot: snapshot },
      ]);

      const thawed = (await ok(store, 'thaw', snapshot)).trim();
      const [id, name] = thawed.split(' ');
      assert.equal(name, 'counter-server');
      const newId = Number(id);
      assert.ok(newId > client, 'task ids are not reused after a restart');
      const running = await task(store, newId);
      assert.equal(running.status, 'running');
      assert.equal(running.checkpoint?.everyMs, 50, 'its checkpoint settings carry over');
      assert.equal(running.log, lost.log, 'its log continues in the same file');
      assert.equal(
        (await on(store, 'kill', String(server))).code,
        66,
        'the lost entry became the thawed task',
      );

      // The thawed server has the state of its checkpoint: 50 increments counted.
      const last = await spawnTask(store, 'tasks/build/counter-client.wasm', '--', '1');
      await waitForTask(store, last, 'exited', exited);
      assert.equal(await ok(store, 'logs', String(last)), 'counter = 51\nserver stopped after 54 requests\n');
      await waitForTask(store, newId, 'exited', exited);
      assert.equal(
        await ok(store, 'logs', String(newId)),
        'counter-server: registered "counter"\ncounter-server: stopped after 54 requests, counter = 51\n',
      );
    } finally {
      await stopNode(store);
    }
  });

  it('a clean stop marks the tasks killed: the next node offers nothing to recover', async () => {
    const store = tempStore();
    try {
      await startNode(store);
      await spawnTask(store, '--checkpoint-every', '50', 'tasks/build/counter-server.wasm');
      assert.match(await ok(store, 'node', 'stop'), /^node stopped \(1 task\(s\) killed\)$/m);
      const { stdout } = await startNode(store);
      assert.doesNotMatch(stdout, /recoverable/);
      assert.match(await ok(store, 'ps'), /^no tasks$/m);
    } finally {
      await stopNode(store);
    }
  });
});
