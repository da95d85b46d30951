import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normaImports, repoRoot, testCacheDirectory, wat } from '../support/fixtures.js';

const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

describe('review: norma run ends its companions when the main task cannot start', function () {
  this.timeout(60_000);

  it('a missing main module with a busy --also companion: exit 66 promptly', async () => {
    // The companion sleeps in a loop forever: it keeps a timer armed, so only ending it lets norma exit.
    const companion = await wat(`(module ${normaImports.clock_sleep} (memory (export "memory") 1)
      (func (export "_start") (loop $l (drop (call $clock_sleep (i32.const 20))) (br $l))))`);
    const path = join(mkdtempSync(join(tmpdir(), 'norma-review-')), 'sleeper.wasm');
    writeFileSync(path, companion);
    const result = await new Promise<{ code: number | null; stderr: string; killed: boolean }>((resolve) => {
      const child = spawn(process.execPath, [cli, 'run', '--also', path, 'no/such/module.wasm'], {
        cwd: repoRoot,
        env: { ...process.env, NORMA_CACHE_DIR: testCacheDirectory },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      let killed = false;
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, 10_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr, killed });
      });
    });
    assert.equal(result.killed, false, 'norma did not exit: the companion kept running');
    assert.equal(result.code, 66);
    assert.match(result.stderr, /FILE_NOT_FOUND/);
  });
});
