/**
 * The snapshot store: a directory that keeps snapshots durably, atomically and incrementally
 * (a page is stored once whatever number of snapshots refer to it), and checks everything it reads.
 *
 * Layout of a store directory (default `snapshots/`, any `--store DIR`):
 *
 *   catalogue/             LevelDB (classic-level): the index of pages and blobs (pack, offset,
 *                          lengths, encoding), the committed length of every pack, and one entry per
 *                          visible snapshot (see catalogue.ts). Its LOCK makes the store one process's.
 *   packs/pack-NNNNNNNN.dat append-only page and blob records (see pack-file.ts), up to 256 MiB each
 *   manifests/<id>.snap    a snapshot's manifest: the envelope bytes of format.ts's encodeManifest
 *   tmp/                   files being written (a manifest before its rename); emptied at open
 *
 * A commit (commit.ts, then finishCommit here) goes in this order, so that a crash at any point
 * leaves every earlier snapshot intact and no snapshot half-visible:
 *   1. pages and blobs appended to the active pack in ~4 MiB positional writes, then each pack
 *      written to is fdatasync'ed once (and packs/ synced if the pack is new);
 *   2. the manifest: tmp/ file, fsync, rename into manifests/, fsync of manifests/;
 *   3. one synced catalogue batch: the index entries of the new pages and blobs, the new committed
 *      length of each pack, and the snapshot's entry. The snapshot is visible from here on.
 * The index entries land with the snapshot's entry rather than before the manifest: then a commit
 * that fails at any step before 3 has nothing in the catalogue, and its pack bytes can be cut off.
 * The catalogue is the single source of truth; at open, the store repairs what a crash left:
 * packs are cut back to their committed length (a torn or uncommitted tail), pack files the
 * catalogue does not list are deleted (a commit or a gc rewrite that never landed), manifests
 * without an entry are deleted (a commit that died between 2 and 3, or a removal between its
 * two steps), and tmp/ is emptied.
 *
 * A full disk during a commit is STORE_FULL: the commit is rolled back (its appended bytes cut off,
 * its manifest file removed) and the store stays usable. Reads re-hash every page (xxh128) and
 * blob (sha256) and check each record's header against the catalogue; manifests are checked
 * against the length and xxh128 the catalogue recorded, then decoded (which validates them).
 * Reads are sorted by pack offset and merged into ~4 MiB ranges read ahead of the hashing, half of
 * which runs on a worker thread (hash-worker.ts), so verifying costs little more than reading.
 *
 * gc runs when no commit is open, and pins every page `hasPage` reports while it works, so a commit
 * that starts meanwhile never refers to a page gc is about to drop. Call hasPage/hasBlob while a
 * commit is open (as the freezer does) so that answer holds until the commit finishes.
 */
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { isNormaError, NormaError } from '../errors.js';
import { BufferPool } from './buffer-pool.js';
import {
  Catalogue,
  type CatalogueEntry,
  type CatalogueOp,
  encodeEntry,
  encodeLocation,
  encodePackLength,
  packKey,
  recordKey,
  type SnapshotSummary,
  snapshotKey,
} from './catalogue.js';
import { type Commit, type CommitHost, type CommitStats, PendingCommit } from './commit.js';
import {
  describe,
  isDiskFull,
  isMissing,
  makeDirectories,
  storeWriteError,
  syncDirectory,
  writeFileAtomically,
} from './disk.js';
import { readExportFile, writeExportFile } from './export-file.js';
import {
  decodeManifest,
  encodeManifest,
  referencedBlobs,
  referencedPages,
  type SnapshotManifest,
} from './format.js';
import { HashWorker } from './hash-worker.js';
import { Mutex } from './mutex.js';
import {
  type PackFile,
  type RecordKind,
  type RecordLocation,
  recordHeaderBytes,
  recordHeaderMatches,
} from './pack-file.js';
import { Packs } from './packs.js';
import { blobHash, loadPageHasher, type PageHasher } from './page-hash.js';

export type { SnapshotSummary } from './catalogue.js';
export type { Commit, CommitStats } from './commit.js';

export interface StoreOptions {
  /** Store pages and blobs brotli-compressed (quality 1) when that makes them smaller. */
  compress?: boolean;
  /** Free bytes a commit wants left before its catalogue write (see catalogueHeadroomBytesDefault). */
  catalogueHeadroomBytes?: number;
}

/** Size of the write and read buffers: large sequential I/O, a few records per request. */
const ioBufferBytes = 4 * 1024 * 1024;
/** Buffers kept for reuse (64 MiB): a 64 MiB commit then touches no fresh memory the second time. */
const ioBuffersRetained = 16;
/** Reads of records at most this far apart are merged into one (reading a gap beats a request). */
const readGapBytesMax = 256 * 1024;
/** Reads in flight ahead of the one being checked: the disk works while the pages before are hashed. */
const readAhead = 2;
/**
 * Free space a commit wants left before its catalogue write. A LevelDB log write that fails half way
 * needs the catalogue reopened (which itself writes), so a nearly full disk fails the commit early.
 */
const catalogueHeadroomBytesDefault = 256 * 1024;

/** Real paths of the stores open in this process. */
const openDirectories = new Set<string>();

interface PlannedRecord {
  name: string;
  location: RecordLocation;
}

interface ReadRange {
  pack: PackFile;
  start: number;
  end: number;
  records: PlannedRecord[];
}

interface LocatedRecord {
  record: PlannedRecord;
  data: Uint8Array;
}

