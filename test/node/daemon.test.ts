import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { norma } from '../support/cli.js';
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

describe('the node daemon: start, spawn, ps, logs, kill, stop', function () {
  this.timeout(120_000);
  const store = tempStore();
  let pid = 0;

  before(async () => {
    pid = (await startNode(store)).pid;
  });

  after(async () => {
    await stopNode(store);
  });

  it('listens on a socket only its owner can use, and writes its pid file', () => {
    const socket = statSync(join(store, 'node.sock'));
    assert.ok(socket.isSocket());
    assert.equal(socket.mode & 0o777, 0o600);
    assert.equal(readFileSync(join(store, 'node.pid'), 'utf8').trim(), String(pid));
  });

  it('refuses to start a second node on the same socket (NODE_ALREADY_RUNNING)', async () => {
    const second = await on(store, 'node', 'start', '--detach');
    assert.equal(second.code, 73, second.stderr);
    assert.match(second.stderr, /NODE_ALREADY_RUNNING/);
    const foreground = await on(store, 'node', 'start');
    assert.equal(foreground.code, 73, foreground.stderr);
    assert.ok(Array.isArray(await ps(store)), 'the first node still answers');
  });

  it('runs a server and a client that talks to it; ps and logs show them', async () => {
    const server = await spawnTask(store, 'tasks/build/counter-server.wasm');
    await waitForLog(store, server, 'registered "counter"');
    const client = await spawnTask(
      store,
      '--name',
      'client-a',
      'tasks/build/counter-client.wasm',
      '--',
      '25',
      'keep',
    );
    const done = await waitForTask(store, client, 'exited', exited);
    assert.deepEqual(done.exit, { code: 0, trap: null, message: null });
    assert.equal(await ok(store, 'logs', 'client-a'), 'counter = 25\n');

    const running = await task(store, server);
    assert.equal(running.status, 'running');
    assert.equal(running.name, 'counter-server');
    assert.equal(running.threads, 1);
    assert.ok(running.memoryBytes > 0);
    assert.equal(running.lastSnapshot, null);
    assert.ok(existsSync(running.log), 'the log file is where ps says');
    assert.match(running.log, new RegExp(`logs/counter-server-${server}\\.log$`));

    const table = await ok(store, 'ps');
    assert.match(table, /^ID\s+NAME\s+STATUS\s+THREADS\s+MEMORY\s+LAST SNAPSHOT\s+CHECKPOINTS$/m);
    assert.match(table, new RegExp(`^${server}\\s+counter-server\\s+running\\s+1\\s`, 'm'));
    assert.match(table, new RegExp(`^${client}\\s+client-a\\s+exited\\(0\\)`, 'm'));

    // A stopping client ends the server: both logs say how many requests it served.
    const last = await spawnTask(store, 'tasks/build/counter-client.wasm', '--', '1');
    await waitForTask(store, last, 'exited', exited);
    assert.equal(await ok(store, 'logs', String(last)), 'counter = 26\nserver stopped after 29 requests\n');
    await waitForTask(store, server, 'exited', exited);
    assert.equal(
      await ok(store, 'logs', String(server)),
      'counter-server: registered "counter"\ncounter-server: stopped after 29 requests, counter = 26\n',
    );
  });

  it('runs producer-consumer and a preemptible cpu-job to the output of an uninterrupted run', async () => {
    const pc = await spawnTask(store, 'tasks/build/producer-consumer.wasm', '--', '2000');
    const cpu = await spawnTask(store, '--preempt', 'tasks/build/cpu-job.wasm', '--', '300000');
    const cpuTask = await task(store, cpu);
    assert.equal(cpuTask.preempt, true);
    await waitForTask(store, pc, 'exited', exited);
    await waitForTask(store, cpu, 'exited', exited);
    const pcWhole = await uninterrupted('producer-consumer', ['2000']);
    assert.match(pcWhole, /missing = 0, duplicates = 0/);
    assert.equal(await ok(store, 'logs', String(pc)), pcWhole);
    assert.equal(await ok(store, 'logs', String(cpu)), await uninterrupted('cpu-job', ['300000'], true));
  });

  it('logs keep stdout and stderr apart; ps shows exit codes and traps', async () => {
    const usage = await spawnTask(store, 'tasks/build/traps.wasm', '--', 'no-such-mode');
    const trap = await spawnTask(store, 'tasks/build/traps.wasm', '--', 'unreachable');
    assert.deepEqual((await waitForTask(store, usage, 'exited', exited)).exit?.code, 2);
    assert.equal((await waitForTask(store, trap, 'exited', exited)).exit?.trap, 'unreachable');
    const logs = await on(store, 'logs', String(usage));
    assert.equal(logs.stdout, 'traps: no-such-mode\n');
    assert.match(logs.stderr, /usage/i);
    const table = await ok(store, 'ps');
    assert.match(table, new RegExp(`^${usage}\\s+traps\\s+exited\\(2\\)`, 'm'));
    assert.match(table, new RegExp(`^${trap}\\s+traps\\s+trapped\\(unreachable\\)`, 'm'));
  });

  it('logs --follow streams what a task prints until it ends', async () => {
    // The client waits for its server (up to 10 s): the follow starts before it prints anything.
    const lonely = await spawnTask(store, 'tasks/build/counter-client.wasm', '--', '3');
    const follow = norma(['logs', '--follow', String(lonely), '--store', store]);
    const server = await spawnTask(store, 'tasks/build/counter-server.wasm');
    const followed = await follow;
    assert.equal(followed.code, 0, followed.stderr);
    assert.equal(followed.stdout, 'counter = 3\nserver stopped after 5 requests\n');
    await waitForTask(store, server, 'exited', exited);
    const json = await ok(store, 'logs', '--json', String(lonely));
    const lines = json
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.ok(lines.slice(0, -1).every((event) => event.event === 'log' && event.stream === 'stdout'));
    assert.equal(lines.at(-1).bytes, 'counter = 3\nserver stopped after 5 requests\n'.length);
  });

  it('kills a running task (then forgets it), and names unknown tasks clearly', async () => {
    const server = await spawnTask(store, '--name', 'victim', 'tasks/build/counter-server.wasm');
    assert.equal((await ok(store, 'kill', 'victim')).trim(), `killed ${server} victim`);
    assert.equal((await task(store, server)).status, 'killed');
    assert.equal((await ok(store, 'kill', String(server))).trim(), `forgotten ${server} victim`);
    assert.equal(
      (await ps(store)).find((t) => t.id === server),
      undefined,
    );
    const missing = await on(store, 'kill', 'no-such-task');
    assert.equal(missing.code, 66);
    assert.match(missing.stderr, /TASK_NOT_FOUND/);
    const frozenMissing = await on(store, 'freeze', 'no-such-task', '--json');
    assert.equal(JSON.parse(frozenMissing.stderr.trim()).error.code, 'TASK_NOT_FOUND');
  });

  it('refuses a module that does not exist, and a malformed --env', async () => {
    const missing = await on(store, 'spawn', 'no/such/module.wasm');
    assert.equal(missing.code, 66);
    assert.match(missing.stderr, /FILE_NOT_FOUND/);
    const env = await on(store, 'spawn', '--env', 'novalue', 'tasks/build/counter-server.wasm');
    assert.equal(env.code, 64);
  });
});

