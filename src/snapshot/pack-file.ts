/**
 * One pack file: an append-only run of records, each a 48-byte header and the stored bytes of one
 * page or blob. Commits append to a pack in large positional writes (many records per write) and
 * sync it once; the catalogue records how long each pack is *committed*, so anything past that
 * (a torn write, an aborted or crashed commit) is cut off at the next open.
 *
 * Record header (little-endian):
 *   0  4 bytes  magic "NREC"
 *   4  u8       kind: 1 page, 2 blob
 *   5  u8       encoding: 0 raw, 1 brotli
 *   6  u16      0
 *   8  u32      stored bytes (after the header)
 *  12  u32      raw bytes (after decoding)
 *  16  32 bytes name: a page's xxh128 then 16 zero bytes, or a blob's sha256
 *
 * The header makes a pack self-describing (an index could be rebuilt from the packs alone) and is
 * checked against the catalogue on every read, so a flipped bit in it is caught like one in the data.
 *
 * Writes and reads go through the callback API on a raw descriptor: the request reaches libuv's
 * thread pool at the call, so a commit's writes proceed while the freezer is still hashing pages in
 * one synchronous loop (a promise chain would only start them once that loop yields).
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { NormaError } from '../errors.js';

export const recordHeaderBytes = 48;
const recordMagic = 0x4345524e; // "NREC" read as a little-endian u32

export type RecordKind = 'page' | 'blob';
export type RecordEncoding = 'raw' | 'brotli';

/** Where a record is and how it is stored: what the catalogue keeps for every page and blob. */
export interface RecordLocation {
  readonly pack: number;
  /** Offset of the record's header in its pack; the data follows it. */
  readonly offset: number;
  readonly storedBytes: number;
  readonly rawBytes: number;
  readonly encoding: RecordEncoding;
}

export function packFileName(pack: number): string {
  return `pack-${String(pack).padStart(8, '0')}.dat`;
}

/** The pack number of a file name, or null for a file that is not a pack. */
export function packNumberOf(fileName: string): number | null {
  const match = /^pack-(\d{8,})\.dat$/.exec(fileName);
  return match === null ? null : Number(match[1]);
}

export function writeRecordHeader(
  target: Uint8Array,
  at: number,
  kind: RecordKind,
  name: string,
  location: Pick<RecordLocation, 'storedBytes' | 'rawBytes' | 'encoding'>,
): void {
  const view = new DataView(target.buffer, target.byteOffset + at, recordHeaderBytes);
  view.setUint32(0, recordMagic, true);
  view.setUint8(4, kind === 'page' ? 1 : 2);
  view.setUint8(5, location.encoding === 'raw' ? 0 : 1);
  view.setUint16(6, 0, true);
  view.setUint32(8, location.storedBytes, true);
  view.setUint32(12, location.rawBytes, true);
  target.fill(0, at + 16, at + recordHeaderBytes);
  Buffer.from(target.buffer, target.byteOffset, target.byteLength).write(name, at + 16, 'hex');
}

const expectedHeader = new Uint8Array(recordHeaderBytes);

/** True when the header at `at` is exactly the one the catalogue's location implies. */
export function recordHeaderMatches(
  source: Uint8Array,
  at: number,
  kind: RecordKind,
  name: string,
  location: RecordLocation,
): boolean {
  writeRecordHeader(expectedHeader, 0, kind, name, location);
  return Buffer.from(source.buffer, source.byteOffset + at, recordHeaderBytes).equals(expectedHeader);
}

/** Largest record: its lengths are u32 in the header. */
export const recordBytesMax = 0xffffffff;

export class PackFile {
  /**
   * End of the regions each open commit reserved here. A rollback may only cut the file back to
   * the end of what is committed or still being written by another commit.
   */
  private readonly owners = new Map<object, number>();
  private readers = 0;
  private retired = false;

  private constructor(
    readonly number: number,
    readonly path: string,
    private fd: number,
    /** Bytes the catalogue says are committed (durable and indexed). */
    public committedBytes: number,
    /** Bytes appended or reserved by commits in flight; never less than committedBytes. */
    public reservedBytes: number,
    /** Set when the file is shorter than its committed length or absent: reads report it. */
    readonly damage: string | null,
  ) {}

  /** A new, empty pack (created synchronously: a commit reserves space from a synchronous putPage). */
  static create(directory: string, number: number): PackFile {
    const path = join(directory, packFileName(number));
    const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
    return new PackFile(number, path, fd, 0, 0, null);
  }