/** A range read and its records located; part of them possibly handed to the hash worker. */
interface PreparedRange {
  buffer: Buffer;
  error?: unknown;
  located: (LocatedRecord | { record: PlannedRecord; problem: NormaError })[];
  /** Records this thread hashes (and decodes). */
  local: LocatedRecord[];
  offloaded: { items: LocatedRecord[]; hashes: Promise<string[] | null> } | null;
}

export class SnapshotStore implements CommitHost {
  readonly pool = new BufferPool(ioBufferBytes, ioBuffersRetained);
  /** What the last open repaired (torn pack tails, leftovers of a crash), for logs and tests. */
  readonly recovered: readonly string[];

  private readonly openCommits = new Set<PendingCommit>();
  private idleWaiters: (() => void)[] = [];
  /** Serializes every step that writes the catalogue: commit finishes, remove, gc, close. */
  private readonly exclusive = new Mutex();
  /** While gc decides what is dead: every page and blob hasPage/hasBlob confirmed meanwhile. */
  private pins: { pages: Set<string>; blobs: Set<string> } | null = null;
  private closed = false;
  private hashWorker: HashWorker | null = null;
  /** Set when the catalogue could not be reopened after a failed write: the store must be reopened. */
  private broken: NormaError | null = null;

  private constructor(
    readonly directory: string,
    private readonly realDirectory: string,
    readonly compress: boolean,
    private readonly catalogueHeadroomBytes: number,
    private readonly catalogue: Catalogue,
    readonly packs: Packs,
    private readonly pages: Map<string, RecordLocation>,
    private readonly blobs: Map<string, RecordLocation>,
    private readonly hasher: PageHasher,
    recovered: string[],
  ) {
    this.recovered = recovered;
  }

  /**
   * Opens the store in `directory`, creating it if needed, and repairs what a crash left. Throws
   * STORE_UNAVAILABLE if another process has it open or it cannot be created or written.
   */
  static async open(directory: string, options: StoreOptions = {}): Promise<SnapshotStore> {
    directory = resolve(directory);
    try {
      await makeDirectories(directory);
      for (const sub of ['catalogue', 'packs', 'manifests', 'tmp'])
        await makeDirectories(join(directory, sub));
      await fs.access(directory, fs.constants.W_OK);
    } catch (error) {
      throw new NormaError(
        'STORE_UNAVAILABLE',
        `the snapshot store ${directory} cannot be created: ${describe(error)}`,
        {
          cause: error,
        },
      );
    }
    // LevelDB's lock is a POSIX record lock, which a process drops when it closes *any* descriptor of
    // the LOCK file, and a failed second open of the same catalogue does just that: so a second open
    // within this process is refused here, before LevelDB is asked.
    const key = await fs.realpath(directory);
    if (openDirectories.has(key)) {
      throw new NormaError(
        'STORE_UNAVAILABLE',
        `the snapshot store ${directory} is already open in this process`,
      );
    }
    openDirectories.add(key);
    let catalogue: Catalogue;
    try {
      // The catalogue's lock is taken before anything else is touched: another process may own the rest.
      catalogue = await Catalogue.open(join(directory, 'catalogue'), directory);
    } catch (error) {
      openDirectories.delete(key);
      throw error;
    }
    try {
      const hasher = await loadPageHasher();
      const recovered: string[] = [];
      for (const name of await fs.readdir(join(directory, 'tmp'))) {
        await fs.rm(join(directory, 'tmp', name), { recursive: true, force: true });
        recovered.push(`removed tmp/${name}`);
      }
      const ids = new Set((await catalogue.entries()).map((entry) => entry.id));
      let orphans = 0;
      for (const name of await fs.readdir(join(directory, 'manifests'))) {
        const match = /^([0-9a-f]{16})\.snap$/.exec(name);
        if (match === null || ids.has(match[1]!)) continue;
        await fs.rm(join(directory, 'manifests', name), { force: true });
        recovered.push(`removed manifests/${name} (its commit never reached the catalogue)`);
        orphans++;
      }
      if (orphans > 0) await syncDirectory(join(directory, 'manifests'));
      const { packs, repaired } = await Packs.open(join(directory, 'packs'), await catalogue.packs());
      recovered.push(...repaired);
      const pages = await catalogue.locations('page');
      const blobs = await catalogue.locations('blob');
      return new SnapshotStore(
        directory,
        key,
        options.compress === true,
        options.catalogueHeadroomBytes ?? catalogueHeadroomBytesDefault,
        catalogue,
        packs,
        pages,
        blobs,
        hasher,
        recovered,
      );
    } catch (error) {
      await catalogue.close().catch(() => undefined);
      openDirectories.delete(key);
      throw storeWriteError(error, directory, 'opening it');
    }
  }

  // -------------------------------------------------------------------------------------------
  // Writing
  // -------------------------------------------------------------------------------------------

  /** True when the page is stored (an in-memory index: the freezer asks for every page). */
  hasPage(hash: string): boolean {
    const has = this.pages.has(hash);
    if (has && this.pins !== null) this.pins.pages.add(hash);
    return has;
  }

  hasBlob(hash: string): boolean {
    const has = this.blobs.has(hash);
    if (has && this.pins !== null) this.pins.blobs.add(hash);
    return has;
  }

  beginCommit(): Commit {
    this.assertUsable();
    const commit = new PendingCommit(this);
    this.openCommits.add(commit);
    return commit;
  }

