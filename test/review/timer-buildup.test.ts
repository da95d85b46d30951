import { strict as assert } from 'node:assert';
import { normaImports, runTask, testKernel, wat } from '../support/fixtures.js';

/** Two threads ping-pong `rounds` messages through two ports, every receive with `timeoutMs`. */
function pingPong(rounds: number, timeoutMs: number): Promise<Uint8Array<ArrayBuffer>> {
  return wat(`(module
    ${normaImports.port_allocate} ${normaImports.msg_send} ${normaImports.msg_receive}
    ${normaImports.thread_create} ${normaImports.task_exit}
    (memory (export "memory") 1)
    (data (i32.const 64) "pong")
    ;; message at 128 (ping) and 256 (pong): MAKE_SEND, 24 bytes; receive buffers at 512 and 768
    (func $send (param $at i32) (param $to i32)
      (i32.store (local.get $at) (i32.const 20))
      (i32.store offset=4 (local.get $at) (i32.const 24))
      (i32.store offset=8 (local.get $at) (local.get $to))
      (if (call $msg_send (local.get $at) (i32.const 24) (i32.const -1)) (then (unreachable))))
    (func (export "pong") (param i32) (local $i i32)
      (loop $l
        (if (call $msg_receive (i32.load (i32.const 4)) (i32.const 768) (i32.const 64) (i32.const ${timeoutMs}))
          (then (unreachable)))
        (call $send (i32.const 256) (i32.load (i32.const 0)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const ${rounds})))))
    (func (export "_start") (local $i i32)
      (drop (call $port_allocate (i32.const 1) (i32.const 0)))
      (drop (call $port_allocate (i32.const 1) (i32.const 4)))
      (if (call $thread_create (i32.const 64) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 8))
        (then (unreachable)))
      (loop $l
        (call $send (i32.const 128) (i32.load (i32.const 4)))
        (if (call $msg_receive (i32.load (i32.const 0)) (i32.const 512) (i32.const 64) (i32.const ${timeoutMs}))
          (then (unreachable)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const ${rounds}))))
      (call $task_exit (i32.const 0))))`);
}

async function timed(bytes: Uint8Array<ArrayBuffer>): Promise<number> {
  const started = performance.now();
  const run = await runTask(testKernel(), { module: bytes });
  assert.deepEqual(run.exit, { code: 0, trap: null, message: null });
  return performance.now() - started;
}

describe('review: receives with a timeout that are satisfied leave no timers behind', function () {
  this.timeout(120_000);

  it('a ping-pong with timeouts costs about what one without costs', async () => {
    const rounds = 20_000;
    const forever = await pingPong(rounds, -1);
    const minute = await pingPong(rounds, 60_000);
    await timed(forever); // warm the module cache and the JIT
    await timed(minute);
    const base = await timed(forever);
    const withTimeouts = await timed(minute);
    assert.ok(
      withTimeouts < base * 3 + 200,
      `${rounds} round trips: ${base.toFixed(0)} ms without timeouts, ${withTimeouts.toFixed(0)} ms with`,
    );
  });
});
