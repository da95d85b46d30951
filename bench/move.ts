/**
 * Moving a task between two node daemons (`norma move --to`): the downtime of a task with 64 MiB
 * of non-zero memory, from the moment it stops on n1 to the moment it runs on n2, as the move
 * reports it, against the time raw TCP on loopback takes to carry those 64 MiB from one process
 * to another, measured in the same run. Target (issue 4): at most 2x. The move pre-copies the
 * pages while the task runs, so the stop carries only what changed (for this idle task, almost
 * nothing); the whole move, whose pre-copy carries the 64 MiB, is printed as context.
 *
 * Real processes: an etcd, two node daemons talking TLS; each run moves a new task with contents
 * no store holds yet (another seed) from n1 to n2.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ok, spawnTask, task, waitForLog } from '../test/node/node-helpers.js';
import { startCluster } from '../test/support/cluster.js';
import { taskModulePath } from '../test/support/fixtures.js';
import { TcpPeers } from './raw-tcp.js';
import { median, report } from './support.js';

const taskMiB = 64;

export async function benchMove(runs: number): Promise<void> {
  const cleanups: (() => Promise<void>)[] = [];
  const cluster = await startCluster(['n1', 'n2']);
  cleanups.push(() => cluster.stop());
  const { stores } = cluster;
  try {
    const peers = await TcpPeers.start(cleanups);
    // Raw TCP carrying the task's pages: 64 KiB frames from one process to another.
    const rawTcpMs = async (): Promise<number> =>
      (await peers.measure({ mode: 'bulk', count: taskMiB * 16, bytes: 64 * 1024, warmup: 16 })) / 1e6;
    const module = taskModulePath('memory-fill');
    const downtimes: number[] = [];
    const totals: number[] = [];
    const tcp: number[] = [];
    for (let run = 0; run < runs + 1; run++) {
      // A new task each run, with contents no store has yet (another seed): its 64 MiB really
      // travel, ahead of the stop (the pre-copy), and nothing left by an earlier run helps.
      const id = await spawnTask(stores.n1!, module, '--', String(taskMiB), String(run + 1));
      await waitForLog(stores.n1!, id, 'ready');
      const moved = JSON.parse(await ok(stores.n1!, 'move', String(id), '--to', 'n2', '--json')) as {
        downtimeMs: number;
        totalMs: number;
        precopiedPages: number;
        pagesChanged: number;
        tasks: { id: number }[];
      };
      if (moved.precopiedPages < taskMiB * 16) {
        throw new Error(`only ${moved.precopiedPages} pages travelled ahead of the stop`);
      }
      if ((await task(stores.n2!, moved.tasks[0]!.id)).status !== 'running')
        throw new Error('not running after the move');
      await ok(stores.n2!, 'kill', String(moved.tasks[0]!.id));
      tcp.push(await rawTcpMs());
      if (run > 0) {
        // The first move warms the module caches.
        downtimes.push(moved.downtimeMs);
        totals.push(moved.totalMs);
      }
    }
    const ratio = median(downtimes) / median(tcp);
    console.log(
      `  context: the whole move (pre-copy of the ${taskMiB} MiB included) ${median(totals).toFixed(0)} ms = ${(median(totals) / median(tcp)).toFixed(2)}x raw TCP carrying them`,
    );
    report({
      benchmark: 'move',
      figure: `downtime moving a ${taskMiB} MiB task between two nodes (median ${median(downtimes).toFixed(1)} ms)`,
      ratio,
      baseline: `raw TCP carrying its ${taskMiB} MiB (${median(tcp).toFixed(1)} ms)`,
      target: '≤ 2x',
      met: ratio <= 2,
    });
  } finally {
    if (process.env.NORMA_BENCH_VERBOSE) {
      const logged: string[] = [];
      for (const [name, store] of Object.entries(stores)) {
        const lines = readFileSync(join(store, 'node.log'), 'utf8').split('\n');
        const moves = lines.filter((line) => /moved|took over|staged/.test(line));
        console.log(`${name}:`, moves.join('\n'));
        logged.push(...moves);
      }
      console.log(componentMedians(logged));
    }
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.error(error));
  }
}

/** The median of each part of the downtime the nodes logged (every move, the first one included). */
function componentMedians(lines: readonly string[]): string {
  const parts: Record<string, RegExp> = {
    freeze: /moved .*\(freeze ([\d.]+) ms/,
    capture: /moved .*capture ([\d.]+) ms/,
    write: /moved .*, write ([\d.]+) ms/,
    'source journal': /moved .*, journal ([\d.]+) ms;/,
    resume: /moved .*; resume ([\d.]+) ms/,
    pull: /took over .*\(pull ([\d.]+) ms/,
    ports: /took over .*, ports ([\d.]+) ms/,
    restore: /took over .*, restore ([\d.]+) ms/,
    'target journal': /took over .*, journal ([\d.]+) ms\)/,
    'staging (before the stop)': /staged .* in ([\d.]+) ms/,
  };
  const medians = Object.entries(parts).map(([part, pattern]) => {
    const values = lines.flatMap((line) => {
      const match = pattern.exec(line);
      return match ? [Number(match[1])] : [];
    });
    return `${part} ${values.length > 0 ? median(values).toFixed(1) : '-'} ms`;
  });
  return `medians: ${medians.join(', ')}`;
}
