import { strict as assert } from 'node:assert';
import { KernReturn } from '../../src/abi/syscalls.js';
import { normaImports, runTask, testKernel, wat } from '../support/fixtures.js';

describe('threads and blocking', function () {
  this.timeout(30_000);

  it('each thread has its own shadow stack (__stack_pointer is swapped on every switch)', async () => {
    // Three threads push a value on the shadow stack, yield ten times and check it is still there.
    // Without the swap they would share one stack pointer and read each other's value.
    const bytes = await wat(`(module
      ${normaImports.thread_create} ${normaImports.thread_yield} ${normaImports.thread_join} ${normaImports.task_exit}
      (memory (export "memory") 2)
      (global $__stack_pointer (mut i32) (i32.const 65536))
      (data (i32.const 16) "worker")
      (func $work (param $v i32) (local $sp i32) (local $i i32)
        (local.set $sp (i32.sub (global.get $__stack_pointer) (i32.const 16)))
        (global.set $__stack_pointer (local.get $sp))
        (i32.store (local.get $sp) (local.get $v))
        (loop $again
          (call $thread_yield)
          (if (i32.ne (i32.load (global.get $__stack_pointer)) (local.get $v)) (then (unreachable)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 10))))
        (global.set $__stack_pointer (i32.add (local.get $sp) (i32.const 16))))
      (func (export "worker") (param $v i32) (call $work (local.get $v)))
      (func (export "_start")
        (drop (call $thread_create (i32.const 16) (i32.const 6) (i32.const 111) (i32.const 70000) (i32.const 4096) (i32.const 0)))
        (drop (call $thread_create (i32.const 16) (i32.const 6) (i32.const 222) (i32.const 80000) (i32.const 4096) (i32.const 4)))
        (call $work (i32.const 333))
        (drop (call $thread_join (i32.load (i32.const 0)) (i32.const -1)))
        (drop (call $thread_join (i32.load (i32.const 4)) (i32.const -1)))
        (call $task_exit (i32.sub (global.get $__stack_pointer) (i32.const 65536)))))`);
    const run = await runTask(testKernel(), { module: bytes });
    assert.deepEqual(run.exit, { code: 0, trap: null, message: null });
  });

  it('thread_create refuses unknown entries, wrong signatures and bad stacks', async () => {
    const bytes = await wat(`(module
      ${normaImports.thread_create} ${normaImports.task_exit}
      (memory (export "memory") 1)
      (global $__stack_pointer (mut i32) (i32.const 65536))
      (data (i32.const 16) "nosuch") (data (i32.const 32) "_start") (data (i32.const 48) "worker")
      (func (export "worker") (param i32))
      (func (export "_start") (local $codes i32)
        ;; exit code: one byte per result, so one run checks all three
        (local.set $codes (call $thread_create (i32.const 16) (i32.const 6) (i32.const 0) (i32.const 1024) (i32.const 1024) (i32.const 0)))
        (local.set $codes (i32.or (i32.shl (local.get $codes) (i32.const 8))
          (call $thread_create (i32.const 32) (i32.const 6) (i32.const 0) (i32.const 1024) (i32.const 1024) (i32.const 0))))
        (local.set $codes (i32.or (i32.shl (local.get $codes) (i32.const 8))
          (call $thread_create (i32.const 48) (i32.const 6) (i32.const 0) (i32.const 65000) (i32.const 4096) (i32.const 0))))
        (call $task_exit (local.get $codes))))`);
    const run = await runTask(testKernel(), { module: bytes });
    const expected =
      (KernReturn.NOT_FOUND << 16) | (KernReturn.INVALID_ARGUMENT << 8) | KernReturn.INVALID_ADDRESS;
    assert.equal(run.exit.code, expected);
  });

  it('a receive with a timeout returns MACH_RCV_TIMED_OUT after the timeout, not before', async () => {
    const bytes = await wat(`(module
      ${normaImports.port_allocate} ${normaImports.msg_receive} ${normaImports.task_exit}
      (memory (export "memory") 1)
      (func (export "_start")
        (drop (call $port_allocate (i32.const 1) (i32.const 0)))
        (call $task_exit (call $msg_receive (i32.load (i32.const 0)) (i32.const 64) (i32.const 256) (i32.const 50)))))`);
    const started = performance.now();
    const run = await runTask(testKernel(), { module: bytes });
    const elapsed = performance.now() - started;
    assert.equal(run.exit.code, KernReturn.RCV_TIMED_OUT);
    assert.ok(elapsed >= 49, `returned after ${elapsed} ms`);
  });

  it('sleeping threads let the others run, and wake in deadline order', async () => {
    const bytes = await wat(`(module
      ${normaImports.thread_create} ${normaImports.thread_join} ${normaImports.clock_sleep} ${normaImports.task_exit}
      (memory (export "memory") 1)
      (global $order (mut i32) (i32.const 0))
      (data (i32.const 16) "sleeper")
      (func (export "sleeper") (param $ms i32)
        (drop (call $clock_sleep (local.get $ms)))
        ;; append this thread's sleep time (in tens of ms) as a decimal digit
        (global.set $order (i32.add (i32.mul (global.get $order) (i32.const 10)) (i32.div_u (local.get $ms) (i32.const 10)))))
      (func (export "_start")
        (drop (call $thread_create (i32.const 16) (i32.const 7) (i32.const 60) (i32.const 0) (i32.const 0) (i32.const 0)))
        (drop (call $thread_create (i32.const 16) (i32.const 7) (i32.const 20) (i32.const 0) (i32.const 0) (i32.const 4)))
        (drop (call $thread_create (i32.const 16) (i32.const 7) (i32.const 40) (i32.const 0) (i32.const 0) (i32.const 8)))
        (drop (call $thread_join (i32.load (i32.const 0)) (i32.const -1)))
        (drop (call $thread_join (i32.load (i32.const 4)) (i32.const -1)))
        (drop (call $thread_join (i32.load (i32.const 8)) (i32.const -1)))
        (call $task_exit (global.get $order))))`);
    const run = await runTask(testKernel(), { module: bytes });
    assert.equal(run.exit.code, 246);
  });
});
