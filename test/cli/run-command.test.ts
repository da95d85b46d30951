import { strict as assert } from 'node:assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { norma, signalWhen } from '../support/cli.js';
import { normaImports, wat } from '../support/fixtures.js';

function tempModule(bytes: Uint8Array): string {
  const path = join(mkdtempSync(join(tmpdir(), 'norma-cli-')), 'module.wasm');
  writeFileSync(path, bytes);
  return path;
}

describe('norma run (the command line)', function () {
  this.timeout(60_000);

  it('--help describes every command and option, and exits 0', async () => {
    const top = await norma(['--help']);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /run \[options\] <module> \[args\.\.\.\]/);
    const run = await norma(['run', '--help']);
    assert.equal(run.code, 0);
    for (const option of ['--preempt', '--entry', '--env', '--also', '--no-cache', '--json']) {
      assert.match(run.stdout, new RegExp(option));
    }
  });

  it('runs an example task: its stdout is ours and its exit code is ours', async () => {
    const result = await norma(['run', 'tasks/build/counter-demo.wasm', '--', '7']);
    assert.equal(result.stdout, 'counter = 7\nserver handled 9 requests\n');
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
  });

  it('passes the task exit code through', async () => {
    const module = tempModule(
      await wat(`(module ${normaImports.task_exit} (memory (export "memory") 1)
        (func (export "_start") (call $task_exit (i32.const 3))))`),
    );
    const result = await norma(['run', module]);
    assert.equal(result.code, 3);
  });

  it('streams stdin into a WASI program that reads it (pipe_reverse)', async () => {
    const result = await norma(['run', 'node_modules/@wasmer/wasi/tests/pipe_reverse.wasm'], {
      stdin: 'norma',
    });
    assert.equal(result.stdout, 'amron\n');
    assert.equal(result.code, 0);
  });

  it('runs companion tasks with --also (a server and its client)', async () => {
    const result = await norma([
      'run',
      '--also',
      'tasks/build/counter-server.wasm',
      'tasks/build/counter-client.wasm',
    ]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /counter = 10/);
  });

  it('a trapped task: exit 134 and the reason on stderr; --json gives it as an object', async () => {
    const plain = await norma(['run', 'tasks/build/traps.wasm', '--', 'unreachable']);
    assert.equal(plain.code, 134);
    assert.match(plain.stderr, /trapped \(unreachable\)/);
    const json = await norma(['run', '--json', 'tasks/build/traps.wasm', '--', 'oob']);
    assert.equal(json.code, 134);
    const report = JSON.parse(json.stderr.trim().split('\n').at(-1)!);
    assert.equal(report.trap, 'out-of-bounds');
    assert.equal(report.code, 134);
  });

  it('an invalid module: exit 65 with the code MODULE_INVALID and a hint', async () => {
    const module = tempModule(new Uint8Array(Buffer.from('not wasm at all')));
    const result = await norma(['run', module]);
    assert.equal(result.code, 65);
    assert.match(result.stderr, /^norma: MODULE_INVALID: /);
    assert.match(result.stderr, /hint: /);
    const json = await norma(['run', '--json', module]);
    assert.equal(JSON.parse(json.stderr).error.code, 'MODULE_INVALID');
  });

  it('a module importing what norma lacks: exit 65 with MODULE_IMPORT_MISSING', async () => {
    const module = tempModule(
      await wat(
        `(module (import "env" "gpu" (func $g)) (memory (export "memory") 1) (func (export "_start")))`,
      ),
    );
    const result = await norma(['run', module]);
    assert.equal(result.code, 65);
    assert.match(result.stderr, /MODULE_IMPORT_MISSING: the module imports env\.gpu/);
  });

  it('a missing file: exit 66 with FILE_NOT_FOUND; a bad option: exit 64', async () => {
    const missing = await norma(['run', 'no/such/module.wasm']);
    assert.equal(missing.code, 66);
    assert.match(missing.stderr, /FILE_NOT_FOUND/);
    const usage = await norma(['run', '--frobnicate', 'x.wasm']);
    assert.equal(usage.code, 64);
    assert.match(usage.stderr, /unknown option/);
  });

  it('SIGTERM freezes the running task: exit 75 and `frozen <id>` as the last line of stderr', async () => {
    // counter-server registers its name, then waits for requests forever.
    const store = mkdtempSync(join(tmpdir(), 'norma-cli-store-'));
    const result = await norma(['run', '--store', store, 'tasks/build/counter-server.wasm'], {
      onOutput: signalWhen(({ stdout }) => stdout.includes('registered'), 'SIGTERM'),
    });
    assert.equal(result.code, 75);
    assert.match(result.stderr.trimEnd().split('\n').at(-1)!, /^frozen [0-9a-f]{16}$/);
  });
});
