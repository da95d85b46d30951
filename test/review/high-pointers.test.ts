import { strict as assert } from 'node:assert';
import { KernReturn } from '../../src/abi/syscalls.js';
import { normaImports, runTask, testKernel, wat } from '../support/fixtures.js';

describe('review: syscall pointers are u32 (they arrive as negative i32 above 2 GiB)', function () {
  this.timeout(60_000);

  it('a task with more than 2 GiB of memory can pass buffers above 2 GiB', async () => {
    const bytes = await wat(`(module
      ${normaImports.port_allocate} ${normaImports.msg_send} ${normaImports.msg_receive} ${normaImports.task_exit}
      ${normaImports.thread_yield}
      (memory (export "memory") 32770)
      (func (export "_start") (local $kr i32) (local $name i32)
        ;; the hidden region starts above 2 GiB too: suspend and resume once
        (call $thread_yield)
        ;; the new name is stored above 2 GiB
        (local.set $kr (call $port_allocate (i32.const 1) (i32.const 0x80000010)))
        (if (local.get $kr) (then (call $task_exit (i32.add (i32.const 1000) (local.get $kr)))))
        (local.set $name (i32.load (i32.const 0x80000010)))
        (if (i32.eqz (local.get $name)) (then (call $task_exit (i32.const 2))))
        ;; a message built above 2 GiB: MAKE_SEND_ONCE to our own port, 24 bytes, id 7
        (i32.store (i32.const 0x80000100) (i32.const 21))
        (i32.store (i32.const 0x80000104) (i32.const 24))
        (i32.store (i32.const 0x80000108) (local.get $name))
        (i32.store (i32.const 0x80000114) (i32.const 7))
        (local.set $kr (call $msg_send (i32.const 0x80000100) (i32.const 24) (i32.const 0)))
        (if (local.get $kr) (then (call $task_exit (i32.const 3))))
        ;; received above 2 GiB too
        (local.set $kr (call $msg_receive (local.get $name) (i32.const 0x80000200) (i32.const 64) (i32.const 0)))
        (if (local.get $kr) (then (call $task_exit (i32.const 4))))
        (if (i32.ne (i32.load (i32.const 0x80000214)) (i32.const 7)) (then (call $task_exit (i32.const 5))))
        ;; a buffer that wraps around 4 GiB is refused, not a crash
        (call $task_exit (call $msg_receive (local.get $name) (i32.const 0xfffffff0) (i32.const 64) (i32.const 0)))))`);
    const run = await runTask(testKernel(), { module: bytes });
    assert.deepEqual(run.exit, { code: KernReturn.INVALID_ADDRESS, trap: null, message: null });
  });

  it('a task exit code keeps its sign', async () => {
    const bytes = await wat(`(module ${normaImports.task_exit} (memory (export "memory") 1)
      (func (export "_start") (call $task_exit (i32.const -3))))`);
    const run = await runTask(testKernel(), { module: bytes });
    assert.equal(run.exit.code, -3);
  });
});
