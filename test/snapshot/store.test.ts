import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statfsSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isNormaError } from '../../src/errors.js';
import { type SnapshotManifest, snapshotPageBytes } from '../../src/snapshot/format.js';
import { loadPageHasher, type PageHasher } from '../../src/snapshot/page-hash.js';
import { type CommitStats, SnapshotStore, type StoreOptions } from '../../src/snapshot/store.js';
import { makeBlob, makeManifest, makePages, prng, type TestPage, tempDirectory } from './store-fixtures.js';

const childScript = fileURLToPath(new URL('./store-child.js', import.meta.url));

/** Asserts that `promise` rejects with a NormaError of `code` (and returns it for more checks). */
async function rejectsWith(promise: Promise<unknown>, code: string): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isNormaError(error), `expected a NormaError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

async function commitSnapshot(
  store: SnapshotStore,
  pages: readonly TestPage[],
  blob = makeBlob(1),
  extra: Partial<Parameters<typeof makeManifest>[0]> = {},
): Promise<{ manifest: SnapshotManifest; stats: CommitStats }> {
  const commit = store.beginCommit();
  if (!store.hasBlob(blob.hash)) commit.putBlob(blob.hash, blob.bytes);
  for (const page of pages) if (!store.hasPage(page.hash)) commit.putPage(page.hash, page.bytes);
  const manifest = makeManifest({ pages: pages.map((page) => page.hash), moduleHash: blob.hash, ...extra });
  const stats = await commit.finish(manifest);
  return { manifest, stats };
}

async function readAll(store: SnapshotStore, hashes: readonly string[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  await store.readPages(hashes, (hash, bytes) => {
    assert.ok(!out.has(hash), `page ${hash} delivered twice`);
    out.set(hash, Buffer.from(bytes));
  });
  return out;
}

function packFiles(directory: string): string[] {
  return readdirSync(join(directory, 'packs'))
    .filter((name) => name.endsWith('.dat'))
    .map((name) => join(directory, 'packs', name));
}

function packBytes(directory: string): number {
  return packFiles(directory).reduce((sum, file) => sum + statSync(file).size, 0);
}

/** The pack file and offset where `needle` (some stored bytes) lies. */
function findInPacks(directory: string, needle: Uint8Array): { file: string; offset: number } {
  for (const file of packFiles(directory)) {
    const offset = readFileSync(file).indexOf(needle);
    if (offset >= 0) return { file, offset };
  }
  assert.fail('bytes not found in any pack');
}

function flipBit(file: string, offset: number, bit = 0): void {
  const fd = openSync(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, offset);
    byte[0]! ^= 1 << bit;
    writeSync(fd, byte, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

describe('snapshot store', function () {
  this.timeout(120_000);
  let hasher: PageHasher;
  const directories: string[] = [];
  const stores: SnapshotStore[] = [];

  const freshDirectory = (): string => {
    const directory = tempDirectory();
    directories.push(directory);
    return directory;
  };
  const openStore = async (directory: string, options?: StoreOptions): Promise<SnapshotStore> => {
    const store = await SnapshotStore.open(directory, options);
    stores.push(store);
    return store;
  };

  before(async () => {
    hasher = await loadPageHasher();
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
  });
  after(() => {
    for (const directory of directories) rmSync(directory, { recursive: true, force: true });
  });

  it('commits a snapshot and reads back its manifest, pages and blob, also after reopening', async () => {
    const directory = freshDirectory();
    const store = await openStore(directory);
    const pages = makePages(hasher, [1, 2, 3, 4, 5, 6, 7, 8]);
    const blob = makeBlob(1, 100_000);
    const commit = store.beginCommit();
    commit.putBlob(blob.hash, blob.bytes);
    for (const page of pages) commit.putPage(page.hash, page.bytes);
    const manifest = makeManifest({
      pages: [...pages.map((page) => page.hash), null],
      moduleHash: blob.hash,
      label: 'round-trip',
    });
    const stats = await commit.finish(manifest);
    assert.equal(stats.pagesWritten, 8);
    assert.equal(stats.pagesAlreadyStored, 0);
    assert.equal(stats.blobsWritten, 1);
    assert.ok(stats.bytesWritten > 8 * snapshotPageBytes + blob.bytes.length);
    assert.ok(stats.totalMs >= stats.syncMs);

    assert.deepEqual(await store.readManifest(manifest.id), manifest);
    const read = await readAll(store, [...pages.map((page) => page.hash), pages[0]!.hash]);
    assert.equal(read.size, 8);
    for (const page of pages) assert.ok(read.get(page.hash)!.equals(page.bytes));
    assert.deepEqual(await store.readBlob(blob.hash), blob.bytes);
    const [summary, ...others] = await store.list();
    assert.equal(others.length, 0);
    assert.deepEqual(summary, {
      id: manifest.id,
      createdAtMs: manifest.createdAtMs,
      kind: 'task',
      label: 'round-trip',
      parent: null,
      tasks: 1,
      pages: 8,
      bytes: 9 * snapshotPageBytes,
    });
    await store.close();

    const again = await openStore(directory);
    assert.deepEqual(again.recovered, []);
    assert.ok(again.hasPage(pages[3]!.hash));
    assert.ok(again.hasBlob(blob.hash));
    assert.deepEqual(await again.readManifest(manifest.id.slice(0, 6)), manifest);
    const reread = await readAll(
      again,
      pages.map((page) => page.hash),
    );
    for (const page of pages) assert.ok(reread.get(page.hash)!.equals(page.bytes));
    assert.deepEqual((await again.verify(manifest.id)).problems, []);
  });

  it('compresses pages when asked, and any store reads them', async () => {
    const directory = freshDirectory();
    const store = await openStore(directory, { compress: true });
    const pages = makePages(hasher, [11, 12, 13, 14], true);
    const random = makePages(hasher, [15]);
    const { manifest, stats } = await commitSnapshot(store, [...pages, ...random]);
    assert.ok(stats.bytesWritten < 2 * snapshotPageBytes, `${stats.bytesWritten} bytes written`);
    await store.close();
    const plain = await openStore(directory);
    const read = await readAll(plain, manifest.tasks[0]!.memory.pages as string[]);
    for (const page of [...pages, ...random]) assert.ok(read.get(page.hash)!.equals(page.bytes));
    assert.deepEqual((await plain.verify(manifest.id)).problems, []);
  });

  it('stores a page once: a second snapshot writes only its new pages', async () => {
    const store = await openStore(freshDirectory());
    const first = makePages(hasher, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const second = [...first.slice(5), ...makePages(hasher, [21, 22, 23, 24, 25])];
    await commitSnapshot(store, first);
    // putPage of a stored page is ignored even when the caller does not ask hasPage first.
    const commit = store.beginCommit();
    for (const page of second) commit.putPage(page.hash, page.bytes);
    commit.putPage(second[9]!.hash, second[9]!.bytes);
    const stats = await commit.finish(
      makeManifest({ pages: second.map((page) => page.hash), moduleHash: makeBlob(1).hash }),
    );
    assert.equal(stats.pagesWritten, 5);
    assert.equal(stats.pagesAlreadyStored, 5);
    assert.equal(stats.blobsWritten, 0);
    assert.equal(stats.bytesWritten, 5 * (snapshotPageBytes + 48));
  });

  it('lists newest first and resolves unique id prefixes', async () => {
    const store = await openStore(freshDirectory());
    const pages = makePages(hasher, [1]);
    await commitSnapshot(store, pages, undefined, {
      id: 'aaaa000000000001',
      createdAtMs: 1000,
      label: 'one',
    });
    await commitSnapshot(store, pages, undefined, {
      id: 'aaaa000000000002',
      createdAtMs: 3000,
      label: 'two',
      parent: 'aaaa000000000001',
    });
    await commitSnapshot(store, pages, undefined, {
      id: 'bbbb000000000000',
      createdAtMs: 2000,
      label: 'three',
    });
    assert.deepEqual(
      (await store.list()).map((summary) => [summary.id, summary.label, summary.parent]),
      [
        ['aaaa000000000002', 'two', 'aaaa000000000001'],
        ['bbbb000000000000', 'three', null],
        ['aaaa000000000001', 'one', null],
      ],
    );
    assert.equal(await store.resolveId('b'), 'bbbb000000000000');
    assert.equal(await store.resolveId('AAAA000000000002'), 'aaaa000000000002');
    assert.equal(await store.resolveId('aaaa000000000001'), 'aaaa000000000001');
    await rejectsWith(store.resolveId('aaaa'), 'SNAPSHOT_AMBIGUOUS');
    await rejectsWith(store.resolveId(''), 'SNAPSHOT_NOT_FOUND');
    await rejectsWith(store.resolveId('cccc'), 'SNAPSHOT_NOT_FOUND');
    await rejectsWith(store.resolveId('not-hex'), 'SNAPSHOT_NOT_FOUND');
    await rejectsWith(store.readManifest('aaaa'), 'SNAPSHOT_AMBIGUOUS');
    await rejectsWith(
      store.readPages([hasher.hash(new Uint8Array(10))], () => undefined),
      'SNAPSHOT_PAGE_MISSING',
    );
  });

  it('refuses a manifest that refers to pages neither stored nor put, and shows nothing', async () => {
    const directory = freshDirectory();
    const store = await openStore(directory);
    const pages = makePages(hasher, [1, 2]);
    const commit = store.beginCommit();
    commit.putPage(pages[0]!.hash, pages[0]!.bytes);
    const error = await rejectsWith(
      commit.finish(makeManifest({ pages: pages.map((page) => page.hash), moduleHash: makeBlob(1).hash })),
      'SNAPSHOT_PAGE_MISSING',
    );
    assert.match(error.message, /2 page|1 page/);
    await commit.abort(); // harmless after a failed finish
    assert.deepEqual(await store.list(), []);
    assert.equal(store.hasPage(pages[0]!.hash), false);
    assert.equal(packBytes(directory), 0);
  });

  it('aborts a commit: nothing visible and its appended bytes given back', async () => {
    const directory = freshDirectory();
    const store = await openStore(directory);
    const { manifest } = await commitSnapshot(store, makePages(hasher, [1, 2, 3]));
    const before = packBytes(directory);
    const commit = store.beginCommit();
    for (const page of makePages(
      hasher,
      Array.from({ length: 100 }, (_, i) => 100 + i),
    ))
      commit.putPage(page.hash, page.bytes);
    await commit.abort();
    assert.equal(packBytes(directory), before);
    assert.deepEqual(
      (await store.list()).map((summary) => summary.id),
      [manifest.id],
    );
    assert.deepEqual((await store.verify(manifest.id)).problems, []);
  });

  it('removes snapshots; gc reclaims only what no remaining snapshot refers to', async () => {
    const directory = freshDirectory();
    const store = await openStore(directory);
    const shared = makePages(hasher, [1, 2, 3, 4, 5]);
    const onlyA = makePages(hasher, [11, 12, 13, 14, 15]);
    const onlyB = makePages(hasher, [21, 22, 23]);
    const onlyC = makePages(hasher, [31, 32, 33]);
    const blobA = makeBlob(10);
    const a = await commitSnapshot(store, [...onlyA, ...shared], blobA);
    const b = await commitSnapshot(store, [...shared, ...onlyB]);
    const c = await commitSnapshot(store, onlyC);
    const before = packBytes(directory);

    await store.remove(a.manifest.id.slice(0, 8));
    assert.deepEqual(
      (await store.list()).map((summary) => summary.id).sort(),
      [b.manifest.id, c.manifest.id].sort(),
    );
    assert.equal(existsSync(join(directory, 'manifests', `${a.manifest.id}.snap`)), false);
    await rejectsWith(store.readManifest(a.manifest.id), 'SNAPSHOT_NOT_FOUND');
    assert.ok(store.hasPage(onlyA[0]!.hash), 'pages stay until gc');

    const result = await store.gc();
    assert.deepEqual({ pages: result.pagesRemoved, blobs: result.blobsRemoved }, { pages: 5, blobs: 1 });
    assert.equal(result.bytesReclaimed, 5 * (snapshotPageBytes + 48) + 48 + blobA.bytes.length);
    assert.equal(packBytes(directory), before - result.bytesReclaimed);
    for (const page of onlyA) assert.equal(store.hasPage(page.hash), false);
    assert.equal(store.hasBlob(blobA.hash), false);
    for (const page of [...shared, ...onlyB, ...onlyC]) assert.ok(store.hasPage(page.hash));
    assert.deepEqual((await store.verify(b.manifest.id)).problems, []);
    assert.deepEqual((await store.verify(c.manifest.id)).problems, []);
    assert.deepEqual(await store.gc(), { pagesRemoved: 0, bytesReclaimed: 0, blobsRemoved: 0 });

    // After a reopen everything still reads (the moved records' new locations were committed).
    await store.close();
    const again = await openStore(directory);
    assert.deepEqual(again.recovered, []);
    const read = await readAll(
      again,
      [...shared, ...onlyB].map((page) => page.hash),
    );
    for (const page of [...shared, ...onlyB]) assert.ok(read.get(page.hash)!.equals(page.bytes));
    // A dropped page can be stored again.
    const d = await commitSnapshot(again, onlyA.slice(0, 2));
    assert.equal(d.stats.pagesWritten, 2);
    assert.deepEqual((await again.verify(d.manifest.id)).problems, []);
  });

  it('gc waits for open commits, and keeps a page a commit was told is stored', async () => {
    const store = await openStore(freshDirectory());
    const old = makePages(hasher, [1, 2]);
    const a = await commitSnapshot(store, old);
    await store.remove(a.manifest.id);
    // A freezer checks hasPage during its commit: the answer must hold until the commit finishes.
    const commit = store.beginCommit();
    assert.ok(store.hasPage(old[0]!.hash));
    let collected = false;
    const gc = store.gc().then((result) => {
      collected = true;
      return result;
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(collected, false, 'gc must wait for the open commit');
    const manifest = makeManifest({ pages: [old[0]!.hash], moduleHash: makeBlob(1).hash });
    await commit.finish(manifest);
    const result = await gc;
    assert.equal(result.pagesRemoved, 1);
    assert.ok(store.hasPage(old[0]!.hash));
    assert.deepEqual((await store.verify(manifest.id)).problems, []);
  });

  it('detects a flipped bit in a page, a record header, a blob and a manifest', async () => {
    const directory = freshDirectory();
    const store = await openStore(directory);
    const pages = makePages(hasher, [1, 2, 3, 4]);
    const blob = makeBlob(5, 5000);
    const { manifest } = await commitSnapshot(store, pages, blob);
    assert.deepEqual((await store.verify(manifest.id)).problems, []);

    const page = pages[2]!;
    const at = findInPacks(directory, page.bytes.subarray(0, 64));
    flipBit(at.file, at.offset + 1000, 3);
    let report = await store.verify(manifest.id);
    assert.equal(report.problems.length, 1);
    assert.match(report.problems[0]!, new RegExp(`^SNAPSHOT_CORRUPT: page ${page.hash} .*checksum`));
    const error = await rejectsWith(
      readAll(
        store,
        pages.map((p) => p.hash),
      ),
      'SNAPSHOT_CORRUPT',
    );
    assert.match(error.message, new RegExp(page.hash));
    flipBit(at.file, at.offset + 1000, 3);

    // The 48-byte record header just before the page's bytes.
    flipBit(at.file, at.offset - 40, 0);
    report = await store.verify(manifest.id);
    assert.deepEqual(report.problems.length, 1);
    assert.match(report.problems[0]!, /SNAPSHOT_CORRUPT: .*header/);
    flipBit(at.file, at.offset - 40, 0);

    const blobAt = findInPacks(directory, blob.bytes.subarray(0, 64));
    flipBit(blobAt.file, blobAt.offset + 4999, 7);
    report = await store.verify(manifest.id);
    assert.equal(report.problems.length, 1);
    assert.match(report.problems[0]!, new RegExp(`^SNAPSHOT_CORRUPT: blob ${blob.hash}`));
    await rejectsWith(store.readBlob(blob.hash), 'SNAPSHOT_CORRUPT');
    flipBit(blobAt.file, blobAt.offset + 4999, 7);

    const manifestFile = join(directory, 'manifests', `${manifest.id}.snap`);
    for (const offset of [0, 9, 30, statSync(manifestFile).size - 1]) {
      flipBit(manifestFile, offset, 2);
      report = await store.verify(manifest.id);
      assert.equal(report.problems.length, 1);
      assert.match(report.problems[0]!, /^SNAPSHOT_CORRUPT: the manifest file .* checksum/);
      await rejectsWith(store.readManifest(manifest.id), 'SNAPSHOT_CORRUPT');
      flipBit(manifestFile, offset, 2);
    }
    assert.deepEqual((await store.verify(manifest.id)).problems, []);
  });

  it('reports truncated or missing manifests and packs with stable codes', async () => {
    const directory = freshDirectory();
    let store = await openStore(directory);
    const pages = makePages(hasher, [1, 2, 3]);
    const { manifest } = await commitSnapshot(store, pages);
    const manifestFile = join(directory, 'manifests', `${manifest.id}.snap`);
    const manifestBytes = readFileSync(manifestFile);

    truncateSync(manifestFile, 100);
    await rejectsWith(store.readManifest(manifest.id), 'SNAPSHOT_CORRUPT');
    assert.match((await store.verify(manifest.id)).problems[0]!, /SNAPSHOT_CORRUPT: .*truncated/);
    await rejectsWith(store.gc(), 'SNAPSHOT_CORRUPT'); // gc cannot know what the snapshot refers to
    rmSync(manifestFile);
    await rejectsWith(store.readManifest(manifest.id), 'SNAPSHOT_CORRUPT');
    writeFileSync(manifestFile, manifestBytes);
    assert.deepEqual((await store.verify(manifest.id)).problems, []);

    await store.close();
    const [pack] = packFiles(directory);
    truncateSync(pack!, statSync(pack!).size - 1000);
    store = await openStore(directory);
    await rejectsWith(
      readAll(
        store,
        pages.map((page) => page.hash),
      ),
      'SNAPSHOT_CORRUPT',
    );
    const report = await store.verify(manifest.id);
    assert.ok(report.problems.length >= 1);
    assert.ok(
      report.problems.every((problem) => problem.startsWith('SNAPSHOT_CORRUPT: ')),
      report.problems.join('\n'),
    );
    assert.match(report.problems.join('\n'), /truncated/);

    await store.close();
    rmSync(pack!);
    store = await openStore(directory);
    await rejectsWith(
      readAll(
        store,
        pages.map((page) => page.hash),
      ),
      'SNAPSHOT_PAGE_MISSING',
    );
    assert.match((await store.verify(manifest.id)).problems[0]!, /^SNAPSHOT_PAGE_MISSING: /);
  });

  it('repairs at open what a crash leaves: a torn pack tail, tmp files, an orphan manifest', async () => {
    const directory = freshDirectory();
    let store = await openStore(directory);
    const { manifest } = await commitSnapshot(store, makePages(hasher, [1, 2]));
    await store.close();
    const [pack] = packFiles(directory);
    const size = statSync(pack!).size;
    writeFileSync(pack!, Buffer.alloc(70_000, 9), { flag: 'a' });
    writeFileSync(join(directory, 'packs', 'pack-00000099.dat'), Buffer.alloc(100, 1));
    writeFileSync(join(directory, 'tmp', 'abc.tmp'), 'half a manifest');
    writeFileSync(join(directory, 'manifests', '0123456789abcdef.snap'), 'never committed');
    store = await openStore(directory);
    assert.equal(store.recovered.length, 4, store.recovered.join('\n'));
    assert.equal(statSync(pack!).size, size);
    assert.deepEqual(readdirSync(join(directory, 'tmp')), []);
    assert.equal(existsSync(join(directory, 'manifests', '0123456789abcdef.snap')), false);
    assert.equal(existsSync(join(directory, 'packs', 'pack-00000099.dat')), false);
    assert.deepEqual((await store.verify(manifest.id)).problems, []);
    // The next pack number stays above any seen, and commits append cleanly after the cut.
    const next = await commitSnapshot(store, makePages(hasher, [3, 4]));
    assert.deepEqual((await store.verify(next.manifest.id)).problems, []);
  });

  it('exports a snapshot to one file and imports it into another store, byte for byte', async () => {
    const source = await openStore(freshDirectory(), { compress: true });
    const pages = [...makePages(hasher, [1, 2, 3], true), ...makePages(hasher, [4, 5])];
    const blob = makeBlob(7, 20_000);
    const { manifest } = await commitSnapshot(source, pages, blob);
    const file = join(freshDirectory(), 'snapshot.norma');
    const { bytes } = await source.exportTo(manifest.id.slice(0, 5), file);
    assert.equal(bytes, statSync(file).size);
    assert.ok(bytes > 5 * snapshotPageBytes + blob.bytes.length);

    const target = await openStore(freshDirectory());
    assert.equal(await target.importFrom(file), manifest.id);
    assert.deepEqual(
      await target.readManifestBytes(manifest.id),
      await source.readManifestBytes(manifest.id),
    );
    assert.deepEqual(await target.readManifest(manifest.id), manifest);
    assert.deepEqual(await target.verify(manifest.id), { id: manifest.id, pages: 5, blobs: 1, problems: [] });
    const read = await readAll(
      target,
      pages.map((page) => page.hash),
    );
    for (const page of pages) assert.ok(read.get(page.hash)!.equals(page.bytes));
    // Importing it again is a no-op that returns the id.
    assert.equal(await target.importFrom(file), manifest.id);
    assert.equal((await target.list()).length, 1);
  });

  it('refuses a damaged export file and imports nothing of it', async () => {
    const source = await openStore(freshDirectory());
    const pages = makePages(hasher, [1, 2, 3, 4]);
    const { manifest } = await commitSnapshot(source, pages, makeBlob(3, 9000));
    const good = join(freshDirectory(), 'good.norma');
    await source.exportTo(manifest.id, good);
    const original = readFileSync(good);
    const damaged = (name: string, change: (bytes: Buffer) => Buffer): string => {
      const file = join(directories.at(-1)!, name);
      writeFileSync(file, change(Buffer.from(original)));
      return file;
    };
    const flip = (offset: number) => (bytes: Buffer) => {
      bytes[offset]! ^= 0x10;
      return bytes;
    };
    const pagesStart = original.indexOf(pages[0]!.bytes.subarray(0, 64));
    const cases = {
      header: damaged('header.norma', flip(20)),
      manifest: damaged('manifest.norma', flip(64 + 50)),
      page: damaged('page.norma', flip(pagesStart + 2 * (16 + snapshotPageBytes) + 123)),
      blob: damaged('blob.norma', flip(original.length - 32 - 100)),
      trailer: damaged('trailer.norma', flip(original.length - 1)),
      truncated: damaged('truncated.norma', (bytes) => bytes.subarray(0, bytes.length - 70_000)),
      padded: damaged('padded.norma', (bytes) => Buffer.concat([bytes, Buffer.alloc(10)])),
    };
    const directory = freshDirectory();
    const target = await openStore(directory);
    for (const [what, file] of Object.entries(cases)) {
      const error = await rejectsWith(target.importFrom(file), 'SNAPSHOT_CORRUPT');
      assert.ok(error.message.length > 0, what);
    }
    await rejectsWith(target.importFrom(join(directory, 'no-such-file')), 'FILE_NOT_FOUND');
    assert.deepEqual(await target.list(), []);
    for (const page of pages) assert.equal(target.hasPage(page.hash), false);
    await target.close();
    const reopened = await openStore(directory);
    assert.deepEqual(await reopened.list(), []);
    assert.equal(packBytes(directory), 0);
    assert.equal(await reopened.importFrom(good), manifest.id);
  });

  it('is held by one process: another gets STORE_UNAVAILABLE naming the directory', async () => {
    const directory = freshDirectory();
    const store = await openStore(directory);
    const error = await rejectsWith(SnapshotStore.open(directory), 'STORE_UNAVAILABLE');
    assert.match(error.message, /already open in this process/);
    const output = await runChild(['open', directory]);
    assert.match(output, new RegExp(`^STORE_UNAVAILABLE .*${directory}.*in use by another process`));
    await store.close();
    const child = spawn(process.execPath, [childScript, 'open', directory], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      assert.equal(await firstLine(child), 'opened');
      await rejectsWith(SnapshotStore.open(directory), 'STORE_UNAVAILABLE');
    } finally {
      child.stdin!.end();
      await new Promise((resolve) => child.once('exit', resolve));
    }
    await (await openStore(directory)).close();
    const file = join(directory, 'a-file');
    writeFileSync(file, '');
    await rejectsWith(SnapshotStore.open(join(file, 'store')), 'STORE_UNAVAILABLE');
    // Node's recursive mkdir loops forever under /proc (the parent exists, the child is refused).
    if (existsSync('/proc/self'))
      await rejectsWith(SnapshotStore.open('/proc/no-such-store'), 'STORE_UNAVAILABLE');
  });

  it('survives SIGKILL at random moments: every listed snapshot verifies, every acknowledged one is listed', async function () {
    this.timeout(180_000);
    const directory = freshDirectory();
    const random = prng(20_240_601);
    const acknowledged = new Set<string>();
    const removals = new Set<string>();
    let repairs = 0;
    for (let round = 0; round < 8; round++) {
      const child = spawn(process.execPath, [childScript, 'churn', directory, String(round)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let output = '';
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (chunk: string) => {
        output += chunk;
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await until(() => output.includes('ready\n'), exited);
      await new Promise((resolve) => setTimeout(resolve, 30 + random() * 700));
      child.kill('SIGKILL');
      assert.equal(await exited, null, `the child ended by itself:\n${output}`);
      for (const line of output.split('\n')) {
        const [word, id] = line.split(' ');
        if (word === 'committed') acknowledged.add(id!);
        if (word === 'removing') removals.add(id!);
      }

      const store = await openStore(directory);
      repairs += store.recovered.length;
      const listed = await store.list();
      const ids = new Set(listed.map((summary) => summary.id));
      for (const id of acknowledged)
        if (!removals.has(id)) assert.ok(ids.has(id), `acknowledged snapshot ${id} lost`);
      for (const { id } of listed) assert.deepEqual((await store.verify(id)).problems, [], `snapshot ${id}`);
      assert.deepEqual(readdirSync(join(directory, 'tmp')), []);
      await store.close();
    }
    assert.ok(acknowledged.size > 8, `only ${acknowledged.size} commits in 8 rounds`);
    // Finally, gc over everything the crashes left, and all is still readable.
    const store = await openStore(directory);
    await store.gc();
    for (const { id } of await store.list()) assert.deepEqual((await store.verify(id)).problems, []);
    console.log(
      `      (${acknowledged.size} commits, ${removals.size} removals, ${repairs} repairs at reopen)`,
    );
  });

  describe('on a full disk (a small tmpfs)', () => {
    let mountPoint = '';
    let mounted = false;

    // A real full disk needs root to mount a tmpfs; CI and the development machines run as root, so
    // a failure to mount fails the suite instead of silently skipping it.
    before(() => {
      mountPoint = tempDirectory('norma-tmpfs-');
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mountPoint], { stdio: 'pipe' });
      mounted = true;
    });
    after(async () => {
      for (const store of stores.splice(0)) await store.close();
      if (mounted) execFileSync('umount', [mountPoint]);
      if (mountPoint !== '') rmSync(mountPoint, { recursive: true, force: true });
    });

    const free = (): number => {
      const stats = statfsSync(mountPoint);
      return stats.bavail * stats.bsize;
    };

    /** Fills the disk, then frees `room` bytes of the filler. */
    const fill = (filler: string, room: number): void => {
      rmSync(filler, { force: true });
      const fd = openSync(filler, 'w');
      const chunk = Buffer.alloc(64 * 1024, 1);
      let size = 0;
      try {
        for (;;) size += writeSync(fd, chunk, 0, chunk.length, size);
      } catch (error) {
        assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC');
      } finally {
        closeSync(fd);
      }
      truncateSync(filler, Math.max(0, statSync(filler).size - room));
    };

    /** Commits fresh pages with a large manifest (so the disk can also fill while it is written). */
    const commitFresh = async (store: SnapshotStore, seeds: number[]): Promise<string> => {
      const pages = makePages(hasher, seeds);
      const blob = makeBlob(1);
      const commit = store.beginCommit();
      if (!store.hasBlob(blob.hash)) commit.putBlob(blob.hash, blob.bytes);
      for (const page of pages) commit.putPage(page.hash, page.bytes);
      const manifest = makeManifest({ pages: pages.map((page) => page.hash), moduleHash: blob.hash });
      manifest.ipc = { filler: 'x'.repeat(40_000) };
      try {
        await commit.finish(manifest);
      } finally {
        await commit.abort();
      }
      return manifest.id;
    };

    const assertIntact = async (store: SnapshotStore, kept: readonly string[]): Promise<void> => {
      assert.deepEqual((await store.list()).map((summary) => summary.id).sort(), [...kept].sort());
      for (const id of kept) assert.deepEqual((await store.verify(id)).problems, [], id);
    };

    it('fails a commit with STORE_FULL, keeps earlier snapshots and stays usable', async () => {
      const directory = join(mountPoint, 'store');
      const filler = join(mountPoint, 'filler');
      const store = await openStore(directory);
      const kept = [
        (
          await commitSnapshot(
            store,
            makePages(
              hasher,
              Array.from({ length: 16 }, (_, i) => i),
            ),
          )
        ).manifest.id,
      ];
      const freeBefore = free();

      // Far more than the disk holds: fails in the pack writes, and gives their space back.
      const big = makePages(
        hasher,
        Array.from({ length: 160 }, (_, i) => 1000 + i),
      );
      await rejectsWith(commitSnapshot(store, big), 'STORE_FULL');
      assert.ok(free() >= freeBefore - 64 * 1024, `the failed commit kept ${freeBefore - free()} bytes`);
      await assertIntact(store, kept);

      // Leave more and more room around one commit's size, so that the disk fills in each step in
      // turn (pack writes, the manifest file, the headroom check before the catalogue write).
      const commitBytes = 4 * (snapshotPageBytes + 48) + 40_000;
      const outcomes = new Set<string>();
      let seed = 5000;
      for (let room = commitBytes - 64 * 1024; room < commitBytes + 320 * 1024; room += 8 * 1024) {
        fill(filler, room);
        try {
          kept.push(await commitFresh(store, [seed++, seed++, seed++, seed++]));
          outcomes.add('committed');
        } catch (error) {
          assert.ok(isNormaError(error, 'STORE_FULL'), String(error));
          outcomes.add(
            /committing a snapshot: ([a-z ]+)/.exec((error as Error).message)?.[1] ??
              (error as Error).message,
          );
        }
        rmSync(filler);
        await assertIntact(store, kept);
      }
      assert.deepEqual([...outcomes].sort(), [
        'committed',
        'writing pages',
        'writing the catalogue',
        'writing the manifest',
      ]);

      kept.push((await commitSnapshot(store, makePages(hasher, [9001, 9002]))).manifest.id);
      await store.close();
      const again = await openStore(directory);
      await assertIntact(again, kept);
      await again.close();
      rmSync(directory, { recursive: true });
    });

    it('recovers when the catalogue itself hits the full disk (no headroom check)', async () => {
      const directory = join(mountPoint, 'store-no-headroom');
      const filler = join(mountPoint, 'filler');
      const options = { catalogueHeadroomBytes: -1e15 };
      let store = await openStore(directory, options);
      const kept = [await commitFresh(store, [1, 2, 3])];
      // 64 pages: a catalogue batch larger than the slack in the last page of LevelDB's log.
      const commitBytes = 64 * (snapshotPageBytes + 48) + 40_000;
      let seed = 7000;
      let reopened = 0;
      let fits = 0;
      for (let room = commitBytes - 8 * 1024; room < commitBytes + 48 * 1024; room += 4 * 1024) {
        fill(filler, room);
        let committed: string | null = null;
        try {
          committed = await commitFresh(
            store,
            Array.from({ length: 64 }, () => seed++),
          );
          fits++;
        } catch (error) {
          assert.ok(isNormaError(error, 'STORE_FULL'), String(error));
        }
        rmSync(filler);
        try {
          await store.list();
        } catch (error) {
          // The catalogue could not be reopened on the full disk: the store says so until reopened,
          // and the reopen decides (here: the commit never landed, so its leftovers are removed).
          assert.ok(isNormaError(error, 'STORE_FULL'), String(error));
          await store.close();
          store = await openStore(directory, options);
          assert.ok(store.recovered.length > 0);
          reopened++;
        }
        if (committed !== null) {
          // The disk holds one such commit at a time: remove it again (gc on a nearly full disk).
          await assertIntact(store, [...kept, committed]);
          await store.remove(committed);
          await store.gc();
        }
        await assertIntact(store, kept);
      }
      assert.ok(
        fits > 0 && reopened > 0,
        `${fits} commits fit, ${reopened} catalogue failures needed a reopen`,
      );
      await store.close();
      rmSync(directory, { recursive: true });
    });
  });
});

/** Runs the child script to completion and returns its first output line. */
async function runChild(args: string[]): Promise<string> {
  const child = spawn(process.execPath, [childScript, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await firstLine(child);
  child.kill();
  return line;
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      output += chunk;
      const end = output.indexOf('\n');
      if (end >= 0) resolve(output.slice(0, end));
    });
    child.once('exit', () => reject(new Error(`the child exited before a line (${output})`)));
  });
}

/** Polls `condition` until true; fails if `exited` settles first. */
async function until(condition: () => boolean, exited: Promise<unknown>): Promise<void> {
  let done = false;
  void exited.then(() => {
    done = true;
  });
  while (!condition()) {
    if (done) throw new Error('the child exited early');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
