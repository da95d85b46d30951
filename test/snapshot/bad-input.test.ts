import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isNormaError } from '../../src/errors.js';
import { decodeManifest, encodeManifest, envelopeHeaderBytes } from '../../src/snapshot/format.js';
import { freezeTasks } from '../../src/snapshot/freezer.js';
import { loadPageHasher } from '../../src/snapshot/page-hash.js';
import { restoreSnapshot } from '../../src/snapshot/restorer.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { frozenId, norma } from '../support/cli.js';
import { startTask, taskModule, testKernel } from '../support/fixtures.js';

/** A seeded generator, so that a failure names positions that can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function copyStore(from: string): string {
  const to = mkdtempSync(join(tmpdir(), 'norma-bad-store-'));
  cpSync(from, to, { recursive: true });
  return to;
}

function packFiles(store: string): string[] {
  return readdirSync(join(store, 'packs')).map((name) => join(store, 'packs', name));
}

async function expectRefused(store: string, id: string, code: string): Promise<void> {
  const result = await norma(['resume', id, '--store', store]);
  assert.equal(result.code, 65, `exit ${result.code}: ${result.stderr}`);
  assert.match(result.stderr, new RegExp(`norma: ${code}: `));
  assert.equal(result.stdout, '', 'nothing ran');
}

describe('bad snapshots are refused with a stable code, and nothing is partially restored', function () {
  this.timeout(300_000);
  let store: string;
  let id: string;
  let exportFile: string;

  before(async () => {
    // A task with threads, ports and queued messages, frozen mid-run.
    store = mkdtempSync(join(tmpdir(), 'norma-bad-'));
    const kernel = testKernel();
    await startTask(kernel, { module: taskModule('zdtm-queued-rights') });
    while (!kernel.tasks.length) await new Promise((resolve) => setTimeout(resolve, 1));
    await new Promise((resolve) => setTimeout(resolve, 60));
    const opened = await SnapshotStore.open(store);
    try {
      ({
        manifest: { id },
      } = await freezeTasks(kernel, opened, kernel.tasks, { kind: 'task', label: 'bad', parent: null }));
      exportFile = join(store, '..', `${id}-export.norma`);
      await opened.exportTo(id, exportFile);
    } finally {
      await opened.close();
    }
  });

  it('the snapshot itself resumes and passes its own checks (the control case)', async () => {
    const result = await norma(['resume', id, '--store', copyStore(store)]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /zdtm: pass zdtm-queued-rights/);
  });

  it('a bit flipped anywhere in the manifest file: SNAPSHOT_CORRUPT', async () => {
    const next = random(7);
    const manifestFile = join(store, 'manifests', `${id}.snap`);
    const size = statSync(manifestFile).size;
    const positions = [0, 8, 12, 16, 24, 39, envelopeHeaderBytes, size - 1];
    for (let i = 0; i < 6; i++) positions.push(Math.floor(next() * size));
    for (const position of positions) {
      const damaged = copyStore(store);
      const bytes = readFileSync(join(damaged, 'manifests', `${id}.snap`));
      bytes[position]! ^= 1 << Math.floor(next() * 8);
      writeFileSync(join(damaged, 'manifests', `${id}.snap`), bytes);
      await expectRefused(damaged, id, 'SNAPSHOT_CORRUPT');
    }
  });

  it('a bit flipped in page data: SNAPSHOT_CORRUPT, and the kernel holds no half-restored task', async () => {
    const next = random(11);
    for (let i = 0; i < 4; i++) {
      const damaged = copyStore(store);
      const [pack] = packFiles(damaged);
      const bytes = readFileSync(pack!);
      // Past the first record header: somewhere in page or module bytes.
      const position = 64 + Math.floor(next() * (bytes.length - 64));
      bytes[position]! ^= 0x10;
      writeFileSync(pack!, bytes);
      const opened = await SnapshotStore.open(damaged);
      const kernel = testKernel();
      try {
        await assert.rejects(
          restoreSnapshot(kernel, opened, id, () => ({})),
          (error: unknown) => isNormaError(error, 'SNAPSHOT_CORRUPT'),
        );
        assert.deepEqual(kernel.tasks, [], 'no task was adopted');
        assert.deepEqual(kernel.ipc.audit(), []);
      } finally {
        await opened.close();
      }
    }
  });

  it('a pack cut short (pages missing): SNAPSHOT_CORRUPT naming the truncated pack, nothing restored', async () => {
    const damaged = copyStore(store);
    for (const pack of packFiles(damaged)) truncateSync(pack, Math.floor(statSync(pack).size / 3));
    await expectRefused(damaged, id, 'SNAPSHOT_CORRUPT');
    const result = await norma(['resume', id, '--store', damaged]);
    assert.match(result.stderr, /its pack file is truncated/);
  });

  it('an export file truncated at every section boundary: SNAPSHOT_CORRUPT, nothing imported', async () => {
    const bytes = readFileSync(exportFile);
    const manifestLength = Number(bytes.readBigUInt64LE(32));
    const pagesStart = 64 + manifestLength;
    const boundaries = [
      0,
      8,
      12,
      16,
      20,
      24,
      28,
      32,
      40,
      48,
      63,
      64,
      pagesStart - 1,
      pagesStart,
      pagesStart + 16,
    ];
    boundaries.push(pagesStart + 16 + 65536, bytes.length - 32, bytes.length - 1);
    for (const length of boundaries) {
      const target = copyStore(store);
      const file = join(target, 'cut.norma');
      writeFileSync(file, bytes.subarray(0, length));
      const before = await norma(['snapshot', 'ls', '--json', '--store', target]);
      const result = await norma(['resume', file, '--store', target]);
      assert.equal(result.code, 65, `cut at ${length}: exit ${result.code} ${result.stderr}`);
      assert.match(result.stderr, /SNAPSHOT_CORRUPT/, `cut at ${length}`);
      const after = await norma(['snapshot', 'ls', '--json', '--store', target]);
      assert.equal(after.stdout, before.stdout, `cut at ${length}: the store changed`);
    }
  });

  it('a newer format version: SNAPSHOT_VERSION_UNSUPPORTED', async () => {
    const hasher = await loadPageHasher();
    const opened = await SnapshotStore.open(copyStore(store));
    let envelope: Uint8Array;
    try {
      envelope = new Uint8Array(await opened.readManifestBytes(id));
    } finally {
      await opened.close();
    }
    const newer = envelope.slice();
    new DataView(newer.buffer).setUint32(8, 2, true);
    assert.throws(
      () => decodeManifest(newer, hasher),
      (error: unknown) =>
        isNormaError(error, 'SNAPSHOT_VERSION_UNSUPPORTED') && /version 2/.test(error.message),
    );
  });

  it('decoding a manifest and encoding it again gives the same bytes', async () => {
    const hasher = await loadPageHasher();
    const opened = await SnapshotStore.open(copyStore(store));
    try {
      const envelope = new Uint8Array(await opened.readManifestBytes(id));
      const again = encodeManifest(decodeManifest(envelope, hasher), hasher);
      assert.ok(Buffer.from(again).equals(Buffer.from(envelope)));
    } finally {
      await opened.close();
    }
  });

  it('a snapshot resumed with another module: SNAPSHOT_MODULE_MISMATCH', async () => {
    const result = await norma([
      'resume',
      id,
      '--store',
      copyStore(store),
      '--module',
      'tasks/build/traps.wasm',
    ]);
    assert.equal(result.code, 65);
    assert.match(result.stderr, /SNAPSHOT_MODULE_MISMATCH/);
    const right = await norma([
      'resume',
      id,
      '--store',
      copyStore(store),
      '--module',
      'tasks/build/zdtm-queued-rights.wasm',
    ]);
    assert.equal(right.code, 0, right.stderr);
  });

  it('inspect prints the snapshot as JSON', async () => {
    const result = await norma(['snapshot', 'inspect', id.slice(0, 6), '--store', copyStore(store)]);
    assert.equal(result.code, 0, result.stderr);
    const manifest = JSON.parse(result.stdout);
    assert.equal(manifest.id, id);
    assert.equal(manifest.format, 'norma.snapshot');
    assert.equal(manifest.tasks[0].state.name, 'task-1');
    assert.ok(manifest.tasks[0].state.threads.length >= 1);
  });
});

describe('freezing under trouble leaves earlier snapshots intact', function () {
  this.timeout(300_000);

  /** A real full disk: a tiny tmpfs (CI and this machine run as root). */
  let mountPoint: string;
  before(() => {
    mountPoint = mkdtempSync(join(tmpdir(), 'norma-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', mountPoint]);
  });
  after(() => {
    execFileSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  it('a full disk during a freeze: STORE_FULL, the task runs on to the right result, the earlier snapshot verifies', async () => {
    const store = join(mountPoint, 'store');
    const kernel = testKernel();
    // A small task first: its snapshot fits.
    await startTask(kernel, { module: taskModule('zdtm-send-once'), name: 'small' });
    while (kernel.tasks.length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    const opened = await SnapshotStore.open(store);
    try {
      const smallTask = kernel.tasks[0]!;
      const first = await freezeTasks(kernel, opened, [smallTask], {
        kind: 'task',
        label: 'small',
        parent: null,
      });
      // A task with far more memory than the disk has room for.
      const big = await startTask(kernel, {
        module: taskModule('cpu-job'),
        args: ['cpu-job', '3000000'],
        preempt: true,
      });
      await new Promise((resolve) => setTimeout(resolve, 30));
      const bigTask = kernel.tasks.find((task) => task.state.name !== 'small')!;
      await assert.rejects(
        freezeTasks(kernel, opened, [bigTask], { kind: 'task', label: 'big', parent: null }),
        (error: unknown) => isNormaError(error, 'STORE_FULL'),
      );
      const run = await big.done;
      assert.equal(run.exit.code, 0);
      assert.match(run.stdout, /cpu-job n=3000000 primes=216816 checksum=0x[0-9a-f]{8}/);
      const report = await opened.verify(first.manifest.id);
      assert.deepEqual(report.problems, []);
      assert.deepEqual(
        (await opened.list()).map((s) => s.id),
        [first.manifest.id],
      );
    } finally {
      await opened.close();
    }
  });

  it('norma killed with SIGKILL in the middle of freezes: the store is consistent when reopened', async () => {
    const store = mkdtempSync(join(tmpdir(), 'norma-killed-'));
    for (const delayMs of [5, 25, 60, 120]) {
      await norma(
        [
          'run',
          '--store',
          store,
          '--stop-after',
          '150',
          '--preempt',
          'tasks/build/cpu-job.wasm',
          '--',
          '9000000',
        ],
        {
          onSpawn: (child) => {
            setTimeout(() => child.kill('SIGKILL'), 150 + delayMs + 400); // around the freeze
          },
        },
      );
    }
    const listed = await norma(['snapshot', 'ls', '--json', '--store', store]);
    assert.equal(listed.code, 0, listed.stderr);
    for (const snapshot of JSON.parse(listed.stdout) as { id: string }[]) {
      const verified = await norma(['snapshot', 'verify', snapshot.id, '--store', store]);
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    }
    // And it still takes new snapshots.
    const more = await norma([
      'run',
      '--store',
      store,
      '--stop-after',
      '100',
      '--preempt',
      'tasks/build/cpu-job.wasm',
    ]);
    assert.equal(more.code, 75);
    assert.ok(frozenId(more.stderr));
  });
});
