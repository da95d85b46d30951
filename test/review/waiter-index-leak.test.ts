import { strict as assert } from 'node:assert';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { normaImports, runTask, testKernel, wat } from '../support/fixtures.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * RPCs with a fresh reply port each (as MIG clients do): the client sends with a MAKE_SEND_ONCE
 * reply right, blocks receiving on the reply port, then destroys it.
 */
function rpcs(rounds: number): Promise<Uint8Array<ArrayBuffer>> {
  return wat(`(module
    ${normaImports.port_allocate} ${normaImports.msg_send} ${normaImports.msg_receive}
    ${normaImports.thread_create} ${normaImports.task_exit}
    (import "norma" "port_destroy" (func $port_destroy (param i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 64) "server")
    (func (export "server") (param i32)
      (loop $l
        (if (call $msg_receive (i32.load (i32.const 0)) (i32.const 512) (i32.const 64) (i32.const -1)) (then (unreachable)))
        ;; reply through the send-once right (MOVE_SEND_ONCE), which arrived as the remote port
        (i32.store (i32.const 256) (i32.const 18))
        (i32.store (i32.const 260) (i32.const 24))
        (i32.store (i32.const 264) (i32.load (i32.const 520)))
        (if (call $msg_send (i32.const 256) (i32.const 24) (i32.const -1)) (then (unreachable)))
        (br $l)))
    (func (export "_start") (local $i i32) (local $reply i32)
      (drop (call $port_allocate (i32.const 1) (i32.const 0)))
      (if (call $thread_create (i32.const 64) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 8))
        (then (unreachable)))
      (loop $l
        (drop (call $port_allocate (i32.const 1) (i32.const 4)))
        (local.set $reply (i32.load (i32.const 4)))
        ;; request: MAKE_SEND to the server, MAKE_SEND_ONCE (21 << 8) for the reply
        (i32.store (i32.const 128) (i32.or (i32.const 20) (i32.shl (i32.const 21) (i32.const 8))))
        (i32.store (i32.const 132) (i32.const 24))
        (i32.store (i32.const 136) (i32.load (i32.const 0)))
        (i32.store (i32.const 140) (local.get $reply))
        (if (call $msg_send (i32.const 128) (i32.const 24) (i32.const -1)) (then (unreachable)))
        (if (call $msg_receive (local.get $reply) (i32.const 768) (i32.const 64) (i32.const -1)) (then (unreachable)))
        (drop (call $port_destroy (local.get $reply)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const ${rounds}))))
      (call $task_exit (i32.const 0))))`);
}

describe('review: the kernel forgets the waiters of ports that died', function () {
  this.timeout(120_000);

  it('100k RPCs with fresh reply ports do not grow the kernel', async () => {
    const kernel = testKernel();
    const warm = await runTask(kernel, { module: await rpcs(1000) });
    assert.deepEqual(warm.exit, { code: 0, trap: null, message: null });
    const module = await rpcs(100_000);
    gc();
    const before = process.memoryUsage().heapUsed;
    const run = await runTask(kernel, { module });
    assert.deepEqual(run.exit, { code: 0, trap: null, message: null });
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    assert.ok(grown < 4 * 1024 * 1024, `the heap grew by ${(grown / 1024 / 1024).toFixed(1)} MB`);
  });
});
