/**
 * Snapshot benchmarks, each against a baseline measured in the same run on the same bytes:
 *  - frozen time of a 64 MiB and a 256 MiB task (how long its threads are stopped for a
 *    checkpoint) against a plain copy of its used memory: target <= 1.5x;
 *  - a full durable freeze (hash, write, fsync, commit) against raw write + fsync: >= 50%;
 *  - a second freeze after 1% of the pages changed: writes <= 2% of the first's bytes;
 *  - resuming a 64 MiB task (read, verify, instantiate, fill memory) against reading its bytes
 *    from the store's files and copying them: <= 2x.
 */
import {
  closeSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kernel, type Task } from '../src/kernel/kernel.js';
import { CaptureBuffers, captureTasks } from '../src/snapshot/capture.js';
import { freezerReady, prepareFreezer, writeSnapshot } from '../src/snapshot/freezer.js';
import { restoreSnapshot } from '../src/snapshot/restorer.js';
import { SnapshotStore } from '../src/snapshot/store.js';
import { benchCacheDirectory, median, readRepoFile, report } from './support.js';

async function startFilled(kernel: Kernel, mib: number): Promise<Task> {
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => {
    ready = resolve;
  });
  const task = await kernel.spawn({
    module: readRepoFile('tasks/build/memory-fill.wasm'),
    args: ['memory-fill', String(mib)],
    stdin: new Uint8Array(0),
    stdout: (bytes) => {
      if (Buffer.from(bytes).toString().startsWith('ready')) ready();
    },
  });
  await isReady;
  // Let the thread reach its receive: it is blocked there from now on.
  await new Promise((resolve) => setTimeout(resolve, 20));
  return task;
}

function rawWriteSync(directory: string, bytes: Uint8Array): number {
  const file = join(directory, 'raw.bin');
  const started = performance.now();
  const fd = openSync(file, 'w');
  const chunk = 4 * 1024 * 1024;
  for (let offset = 0; offset < bytes.length; offset += chunk)
    writeSync(fd, bytes, offset, Math.min(chunk, bytes.length - offset));
  fsyncSync(fd);
  closeSync(fd);
  const elapsed = performance.now() - started;
  rmSync(file);
  return elapsed;
}

async function frozenTime(mib: number, runs: number): Promise<void> {
  const kernel = new Kernel({ cacheDirectory: benchCacheDirectory });
  const task = await startFilled(kernel, mib);
  const buffers = new CaptureBuffers();
  const frozen: number[] = [];
  const copies: number[] = [];
  const visible = task.instance.memory.visible();
  const copyTarget = new Uint8Array(visible.length);
  for (let i = 0; i <= runs; i++) {
    const capture = captureTasks(kernel, [task], buffers);
    for (const captured of capture.tasks) buffers.release(captured.state.id, captured.memory);
    const started = performance.now();
    copyTarget.set(task.instance.memory.visible());
    const copy = performance.now() - started;
    if (i === 0) continue; // the first run touches the buffers for the first time
    frozen.push(capture.frozenMs);
    copies.push(copy);
  }
  kernel.shutdown();
  const ratio = median(frozen) / median(copies);
  report({
    benchmark: `frozen time, ${mib} MiB task`,
    figure: `${median(frozen).toFixed(1)} ms`,
    ratio,
    baseline: `a plain copy of its memory (${median(copies).toFixed(1)} ms)`,
    target: '<= 1.5x',
    met: ratio <= 1.5,
  });
}

