/**
 * `norma snapshot ls | inspect | verify | rm | gc | export | import`: the store, from the shell.
 * Every command takes --store and --json.
 */
import { type SnapshotStore, SnapshotStore as Store } from '../snapshot/store.js';

export interface StoreOptions {
  readonly store: string;
  readonly json: boolean;
}

async function withStore<T>(options: StoreOptions, use: (store: SnapshotStore) => Promise<T>): Promise<T> {
  const store = await Store.open(options.store);
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

const print = (text: string): void => {
  process.stdout.write(`${text}\n`);
};

/** JSON for any decoded manifest: bigints as strings, byte arrays as {bytes, hex} (hex only when short). */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (v instanceof Uint8Array) {
        return v.length <= 64
          ? { bytes: v.length, hex: Buffer.from(v).toString('hex') }
          : { bytes: v.length };
      }
      return v;
    },
    2,
  );
}

export async function listCommand(options: StoreOptions): Promise<number> {
  const list = await withStore(options, (store) => store.list());
  if (options.json) print(JSON.stringify(list));
  else if (list.length === 0) print(`no snapshots in ${options.store}`);
  else {
    print('ID                KIND   TASKS  MEMORY     CREATED                   LABEL');
    for (const s of list) {
      const memory = `${(s.bytes / 1024 / 1024).toFixed(1)} MiB`;
      print(
        `${s.id}  ${s.kind.padEnd(5)}  ${String(s.tasks).padStart(5)}  ${memory.padStart(9)}  ${new Date(s.createdAtMs).toISOString()}  ${s.label}`,
      );
    }
  }
  return 0;
}

export async function inspectCommand(id: string, options: StoreOptions): Promise<number> {
  const manifest = await withStore(options, (store) => store.readManifest(id));
  print(toJson(manifest));
  return 0;
}

export async function verifyCommand(id: string, options: StoreOptions): Promise<number> {
  const report = await withStore(options, (store) => store.verify(id));
  if (options.json) print(JSON.stringify(report));
  else if (report.problems.length === 0)
    print(`${report.id}: ok (${report.pages} pages, ${report.blobs} modules verified)`);
  else {
    print(`${report.id}: ${report.problems.length} problem(s):`);
    for (const problem of report.problems) print(`  ${problem}`);
  }
  return report.problems.length === 0 ? 0 : 1;
}

export async function removeCommand(ids: readonly string[], options: StoreOptions): Promise<number> {
  await withStore(options, async (store) => {
    for (const id of ids) {
      const full = await store.resolveId(id);
      await store.remove(full);
      if (!options.json) print(`removed ${full}`);
    }
  });
  if (options.json) print(JSON.stringify({ removed: ids }));
  return 0;
}

export async function gcCommand(options: StoreOptions): Promise<number> {
  const result = await withStore(options, (store) => store.gc());
  if (options.json) print(JSON.stringify(result));
  else {
    print(
      `removed ${result.pagesRemoved} pages and ${result.blobsRemoved} modules, ${(result.bytesReclaimed / 1024 / 1024).toFixed(1)} MiB reclaimed`,
    );
  }
  return 0;
}

export async function exportCommand(id: string, file: string, options: StoreOptions): Promise<number> {
  const result = await withStore(options, (store) => store.exportTo(id, file));
  if (options.json) print(JSON.stringify({ file, ...result }));
  else print(`exported to ${file} (${(result.bytes / 1024 / 1024).toFixed(1)} MiB)`);
  return 0;
}

export async function importCommand(file: string, options: StoreOptions): Promise<number> {
  const id = await withStore(options, (store) => store.importFrom(file));
  if (options.json) print(JSON.stringify({ imported: id }));
  else print(`imported ${id}`);
  return 0;
}
