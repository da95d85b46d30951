/**
 * The write side of one snapshot being committed. Pages and blobs are copied into large buffers as
 * they are put (the caller's memory may change as soon as putPage returns) and each full buffer is
 * appended to the active pack at once, in one positional write, while the caller goes on hashing.
 * Nothing written here is visible until the store's finish step has synced it and written the
 * catalogue; a rollback gives the appended space back.
 *
 * I/O failures are not thrown from putPage/putBlob (the freezer calls them in a synchronous loop):
 * the first one is kept, later puts are dropped, and finish reports it (STORE_FULL for a full disk).
 */
import assert from 'node:assert/strict';
import { brotliCompressSync, constants as zlib } from 'node:zlib';
import type { BufferPool } from './buffer-pool.js';
import { blobHashPattern, pageHashPattern, type SnapshotManifest, snapshotPageBytes } from './format.js';
import {
  type PackFile,
  type RecordEncoding,
  type RecordKind,
  type RecordLocation,
  recordBytesMax,
  recordHeaderBytes,
  writeRecordHeader,
} from './pack-file.js';
import type { Packs } from './packs.js';

export interface CommitStats {
  /** Pages this commit stored. */
  pagesWritten: number;
  /** Distinct pages the manifest refers to that were stored before (by any snapshot). */
  pagesAlreadyStored: number;
  /** Bytes appended to pack files (headers and stored, possibly compressed, data). */
  bytesWritten: number;
  blobsWritten: number;
  /** Time finish waited for the pack writes still in flight (the rest overlapped the caller's work). */
  writeMs: number;
  /** Time spent making it durable: pack syncs, the manifest file, the synced catalogue batch. */
  syncMs: number;
  /** From beginCommit to the snapshot being visible. */
  totalMs: number;
}

export interface Commit {
  /** Stores a page (copied before returning); ignored if the store has it or it was already put. */
  putPage(hash: string, bytes: Uint8Array): void;
  /**
   * Stores a page WITHOUT copying it: the bytes are written from where they are, so the caller must
   * leave them unchanged until finish or abort has settled (the freezer's capture copy is its own).
   * Saves a copy of every page, which costs more than the write itself when the buffers are new.
   */
  putPageRef(hash: string, bytes: Uint8Array): void;
  /** True when this commit already holds the page (put earlier in it). */
  hasPut(hash: string): boolean;
  /** Stores a blob (copied before returning); ignored if the store has it or it was already put. */
  putBlob(hash: string, bytes: Uint8Array): void;
  /**
   * Makes everything durable and then the snapshot visible, atomically; rolls back on failure.
   * `envelope`: the manifest's encoding when the caller has it (a snapshot pulled from another
   * node), stored as it is instead of encoding the manifest again (it is checked all the same).
   */
  finish(manifest: SnapshotManifest, envelope?: Uint8Array): Promise<CommitStats>;
  /** Gives up the commit and the space it took; harmless after finish (even a failed one). */
  abort(): Promise<void>;
}

/** What a commit needs from its store. */
export interface CommitHost {
  readonly packs: Packs;
  readonly pool: BufferPool;
  readonly compress: boolean;
  hasPage(hash: string): boolean;
  hasBlob(hash: string): boolean;
  finishCommit(
    commit: PendingCommit,
    manifest: SnapshotManifest,
    envelope?: Uint8Array,
  ): Promise<CommitStats>;
  abortCommit(commit: PendingCommit): Promise<void>;
}

interface BufferedRecord {
  kind: RecordKind;
  name: string;
  at: number;
  storedBytes: number;
  rawBytes: number;
  encoding: RecordEncoding;
}

const brotliOptions = {
  params: { [zlib.BROTLI_PARAM_QUALITY]: 1, [zlib.BROTLI_PARAM_SIZE_HINT]: snapshotPageBytes },
};

