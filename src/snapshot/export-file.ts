/**
 * The export file: one snapshot as a single portable file (manifest, every page and every blob it
 * refers to), independent of any store's packs or catalogue, and checked end to end on import.
 *
 * Layout (little-endian):
 *   0   8 bytes  magic "NORMAEXP"
 *   8   u32      export format version (exportFormatVersion)
 *  12   u32      flags, 0
 *  16   u32      snapshot format version of the manifest (informational: the envelope is checked)
 *  20   u32      pages
 *  24   u32      blobs
 *  28   u32      0
 *  32   u64      manifest envelope bytes
 *  40   u64      bytes of the whole file (a truncated file is refused before reading on)
 *  48   16 bytes xxh128 of bytes 0..48
 *  64   the manifest envelope (format.ts: magic, version, its own checksum)
 *       pages: 16-byte xxh128 name, then the 65536 raw bytes (never compressed: any store reads it)
 *       blobs: 32-byte sha256 name, u64 length, then the bytes
 *  end  32-byte trailer: "NORMAEND", 8 zero bytes, xxh128 of every byte before the trailer
 *
 * Every page and blob is also re-hashed against its name, and the names must be exactly those
 * the manifest refers to.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createXXHash128, type IHasher } from 'hash-wasm';
import { isNormaError, NormaError } from '../errors.js';
import { syncDirectory, writeAll } from './disk.js';
import {
  referencedBlobs,
  referencedPages,
  type SnapshotManifest,
  snapshotFormatVersion,
  snapshotPageBytes,
} from './format.js';
import { blobHash, type PageHasher } from './page-hash.js';

export const exportFormatVersion = 1;
const exportMagic = 'NORMAEXP';
const trailerMagic = 'NORMAEND';
const headerBytes = 64;
const trailerBytes = 32;
const pageRecordBytes = 16 + snapshotPageBytes;
const blobRecordHeaderBytes = 40;
/** Pages per read batch and per write: about 4 MiB. */
const pagesPerChunk = 64;

export interface ExportSource {
  manifest: Uint8Array;
  pages: readonly string[];
  blobs: readonly { hash: string; bytes: number }[];
  /** Calls `each` once per page with bytes valid only during the call (SnapshotStore.readPages). */
  readPages(hashes: readonly string[], each: (hash: string, bytes: Uint8Array) => void): Promise<void>;
  readBlob(hash: string): Promise<Uint8Array>;
}

const corrupt = (file: string, what: string): NormaError =>
  new NormaError('SNAPSHOT_CORRUPT', `the export file ${file} ${what}`);

