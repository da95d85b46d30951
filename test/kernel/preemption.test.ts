import { strict as assert } from 'node:assert';
import { startTask, taskModule, testKernel } from '../support/fixtures.js';

describe('preemption through safepoints', function () {
  this.timeout(60_000);

  it('a preemptible CPU-bound task does not starve the event loop', async () => {
    const kernel = testKernel();
    const job = await startTask(kernel, {
      module: taskModule('cpu-job'),
      args: ['cpu-job', '1500000'],
      preempt: true,
    });
    let ticks = 0;
    let finished = false;
    const timer = setInterval(() => {
      if (!finished) ticks++;
    }, 5);
    const run = await job.done;
    finished = true;
    clearInterval(timer);
    assert.equal(run.exit.code, 0);
    assert.ok(ticks >= 5, `the event loop ran only ${ticks} timer ticks during the job`);
  });

  it('two CPU-bound tasks are time-sliced: they finish together, not one after the other', async () => {
    const kernel = testKernel({ timeSliceMs: 2 });
    const started = performance.now();
    const finishedAt: number[] = [];
    const spawn = async (name: string) => {
      const task = await startTask(kernel, {
        module: taskModule('cpu-job'),
        name,
        args: ['cpu-job', '1500000'],
        preempt: true,
      });
      const run = await task.done;
      finishedAt.push(performance.now() - started);
      return run;
    };
    const [a, b] = await Promise.all([spawn('first'), spawn('second')]);
    assert.equal(a.stdout, b.stdout);
    // Run one after the other, the first would end at half the total time; sliced, near the end.
    const [early, late] = finishedAt as [number, number];
    assert.ok(
      early > 0.75 * late,
      `first finished at ${early.toFixed(0)} ms, second at ${late.toFixed(0)} ms`,
    );
  });
});

describe('many tasks on one node', function () {
  this.timeout(120_000);

  it('30 tasks (IPC, threads, compute) all finish correctly while the event loop keeps ticking', async () => {
    const kernel = testKernel();
    let ticks = 0;
    const timer = setInterval(() => {
      ticks++;
    }, 5);
    const started = performance.now();
    const runs = [];
    for (let i = 0; i < 10; i++) {
      runs.push(startTask(kernel, { module: taskModule('counter-demo'), args: ['counter-demo', '300'] }));
      runs.push(startTask(kernel, { module: taskModule('producer-consumer') }));
      runs.push(
        startTask(kernel, { module: taskModule('cpu-job'), args: ['cpu-job', '200000'], preempt: true }),
      );
    }
    const results = await Promise.all((await Promise.all(runs)).map((run) => run.done));
    clearInterval(timer);
    const elapsed = performance.now() - started;
    for (const result of results) assert.equal(result.exit.code, 0, result.stdout + result.stderr);
    assert.equal(
      results.filter((r) => r.stdout === 'counter = 300\nserver handled 302 requests\n').length,
      10,
    );
    assert.equal(
      results.filter((r) => r.stdout.includes('missing = 0, duplicates = 0, wrong port = 0')).length,
      10,
    );
    // A 5 ms timer should fire at least once every ~25 ms (eventLoopTurnMsMax plus lateness).
    assert.ok(ticks >= elapsed / 40, `${ticks} ticks in ${elapsed.toFixed(0)} ms`);
    assert.deepEqual(kernel.tasks, []);
    assert.deepEqual(kernel.ipc.audit(), []);
  });
});
