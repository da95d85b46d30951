/**
 * The catalogue: a LevelDB (classic-level) database that says what the store holds. LevelDB gives
 * the store its atomic, durable step (one synced batch: a commit's index entries, the lengths of the
 * packs it wrote and the snapshot's entry land together or not at all) and its lock (one process
 * at a time, on catalogue/LOCK).
 *
 * Keys (utf8) and values:
 *   meta:layout      "1", the store layout version (a newer layout is refused, not guessed)
 *   pack:<8 digits>  u64 LE: committed length of that pack file
 *   page:<xxh128>    location of a stored page (24 bytes, see encodeLocation)
 *   blob:<sha256>    location of a stored blob
 *   snap:<id>        JSON CatalogueEntry: what listings show, and the length and xxh128 of the
 *                    manifest file, so that any damage to it is SNAPSHOT_CORRUPT before decoding
 */
import { Level } from 'level';
import { NormaError } from '../errors.js';
import { describe } from './disk.js';
import type { RecordKind, RecordLocation } from './pack-file.js';

const layoutVersion = '1';

/** What listings show of a snapshot (`norma snapshot ls`). */
export interface SnapshotSummary {
  id: string;
  createdAtMs: number;
  kind: 'task' | 'group';
  label: string;
  parent: string | null;
  tasks: number;
  /** Distinct stored pages the snapshot refers to. */
  pages: number;
  /** Logical bytes of memory referenced: the tasks' visible memories and the memory objects. */
  bytes: number;
}

export interface CatalogueEntry extends SnapshotSummary {
  manifestBytes: number;
  manifestHash: string;
}

export type CatalogueOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

const locationBytes = 24;

export function encodeLocation(location: RecordLocation): Uint8Array {
  const out = new Uint8Array(locationBytes);
  const view = new DataView(out.buffer);
  view.setUint32(0, location.pack, true);
  view.setUint32(4, location.offset % 2 ** 32, true);
  view.setUint32(8, Math.floor(location.offset / 2 ** 32), true);
  view.setUint32(12, location.storedBytes, true);
  view.setUint32(16, location.rawBytes, true);
  view.setUint8(20, location.encoding === 'raw' ? 0 : 1);
  return out;
}

function decodeLocation(value: Uint8Array): RecordLocation {
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  return {
    pack: view.getUint32(0, true),
    offset: view.getUint32(4, true) + view.getUint32(8, true) * 2 ** 32,
    storedBytes: view.getUint32(12, true),
    rawBytes: view.getUint32(16, true),
    encoding: view.getUint8(20) === 0 ? 'raw' : 'brotli',
  };
}

export const recordKey = (kind: RecordKind, name: string): string => `${kind}:${name}`;
export const packKey = (pack: number): string => `pack:${String(pack).padStart(8, '0')}`;
export const snapshotKey = (id: string): string => `snap:${id}`;

export function encodePackLength(bytes: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(bytes), true);
  return out;
}

export function encodeEntry(entry: CatalogueEntry): Uint8Array {
  return Buffer.from(JSON.stringify(entry));
}

export class Catalogue {
  private db: Level<string, Uint8Array>;

  private constructor(readonly directory: string) {
    this.db = new Level<string, Uint8Array>(directory, { keyEncoding: 'utf8', valueEncoding: 'view' });
  }

  /** Opens (creating) the catalogue; STORE_UNAVAILABLE when another process holds it or it is unusable. */
  static async open(directory: string, storeDirectory: string): Promise<Catalogue> {
    const catalogue = new Catalogue(directory);
    await catalogue.openDb(storeDirectory);
    return catalogue;
  }

  private async openDb(storeDirectory: string): Promise<void> {
    try {
      await this.db.open();
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new NormaError(
          'STORE_UNAVAILABLE',
          `the snapshot store ${storeDirectory} is in use by another process (its catalogue is locked)`,
          { cause: error },
        );
      }
      throw new NormaError(
        'STORE_UNAVAILABLE',
        `the snapshot store ${storeDirectory} cannot be opened: ${cause?.message ?? describe(error)}`,
        { cause: error },
      );
    }
    const layout = await this.db.get('meta:layout');
    if (layout === undefined) {
      await this.db.put('meta:layout', Buffer.from(layoutVersion), { sync: true });
    } else if (Buffer.from(layout).toString() !== layoutVersion) {
      await this.db.close();
      throw new NormaError(
        'STORE_UNAVAILABLE',
        `the snapshot store ${storeDirectory} has layout version ${Buffer.from(layout).toString()}; this norma reads version ${layoutVersion}`,
      );
    }
  }

  /**
   * Closes and opens the database again. LevelDB keeps a failed log write (a full disk) as a sticky
   * error that fails every later write; reopening replays the log and clears it.
   */
  async reopen(storeDirectory: string): Promise<void> {
    await this.db.close().catch(() => undefined);
    this.db = new Level<string, Uint8Array>(this.directory, { keyEncoding: 'utf8', valueEncoding: 'view' });
    await this.openDb(storeDirectory);
  }

  async locations(kind: RecordKind): Promise<Map<string, RecordLocation>> {
    const map = new Map<string, RecordLocation>();
    const start = recordKey(kind, '');
    for await (const [key, value] of this.db.iterator({ gte: start, lt: `${kind};` })) {
      map.set(key.slice(start.length), decodeLocation(value));
    }
    return map;
  }

  /** Committed length of every catalogued pack. */
  async packs(): Promise<Map<number, number>> {
    const map = new Map<number, number>();
    for await (const [key, value] of this.db.iterator({ gte: 'pack:', lt: 'pack;' })) {
      map.set(
        Number(key.slice(5)),
        Number(new DataView(value.buffer, value.byteOffset, 8).getBigUint64(0, true)),
      );
    }
    return map;
  }

  /** Snapshot entries whose id starts with `prefix`, in id order. */
  async entries(prefix = ''): Promise<CatalogueEntry[]> {
    const list: CatalogueEntry[] = [];
    const start = snapshotKey(prefix);
    for await (const value of this.db.values({ gte: start, lt: `${start}\uffff` })) {
      list.push(JSON.parse(Buffer.from(value).toString()) as CatalogueEntry);
    }
    return list;
  }

  async entry(id: string): Promise<CatalogueEntry | undefined> {
    const value = await this.db.get(snapshotKey(id));
    return value === undefined ? undefined : (JSON.parse(Buffer.from(value).toString()) as CatalogueEntry);
  }

  /** One atomic batch, synced to disk before it resolves (and with it every earlier write). */
  async write(ops: CatalogueOp[]): Promise<void> {
    await this.db.batch(ops, { sync: true });
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
