/**
 * Moving snapshots between the stores of two nodes, for a task that resumes on another node than
 * the one that froze it (`norma thaw <snapshot> --node n2`, `norma move <task> --to n2`).
 *
 * The node that resumes pulls: it asks the members which one has the snapshot (`find`), reads its
 * manifest (`manifest`: the stored envelope, checked again here as any read from disk is), and asks
 * only for the pages and modules its own store lacks (`pages`, `blob`), each re-hashed on arrival.
 * It commits them with the manifest under the same id, so the snapshot is in its store as if taken
 * there, and a second move of the same task sends only what changed.
 *
 * The tasks' live IPC state follows separately (NodeTasks: `prepare`, then `hand-off`).
 */
import { NormaError } from '../errors.js';
import { type CallArg, type CallValue, pagesPerCallMax } from '../net/wire-protocol.js';
import {
  decodeManifest,
  referencedBlobs,
  referencedPages,
  type SnapshotManifest,
  snapshotIdPattern,
} from '../snapshot/format.js';
import { blobHash, loadPageHasher } from '../snapshot/page-hash.js';
import type { SnapshotStore } from '../snapshot/store.js';
import type { ClusterMember } from './cluster-member.js';
import type { TransferInfo } from './control-protocol.js';

/** Serves the snapshot side of a move from this node's store. */
export async function serveSnapshotCall(
  store: SnapshotStore,
  op: 'find' | 'manifest' | 'pages' | 'blob',
  arg: CallArg<'find' | 'manifest' | 'pages' | 'blob'>,
): Promise<CallValue<'find' | 'manifest' | 'pages' | 'blob'>> {
  switch (op) {
    case 'find': {
      const { snapshot } = arg as CallArg<'find'>;
      try {
        return { id: await store.resolveId(snapshot) };
      } catch (error) {
        if (error instanceof NormaError && error.code === 'SNAPSHOT_NOT_FOUND') return { id: null };
        throw error;
      }
    }
    case 'manifest':
      return { bytes: await store.readManifestBytes((arg as CallArg<'manifest'>).id) };
    case 'pages': {
      const { hashes } = arg as CallArg<'pages'>;
      const found = new Map<string, Uint8Array>();
      await store.readPages(hashes, (hash, bytes) => found.set(hash, bytes));
      return { pages: hashes.map((hash) => found.get(hash)!) };
    }
    case 'blob':
      return { bytes: await store.readBlob((arg as CallArg<'blob'>).hash) };
  }
}

/** A whole snapshot id (not a prefix). */
/**
 * Finds the member whose store has the snapshot `prefix` and copies it into `store` (what `store`
 * has already is not sent). Returns the full id, where it came from and what travelled, and its
 * manifest (checked, as any read from the store is: the caller need not read it again).
 */
