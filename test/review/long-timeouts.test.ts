import { strict as assert } from 'node:assert';
import { testKernel, wat } from '../support/fixtures.js';

describe('review: deadlines beyond what setTimeout takes', function () {
  this.timeout(30_000);

  it('a sleep of 100 days arms a timer that does not fire every millisecond', async () => {
    // poll_oneoff on one relative clock of 100 days (8.64e15 ns, more than setTimeout's 2^31-1 ms).
    const bytes = await wat(`(module
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (i32.store8 (i32.const 8) (i32.const 0))          ;; tag: clock
        (i32.store (i32.const 16) (i32.const 1))          ;; monotonic clock
        (i64.store (i32.const 24) (i64.const 8640000000000000))
        (drop (call $poll (i32.const 0) (i32.const 128) (i32.const 1) (i32.const 256)))))`);
    const kernel = testKernel();
    let overflows = 0;
    const onWarning = (warning: Error): void => {
      if (warning.name === 'TimeoutOverflowWarning') overflows++;
    };
    process.on('warning', onWarning);
    try {
      const task = await kernel.spawn({ module: bytes, stdin: new Uint8Array(0) });
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(task.state.status, 'running');
      kernel.kill(task);
      await task.exited;
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
      kernel.shutdown();
    }
    assert.equal(overflows, 0);
  });
});
