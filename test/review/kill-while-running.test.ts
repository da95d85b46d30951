import { strict as assert } from 'node:assert';
import type { Task } from '../../src/kernel/kernel.js';
import { normaImports, testKernel, wat } from '../support/fixtures.js';

describe('review: a task killed while one of its threads runs stops at its next call', function () {
  this.timeout(30_000);

  it('killed from its own stdout callback, it writes nothing more', async () => {
    // The task prints 1000 lines; whoever reads its output kills it at the first one.
    const bytes = await wat(`(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "\\10\\00\\00\\00\\02\\00\\00\\00")
      (data (i32.const 16) "x\\n")
      (func (export "_start") (local $i i32)
        (loop $again
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 1000))))))`);
    const kernel = testKernel();
    let writes = 0;
    let task: Task | undefined;
    task = await kernel.spawn({
      module: bytes,
      stdin: new Uint8Array(0),
      stdout: () => {
        writes++;
        kernel.kill(task!);
      },
    });
    const exit = await task.exited;
    assert.equal(exit.code, 137);
    assert.equal(writes, 1);
  });

  it('killed from its own stdout callback while another thread waits, it does not run again', async () => {
    // Same, with a second thread in the run queue (so the completed call yields instead of returning).
    const bytes = await wat(`(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      ${normaImports.thread_create} ${normaImports.thread_yield}
      (memory (export "memory") 1)
      (data (i32.const 0) "\\10\\00\\00\\00\\02\\00\\00\\00")
      (data (i32.const 16) "x\\n")
      (data (i32.const 32) "spin")
      (func (export "spin") (param i32) (loop $l (call $thread_yield) (br $l)))
      (func (export "_start") (local $i i32)
        (drop (call $thread_create (i32.const 32) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 12)))
        (loop $again
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 100000))))))`);
    const kernel = testKernel();
    let writes = 0;
    let task: Task | undefined;
    task = await kernel.spawn({
      module: bytes,
      stdin: new Uint8Array(0),
      stdout: () => {
        writes++;
        kernel.kill(task!);
      },
    });
    const exit = await task.exited;
    assert.equal(exit.code, 137);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(writes, 1);
    assert.ok(task.state.threads.every((t) => t.status === 'exited'));
  });
});