async function freezeAndResume(): Promise<void> {
  prepareFreezer();
  while (!freezerReady()) await new Promise((resolve) => setTimeout(resolve, 5));
  const directory = mkdtempSync(join(tmpdir(), 'norma-bench-store-'));
  const kernel = new Kernel({ cacheDirectory: benchCacheDirectory });
  const task = await startFilled(kernel, 64);
  const store = await SnapshotStore.open(directory);
  const buffers = new CaptureBuffers();
  try {
    // Rounds interleave a durable freeze and a raw write + fsync of the same bytes; every page is
    // changed between rounds, so that each freeze writes all of them.
    const freezeTimes: number[] = [];
    const rawTimes: number[] = [];
    let first!: Awaited<ReturnType<typeof writeSnapshot>>;
    let memoryBytes = 0;
    for (let round = 0; round < 5; round++) {
      if (round > 0) {
        const live = task.instance.memory.visible();
        for (let offset = 0; offset < live.length; offset += 65536)
          live[offset + 7] = (live[offset + 7]! + 1) & 0xff;
      }
      const capture = captureTasks(kernel, [task], buffers);
      memoryBytes = capture.tasks[0]!.memory.length;
      const written = await writeSnapshot(store, capture, { kind: 'task', label: 'bench', parent: null });
      if (process.env.NORMA_BENCH_VERBOSE) console.log(written.stats);
      freezeTimes.push(written.stats.totalMs - written.stats.frozenMs);
      rawTimes.push(rawWriteSync(directory, capture.tasks[0]!.memory));
      for (const captured of capture.tasks) buffers.release(captured.state.id, captured.memory);
      first = written;
    }
    const writeMs = median(freezeTimes);
    const raw = median(rawTimes);
    report({
      benchmark: 'durable freeze of a 64 MiB task',
      figure: `${((memoryBytes / 1024 / 1024 / writeMs) * 1000).toFixed(0)} MiB/s (hash, write, fsync, commit: ${writeMs.toFixed(0)} ms)`,
      ratio: raw / writeMs,
      baseline: `the throughput of raw write + fsync of the same bytes (${raw.toFixed(0)} ms)`,
      target: '>= 0.5x',
      met: raw / writeMs >= 0.5,
    });

    // Change 1% of the pages, then freeze again: only those pages are new.
    const memory = task.instance.memory.visible();
    const pages = memory.length / 65536;
    const changed = Math.max(1, Math.round(pages / 100));
    for (let i = 0; i < changed; i++) {
      const page = Math.floor((i * pages) / changed);
      memory[page * 65536 + 123]! ^= 0xff;
    }
    const again = captureTasks(kernel, [task], buffers);
    const second = await writeSnapshot(store, again, {
      kind: 'task',
      label: 'bench',
      parent: first.manifest.id,
    });
    const fraction = second.stats.bytesWritten / first.stats.bytesWritten;
    report({
      benchmark: `second freeze after 1% of the pages changed (${changed} of ${pages})`,
      figure: `${(second.stats.bytesWritten / 1024).toFixed(0)} KiB written`,
      ratio: fraction,
      baseline: `the bytes of the first freeze (${(first.stats.bytesWritten / 1024 / 1024).toFixed(1)} MiB)`,
      target: '<= 0.02x',
      met: fraction <= 0.02,
    });
    kernel.shutdown();

    // Resume the first snapshot in a fresh kernel, against reading the packs and copying.
    const resumes: number[] = [];
    const reads: number[] = [];
    for (let i = 0; i < 5; i++) {
      const target = new Kernel({ cacheDirectory: benchCacheDirectory });
      const started = performance.now();
      const restored = await restoreSnapshot(target, store, first.manifest.id, () => ({}));
      resumes.push(performance.now() - started);
      for (const restoredTask of restored.tasks) target.kill(restoredTask);
      target.shutdown();
      const readStarted = performance.now();
      // Read as many bytes as the memory holds from the packs, then copy them into place.
      const read = new Uint8Array(memoryBytes);
      let filled = 0;
      for (const name of readdirSync(join(directory, 'packs')).sort()) {
        if (filled >= memoryBytes) break;
        const fd = openSync(join(directory, 'packs', name), 'r');
        filled += readSync(fd, read, filled, memoryBytes - filled, 0);
        closeSync(fd);
      }
      new Uint8Array(memoryBytes).set(read);
      reads.push(performance.now() - readStarted);
    }
    const ratio = median(resumes) / median(reads);
    report({
      benchmark: 'resume of a 64 MiB task',
      figure: `${median(resumes).toFixed(0)} ms`,
      ratio,
      baseline: `reading its bytes from the store's files and copying them (${median(reads).toFixed(0)} ms)`,
      target: '<= 2x',
      met: ratio <= 2,
    });
  } finally {
    await store.close();
    rmSync(directory, { recursive: true, force: true });
  }
}

export async function benchSnapshot(runs: number): Promise<void> {
  await frozenTime(64, runs);
  await frozenTime(256, Math.max(3, Math.floor(runs / 2)));
  await freezeAndResume();
}
