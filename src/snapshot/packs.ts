/**
 * The packs/ directory: which pack files exist, which one commits append to, and the repair made
 * at open. A pack is listed in the catalogue (with its committed length) by the first commit that
 * lands in it; a pack file the catalogue does not list was being written when the process died
 * (by a commit or by gc's rewrite) and holds nothing any snapshot refers to, so it is deleted.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { syncDirectory } from './disk.js';
import { PackFile, packNumberOf } from './pack-file.js';

/** A pack stops taking appends beyond this size: gc rewrites whole packs, so they stay moderate. */
export const packBytesTarget = 256 * 1024 * 1024;

export class Packs {
  private readonly packs = new Map<number, PackFile>();
  private active: PackFile | null = null;
  private nextNumber = 1;

  private constructor(readonly directory: string) {}

  /**
   * Opens every catalogued pack (cutting torn tails) and deletes uncatalogued ones. Returns what
   * was repaired, for the store's log of its recovery.
   */
  static async open(
    directory: string,
    committed: ReadonlyMap<number, number>,
  ): Promise<{ packs: Packs; repaired: string[] }> {
    const packs = new Packs(directory);
    const repaired: string[] = [];
    const onDisk = new Set<number>();
    for (const name of await fs.readdir(directory)) {
      const number = packNumberOf(name);
      if (number === null) continue;
      onDisk.add(number);
      packs.nextNumber = Math.max(packs.nextNumber, number + 1);
      if (!committed.has(number)) {
        await fs.rm(join(directory, name), { force: true });
        repaired.push(`removed ${name} (no commit reached the catalogue)`);
      }
    }
    for (const [number, bytes] of [...committed].sort((a, b) => a[0] - b[0])) {
      packs.nextNumber = Math.max(packs.nextNumber, number + 1);
      const { pack, cut } = await PackFile.open(directory, number, bytes);
      if (cut) repaired.push(`cut ${pack.path} back to its committed ${bytes} bytes`);
      packs.packs.set(number, pack);
    }
    if (repaired.length > 0) await syncDirectory(directory);
    // Keep appending to the newest pack when it is healthy and has room: fewer, fuller files.
    const newest = [...packs.packs.values()].at(-1);
    if (newest?.writable && newest.committedBytes < packBytesTarget) packs.active = newest;
    return { packs, repaired };
  }

  get(number: number): PackFile | undefined {
    return this.packs.get(number);
  }

  all(): PackFile[] {
    return [...this.packs.values()];
  }

  /**
   * Claims `bytes` for `owner` at the end of the active pack, starting a new pack when it is full.
   * Synchronous: a pack is created with openSync (tens of microseconds, once per 256 MiB).
   */
  reserve(bytes: number, owner: object): { pack: PackFile; offset: number } {
    let pack = this.active;
    if (pack === null || (pack.reservedBytes > 0 && pack.reservedBytes + bytes > packBytesTarget)) {
      pack = this.create();
      this.active = pack;
    }
    return { pack, offset: pack.reserve(bytes, owner) };
  }

  /** A new pack outside the append path (gc copies live records into it). */
  create(): PackFile {
    const pack = PackFile.create(this.directory, this.nextNumber++);
    this.packs.set(pack.number, pack);
    return pack;
  }

  /** New reservations go to a fresh pack from now on (gc rewrites only sealed packs). */
  seal(): void {
    this.active = null;
  }

  /** Closes and deletes a pack (once the catalogue no longer lists it, or it was never listed). */
  async remove(pack: PackFile): Promise<void> {
    if (this.active === pack) this.active = null;
    this.packs.delete(pack.number);
    pack.retire();
    await fs.rm(pack.path, { force: true });
  }

  close(): void {
    for (const pack of this.packs.values()) pack.close();
    this.packs.clear();
    this.active = null;
  }
}