  /** finish() of a commit: see the top of this file for the order of the steps. */
  async finishCommit(
    commit: PendingCommit,
    manifest: SnapshotManifest,
    envelope?: Uint8Array,
  ): Promise<CommitStats> {
    const release = await this.exclusive.acquire();
    const finishStarted = performance.now();
    const manifestPath = join(this.directory, 'manifests', `${manifest.id}.snap`);
    let manifestWritten = false;
    let step = 'checking the manifest';
    try {
      this.assertUsable();
      envelope ??= encodeManifest(manifest, this.hasher);
      // Decoding validates the manifest (a snapshot that could not be read back is never written).
      if (decodeManifest(envelope, this.hasher).id !== manifest.id)
        throw new Error(`the envelope given for snapshot ${manifest.id} holds another snapshot`);
      if ((await this.catalogue.entry(manifest.id)) !== undefined) {
        throw new Error(`snapshot id ${manifest.id} is already in the store`);
      }
      const pages = referencedPages(manifest);
      const blobs = referencedBlobs(manifest);
      const missing = [...pages].filter((hash) => !commit.pages.has(hash) && !this.pages.has(hash));
      const missingBlobs = [...blobs].filter((hash) => !commit.blobs.has(hash) && !this.blobs.has(hash));
      if (missing.length > 0 || missingBlobs.length > 0) {
        throw new NormaError(
          'SNAPSHOT_PAGE_MISSING',
          `the snapshot ${manifest.id} refers to ${missing.length} page(s) and ${missingBlobs.length} blob(s) neither stored nor put in its commit (first: ${[...missing, ...missingBlobs][0]})`,
        );
      }

      step = 'writing pages';
      await commit.drain();
      const writeMs = performance.now() - finishStarted;
      const syncStarted = performance.now();
      let newPack = false;
      for (const pack of commit.packsTouched) {
        await pack.sync();
        if (pack.committedBytes === 0) newPack = true;
      }
      if (newPack) await syncDirectory(join(this.directory, 'packs'));
      step = 'writing the manifest';
      manifestWritten = true;
      await writeFileAtomically(manifestPath, envelope, join(this.directory, 'tmp'));

      const ops: CatalogueOp[] = [];
      for (const [hash, location] of commit.pages) {
        ops.push({ type: 'put', key: recordKey('page', hash), value: encodeLocation(location) });
      }
      for (const [hash, location] of commit.blobs) {
        ops.push({ type: 'put', key: recordKey('blob', hash), value: encodeLocation(location) });
      }
      for (const pack of commit.packsTouched) {
        ops.push({
          type: 'put',
          key: packKey(pack.number),
          value: encodePackLength(pack.committedAfter(commit)),
        });
      }
      const entry: CatalogueEntry = {
        id: manifest.id,
        createdAtMs: manifest.createdAtMs,
        kind: manifest.kind,
        label: manifest.label,
        parent: manifest.parent,
        tasks: manifest.tasks.length,
        pages: pages.size,
        bytes:
          manifest.tasks.reduce((sum, task) => sum + task.memory.visibleBytes, 0) +
          manifest.memoryObjects.objects.reduce((sum, object) => sum + object.size, 0),
        manifestBytes: envelope.length,
        manifestHash: this.hasher.hash(envelope),
      };
      ops.push({ type: 'put', key: snapshotKey(manifest.id), value: encodeEntry(entry) });
      step = 'writing the catalogue';
      await this.ensureHeadroom(ops.length);
      await this.writeCatalogue(ops, async () => (await this.catalogue.entry(manifest.id)) !== undefined);
      const syncMs = performance.now() - syncStarted;

      // Visible and durable: publish the new records to hasPage/hasBlob and the readers.
      for (const pack of commit.packsTouched) pack.settle(commit);
      for (const [hash, location] of commit.pages) this.pages.set(hash, location);
      for (const [hash, location] of commit.blobs) this.blobs.set(hash, location);
      commit.state = 'done';
      this.forget(commit);
      let stillNew = 0;
      for (const hash of pages) if (commit.pages.has(hash)) stillNew++;
      return {
        pagesWritten: commit.pages.size,
        pagesAlreadyStored: pages.size - stillNew,
        bytesWritten: commit.bytesWritten,
        blobsWritten: commit.blobs.size,
        writeMs,
        syncMs,
        totalMs: performance.now() - commit.startedMs,
      };
    } catch (error) {
      if (this.broken === null) {
        await commit.rollback();
        if (manifestWritten) await fs.rm(manifestPath, { force: true }).catch(() => undefined);
      } else {
        // The catalogue is closed and may or may not hold this commit: leave every file as it is,
        // the next open decides (a landed commit is complete, an unlanded one is cleaned up).
        commit.state = 'done';
      }
      this.forget(commit);
      throw storeWriteError(error, this.directory, `committing a snapshot: ${step}`);
    } finally {
      release();
    }
  }

  async abortCommit(commit: PendingCommit): Promise<void> {
    await commit.rollback();
    this.forget(commit);
  }

