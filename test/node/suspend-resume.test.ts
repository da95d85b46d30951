import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  exited,
  ok,
  on,
  ps,
  spawnTask,
  startNode,
  stopNode,
  task,
  tempStore,
  uninterrupted,
  waitForLog,
  waitForTask,
} from './node-helpers.js';

describe('the node daemon: suspend, then resume with no argument', function () {
  this.timeout(240_000);

  it('every task continues where it stopped: outputs as an uninterrupted run, no message lost or doubled', async () => {
    const store = tempStore();
    try {
      await startNode(store);
      const server = await spawnTask(store, 'tasks/build/counter-server.wasm');
      await waitForLog(store, server, 'registered "counter"');
      const client = await spawnTask(store, 'tasks/build/counter-client.wasm', '--', '1000000', 'keep');
      const pc = await spawnTask(store, 'tasks/build/producer-consumer.wasm', '--', '300000');
      const cpu = await spawnTask(store, '--preempt', 'tasks/build/cpu-job.wasm', '--', '12000000');

      const suspended = JSON.parse(await ok(store, 'suspend', '--json'));
      assert.match(suspended.snapshot, /^[0-9a-f]{16}$/);
      const names = suspended.tasks.map((t: { name: string }) => t.name).sort();
      assert.deepEqual(
        names,
        ['counter-client', 'counter-server', 'cpu-job', 'producer-consumer'],
        'all four were running when suspended (if one had finished, use larger sizes)',
      );
      // The node has stopped, its socket and pid file are gone, and the suspend point is recorded.
      assert.equal((await on(store, 'ps')).code, 69);
      assert.ok(!existsSync(join(store, 'node.sock')));
      assert.ok(!existsSync(join(store, 'node.pid')));
      assert.ok(existsSync(join(store, 'node-suspended.json')));

      const resumed = await ok(store, 'resume');
      const lines = resumed.trim().split('\n');
      assert.match(lines[0]!, /^node started \(pid \d+\)$/);
      const ids = new Map(
        lines.slice(1).map((line) => {
          const [id, name] = line.split(' ');
          return [name!, Number(id)];
        }),
      );
      assert.deepEqual([...ids.keys()].sort(), names);
      assert.ok(!existsSync(join(store, 'node-suspended.json')), 'the suspend point is used once');
      for (const id of ids.values()) {
        assert.notEqual((await task(store, id)).status, 'suspended');
        assert.ok(![server, client, pc, cpu].includes(id), 'a new node gives new task ids');
      }

      for (const name of ['counter-client', 'producer-consumer', 'cpu-job']) {
        await waitForTask(store, ids.get(name)!, 'exited', exited);
      }
      const log = (name: string): Promise<string> => ok(store, 'logs', String(ids.get(name)));
      assert.equal(await log('counter-client'), 'counter = 1000000\n');
      const pcWhole = await uninterrupted('producer-consumer', ['300000']);
      assert.match(pcWhole, /missing = 0, duplicates = 0, wrong port = 0/);
      assert.equal(await log('producer-consumer'), pcWhole);
      assert.equal(await log('cpu-job'), await uninterrupted('cpu-job', ['12000000'], true));

      // The server counted every request exactly once across the suspend.
      const last = await spawnTask(store, 'tasks/build/counter-client.wasm', '--', '1');
      await waitForTask(store, last, 'exited', exited);
      assert.equal(
        await ok(store, 'logs', String(last)),
        'counter = 1000001\nserver stopped after 1000004 requests\n',
      );
      await waitForTask(store, ids.get('counter-server')!, 'exited', exited);
      assert.equal(
        await log('counter-server'),
        'counter-server: registered "counter"\ncounter-server: stopped after 1000004 requests, counter = 1000001\n',
      );
    } finally {
      await stopNode(store);
    }
  });

  it('a task frozen before the suspend is frozen after the resume, with the messages queued for it', async () => {
    const store = tempStore();
    try {
      await startNode(store);
      const server = await spawnTask(store, 'tasks/build/counter-server.wasm');
      await waitForLog(store, server, 'registered "counter"');
      await ok(store, 'freeze', String(server));
      // Its request waits in the frozen server's queue.
      const client = await spawnTask(store, 'tasks/build/counter-client.wasm', '--', '40', 'keep');
      assert.equal((await task(store, client)).status, 'running');

      assert.match(await ok(store, 'suspend'), /^suspended [0-9a-f]{16}\n$/);
      const resumed = (await ok(store, 'resume')).trim().split('\n');
      assert.equal(resumed.length, 3, resumed.join('\n'));
      const clientId = Number(/^(\d+) counter-client$/m.exec(resumed.join('\n'))![1]);
      const serverId = Number(
        /^(\d+) counter-server \(frozen, as before the suspend\)$/m.exec(resumed.join('\n'))![1],
      );
      const frozen = await task(store, serverId);
      assert.equal(frozen.status, 'frozen');
      assert.equal((await task(store, clientId)).status, 'running');

      await ok(store, 'thaw', frozen.lastSnapshot!);
      await waitForTask(store, clientId, 'exited', exited);
      assert.equal(await ok(store, 'logs', String(clientId)), 'counter = 40\n');
      assert.equal((await ps(store)).filter((t) => t.status === 'running').length, 1, 'the server runs on');
    } finally {
      await stopNode(store);
    }
  });

  it('suspending an empty node, and resuming it, works too', async () => {
    const store = tempStore();
    try {
      await startNode(store);
      assert.equal(await ok(store, 'suspend'), 'suspended (no tasks)\n');
      assert.match(await ok(store, 'resume'), /^node started \(pid \d+\)\n$/);
      assert.deepEqual(await ps(store), []);
      const again = await on(store, 'resume');
      assert.equal(again.code, 66, 'nothing left to resume');
      assert.match(again.stderr, /NODE_NOT_SUSPENDED/);
    } finally {
      await stopNode(store);
    }
  });
});
