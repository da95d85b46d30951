import { strict as assert } from 'node:assert';
import { normaImports, runTask, testKernel, wat } from '../support/fixtures.js';

describe('review: the hidden region is all-zero whenever guest code runs', function () {
  this.timeout(30_000);

  it('after a rewind of non-zero frames, pages exposed by memory.grow are zero', async () => {
    // Locals with non-zero values are live across the yield, so the frames are not all zero.
    const bytes = await wat(`(module
      ${normaImports.thread_yield} ${normaImports.task_exit}
      (memory (export "memory") 1)
      (func $inner (param $x i32) (result i32) (local $y i32)
        (local.set $y (i32.mul (local.get $x) (i32.const 7)))
        (call $thread_yield)
        (i32.add (local.get $x) (local.get $y)))
      (func (export "_start") (local $p i32) (local $bad i32) (local $k i32)
        (local.set $k (i32.const 0x5a5a5a5a))
        (drop (call $inner (i32.const 0x12345678)))
        (if (i32.ne (memory.grow (i32.const 2)) (i32.const 1)) (then (call $task_exit (i32.const 11))))
        (local.set $p (i32.const 65536))
        (loop $scan
          (if (i32.load8_u (local.get $p)) (then (local.set $bad (i32.add (local.get $bad) (i32.const 1)))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br_if $scan (i32.lt_u (local.get $p) (i32.const 196608))))
        (call $task_exit (i32.add (local.get $bad) (i32.and (local.get $k) (i32.const 0))))))`);
    const run = await runTask(testKernel(), { module: bytes });
    assert.deepEqual(run.exit, { code: 0, trap: null, message: null });
  });
});
