import { strict as assert } from 'node:assert';
import { runTask, startTask, taskModule, testKernel } from '../support/fixtures.js';

const ok = { code: 0, trap: null, message: null };

describe('example tasks on one node', function () {
  this.timeout(60_000);

  it('counter-demo: a server thread answers through send-once reply rights', async () => {
    const run = await runTask(testKernel(), {
      module: taskModule('counter-demo'),
      args: ['counter-demo', '25'],
    });
    assert.deepEqual(run.exit, ok);
    assert.equal(run.stdout, 'counter = 25\nserver handled 27 requests\n');
  });

  it('producer-consumer: threads block on a full queue, and no message is lost or doubled', async () => {
    const run = await runTask(testKernel(), { module: taskModule('producer-consumer') });
    assert.deepEqual(run.exit, ok);
    assert.match(run.stdout, /consumed 2000 values, sum = 2001000 \(expected 2001000\)/);
    assert.match(run.stdout, /missing = 0, duplicates = 0, wrong port = 0/);
  });

  it('counter-server and counter-client: two tasks meet through the name service', async () => {
    const kernel = testKernel();
    // The client starts first and waits in name_lookup until the server registers.
    const client = await startTask(kernel, { module: taskModule('counter-client') });
    const server = await startTask(kernel, { module: taskModule('counter-server') });
    const [c, s] = await Promise.all([client.done, server.done]);
    assert.deepEqual(c.exit, ok);
    assert.deepEqual(s.exit, ok);
    assert.match(c.stdout, /counter = 10/);
    assert.match(s.stdout, /stopped after 12 requests, counter = 10/);
    assert.deepEqual(kernel.names.list(), [], 'the registration died with the server port');
  });

  it('dead-name-watcher: a task holding a send right learns by notification that the port died', async () => {
    const kernel = testKernel();
    const server = await startTask(kernel, { module: taskModule('counter-server') });
    const watcher = await runTask(kernel, { module: taskModule('dead-name-watcher') });
    assert.deepEqual((await server.done).exit, ok);
    assert.doesNotMatch(watcher.stdout, /FAIL/);
    assert.match(watcher.stdout, /ok {3}notification id: 72/);
    assert.match(watcher.stdout, /ok {3}the name is now a dead name: DEAD_NAME/);
    assert.deepEqual(watcher.exit, ok, watcher.stdout);
  });

  it('rights-pair: send, receive and moved receive rights travel between tasks', async () => {
    const kernel = testKernel();
    const a = await startTask(kernel, { module: taskModule('rights-pair-a') });
    const b = await startTask(kernel, { module: taskModule('rights-pair-b') });
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.deepEqual(ra.exit, ok, ra.stdout + ra.stderr);
    assert.deepEqual(rb.exit, ok, rb.stdout + rb.stderr);
    assert.doesNotMatch(ra.stdout + rb.stdout, /FAIL/);
    assert.match(ra.stdout, /rights-pair-a: all checks passed/);
    assert.match(ra.stdout, /descriptor 1 port_type: RECEIVE/);
    assert.match(rb.stdout, /rights-pair-b: all checks passed/);
  });

  it('memory-share: two tasks share a memory object (one writer, then a reader)', async () => {
    const kernel = testKernel();
    const a = await startTask(kernel, { module: taskModule('memory-share-a') });
    const b = await startTask(kernel, { module: taskModule('memory-share-b') });
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.deepEqual(ra.exit, ok, ra.stdout + ra.stderr);
    assert.deepEqual(rb.exit, ok, rb.stdout + rb.stderr);
    const written = /wrote 8192 bytes, checksum (0x[0-9a-f]+)/.exec(ra.stdout)?.[1];
    const verified = /verified 8192 bytes, checksum (0x[0-9a-f]+)/.exec(rb.stdout)?.[1];
    assert.ok(written !== undefined && written === verified, `${ra.stdout}\n${rb.stdout}`);
  });

  it('ipc-features: out-of-line memory, MACH_RCV_TOO_LARGE, notifications, a port dying under a receiver', async () => {
    const run = await runTask(testKernel(), { module: taskModule('ipc-features') });
    assert.doesNotMatch(run.stdout, /FAIL/);
    assert.match(run.stdout, /ok {3}out-of-line bytes intact: true/);
    assert.match(run.stdout, /ok {3}blocked receiver sees its port die: MACH_RCV_PORT_DIED/);
    assert.deepEqual(run.exit, ok, run.stdout);
  });

  it('cpu-job: pure computation gives the same answer with and without safepoints', async () => {
    const args = ['cpu-job', '300000'];
    const plain = await runTask(testKernel(), { module: taskModule('cpu-job'), args });
    const preempted = await runTask(testKernel(), { module: taskModule('cpu-job'), args, preempt: true });
    assert.deepEqual(plain.exit, ok);
    assert.match(plain.stdout, /cpu-job n=300000 primes=25997 checksum=0x[0-9a-f]{8}/);
    assert.equal(preempted.stdout, plain.stdout);
  });
});
