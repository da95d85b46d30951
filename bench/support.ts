/**
 * Benchmark helpers: repeated timing with medians (this machine is noisy: 2 shared cores), and
 * report lines that state each figure as a ratio to a baseline measured in the same run.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export function readRepoFile(path: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(readFileSync(join(repoRoot, path)));
}

/** A module cache private to this benchmark run. */
export const benchCacheDirectory = mkdtempSync(join(tmpdir(), 'norma-bench-cache-'));
process.on('exit', () => rmSync(benchCacheDirectory, { recursive: true, force: true }));

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

/** Runs `fn` `runs` times (after `warmup` runs) and returns the median duration in milliseconds. */
export async function timeMedian(
  fn: () => Promise<unknown> | unknown,
  runs: number,
  warmup = 1,
): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await fn();
    times.push(performance.now() - started);
  }
  return median(times);
}

/** Interleaves several contenders run by run, so that a noisy period hurts them all alike. */
export async function compareMedians(
  contenders: Record<string, () => Promise<unknown> | unknown>,
  runs: number,
): Promise<Record<string, number>> {
  const times: Record<string, number[]> = {};
  for (const [name, fn] of Object.entries(contenders)) {
    await fn();
    times[name] = [];
  }
  for (let i = 0; i < runs; i++) {
    for (const [name, fn] of Object.entries(contenders)) {
      const started = performance.now();
      await fn();
      times[name]!.push(performance.now() - started);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([name, values]) => [name, median(values)]));
}

/**
 * Like compareMedians, for contenders that measure themselves (a time taken inside a task, a rate):
 * each returns its own figure; one untimed call each first, then `runs` rounds interleaved.
 * Returns every contender's figures in run order.
 */
export async function compareMeasured(
  contenders: Record<string, () => Promise<number>>,
  runs: number,
): Promise<Record<string, number[]>> {
  const values: Record<string, number[]> = {};
  for (const [name, fn] of Object.entries(contenders)) {
    await fn();
    values[name] = [];
  }
  for (let i = 0; i < runs; i++) {
    for (const [name, fn] of Object.entries(contenders)) values[name]!.push(await fn());
  }
  return values;
}

export interface Figure {
  readonly benchmark: string;
  readonly figure: string;
  readonly ratio: number;
  readonly baseline: string;
  readonly target?: string;
  readonly met?: boolean;
}

const figures: Figure[] = [];

export function report(figure: Figure): void {
  figures.push(figure);
  const verdict = figure.met === undefined ? '' : figure.met ? '  [target met]' : '  [TARGET MISSED]';
  console.log(
    `${figure.benchmark}: ${figure.figure} = ${figure.ratio.toFixed(2)}x ${figure.baseline}` +
      `${figure.target ? ` (target ${figure.target})` : ''}${verdict}`,
  );
}

export function reportedFigures(): readonly Figure[] {
  return figures;
}