describe('the node daemon: commands without a node', function () {
  this.timeout(60_000);

  it('NODE_NOT_RUNNING, with the hint to start one', async () => {
    const store = tempStore();
    for (const args of [
      ['ps'],
      ['spawn', 'tasks/build/counter-server.wasm'],
      ['node', 'stop'],
      ['suspend'],
    ]) {
      const result = await on(store, ...args);
      assert.equal(result.code, 69, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /NODE_NOT_RUNNING/);
      assert.match(result.stderr, /hint: start it with `norma node start`/);
    }
    const json = await on(store, 'ps', '--json');
    assert.equal(JSON.parse(json.stderr.trim()).error.code, 'NODE_NOT_RUNNING');
    const resume = await on(store, 'resume');
    assert.equal(resume.code, 66);
    assert.match(resume.stderr, /NODE_NOT_SUSPENDED/);
  });

  it('every node command has --help', async () => {
    for (const args of [
      ['node', 'start'],
      ['node', 'stop'],
      ['spawn'],
      ['ps'],
      ['logs'],
      ['freeze'],
      ['thaw'],
      ['kill'],
      ['suspend'],
      ['resume'],
    ]) {
      const help = await norma([...args, '--help']);
      assert.equal(help.code, 0, args.join(' '));
      assert.match(help.stdout, /--store/);
      if (args[0] !== 'resume') assert.match(help.stdout, /--json/);
    }
  });
});