/** Writes the export to a temporary file beside `file`, syncs it, then renames it into place. */
export async function writeExportFile(
  file: string,
  source: ExportSource,
  hasher: PageHasher,
): Promise<number> {
  const total =
    headerBytes +
    source.manifest.length +
    source.pages.length * pageRecordBytes +
    source.blobs.reduce((sum, blob) => sum + blobRecordHeaderBytes + blob.bytes, 0) +
    trailerBytes;
  const header = new Uint8Array(headerBytes);
  const view = new DataView(header.buffer);
  header.set(Buffer.from(exportMagic, 'latin1'), 0);
  view.setUint32(8, exportFormatVersion, true);
  view.setUint32(12, 0, true);
  view.setUint32(16, snapshotFormatVersion, true);
  view.setUint32(20, source.pages.length, true);
  view.setUint32(24, source.blobs.length, true);
  view.setBigUint64(32, BigInt(source.manifest.length), true);
  view.setBigUint64(40, BigInt(total), true);
  header.set(Buffer.from(hasher.hash(header.subarray(0, 48)), 'hex'), 48);

  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const out = await fs.open(tmp, 'wx');
  const stream = await createXXHash128();
  stream.init();
  let position = 0;
  const put = async (bytes: Uint8Array): Promise<void> => {
    stream.update(bytes);
    await writeAll(out, bytes, position);
    position += bytes.length;
  };
  try {
    await put(header);
    await put(source.manifest);
    const chunk = Buffer.allocUnsafeSlow(pagesPerChunk * pageRecordBytes);
    for (let start = 0; start < source.pages.length; start += pagesPerChunk) {
      const batch = source.pages.slice(start, start + pagesPerChunk);
      let fill = 0;
      await source.readPages(batch, (hash, bytes) => {
        chunk.write(hash, fill, 'hex');
        chunk.set(bytes, fill + 16);
        fill += pageRecordBytes;
      });
      await put(chunk.subarray(0, fill));
    }
    for (const blob of source.blobs) {
      const bytes = await source.readBlob(blob.hash);
      const record = Buffer.alloc(blobRecordHeaderBytes);
      record.write(blob.hash, 0, 'hex');
      record.writeBigUInt64LE(BigInt(bytes.length), 32);
      await put(record);
      await put(bytes);
    }
    const trailer = Buffer.alloc(trailerBytes);
    trailer.write(trailerMagic, 0, 'latin1');
    trailer.write(stream.digest('hex'), 16, 'hex');
    await writeAll(out, trailer, position);
    position += trailerBytes;
    if (position !== total) throw new Error(`export wrote ${position} bytes, expected ${total}`);
    await out.sync();
    await out.close();
    await fs.rename(tmp, file);
  } catch (error) {
    await out.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await syncDirectory(dirname(file));
  return total;
}

export interface ImportSink {
  /** Decodes (and validates) the manifest envelope; may refuse it by throwing. */
  manifest(envelope: Uint8Array): Promise<SnapshotManifest>;
  /** A page whose bytes match its name; the bytes are valid only during the call. */
  page(hash: string, bytes: Uint8Array): void;
  blob(hash: string, bytes: Uint8Array): void;
}

/** Sequential reads through one large buffer, every byte taken also fed to the file's checksum. */
class Reader {
  private buffer = Buffer.allocUnsafeSlow(4 * 1024 * 1024);
  private start = 0;
  private end = 0;
  position = 0;

  constructor(
    private readonly handle: fs.FileHandle,
    private readonly stream: IHasher,
    private readonly file: string,
  ) {}

  /** The next `length` bytes, valid until the next call. */
  async take(length: number, checksummed = true): Promise<Uint8Array> {
    if (this.end - this.start < length) {
      if (length > this.buffer.length) {
        const bigger = Buffer.allocUnsafeSlow(length);
        this.buffer.copy(bigger, 0, this.start, this.end);
        this.buffer = bigger;
      } else {
        this.buffer.copy(this.buffer, 0, this.start, this.end);
      }
      this.end -= this.start;
      this.start = 0;
      while (this.end < length) {
        const { bytesRead } = await this.handle.read(
          this.buffer,
          this.end,
          this.buffer.length - this.end,
          null,
        );
        if (bytesRead === 0)
          throw corrupt(this.file, `is truncated (ends after ${this.position + this.end} bytes)`);
        this.end += bytesRead;
      }
    }
    const bytes = this.buffer.subarray(this.start, this.start + length);
    this.start += length;
    this.position += length;
    if (checksummed) this.stream.update(bytes);
    return bytes;
  }
}

/**
 * Reads and checks a whole export file, handing its parts to `sink` as they are verified. Throws
 * SNAPSHOT_CORRUPT (or SNAPSHOT_VERSION_UNSUPPORTED) on any damage; the caller commits only once
 * this has returned.
 */
export async function readExportFile(
  file: string,
  hasher: PageHasher,
  sink: ImportSink,
): Promise<SnapshotManifest> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch (error) {
    throw new NormaError(
      'FILE_NOT_FOUND',
      `cannot read the export file ${file}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  try {
    const size = (await handle.stat()).size;
    const stream = await createXXHash128();
    stream.init();
    const reader = new Reader(handle, stream, file);
    if (size < headerBytes + trailerBytes) throw corrupt(file, `is truncated (${size} bytes)`);
    const header = Buffer.from(await reader.take(headerBytes));
    if (header.toString('latin1', 0, 8) !== exportMagic)
      throw corrupt(file, 'does not start with NORMAEXP (not a norma export)');
    if (hasher.hash(header.subarray(0, 48)) !== header.toString('hex', 48, 64))
      throw corrupt(file, 'has a damaged header');
    const version = header.readUInt32LE(8);
    if (version !== exportFormatVersion) {
      throw new NormaError(
        'SNAPSHOT_VERSION_UNSUPPORTED',
        `the export file ${file} has export format version ${version}; this norma reads version ${exportFormatVersion}`,
      );
    }
    if (header.readUInt32LE(12) !== 0 || header.readUInt32LE(28) !== 0)
      throw corrupt(file, 'has unknown flags');
    const pageCount = header.readUInt32LE(20);
    const blobCount = header.readUInt32LE(24);
    const manifestBytes = Number(header.readBigUInt64LE(32));
    const total = Number(header.readBigUInt64LE(40));
    if (total !== size)
      throw corrupt(file, `is ${size} bytes long; its header says ${total} (truncated or padded)`);

    const manifest = await sink.manifest(Buffer.from(await reader.take(manifestBytes)));
    const wantPages = referencedPages(manifest);
    const wantBlobs = referencedBlobs(manifest);
    if (pageCount !== wantPages.size || blobCount !== wantBlobs.size) {
      throw corrupt(
        file,
        `holds ${pageCount} pages and ${blobCount} blobs; its manifest refers to ${wantPages.size} and ${wantBlobs.size}`,
      );
    }
    const seen = new Set<string>();
    for (let index = 0; index < pageCount; index++) {
      const record = await reader.take(pageRecordBytes);
      const name = Buffer.from(record.buffer, record.byteOffset, 16).toString('hex');
      const bytes = record.subarray(16);
      if (!wantPages.has(name) || seen.has(name))
        throw corrupt(file, `holds page ${name}, which its manifest does not refer to (or twice)`);
      if (hasher.hash(bytes) !== name)
        throw corrupt(file, `holds a damaged page ${name} (fails its checksum)`);
      seen.add(name);
      sink.page(name, bytes);
    }
    seen.clear();
    for (let index = 0; index < blobCount; index++) {
      const head = Buffer.from(await reader.take(blobRecordHeaderBytes));
      const name = head.toString('hex', 0, 32);
      const length = Number(head.readBigUInt64LE(32));
      if (!wantBlobs.has(name) || seen.has(name))
        throw corrupt(file, `holds blob ${name}, which its manifest does not refer to (or twice)`);
      if (reader.position + length + trailerBytes > size)
        throw corrupt(file, `has a blob length past its end`);
      const bytes = await reader.take(length);
      if (blobHash(bytes) !== name) throw corrupt(file, `holds a damaged blob ${name} (fails its checksum)`);
      seen.add(name);
      sink.blob(name, bytes);
    }
    const digest = stream.digest('hex');
    if (reader.position !== size - trailerBytes) throw corrupt(file, 'has bytes after its last record');
    const trailer = Buffer.from(await reader.take(trailerBytes, false));
    if (trailer.toString('latin1', 0, 8) !== trailerMagic || trailer.toString('hex', 16, 32) !== digest) {
      throw corrupt(file, 'fails its checksum (damaged on disk or in transit)');
    }
    return manifest;
  } catch (error) {
    // An I/O error of the file itself (EIO, EISDIR, ...): the file cannot be read, as if absent.
    const code = (error as { code?: unknown }).code;
    if (!isNormaError(error) && typeof code === 'string' && code.startsWith('E')) {
      throw new NormaError(
        'FILE_NOT_FOUND',
        `cannot read the export file ${file}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    throw error;
  } finally {
    await handle.close();
  }
}
