/**
 * Moving a task between two node daemons (`norma move --to`): the downtime of a task with 64 MiB
 * of non-zero memory, from the moment it stops on n1 to the moment it runs on n2, as the move
 * reports it, against the time raw TCP on loopback takes to carry those 64 MiB from one process
 * to another, measured in the same run. Target (issue 4): at most 2x.
 *
 * Real processes: an etcd, two node daemons talking TLS, the task moved back and forth.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ok, poll, spawnTask, task } from '../test/node/node-helpers.js';
import { startCluster } from '../test/support/cluster.js';
import { repoRoot } from '../test/support/fixtures.js';
import { median, report } from './support.js';

const taskMiB = 64;

/** Milliseconds raw TCP on loopback takes to carry `bytes` to another process (until it says so). */
async function rawTcpMs(bytes: number): Promise<number> {
  const receiver = spawn(
    process.execPath,
    [
      '-e',
      `const n=${bytes};require('net').createServer(s=>{let got=0;s.on('data',d=>{got+=d.length;if(got>=n)s.end('k')})}).listen(0,'127.0.0.1',function(){console.log(this.address().port)})`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const port = await new Promise<number>((resolve) =>
      receiver.stdout.once('data', (data: Buffer) => resolve(Number(String(data).trim()))),
    );
    const { connect } = await import('node:net');
    const chunk = Buffer.alloc(1 << 20, 7);
    return await new Promise<number>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        const started = performance.now();
        socket.once('data', () => {
          resolve(performance.now() - started);
          socket.destroy();
        });
        for (let sent = 0; sent < bytes; sent += chunk.length) socket.write(chunk);
      });
      socket.on('error', reject);
    });
  } finally {
    receiver.kill();
  }
}

export async function benchMove(runs: number): Promise<void> {
  const cluster = await startCluster(['n1', 'n2']);
  const { stores } = cluster;
  try {
    const module = join(repoRoot, 'tasks', 'build', 'memory-fill.wasm');
    const id = await spawnTask(stores.n1!, module, '--', String(taskMiB));
    await poll('the task to fill its memory', async () =>
      (await ok(stores.n1!, 'logs', String(id))).includes('ready') ? true : undefined,
    );
    const downtimes: number[] = [];
    const tcp: number[] = [];
    let at = 'n1';
    for (let run = 0; run < runs + 1; run++) {
      const to = at === 'n1' ? 'n2' : 'n1';
      const moved = JSON.parse(await ok(stores[at]!, 'move', 'memory-fill', '--to', to, '--json')) as {
        downtimeMs: number;
        tasks: { id: number }[];
      };
      if ((await task(stores[to]!, moved.tasks[0]!.id)).status !== 'running')
        throw new Error('not running after the move');
      tcp.push(await rawTcpMs(taskMiB << 20));
      if (run > 0) downtimes.push(moved.downtimeMs); // the first move warms the module caches
      at = to;
    }
    const ratio = median(downtimes) / median(tcp);
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
      for (const [name, store] of Object.entries(stores)) {
        const lines = readFileSync(join(store, 'node.log'), 'utf8').split('\n');
        console.log(`${name}:`, lines.filter((line) => /moved|took over/.test(line)).join('\n'));
      }
    }
    await cluster.stop();
  }
}
