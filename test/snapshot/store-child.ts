/**
 * A child process for the store tests (not a test file itself).
 *
 *   node store-child.js open DIR         opens the store, prints "opened" or the error's code, and
 *                                        holds it open until stdin closes
 *   node store-child.js churn DIR SEED   commits, removes and collects snapshots in a loop forever,
 *                                        printing "committed ID", "removing ID", "removed ID" as it
 *                                        goes (a line is printed only once its step is durable); the
 *                                        test SIGKILLs it at a random moment
 */
import { isNormaError } from '../../src/errors.js';
import { loadPageHasher } from '../../src/snapshot/page-hash.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { makeBlob, makeManifest, makePages, prng } from './store-fixtures.js';

const [mode, directory, seedText] = process.argv.slice(2);
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

if (mode === 'open') {
  try {
    const store = await SnapshotStore.open(directory!);
    say('opened');
    process.stdin.resume();
    process.stdin.on('end', () => {
      void store.close();
    });
  } catch (error) {
    say(isNormaError(error) ? `${error.code} ${error.message}` : `error ${String(error)}`);
  }
} else if (mode === 'churn') {
  const seed = Number(seedText);
  const random = prng(seed);
  const hasher = await loadPageHasher();
  const store = await SnapshotStore.open(directory!, { compress: seed % 2 === 1 });
  say('ready');
  for (let round = 0; ; round++) {
    const action = random();
    const listed = await store.list();
    if (action < 0.12 && listed.length > 2) {
      const victim = listed[Math.floor(random() * listed.length)]!.id;
      say(`removing ${victim}`);
      await store.remove(victim);
      say(`removed ${victim}`);
    } else if (action < 0.2) {
      say('gc');
      await store.gc();
      say('gc done');
    } else {
      // Some pages shared with earlier snapshots (seeds below 64), some new to this one.
      const count = 1 + Math.floor(random() * 40);
      const seeds = Array.from({ length: count }, (_, i) =>
        random() < 0.5 ? Math.floor(random() * 64) : 1_000_000 * (seed + 1) + round * 100 + i,
      );
      const pages = makePages(hasher, seeds, random() < 0.5);
      const blob = makeBlob(Math.floor(random() * 3));
      const commit = store.beginCommit();
      if (!store.hasBlob(blob.hash)) commit.putBlob(blob.hash, blob.bytes);
      for (const page of pages) if (!store.hasPage(page.hash)) commit.putPage(page.hash, page.bytes);
      const manifest = makeManifest({
        pages: pages.map((page) => page.hash),
        moduleHash: blob.hash,
        label: `churn-${seed}`,
      });
      await commit.finish(manifest);
      say(`committed ${manifest.id}`);
    }
  }
} else {
  say(`unknown mode ${mode}`);
  process.exitCode = 2;
}