  private forget(commit: PendingCommit): void {
    this.openCommits.delete(commit);
    if (this.openCommits.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  private async commitsIdle(): Promise<void> {
    while (this.openCommits.size > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
  }

  /** Fails early (as a full disk) when the catalogue write might not fit; see catalogueHeadroomBytes. */
  private async ensureHeadroom(operations: number): Promise<void> {
    let free: number;
    try {
      const stats = await fs.statfs(this.directory);
      free = stats.bavail * stats.bsize;
    } catch {
      return; // no statfs here: the catalogue write itself will tell
    }
    if (free < this.catalogueHeadroomBytes + operations * 256) {
      throw Object.assign(new Error(`only ${free} bytes free before the catalogue write`), {
        code: 'ENOSPC',
      });
    }
  }

  /**
   * One synced catalogue batch. After a failure the catalogue is reopened at once (LevelDB must drop
   * a torn log record before anything is written after it); `landed` then says whether the batch
   * made it after all (its sync failed but its record is whole). If the catalogue cannot be reopened
   * the store is broken until opened again, and files are left for that open to sort out.
   */
  private async writeCatalogue(ops: CatalogueOp[], landed?: () => Promise<boolean>): Promise<void> {
    try {
      await this.catalogue.write(ops);
      return;
    } catch (error) {
      try {
        await this.catalogue.reopen(this.directory);
      } catch (reopenError) {
        const failure = storeWriteError(error, this.directory, 'writing its catalogue');
        this.broken = new NormaError(
          failure.code,
          `${failure.message}; its catalogue could not be reopened (${describe(reopenError)}): open the store again once the disk has room`,
          { cause: error },
        );
        throw this.broken;
      }
      if (landed !== undefined && (await landed())) return;
      throw error;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reading
  // -------------------------------------------------------------------------------------------

  /** The full id of a snapshot from its id or a unique prefix of it. */
  async resolveId(idOrPrefix: string): Promise<string> {
    return (await this.entryOf(idOrPrefix)).id;
  }

  /** The catalogue entry of a snapshot from its id or a unique prefix of it. */
  private async entryOf(idOrPrefix: string): Promise<CatalogueEntry> {
    this.assertUsable();
    const prefix = idOrPrefix.toLowerCase();
    if (!/^[0-9a-f]{1,16}$/.test(prefix)) {
      throw new NormaError(
        'SNAPSHOT_NOT_FOUND',
        `no snapshot ${JSON.stringify(idOrPrefix)} in ${this.directory} (ids are hex digits)`,
      );
    }
    // A whole id (16 digits) is the prefix of itself only: one lookup instead of a scan.
    const entries =
      prefix.length === 16
        ? [await this.catalogue.entry(prefix)].filter((entry) => entry !== undefined)
        : await this.catalogue.entries(prefix);
    if (entries.length === 0)
      throw new NormaError('SNAPSHOT_NOT_FOUND', `no snapshot ${idOrPrefix} in ${this.directory}`);
    if (entries.length > 1) {
      const some = entries.slice(0, 5).map((entry) => entry.id);
      throw new NormaError(
        'SNAPSHOT_AMBIGUOUS',
        `${idOrPrefix} matches ${entries.length} snapshots (${some.join(', ')}${entries.length > some.length ? ', ...' : ''})`,
      );
    }
    return entries[0]!;
  }

  async readManifest(idOrPrefix: string): Promise<SnapshotManifest> {
    const entry = await this.entryOf(idOrPrefix);
    // Reading a manifest is how a resume starts: get the hash worker going for the pages to come.
    this.warmUp();
    const manifest = decodeManifest(await this.readManifestFile(entry), this.hasher);
    if (manifest.id !== entry.id) {
      throw new NormaError(
        'SNAPSHOT_CORRUPT',
        `the manifest file of snapshot ${entry.id} holds snapshot ${manifest.id}`,
      );
    }
    return manifest;
  }

  /** The manifest file's bytes, checked against the length and xxh128 the catalogue recorded. */
  async readManifestBytes(idOrPrefix: string): Promise<Uint8Array> {
    return this.readManifestFile(await this.entryOf(idOrPrefix));
  }

  private async readManifestFile(entry: CatalogueEntry): Promise<Uint8Array> {
    const path = join(this.directory, 'manifests', `${entry.id}.snap`);
    let bytes: Uint8Array;
    try {
      bytes = await fs.readFile(path);
    } catch (error) {
      if (isMissing(error)) throw new NormaError('SNAPSHOT_CORRUPT', `the manifest file ${path} is missing`);
      throw storeWriteError(error, this.directory, 'reading a manifest');
    }
    if (bytes.length !== entry.manifestBytes) {
      throw new NormaError(
        'SNAPSHOT_CORRUPT',
        `the manifest file ${path} is truncated or padded (${bytes.length} bytes, ${entry.manifestBytes} written)`,
      );
    }
    if (this.hasher.hash(bytes) !== entry.manifestHash) {
      throw new NormaError(
        'SNAPSHOT_CORRUPT',
        `the manifest file ${path} fails its checksum (damaged on disk)`,
      );
    }
    return bytes;
  }

  /**
   * Reads pages by hash, each once whatever number of times it is listed, in the order they lie on
   * disk. `each` gets bytes that are valid only during the call (they are in a reused read buffer):
   * copy them out. Every page is checked (header and xxh128): SNAPSHOT_CORRUPT names a damaged page,
   * SNAPSHOT_PAGE_MISSING an absent one.
   */
  async readPages(hashes: readonly string[], each: (hash: string, bytes: Uint8Array) => void): Promise<void> {
    this.assertUsable();
    this.warmUp();
    await this.scan('page', hashes, each);
  }

  /** A blob's bytes, checked against its sha256. */
  async readBlob(hash: string): Promise<Uint8Array> {
    this.assertUsable();
    let result: Uint8Array | undefined;
    await this.scan('blob', [hash], (_name, bytes) => {
      result = new Uint8Array(bytes);
    });
    return result!;
  }

  /**
   * Reads and checks records. Records are grouped per pack, sorted by offset and read in ranges of
   * up to a buffer, with `readAhead` ranges in flight while the current one is checked. Without
   * `report`, the first problem is thrown; with it, every problem is reported and the scan goes on.
   */
  private async scan(
    kind: RecordKind,
    names: readonly string[],
    each: (name: string, bytes: Uint8Array) => void,
    report?: (name: string, problem: NormaError) => void,
  ): Promise<void> {
    const fail = (name: string, problem: NormaError): void => {
      if (report === undefined) throw problem;
      report(name, problem);
    };
    const index = kind === 'page' ? this.pages : this.blobs;
    const byPack = new Map<number, PlannedRecord[]>();
    for (const name of new Set(names)) {
      const location = index.get(name);
      if (location === undefined) {
        fail(
          name,
          new NormaError('SNAPSHOT_PAGE_MISSING', `${kind} ${name} is not in the store ${this.directory}`),
        );
        continue;
      }
      const list = byPack.get(location.pack);
      if (list === undefined) byPack.set(location.pack, [{ name, location }]);
      else list.push({ name, location });
    }
    const ranges: ReadRange[] = [];
    for (const [number, records] of byPack) {
      const pack = this.packs.get(number);
      if (pack === undefined) {
        for (const record of records) {
          fail(
            record.name,
            new NormaError(
              'SNAPSHOT_PAGE_MISSING',
              `${kind} ${record.name} is in pack ${number}, which is not in the store`,
            ),
          );
        }
        continue;
      }
      records.sort((a, b) => a.location.offset - b.location.offset);
      let range: ReadRange | null = null;
      for (const record of records) {
        const start = record.location.offset;
        const end = start + recordHeaderBytes + record.location.storedBytes;
        if (
          range !== null &&
          start - range.end <= readGapBytesMax &&
          end - range.start <= this.pool.bufferBytes
        ) {
          range.records.push(record);
          range.end = Math.max(range.end, end);
        } else {
          range = { pack, start, end, records: [record] };
          ranges.push(range);
        }
      }
    }
    if (ranges.length === 0) return;

    // Readers hold their packs: gc may retire a pack meanwhile, its file stays readable until released.
    const held = new Set(ranges.map((range) => range.pack));
    for (const pack of held) pack.hold();
    const read = (range: ReadRange): Promise<PreparedRange> => {
      const length = range.end - range.start;
      const buffer = length <= this.pool.bufferBytes ? this.pool.take() : Buffer.allocUnsafeSlow(length);
      return range.pack.read(buffer, length, range.start).then(
        (bytes) => this.prepare(kind, range, buffer, bytes),
        (error: unknown) => ({ buffer, error, located: [], local: [], offloaded: null }),
      );
    };
    const inFlight: Promise<PreparedRange>[] = [];
    let next = 0;
    const launch = (): void => {
      if (next < ranges.length) inFlight.push(read(ranges[next++]!));
    };
    const where = (range: ReadRange, record: PlannedRecord): string =>
      `${kind} ${record.name} (pack ${range.pack.number}, offset ${record.location.offset})`;
    const checksumFailed = (range: ReadRange, record: PlannedRecord): NormaError =>
      new NormaError('SNAPSHOT_CORRUPT', `${where(range, record)} fails its checksum (damaged on disk)`);
    try {
      for (let ahead = 0; ahead <= readAhead; ahead++) launch();
      for (let index = 0; index < ranges.length; index++) {
        const range = ranges[index]!;
        const prepared = await inFlight[index]!;
        launch();
        if (prepared.error !== undefined) {
          const problem = isNormaError(prepared.error)
            ? prepared.error
            : storeWriteError(prepared.error, this.directory, `reading pack ${range.pack.number}`);
          for (const record of range.records) fail(record.name, problem);
          continue;
        }
        for (const item of prepared.located) if ('problem' in item) fail(item.record.name, item.problem);
        for (const { record, data } of prepared.local) {
          let bytes = data;
          if (record.location.encoding === 'brotli') {
            try {
              bytes = brotliDecompressSync(data);
            } catch {
              fail(
                record.name,
                new NormaError(
                  'SNAPSHOT_CORRUPT',
                  `${where(range, record)}: its compressed bytes are damaged`,
                ),
              );
              continue;
            }
            if (bytes.length !== record.location.rawBytes) {
              const what = `decodes to ${bytes.length} bytes, not ${record.location.rawBytes}`;
              fail(record.name, new NormaError('SNAPSHOT_CORRUPT', `${where(range, record)}: ${what}`));
              continue;
            }
          }
          const actual = kind === 'page' ? this.hasher.hash(bytes) : blobHash(bytes);
          if (actual !== record.name) fail(record.name, checksumFailed(range, record));
          else each(record.name, bytes);
        }
        if (prepared.offloaded !== null) {
          const hashes = await prepared.offloaded.hashes;
          prepared.offloaded.items.forEach(({ record, data }, i) => {
            // A worker that failed leaves its share to this thread.
            const actual = hashes?.[i] ?? this.hasher.hash(data);
            if (actual !== record.name) fail(record.name, checksumFailed(range, record));
            else each(record.name, data);
          });
        }
      }
    } finally {
      // Buffers go back once nothing reads them any more (the reads, the worker's share): on a
      // throw too, before the packs may be closed.
      for (const prepared of await Promise.all(inFlight)) {
        await prepared.offloaded?.hashes;
        this.pool.give(prepared.buffer);
      }
      for (const pack of held) pack.unhold();
    }
  }

  /**
   * Runs as soon as a range is read: checks each record's bounds and header, and hands half of the
   * raw pages to the hash worker (when it is ready) at once, so that it hashes while this thread
   * works through the ranges before.
   */
  private prepare(kind: RecordKind, range: ReadRange, buffer: Buffer, bytesRead: number): PreparedRange {
    const located = range.records.map((record) => this.locate(kind, record, range, buffer, bytesRead));
    const good = located.filter((item): item is LocatedRecord => 'data' in item);
    const worker = this.hashWorker;
    if (kind === 'page' && worker?.ready && buffer.buffer instanceof SharedArrayBuffer) {
      const raw = good.filter((item) => item.record.location.encoding === 'raw');
      if (raw.length >= 4) {
        const items = raw.slice(raw.length >> 1);
        const spans = new Uint32Array(items.length * 2);
        items.forEach((item, i) => {
          spans[2 * i] = item.data.byteOffset;
          spans[2 * i + 1] = item.data.length;
        });
        const given = new Set(items);
        return {
          buffer,
          located,
          local: good.filter((item) => !given.has(item)),
          offloaded: { items, hashes: worker.hash(buffer.buffer, spans).catch(() => null) },
        };
      }
    }
    return { buffer, located, local: good, offloaded: null };
  }

  /** A record's stored bytes in a range, once its bounds and header are checked, or what is wrong. */
  private locate(
    kind: RecordKind,
    record: PlannedRecord,
    range: ReadRange,
    buffer: Buffer,
    bytesRead: number,
  ): LocatedRecord | { record: PlannedRecord; problem: NormaError } {
    const { name, location } = record;
    const where = `${kind} ${name} (pack ${range.pack.number}, offset ${location.offset})`;
    const at = location.offset - range.start;
    const dataAt = at + recordHeaderBytes;
    if (dataAt + location.storedBytes > bytesRead) {
      const why = range.pack.damage ?? 'its pack file ends before it (truncated)';
      return { record, problem: new NormaError('SNAPSHOT_CORRUPT', `${where}: ${why}`) };
    }
    if (!recordHeaderMatches(buffer, at, kind, name, location)) {
      return {
        record,
        problem: new NormaError('SNAPSHOT_CORRUPT', `${where}: its record header is damaged`),
      };
    }
    return { record, data: buffer.subarray(dataAt, dataAt + location.storedBytes) };
  }

  /** Every snapshot, newest first (from the catalogue alone: no manifest is read). */
  async list(): Promise<SnapshotSummary[]> {
    this.assertUsable();
    const entries = await this.catalogue.entries();
    entries.sort((a, b) => b.createdAtMs - a.createdAtMs || (a.id < b.id ? 1 : -1));
    return entries.map(({ id, createdAtMs, kind, label, parent, tasks, pages, bytes }) => ({
      id,
      createdAtMs,
      kind,
      label,
      parent,
      tasks,
      pages,
      bytes,
    }));
  }

  /** Reads and checks the manifest and every page and blob of a snapshot; lists what is wrong. */
  async verify(
    idOrPrefix: string,
  ): Promise<{ id: string; pages: number; blobs: number; problems: string[] }> {
    const id = await this.resolveId(idOrPrefix);
    const problems: string[] = [];
    const note = (problem: NormaError): void => {
      problems.push(`${problem.code}: ${problem.message}`);
    };
    let manifest: SnapshotManifest;
    try {
      manifest = await this.readManifest(id);
    } catch (error) {
      if (!isNormaError(error)) throw error;
      note(error);
      return { id, pages: 0, blobs: 0, problems };
    }
    const pages = [...referencedPages(manifest)];
    const blobs = [...referencedBlobs(manifest)];
    await this.scan(
      'page',
      pages,
      () => undefined,
      (_name, problem) => note(problem),
    );
    await this.scan(
      'blob',
      blobs,
      () => undefined,
      (_name, problem) => note(problem),
    );
    return { id, pages: pages.length, blobs: blobs.length, problems };
  }

  // -------------------------------------------------------------------------------------------
  // Removing
  // -------------------------------------------------------------------------------------------

  /** Removes a snapshot (its catalogue entry, then its manifest). Its pages stay until gc. */
  async remove(idOrPrefix: string): Promise<void> {
    await this.exclusive.run(async () => {
      const id = await this.resolveId(idOrPrefix);
      try {
        await this.writeCatalogue([{ type: 'del', key: snapshotKey(id) }]);
        await fs.rm(join(this.directory, 'manifests', `${id}.snap`), { force: true });
        await syncDirectory(join(this.directory, 'manifests'));
      } catch (error) {
        throw storeWriteError(error, this.directory, `removing snapshot ${id}`);
      }
    });
  }

  /**
   * Drops the pages and blobs no remaining snapshot refers to, and gives their space back: a pack
   * with nothing live is deleted, one with dead records is rewritten into a new pack (the new pack
   * is listed and the old one unlisted in one catalogue batch, then the old file is deleted: a crash
   * at any point leaves one complete copy listed). Refuses (SNAPSHOT_CORRUPT) if a manifest cannot
   * be read, since what it refers to would be unknown.
   */
  async gc(): Promise<{ pagesRemoved: number; bytesReclaimed: number; blobsRemoved: number }> {
    this.assertUsable();
    let release: () => void;
    for (;;) {
      await this.commitsIdle();
      release = await this.exclusive.acquire();
      if (this.openCommits.size === 0) break;
      release();
    }
    try {
      this.assertUsable();
      this.pins = { pages: new Set(), blobs: new Set() };
      this.packs.seal();
      const catalogued = await this.catalogue.packs();
      const livePages = new Set<string>();
      const liveBlobs = new Set<string>();
      for (const entry of await this.catalogue.entries()) {
        let manifest: SnapshotManifest;
        try {
          manifest = decodeManifest(await this.readManifestFile(entry), this.hasher);
        } catch (error) {
          throw new NormaError(
            'SNAPSHOT_CORRUPT',
            `gc stopped: snapshot ${entry.id} cannot be read, so what it refers to is unknown (${describe(error)}); remove it first`,
            { cause: error },
          );
        }
        for (const hash of referencedPages(manifest)) livePages.add(hash);
        for (const hash of referencedBlobs(manifest)) liveBlobs.add(hash);
      }

      // From here on hasPage answers false for dead pages (a commit that wants one puts it again).
      const pins = this.pins;
      this.pins = null;
      const deadPages = [...this.pages.keys()].filter(
        (hash) => !livePages.has(hash) && !pins.pages.has(hash),
      );
      const deadBlobs = [...this.blobs.keys()].filter(
        (hash) => !liveBlobs.has(hash) && !pins.blobs.has(hash),
      );
      for (const hash of deadPages) this.pages.delete(hash);
      for (const hash of deadBlobs) this.blobs.delete(hash);
      const ops: CatalogueOp[] = [
        ...deadPages.map((hash): CatalogueOp => ({ type: 'del', key: recordKey('page', hash) })),
        ...deadBlobs.map((hash): CatalogueOp => ({ type: 'del', key: recordKey('blob', hash) })),
      ];
      try {
        if (ops.length > 0) await this.writeCatalogue(ops);
      } catch (error) {
        await this.reloadIndex();
        throw storeWriteError(error, this.directory, 'collecting garbage');
      }

      const live = new Map<number, { kind: RecordKind; name: string; location: RecordLocation }[]>();
      const note = (kind: RecordKind, name: string, location: RecordLocation): void => {
        const list = live.get(location.pack);
        if (list === undefined) live.set(location.pack, [{ kind, name, location }]);
        else list.push({ kind, name, location });
      };
      for (const [name, location] of this.pages) note('page', name, location);
      for (const [name, location] of this.blobs) note('blob', name, location);

      let bytesReclaimed = 0;
      try {
        // Empty packs first: deleting them gives a full disk the room the rewrites need.
        for (const [number, committed] of catalogued) {
          if (live.has(number)) continue;
          await this.writeCatalogue([{ type: 'del', key: packKey(number) }]);
          const pack = this.packs.get(number);
          if (pack !== undefined) await this.packs.remove(pack);
          bytesReclaimed += committed;
        }
        for (const [number, committed] of catalogued) {
          const records = live.get(number);
          const pack = this.packs.get(number);
          if (records === undefined || pack === undefined || pack.damage !== null) continue;
          const liveBytes = records.reduce(
            (sum, record) => sum + recordHeaderBytes + record.location.storedBytes,
            0,
          );
          if (liveBytes >= committed) continue;
          bytesReclaimed += committed - (await this.rewritePack(pack, records));
        }
        // Packs of commits rolled back in this session, never listed: nothing refers to them.
        for (const pack of this.packs.all()) {
          if (!catalogued.has(pack.number) && pack.committedBytes === 0 && !pack.busy)
            await this.packs.remove(pack);
        }
        await syncDirectory(join(this.directory, 'packs'));
      } catch (error) {
        throw storeWriteError(error, this.directory, 'collecting garbage');
      }
      return { pagesRemoved: deadPages.length, bytesReclaimed, blobsRemoved: deadBlobs.length };
    } finally {
      this.pins = null;
      release();
    }
  }

  /** Copies the live records of `old` into a new pack, switches the catalogue to it, deletes `old`. */
  private async rewritePack(
    old: PackFile,
    records: { kind: RecordKind; name: string; location: RecordLocation }[],
  ): Promise<number> {
    records.sort((a, b) => a.location.offset - b.location.offset);
    const fresh = this.packs.create();
    const moved: { kind: RecordKind; name: string; location: RecordLocation }[] = [];
    const input = this.pool.take();
    const output = this.pool.take();
    let written = 0;
    let fill = 0;
    const flush = async (): Promise<void> => {
      await fresh.write(output.subarray(0, fill), written);
      written += fill;
      fill = 0;
    };
    try {
      old.hold();
      try {
        let index = 0;
        while (index < records.length) {
          // One read covers consecutive records up to a buffer; records are copied verbatim (a
          // damaged one stays damaged, and detectable, in its new place).
          const start = records[index]!.location.offset;
          let end = index;
          let rangeEnd = start;
          while (end < records.length) {
            const location = records[end]!.location;
            const recordEnd = location.offset + recordHeaderBytes + location.storedBytes;
            if (recordEnd - start > input.length && end > index) break;
            rangeEnd = recordEnd;
            end++;
          }
          const length = rangeEnd - start;
          const source = length <= input.length ? input : Buffer.allocUnsafeSlow(length);
          if ((await old.read(source, length, start)) < length) {
            throw new NormaError(
              'SNAPSHOT_CORRUPT',
              `pack ${old.number} is shorter than its records (truncated)`,
            );
          }
          for (; index < end; index++) {
            const record = records[index]!;
            const recordBytes = recordHeaderBytes + record.location.storedBytes;
            const at = record.location.offset - start;
            if (fill + recordBytes > output.length) await flush();
            if (recordBytes > output.length) {
              await fresh.write(source.subarray(at, at + recordBytes), written);
              moved.push({
                ...record,
                location: { ...record.location, pack: fresh.number, offset: written },
              });
              written += recordBytes;
              continue;
            }
            source.copy(output, fill, at, at + recordBytes);
            moved.push({
              ...record,
              location: { ...record.location, pack: fresh.number, offset: written + fill },
            });
            fill += recordBytes;
          }
        }
        if (fill > 0) await flush();
      } finally {
        old.unhold();
      }
      await fresh.sync();
      await syncDirectory(join(this.directory, 'packs'));
      const ops: CatalogueOp[] = moved.map((record) => ({
        type: 'put',
        key: recordKey(record.kind, record.name),
        value: encodeLocation(record.location),
      }));
      ops.push({ type: 'put', key: packKey(fresh.number), value: encodePackLength(written) });
      ops.push({ type: 'del', key: packKey(old.number) });
      await this.writeCatalogue(ops);
    } catch (error) {
      if (this.broken === null) await this.packs.remove(fresh).catch(() => undefined);
      throw error;
    } finally {
      this.pool.give(input);
      this.pool.give(output);
    }
    fresh.committedBytes = written;
    fresh.reservedBytes = written;
    for (const record of moved)
      (record.kind === 'page' ? this.pages : this.blobs).set(record.name, record.location);
    await this.packs.remove(old);
    return written;
  }

  private async reloadIndex(): Promise<void> {
    const pages = await this.catalogue.locations('page');
    const blobs = await this.catalogue.locations('blob');
    this.pages.clear();
    this.blobs.clear();
    for (const [hash, location] of pages) this.pages.set(hash, location);
    for (const [hash, location] of blobs) this.blobs.set(hash, location);
  }

  // -------------------------------------------------------------------------------------------
  // Export and import
  // -------------------------------------------------------------------------------------------

  /** Writes one portable file with the manifest and every page and blob it refers to (see export-file.ts). */
  async exportTo(idOrPrefix: string, file: string): Promise<{ bytes: number }> {
    const id = await this.resolveId(idOrPrefix);
    const envelope = await this.readManifestBytes(id);
    const manifest = decodeManifest(envelope, this.hasher);
    const blobs = [...referencedBlobs(manifest)].map((hash) => {
      const location = this.blobs.get(hash);
      if (location === undefined)
        throw new NormaError('SNAPSHOT_PAGE_MISSING', `blob ${hash} is not in the store ${this.directory}`);
      return { hash, bytes: location.rawBytes };
    });
    try {
      const bytes = await writeExportFile(
        resolve(file),
        {
          manifest: envelope,
          pages: [...referencedPages(manifest)],
          blobs,
          readPages: (hashes, each) => this.readPages(hashes, each),
          readBlob: (hash) => this.readBlob(hash),
        },
        this.hasher,
      );
      return { bytes };
    } catch (error) {
      if (isNormaError(error)) throw error;
      if (isDiskFull(error))
        throw new NormaError('STORE_FULL', `the disk is full: cannot write ${file}`, { cause: error });
      throw new NormaError('FILE_NOT_FOUND', `cannot write the export file ${file}: ${describe(error)}`, {
        cause: error,
      });
    }
  }

  /**
   * Imports an export file: everything is checked (header, manifest, every page and blob, the
   * file's checksum) while its pages go into a commit that is finished only at the end, so a
   * damaged file (SNAPSHOT_CORRUPT) leaves nothing behind. Importing a snapshot the store already
   * holds (same id, same manifest) returns its id.
   */
  async importFrom(file: string): Promise<string> {
    this.assertUsable();
    const commit = this.beginCommit();
    let envelope: Uint8Array | null = null;
    let existing: CatalogueEntry | undefined;
    try {
      const manifest = await readExportFile(file, this.hasher, {
        manifest: async (bytes) => {
          const decoded = decodeManifest(bytes, this.hasher);
          existing = await this.catalogue.entry(decoded.id);
          if (existing !== undefined && this.hasher.hash(bytes) !== existing.manifestHash) {
            throw new NormaError(
              'SNAPSHOT_AMBIGUOUS',
              `the store already holds a different snapshot with id ${decoded.id}`,
              { hint: `Remove it first (\`norma snapshot rm ${decoded.id}\`) or import into another store.` },
            );
          }
          envelope = bytes;
          return decoded;
        },
        page: (hash, bytes) => commit.putPage(hash, bytes),
        blob: (hash, bytes) => commit.putBlob(hash, bytes),
      });
      if (existing !== undefined) {
        await commit.abort();
        return manifest.id;
      }
      // The exact envelope bytes that were exported.
      await commit.finish(manifest, envelope!);
      return manifest.id;
    } catch (error) {
      await commit.abort();
      throw storeWriteError(error, this.directory, `importing ${file}`);
    }
  }

  // -------------------------------------------------------------------------------------------

  /** Rolls back the commits still open, then closes the catalogue (releasing its lock) and the packs. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const commit of [...this.openCommits]) if (commit.state === 'open') await this.abortCommit(commit);
    await this.exclusive.run(async () => {
      if (this.closed) return;
      this.closed = true;
      this.packs.close();
      await this.hashWorker?.close().catch(() => undefined);
      await this.catalogue.close().catch(() => undefined);
      openDirectories.delete(this.realDirectory);
    });
  }

  private warmUp(): void {
    if (this.hashWorker !== null || this.closed) return;
    try {
      this.hashWorker = new HashWorker();
    } catch {
      // No worker threads here: scans hash on the main thread.
    }
  }

  private assertUsable(): void {
    if (this.broken !== null) throw this.broken;
    if (this.closed)
      throw new NormaError('STORE_UNAVAILABLE', `the snapshot store ${this.directory} is closed`);
  }
}
