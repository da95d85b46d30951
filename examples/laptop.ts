/**
 * `npm run example`: what norma does, end to end, with the real command line.
 *  1. runs a norma task (threads and ports);
 *  2. runs a CPU-bound task, freezes it to disk after 300 ms, and resumes it in a new process;
 *  3. runs an unmodified third-party WASI program (Rust's cowsay, from an npm package).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

function norma(args: string[]): { code: number; stderr: string } {
  console.log(`\n$ norma ${args.map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ')}`);
  const result = spawnSync(process.execPath, [cli, ...args], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  const stderr = result.stderr.toString();
  process.stderr.write(stderr);
  return { code: result.status ?? 1, stderr };
}

function fail(message: string): never {
  console.error(`example failed: ${message}`);
  process.exit(1);
}

if (norma(['run', 'tasks/build/counter-demo.wasm']).code !== 0) fail('counter-demo');

const frozen = norma([
  'run',
  '--preempt',
  '--stop-after',
  '300',
  '--stats',
  'tasks/build/cpu-job.wasm',
  '--',
  '6000000',
]);
const id = /frozen ([0-9a-f]{16})\s*$/.exec(frozen.stderr)?.[1];
if (frozen.code !== 75 || id === undefined) fail('cpu-job was not frozen');
console.log(`(frozen with exit code 75; the snapshot is ${id})`);
if (norma(['resume', id]).code !== 0) fail('cpu-job did not resume');

if (
  norma(['run', 'node_modules/wasi/example/cowsay.wasm', '--', 'norma runs unmodified WASI programs'])
    .code !== 0
) {
  fail('cowsay');
}
console.log('\nAll done. `norma --help` lists the commands; `norma snapshot ls` the snapshots just taken.');
