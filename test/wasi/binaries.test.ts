import { strict as assert } from 'node:assert';
import { fixture, type RunOptions, type RunResult, runWithNode, runWithNorma } from './helpers.js';

interface BinaryCase {
  title: string;
  wasm: string;
  options: RunOptions;
  /** What the run must show besides agreeing with node:wasi, so that two empty outputs cannot pass. */
  check(result: RunResult): void;
}

const cowsay = 'node_modules/wasi/example/cowsay.wasm';
const wasmerTests = 'node_modules/@wasmer/wasi/tests';
const longText = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
const longLine = `${'x'.repeat(5000)}END`;

const cases: BinaryCase[] = [
  {
    title: 'cowsay (Rust, wasi_unstable) with its words as arguments',
    wasm: cowsay,
    options: { args: ['cowsay', 'hello', 'world'] },
    check: (result) => assert.match(result.stdout.toString(), /^ _+\n< hello world >\n -+\n/),
  },
  {
    title: 'cowsay reading many words from stdin to its end (a multi-line bubble)',
    wasm: cowsay,
    options: { args: ['cowsay'], stdin: longText },
    check: (result) => {
      assert.match(result.stdout.toString(), /\n\/ word0 word1 /);
      assert.match(result.stdout.toString(), /\n\\ word37 word38 word39 +\/\n/);
    },
  },
  {
    title: 'cowsay with an empty stdin',
    wasm: cowsay,
    options: { args: ['cowsay'], stdin: '' },
    check: (result) => assert.match(result.stdout.toString(), /^ _\n< >\n/),
  },
  {
    title: 'pipe_reverse (C, wasi-libc) reversing stdin',
    wasm: `${wasmerTests}/pipe_reverse.wasm`,
    options: { args: ['pipe_reverse'], stdin: 'Hello World!' },
    check: (result) => assert.equal(result.stdout.toString(), '!dlroW olleH\n'),
  },
  {
    title: 'pipe_reverse with a 5 KB line, read in several fd_read calls',
    wasm: `${wasmerTests}/pipe_reverse.wasm`,
    options: { args: ['pipe_reverse'], stdin: longLine },
    check: (result) => assert.equal(result.stdout.toString(), `${[...longLine].reverse().join('')}\n`),
  },
  {
    title: 'pipe_reverse reading only the first of two lines',
    wasm: `${wasmerTests}/pipe_reverse.wasm`,
    options: { args: ['pipe_reverse'], stdin: 'line one\nline two\n' },
    check: (result) => assert.equal(result.stdout.toString(), '\neno enil\n'),
  },
  {
    title: 'envvar (Rust, preview1) listing, reading and setting environment variables',
    wasm: `${wasmerTests}/envvar.wasm`,
    options: { args: ['envvar'], env: { DOG: 'X', TEST: 'VALUE', TEST2: 'VALUE2' } },
    check: (result) => assert.match(result.stdout.toString(), /^Env vars:\nDOG=X\n.*DOG Ok\("X"\)\n/s),
  },
  {
    title: 'demo (hand-written wat, wasi_unstable fd_write)',
    wasm: `${wasmerTests}/demo.wasm`,
    options: { args: ['demo'] },
    check: (result) => assert.equal(result.stdout.toString(), 'hello world\n'),
  },
  {
    title: 'test.wasm (Rust, with a host import of its own, stubbed on both sides)',
    wasm: `${wasmerTests}/test.wasm`,
    options: { args: ['test'] },
    check: (result) => assert.equal(result.stdout.toString(), 'internal: hello world!\n'),
  },
  {
    // Its old Rust std looks for a preopen named "." and panics when `/` is the only one, on both.
    title: 'mapdir (old Rust std) failing the same way: no "." preopen, a panic and a trap',
    wasm: `${wasmerTests}/mapdir.wasm`,
    options: {
      args: ['mapdir'],
      files: { '/a/x': new Uint8Array([1]), '/file': Buffer.from('fileContents') },
    },
    check: (result) => {
      assert.deepEqual(result.end, { trap: 'unreachable' });
      assert.match(result.stderr.toString(), /failed to find a preopened file descriptor/);
    },
  },
];

describe('WASI: third-party binaries agree with node:wasi', () => {
  for (const binary of cases) {
    it(binary.title, async () => {
      const norma = await runWithNorma(fixture(binary.wasm), binary.options);
      const node = runWithNode(fixture(binary.wasm), binary.options);
      assert.deepEqual(norma.end, node.end, 'how the program ended');
      assert.deepEqual(norma.stdout, node.stdout, 'stdout');
      assert.deepEqual(norma.stderr, node.stderr, 'stderr');
      binary.check(norma);
    });
  }
});
