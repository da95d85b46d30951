import { strict as assert } from 'node:assert';
import { KernReturn } from '../../src/abi/syscalls.js';
import { normaImports, runTask, testKernel, wat } from '../support/fixtures.js';

const nameImports = `
  (import "norma" "name_register" (func $name_register (param i32 i32 i32) (result i32)))
  (import "norma" "name_lookup" (func $name_lookup (param i32 i32 i32 i32) (result i32)))`;

describe('review: service names are plain strings, not object keys', function () {
  this.timeout(30_000);

  for (const service of ['toString', 'constructor', '__proto__']) {
    it(`a lookup of the unregistered "${service}" times out`, async () => {
      const bytes = await wat(`(module ${nameImports} ${normaImports.task_exit}
        (memory (export "memory") 1)
        (data (i32.const 16) "${service}")
        (func (export "_start")
          (call $task_exit (call $name_lookup (i32.const 16) (i32.const ${service.length}) (i32.const 0) (i32.const 0)))))`);
      const run = await runTask(testKernel(), { module: bytes });
      assert.equal(run.exit.code, KernReturn.OPERATION_TIMED_OUT);
    });
  }

  it('"__proto__" registers like any name: listed, found, and forgotten when its port dies', async () => {
    const kernel = testKernel();
    const bytes = await wat(`(module ${nameImports} ${normaImports.port_allocate} ${normaImports.task_exit}
      (import "norma" "port_destroy" (func $port_destroy (param i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "__proto__")
      (func (export "_start") (local $kr i32)
        (drop (call $port_allocate (i32.const 1) (i32.const 0)))
        (local.set $kr (call $name_register (i32.const 16) (i32.const 9) (i32.load (i32.const 0))))
        (if (local.get $kr) (then (call $task_exit (i32.add (i32.const 100) (local.get $kr)))))
        ;; a second registration of the same name is refused
        (if (i32.ne (call $name_register (i32.const 16) (i32.const 9) (i32.load (i32.const 0))) (i32.const ${KernReturn.NAME_EXISTS}))
          (then (call $task_exit (i32.const 2))))
        (if (call $name_lookup (i32.const 16) (i32.const 9) (i32.const 0) (i32.const 4)) (then (call $task_exit (i32.const 3))))
        (drop (call $port_destroy (i32.load (i32.const 0))))
        (call $task_exit (call $name_lookup (i32.const 16) (i32.const 9) (i32.const 0) (i32.const 8)))))`);
    const run = await runTask(kernel, { module: bytes });
    assert.equal(run.exit.code, KernReturn.OPERATION_TIMED_OUT);
    assert.deepEqual(kernel.names.list(), []);
    assert.deepEqual(kernel.ipc.audit(), []);
  });
});