export class PendingCommit implements Commit {
  readonly startedMs = performance.now();
  state: 'open' | 'finishing' | 'done' = 'open';
  /** Where each page and blob put by this commit went. */
  readonly pages = new Map<string, RecordLocation>();
  readonly blobs = new Map<string, RecordLocation>();
  /** Packs this commit appended to: each is synced once at finish. */
  readonly packsTouched = new Set<PackFile>();
  bytesWritten = 0;
  /** The first I/O failure; finish throws it after rolling back. */
  failure: unknown = null;

  private buffer: Buffer | null = null;
  private fill = 0;
  private buffered: BufferedRecord[] = [];
  private readonly writes: Promise<void>[] = [];
  /** putPageRef's records: a header buffer and the caller's bytes each, written with writev. */
  private segments: Uint8Array[] = [];
  private segmentBytes = 0;
  private segmentRecords: BufferedRecord[] = [];

  constructor(private readonly host: CommitHost) {}

  putPage(hash: string, bytes: Uint8Array): void {
    assert.equal(this.state, 'open', 'putPage on a commit that is finishing or done');
    assert.match(hash, pageHashPattern);
    assert.equal(bytes.length, snapshotPageBytes, 'a page is snapshotPageBytes long');
    if (this.failure !== null || this.pages.has(hash) || this.host.hasPage(hash)) return;
    let stored = bytes;
    let encoding: RecordEncoding = 'raw';
    if (this.host.compress) {
      const compressed = brotliCompressSync(bytes, brotliOptions);
      if (compressed.length < bytes.length) {
        stored = compressed;
        encoding = 'brotli';
      }
    }
    this.append('page', hash, stored, bytes.length, encoding);
  }

  hasPut(hash: string): boolean {
    return this.pages.has(hash);
  }

  putPageRef(hash: string, bytes: Uint8Array): void {
    if (this.host.compress) {
      this.putPage(hash, bytes); // compression makes a new buffer anyway
      return;
    }
    assert.equal(this.state, 'open', 'putPageRef on a commit that is finishing or done');
    assert.match(hash, pageHashPattern);
    assert.equal(bytes.length, snapshotPageBytes, 'a page is snapshotPageBytes long');
    if (this.failure !== null || this.pages.has(hash) || this.host.hasPage(hash)) return;
    const location = { storedBytes: bytes.length, rawBytes: bytes.length, encoding: 'raw' as RecordEncoding };
    const header = Buffer.allocUnsafe(recordHeaderBytes);
    writeRecordHeader(header, 0, 'page', hash, location);
    this.segments.push(header, bytes);
    this.segmentRecords.push({ kind: 'page', name: hash, at: this.segmentBytes, ...location });
    this.segmentBytes += recordHeaderBytes + bytes.length;
    this.pages.set(hash, { pack: 0, offset: 0, ...location });
    if (this.segmentBytes >= this.host.pool.bufferBytes) this.flushSegments();
  }

  /** Appends putPageRef's records to the active pack in one writev. */
  private flushSegments(): void {
    const segments = this.segments;
    const records = this.segmentRecords;
    const length = this.segmentBytes;
    this.segments = [];
    this.segmentRecords = [];
    this.segmentBytes = 0;
    if (length === 0 || this.failure !== null) return;
    let reserved: { pack: PackFile; offset: number };
    try {
      reserved = this.host.packs.reserve(length, this);
    } catch (error) {
      this.failure = error;
      return;
    }
    const { pack, offset } = reserved;
    this.packsTouched.add(pack);
    for (const record of records) {
      this.pages.set(record.name, {
        pack: pack.number,
        offset: offset + record.at,
        storedBytes: record.storedBytes,
        rawBytes: record.rawBytes,
        encoding: record.encoding,
      });
    }
    this.bytesWritten += length;
    this.writes.push(
      pack.writeSegments(segments, offset).catch((error: unknown) => {
        this.failure ??= error;
      }),
    );
  }

