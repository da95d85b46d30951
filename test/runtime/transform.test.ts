import { strict as assert } from 'node:assert';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isNormaError } from '../../src/errors.js';
import { loadTaskImage } from '../../src/runtime/module-cache.js';
import { transformModule } from '../../src/runtime/transform.js';
import { normaImports, packageFile, runTask, taskModule, testKernel, wat } from '../support/fixtures.js';

async function refused(bytes: Uint8Array<ArrayBuffer>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(transformModule(bytes, { preempt: false }), (error: unknown) => {
    assert.ok(isNormaError(error), `expected a NormaError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('module transform', function () {
  this.timeout(60_000);

  describe('refuses what it cannot run or freeze, before anything runs', () => {
    it('invalid bytes: MODULE_INVALID', async () => {
      await refused(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 2, 3]), 'MODULE_INVALID', /not a valid/);
      await refused(new Uint8Array(Buffer.from('#!/bin/sh\necho hi\n')), 'MODULE_INVALID', /not a valid/);
    });

    it('a truncated real module: MODULE_INVALID', async () => {
      const cowsay = packageFile('wasi/example/cowsay.wasm');
      await refused(cowsay.slice(0, cowsay.length / 2), 'MODULE_INVALID', /not a valid/);
    });

    it('tail calls: MODULE_UNSUPPORTED', async () => {
      const b = (await import('binaryen')).default;
      const bytes = await wat(
        `(module (memory 1) (func $f (export "_start") (return_call $g)) (func $g))`,
        b.Features.TailCall,
      );
      await refused(bytes, 'MODULE_UNSUPPORTED', /tail call/);
    });

    it('an imported memory: MODULE_UNSUPPORTED', async () => {
      const bytes = await wat(`(module (import "env" "memory" (memory 1)) (func (export "_start")))`);
      await refused(bytes, 'MODULE_UNSUPPORTED', /imports its memory/);
    });

    it('an import norma does not provide: MODULE_IMPORT_MISSING', async () => {
      const bytes = await wat(
        `(module (import "env" "launch_missiles" (func $m)) (memory 1) (func (export "_start") (call $m)))`,
      );
      await refused(bytes, 'MODULE_IMPORT_MISSING', /env\.launch_missiles/);
    });

    it('a known import with the wrong signature: MODULE_IMPORT_MISSING', async () => {
      const bytes = await wat(
        `(module (import "norma" "msg_send" (func $s (param i32) (result i32))) (memory 1)
           (func (export "_start") (drop (call $s (i32.const 0)))))`,
      );
      await refused(bytes, 'MODULE_IMPORT_MISSING', /msg_send as \(i32\) -> \(i32\)/);
    });
  });

  it('hides the asyncify pages: memory.size excludes them and pages exposed by grow are zero', async () => {
    // The thread yields (its frames go through the hidden region), then grows memory over where
    // the hidden region was and checks that every newly visible byte is zero.
    const bytes = await wat(`(module
      ${normaImports.thread_yield} ${normaImports.task_exit}
      (memory (export "memory") 1)
      (func (export "_start") (local $p i32)
        (call $thread_yield)
        (if (i32.ne (memory.size) (i32.const 1)) (then (call $task_exit (i32.const 10))))
        (if (i32.ne (memory.grow (i32.const 2)) (i32.const 1)) (then (call $task_exit (i32.const 11))))
        (if (i32.ne (memory.size) (i32.const 3)) (then (call $task_exit (i32.const 12))))
        (local.set $p (i32.const 65536))
        (loop $scan
          (if (i32.load8_u (local.get $p)) (then (call $task_exit (i32.const 13))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br_if $scan (i32.lt_u (local.get $p) (i32.const 196608))))
        (call $thread_yield)
        (call $task_exit (i32.const 0))))`);
    const run = await runTask(testKernel(), { module: bytes });
    assert.deepEqual(run.exit, { code: 0, trap: null, message: null });
  });

  it('runs the start function exactly once, before the entry', async () => {
    const bytes = await wat(`(module
      ${normaImports.task_exit}
      (memory (export "memory") 1)
      (global $runs (mut i32) (i32.const 0))
      (func $init (global.set $runs (i32.add (global.get $runs) (i32.const 1))))
      (start $init)
      (func (export "_start") (call $task_exit (i32.add (i32.const 40) (global.get $runs)))))`);
    const result = await transformModule(bytes, { preempt: false });
    assert.deepEqual(result.info.initExports, ['__norma_start']);
    assert.ok(
      result.info.mutableGlobals.some((g) => g.name === 'runs'),
      'every mutable global is exported',
    );
    const run = await runTask(testKernel(), { module: bytes });
    assert.equal(run.exit.code, 41);
  });

  it('caches transformed modules on disk by content hash', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'norma-cache-test-'));
    const bytes = taskModule('cpu-job');
    const first = await loadTaskImage(bytes, { preempt: true, cacheDirectory: directory });
    assert.equal(first.fromCache, false);
    assert.equal(readdirSync(directory).length, 2, 'one .wasm and one .json');
    // A new process has no in-memory memo: simulate it with a copy of the bytes under another cache path.
    const again = await loadTaskImage(bytes, { preempt: true, cacheDirectory: `${directory}/` });
    assert.equal(again.fromCache, true);
    assert.equal(again.moduleHash, first.moduleHash);
  });

  it('transforms again when a cache entry is damaged', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'norma-cache-test-'));
    const bytes = taskModule('counter-demo');
    const first = await loadTaskImage(bytes, { preempt: false, cacheDirectory: directory });
    writeFileSync(join(directory, `${first.key}.wasm`), Buffer.from('garbage'));
    const again = await loadTaskImage(bytes, { preempt: false, cacheDirectory: `${directory}//` });
    assert.equal(again.fromCache, false);
    const run = await runTask(testKernel({ cacheDirectory: `${directory}///` }), { module: bytes });
    assert.equal(run.stdout, 'counter = 10\nserver handled 12 requests\n');
  });
});