  /**
   * An existing pack, cut back to its committed length: whatever lies past it was never committed
   * (a commit in flight when the process died, or one rolled back without its truncation landing).
   */
  static async open(
    directory: string,
    number: number,
    committedBytes: number,
  ): Promise<{ pack: PackFile; cut: boolean }> {
    const path = join(directory, packFileName(number));
    let fd: number;
    try {
      fd = await new Promise<number>((resolve, reject) => {
        fs.open(path, 'r+', (error, opened) => (error ? reject(error) : resolve(opened)));
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      return {
        pack: new PackFile(number, path, -1, committedBytes, committedBytes, 'its pack file is missing'),
        cut: false,
      };
    }
    const size = fs.fstatSync(fd).size;
    if (size < committedBytes) {
      const damage = `its pack file is truncated (${size} of ${committedBytes} bytes)`;
      return { pack: new PackFile(number, path, fd, committedBytes, committedBytes, damage), cut: false };
    }
    if (size > committedBytes) {
      fs.ftruncateSync(fd, committedBytes);
      fs.fsyncSync(fd);
    }
    return {
      pack: new PackFile(number, path, fd, committedBytes, committedBytes, null),
      cut: size > committedBytes,
    };
  }

  get writable(): boolean {
    return this.damage === null && this.fd >= 0;
  }

  /** Claims `bytes` at the end of the pack for `owner` (a commit) and returns their offset. */
  reserve(bytes: number, owner: object): number {
    const offset = this.reservedBytes;
    this.reservedBytes += bytes;
    this.owners.set(owner, this.reservedBytes);
    return offset;
  }

  /** Writes all of `bytes` at `position` (loops over short writes, as a filling disk makes). */
  write(bytes: Uint8Array, position: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const step = (done: number): void => {
        if (done === bytes.length) {
          resolve();
          return;
        }
        fs.write(this.fd, bytes, done, bytes.length - done, position + done, (error, written) => {
          if (error) reject(error);
          else if (written === 0)
            reject(Object.assign(new Error('write made no progress'), { code: 'ENOSPC' }));
          else step(done + written);
        });
      };
      step(0);
    });
  }

  /**
   * Writes the segments one after the other from `position` with writev (no copying them into one
   * buffer first); loops over short writes like `write`.
   */
  writeSegments(segments: readonly Uint8Array[], position: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const step = (remaining: Uint8Array[], at: number): void => {
        if (remaining.length === 0) {
          resolve();
          return;
        }
        // IOV_MAX is 1024 on Linux: write at most that many segments per call.
        const batch = remaining.slice(0, 1024);
        fs.writev(this.fd, batch, at, (error, written) => {
          if (error) {
            reject(error);
            return;
          }
          if (written === 0) {
            reject(Object.assign(new Error('write made no progress'), { code: 'ENOSPC' }));
            return;
          }
          let left = written;
          const rest = [...remaining];
          while (left > 0 && rest.length > 0) {
            const first = rest[0]!;
            if (first.length <= left) {
              left -= first.length;
              rest.shift();
            } else {
              rest[0] = first.subarray(left);
              left = 0;
            }
          }
          step(rest, at + written);
        });
      };
      step([...segments], position);
    });
  }

  /** Reads `length` bytes at `position` into `target`; fewer only at the end of the file. */
  read(target: Uint8Array, length: number, position: number): Promise<number> {
    if (this.fd < 0)
      return Promise.reject(new NormaError('SNAPSHOT_PAGE_MISSING', `pack ${this.number}: ${this.damage}`));
    return new Promise((resolve, reject) => {
      const step = (done: number): void => {
        if (done === length) {
          resolve(done);
          return;
        }
        fs.read(this.fd, target, done, length - done, position + done, (error, read) => {
          if (error) reject(error);
          else if (read === 0) resolve(done);
          else step(done + read);
        });
      };
      step(0);
    });
  }

  sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      fs.fdatasync(this.fd, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** The owner's regions are now committed: they count towards the length the catalogue keeps. */
  settle(owner: object): void {
    const end = this.owners.get(owner);
    if (end === undefined) return;
    this.owners.delete(owner);
    if (end > this.committedBytes) this.committedBytes = end;
  }

  /** The length this pack will have once `owner` settles (for the catalogue entry written before). */
  committedAfter(owner: object): number {
    return Math.max(this.committedBytes, this.owners.get(owner) ?? 0);
  }

  /**
   * Forgets the owner's regions (a rolled-back commit, all its writes finished) and gives their
   * space back when they are at the tail: a full disk must come out of a failed commit no fuller.
   */
  async release(owner: object): Promise<void> {
    if (!this.owners.delete(owner)) return;
    let end = this.committedBytes;
    for (const other of this.owners.values()) end = Math.max(end, other);
    if (end >= this.reservedBytes) return;
    this.reservedBytes = end;
    await new Promise<void>((resolve, reject) => {
      fs.ftruncate(this.fd, end, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** Cuts the file to `bytes` (gc's rewritten packs, after a failure). */
  async truncate(bytes: number): Promise<void> {
    this.reservedBytes = bytes;
    await new Promise<void>((resolve, reject) => {
      fs.ftruncate(this.fd, bytes, (error) => (error ? reject(error) : resolve()));
    });
  }

  get busy(): boolean {
    return this.owners.size > 0;
  }

  /** A reader (a scan) uses this pack: a retired pack stays open until its last reader is done. */
  hold(): void {
    this.readers++;
  }

  unhold(): void {
    this.readers--;
    if (this.readers === 0 && this.retired) this.close();
  }

  /** No longer listed (gc): closes now, or when the readers still using it are done. */
  retire(): void {
    this.retired = true;
    if (this.readers === 0) this.close();
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