  putBlob(hash: string, bytes: Uint8Array): void {
    assert.equal(this.state, 'open', 'putBlob on a commit that is finishing or done');
    assert.match(hash, blobHashPattern);
    assert.ok(bytes.length <= recordBytesMax - recordHeaderBytes, 'blob too large for a pack record');
    if (this.failure !== null || this.blobs.has(hash) || this.host.hasBlob(hash)) return;
    let stored = bytes;
    let encoding: RecordEncoding = 'raw';
    if (this.host.compress) {
      const compressed = brotliCompressSync(bytes, { params: { [zlib.BROTLI_PARAM_QUALITY]: 1 } });
      if (compressed.length < bytes.length) {
        stored = compressed;
        encoding = 'brotli';
      }
    }
    this.append('blob', hash, stored, bytes.length, encoding);
  }

  finish(manifest: SnapshotManifest, envelope?: Uint8Array): Promise<CommitStats> {
    assert.equal(this.state, 'open', 'finish on a commit that is finishing or done');
    this.state = 'finishing';
    return this.host.finishCommit(this, manifest, envelope);
  }

  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    await this.host.abortCommit(this);
  }

  private append(
    kind: RecordKind,
    name: string,
    stored: Uint8Array,
    rawBytes: number,
    encoding: RecordEncoding,
  ): void {
    const recordBytes = recordHeaderBytes + stored.length;
    if (this.buffer !== null && this.fill + recordBytes > this.buffer.length) this.flush();
    let target = this.buffer;
    if (target === null) {
      // A record larger than a pool buffer (a big module) gets a buffer of its own.
      target =
        recordBytes > this.host.pool.bufferBytes
          ? Buffer.allocUnsafeSlow(recordBytes)
          : this.host.pool.take();
      this.buffer = target;
    }
    const location = { storedBytes: stored.length, rawBytes, encoding };
    writeRecordHeader(target, this.fill, kind, name, location);
    target.set(stored, this.fill + recordHeaderBytes);
    this.buffered.push({ kind, name, at: this.fill, ...location });
    this.fill += recordBytes;
    (kind === 'page' ? this.pages : this.blobs).set(name, { pack: 0, offset: 0, ...location });
  }

  /** Appends the buffered records to the active pack: one reservation, one write, issued now. */
  flush(): void {
    this.flushSegments();
    const buffer = this.buffer;
    if (buffer === null) return;
    const length = this.fill;
    const records = this.buffered;
    this.buffer = null;
    this.fill = 0;
    this.buffered = [];
    if (length === 0 || this.failure !== null) {
      this.host.pool.give(buffer);
      return;
    }
    let reserved: { pack: PackFile; offset: number };
    try {
      reserved = this.host.packs.reserve(length, this);
    } catch (error) {
      // Creating a new pack file failed (a full disk cannot even take an inode).
      this.failure = error;
      this.host.pool.give(buffer);
      return;
    }
    const { pack, offset } = reserved;
    this.packsTouched.add(pack);
    for (const record of records) {
      const location = {
        pack: pack.number,
        offset: offset + record.at,
        storedBytes: record.storedBytes,
        rawBytes: record.rawBytes,
        encoding: record.encoding,
      };
      (record.kind === 'page' ? this.pages : this.blobs).set(record.name, location);
    }
    this.bytesWritten += length;
    this.writes.push(
      pack.write(buffer.subarray(0, length), offset).then(
        () => this.host.pool.give(buffer),
        (error: unknown) => {
          this.failure ??= error;
          this.host.pool.give(buffer);
        },
      ),
    );
  }

  /** Flushes and waits for every write; throws the first failure. */
  async drain(): Promise<void> {
    this.flush();
    await Promise.all(this.writes);
    if (this.failure !== null) throw this.failure;
  }

  /** Waits for the writes in flight, then gives back the space they took. Never throws for I/O. */
  async rollback(): Promise<void> {
    this.state = 'done';
    if (this.buffer !== null) this.host.pool.give(this.buffer);
    this.buffer = null;
    this.buffered = [];
    await Promise.all(this.writes);
    for (const pack of this.packsTouched) {
      // A failed truncation leaves bytes past the committed length: the next open cuts them.
      await pack.release(this).catch(() => undefined);
    }
  }
}