export async function pullSnapshot(
  member: ClusterMember,
  store: SnapshotStore,
  prefix: string,
  from?: string,
): Promise<{ id: string; stats: TransferInfo; manifest: SnapshotManifest }> {
  const started = performance.now();
  // A whole id from a known member (a move) needs no search: its manifest call says if it is there.
  const { source, id } =
    from !== undefined && snapshotIdPattern.test(prefix)
      ? { source: from, id: prefix }
      : await findSnapshot(member, prefix, from);
  const stats: TransferInfo = { from: source, pagesSent: 0, pagesSkipped: 0, bytesSent: 0, ms: 0 };
  const stored = await storedManifest(store, id);
  if (stored !== null) {
    stats.pagesSkipped = referencedPages(stored).size;
    stats.ms = performance.now() - started;
    return { id, stats, manifest: stored };
  }
  const hasher = await loadPageHasher();
  let envelope: Uint8Array;
  try {
    ({ bytes: envelope } = await member.call(source, 'manifest', { id }));
  } catch (error) {
    if (error instanceof NormaError && error.code === 'SNAPSHOT_NOT_FOUND')
      throw new NormaError('SNAPSHOT_NOT_FOUND', `node ${source} has no snapshot ${prefix}`);
    throw error;
  }
  let manifest: SnapshotManifest;
  try {
    manifest = decodeManifest(envelope, hasher);
  } catch (error) {
    throw new NormaError(
      'SNAPSHOT_CORRUPT',
      `the manifest node ${source} sent: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  if (manifest.id !== id)
    throw new NormaError('SNAPSHOT_CORRUPT', `node ${source} sent the manifest of another snapshot`);
  const commit = store.beginCommit();
  try {
    for (const hash of referencedBlobs(manifest)) {
      if (store.hasBlob(hash)) continue;
      const { bytes } = await member.call(source, 'blob', { hash });
      if (blobHash(bytes) !== hash) {
        throw new NormaError('SNAPSHOT_CORRUPT', `a module node ${source} sent does not match its hash`);
      }
      commit.putBlob(hash, bytes);
      stats.bytesSent += bytes.length;
    }
    const wanted: string[] = [];
    for (const hash of referencedPages(manifest)) {
      if (store.hasPage(hash)) stats.pagesSkipped++;
      else wanted.push(hash);
    }
    // Two calls in flight: one is read and sent while the other's pages are checked and written.
    const batches: string[][] = [];
    for (let i = 0; i < wanted.length; i += pagesPerCallMax)
      batches.push(wanted.slice(i, i + pagesPerCallMax));
    let next = batches.length > 0 ? member.call(source, 'pages', { hashes: batches[0]! }) : null;
    for (let index = 0; index < batches.length; index++) {
      const { pages } = await next!;
      next =
        index + 1 < batches.length ? member.call(source, 'pages', { hashes: batches[index + 1]! }) : null;
      const hashes = batches[index]!;
      if (pages.length !== hashes.length)
        throw new NormaError('SNAPSHOT_CORRUPT', `node ${source} sent too few pages`);
      pages.forEach((page, i) => {
        if (hasher.hash(page) !== hashes[i]) {
          throw new NormaError('SNAPSHOT_CORRUPT', `a page node ${source} sent does not match its hash`);
        }
        commit.putPage(hashes[i]!, page);
        stats.pagesSent++;
        stats.bytesSent += page.length;
      });
    }
    await commit.finish(manifest, envelope);
  } catch (error) {
    await commit.abort();
    throw error;
  }
  stats.ms = performance.now() - started;
  return { id, stats, manifest };
}

/** The manifest of snapshot `id` (a whole id) if the store has it. */
async function storedManifest(store: SnapshotStore, id: string): Promise<SnapshotManifest | null> {
  try {
    return await store.readManifest(id);
  } catch (error) {
    if (error instanceof NormaError && error.code === 'SNAPSHOT_NOT_FOUND') return null;
    throw error;
  }
}

/** The snapshot's full id and the member that has it: `from`, else the first other member that does. */
async function findSnapshot(
  member: ClusterMember,
  prefix: string,
  from: string | undefined,
): Promise<{ source: string; id: string }> {
  const asked =
    from === undefined ? (await member.members()).filter((m) => !m.self).map((m) => m.name) : [from];
  const answers = await Promise.allSettled(
    asked.map(async (source) => ({
      source,
      id: (await member.call(source, 'find', { snapshot: prefix })).id,
    })),
  );
  for (const answer of answers) {
    if (answer.status === 'fulfilled' && answer.value.id !== null)
      return { source: answer.value.source, id: answer.value.id };
  }
  // Asked one member: its own error (unreachable, …) says more than "not found".
  if (from !== undefined && answers[0]?.status === 'rejected') throw answers[0].reason;
  throw new NormaError(
    'SNAPSHOT_NOT_FOUND',
    from === undefined
      ? `no member of the cluster has a snapshot ${prefix}`
      : `node ${from} has no snapshot ${prefix}`,
  );
}
