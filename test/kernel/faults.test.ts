import { strict as assert } from 'node:assert';
import { normaImports, runTask, startTask, taskModule, testKernel, wat } from '../support/fixtures.js';

describe('fault containment: bad tasks end alone, bad syscalls get error codes', function () {
  this.timeout(60_000);

  const traps: [mode: string, kind: string, message: RegExp][] = [
    ['unreachable', 'unreachable', /unreachable/],
    ['oob', 'out-of-bounds', /out of bounds/],
    ['stack', 'stack-overflow', /call stack/],
    ['oom', 'out-of-memory', /out of memory/],
  ];

  for (const [mode, kind, message] of traps) {
    it(`a task that traps (${mode}) ends with the reason while another task keeps running`, async () => {
      const kernel = testKernel();
      // A bystander in the middle of its work: a two-thread IPC exchange on the same node.
      const bystander = await startTask(kernel, {
        module: taskModule('counter-demo'),
        args: ['counter-demo', '200'],
      });
      const victim = await runTask(kernel, { module: taskModule('traps'), args: ['traps', mode] });
      assert.equal(victim.exit.code, 134);
      assert.equal(victim.exit.trap, kind);
      assert.match(victim.exit.message ?? '', message);
      assert.equal(victim.stdout, `traps: ${mode}\n`);
      const survivor = await bystander.done;
      assert.deepEqual(survivor.exit, { code: 0, trap: null, message: null });
      assert.equal(survivor.stdout, 'counter = 200\nserver handled 202 requests\n');
    });
  }

  const codes: [mode: string, expected: string][] = [
    ['badptr', 'badptr: KERN_INVALID_ADDRESS'],
    ['forged', 'forged: MACH_SEND_INVALID_DEST'],
    ['oversized', 'oversized: MACH_SEND_TOO_LARGE'],
    ['fullqueue', 'fullqueue: first KERN_SUCCESS, second MACH_SEND_TIMED_OUT'],
  ];

  for (const [mode, expected] of codes) {
    it(`a bad syscall (${mode}) returns its code and the task goes on`, async () => {
      const run = await runTask(testKernel(), { module: taskModule('traps'), args: ['traps', mode] });
      assert.deepEqual(run.exit, { code: 0, trap: null, message: null }, run.stdout + run.stderr);
      assert.equal(run.stdout, `traps: ${mode}\n${expected}\n`);
    });
  }

  it('a thread too deep to suspend (frames beyond the hidden region) ends as a stack overflow, clearly', async () => {
    // Each frame keeps four i64 locals live across the call, so 6000 frames need far more than the
    // 128 KiB frame region while staying well inside V8's own stack.
    const bytes = await wat(`(module ${normaImports.thread_yield} (memory (export "memory") 1)
      (func $deep (param $n i32) (result i64) (local $a i64) (local $b i64) (local $c i64) (local $d i64)
        (local.set $a (i64.extend_i32_u (local.get $n))) (local.set $b (i64.mul (local.get $a) (i64.const 3)))
        (local.set $c (i64.add (local.get $b) (i64.const 7))) (local.set $d (i64.xor (local.get $c) (local.get $a)))
        (if (local.get $n) (then (drop (call $deep (i32.sub (local.get $n) (i32.const 1))))) (else (call $thread_yield)))
        (i64.add (i64.add (local.get $a) (local.get $b)) (i64.add (local.get $c) (local.get $d))))
      (func (export "_start") (drop (call $deep (i32.const 6000)))))`);
    const run = await runTask(testKernel(), { module: bytes });
    assert.equal(run.exit.code, 134);
    assert.equal(run.exit.trap, 'stack-overflow');
    assert.match(run.exit.message ?? '', /too deep to suspend/);
  });

  it('a killed task ends with 137 and releases its ports and names', async () => {
    const kernel = testKernel();
    const server = await kernel.spawn({ module: taskModule('counter-server'), stdin: new Uint8Array(0) });
    while (kernel.names.list().length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    kernel.kill(server);
    assert.deepEqual(await server.exited, { code: 137, trap: 'killed', message: 'killed' });
    assert.deepEqual(kernel.names.list(), []);
    assert.deepEqual(kernel.ipc.audit(), []);
  });
});
