/**
 * Remote IPC between tasks on two node daemons: a real cluster of etcd and two `norma node start`
 * processes on loopback (TLS, wire protocol, NORMA IPC), against raw TCP between two Node processes
 * on loopback in the same run.
 *
 * - Round trip: remote-bench-client on n2 sends an ECHO of `rttBytes` inline bytes with a
 *   MAKE_SEND_ONCE reply right to remote-bench-server on n1, which answers with the same bytes.
 *   Baseline: a framed echo of the same payload between two Node processes over plain TCP (one
 *   frame out, one back, no Promise in the loop). Target: <= 2x the raw TCP round trip.
 * - Throughput: the client sends `bulkCount` DATA messages of 64 KiB inline bytes through a send
 *   right, then a SYNC whose answer says the server received them all. Baseline: the same number of
 *   64 KiB frames written to a plain TCP socket (respecting backpressure), the receiver counting
 *   frames without copying them, then a sync frame and its answer. Target: >= 50% of raw TCP.
 *
 * The tasks time themselves on their monotonic clock after a warmup, so neither the task's start
 * nor its name lookup is counted; each raw TCP figure is timed the same way inside its process.
 * The daemons are warmed up first (`daemonWarmupRoundTrips`), then the contenders alternate run by
 * run (compareMeasured). To profile the daemons, run it with
 * `NORMA_NODE_FLAGS='--cpu-prof --cpu-prof-dir=DIR'` (each daemon writes a profile when it stops),
 * or with `NORMA_NODE_FLAGS=--perf-basic-prof` under `perf record -e cpu-clock -g -p <daemon pid>`.
 * The raw TCP peers are bench/raw-tcp.ts. The same peers over TLS 1.3 with certificates of the
 * cluster's CA are measured too and printed as context: the share of the gap that is encryption.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadNodeCredentials } from '../src/net/cluster-credentials.js';
import { ControlClient } from '../src/node/control-client.js';
import { startCluster } from '../test/support/cluster.js';
import { taskModulePath } from '../test/support/fixtures.js';
import { TcpPeers } from './raw-tcp.js';
import { compareMeasured, median, report } from './support.js';

/** Inline bytes of a round-trip message (the size of the platform notes' loopback round trip). */
const rttBytes = 100;
/** Timed round trips per run, after `rttWarmup` untimed ones in the same task. */
const rttCount = 5000;
const rttWarmup = 200;
/**
 * Untimed round trips before the first run: the daemons' JavaScript takes about 15 000 round trips
 * to reach its steady speed (V8 optimizes the hot path late), which one run's warmup does not cover.
 */
const daemonWarmupRoundTrips = 15_000;
const bulkBytes = 64 * 1024;
/** Timed messages per run (128 MiB), after `bulkWarmup` untimed ones in the same task. */
const bulkCount = 2000;
const bulkWarmup = 100;

type Mode = 'rtt' | 'bulk';

export async function benchRemoteIpc(runs: number): Promise<void> {
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const nodes = await BenchNodes.start(cleanups);
    const tcp = await TcpPeers.start(cleanups);
    const tls = await TcpPeers.start(
      cleanups,
      await loadNodeCredentials(nodes.directory, 'tls-baseline', { issueIfMissing: true }),
    );
    await nodes.startServer();
    /** Nanoseconds remote-bench-client on n2 timed for `count` rounds with the server on n1. */
    const remote = async (mode: Mode, count: number, bytes: number, warmup: number): Promise<number> => {
      const args = [mode, String(count), String(bytes), 'remote-bench', String(warmup)];
      const stdout = await nodes.run('n2', 'remote-bench-client', args);
      const ns = new RegExp(`^${mode} count=${count} bytes=${bytes} ns=(\\d+)$`, 'm').exec(stdout);
      if (ns === null) throw new Error(`remote-bench-client printed ${JSON.stringify(stdout)}`);
      return Number(ns[1]);
    };
    const roundTripUs = (ns: number): number => ns / rttCount / 1000;
    const megabytesPerSecond = (ns: number): number => (bulkCount * bulkBytes) / ns / 1e-3;
    await remote('rtt', daemonWarmupRoundTrips, rttBytes, 0);
    const figures = await compareMeasured(
      {
        remoteRtt: async () => roundTripUs(await remote('rtt', rttCount, rttBytes, rttWarmup)),
        tcpRtt: async () =>
          roundTripUs(
            await tcp.measure({ mode: 'rtt', count: rttCount, bytes: rttBytes, warmup: rttWarmup }),
          ),
        tlsRtt: async () =>
          roundTripUs(
            await tls.measure({ mode: 'rtt', count: rttCount, bytes: rttBytes, warmup: rttWarmup }),
          ),
        remoteBulk: async () => megabytesPerSecond(await remote('bulk', bulkCount, bulkBytes, bulkWarmup)),
        tcpBulk: async () =>
          megabytesPerSecond(
            await tcp.measure({ mode: 'bulk', count: bulkCount, bytes: bulkBytes, warmup: bulkWarmup }),
          ),
        tlsBulk: async () =>
          megabytesPerSecond(
            await tls.measure({ mode: 'bulk', count: bulkCount, bytes: bulkBytes, warmup: bulkWarmup }),
          ),
      },
      runs,
    );
    const runsOf = (values: number[] | undefined, digits: number): string =>
      (values ?? []).map((v) => v.toFixed(digits)).join(', ');
    const remoteRtt = median(figures.remoteRtt!);
    const tcpRtt = median(figures.tcpRtt!);
    const tlsRtt = median(figures.tlsRtt!);
    console.log(
      `  runs: remote round trip ${runsOf(figures.remoteRtt, 1)} us; raw TCP ${runsOf(figures.tcpRtt, 1)} us; TLS ${runsOf(figures.tlsRtt, 1)} us`,
    );
    console.log(
      `  context: TLS 1.3 alone, the same echo: ${tlsRtt.toFixed(1)} us = ${(tlsRtt / tcpRtt).toFixed(2)}x raw TCP; remote IPC = ${(remoteRtt / tlsRtt).toFixed(2)}x TLS alone`,
    );
    report({
      benchmark: 'remote IPC round trip',
      figure: `${remoteRtt.toFixed(1)} us (${rttBytes} B, tasks on two nodes)`,
      ratio: remoteRtt / tcpRtt,
      baseline: `a raw TCP round trip between two processes on loopback (${tcpRtt.toFixed(1)} us)`,
      target: '<= 2x raw TCP',
      met: remoteRtt / tcpRtt <= 2,
    });
    const remoteRate = median(figures.remoteBulk!);
    const tcpRate = median(figures.tcpBulk!);
    const tlsRate = median(figures.tlsBulk!);
    console.log(
      `  runs: remote throughput ${runsOf(figures.remoteBulk, 0)} MB/s; raw TCP ${runsOf(figures.tcpBulk, 0)} MB/s; TLS ${runsOf(figures.tlsBulk, 0)} MB/s`,
    );
    console.log(
      `  context: TLS 1.3 alone, the same stream: ${tlsRate.toFixed(0)} MB/s = ${(tlsRate / tcpRate).toFixed(2)}x raw TCP; remote IPC = ${(remoteRate / tlsRate).toFixed(2)}x TLS alone`,
    );
    report({
      benchmark: 'remote IPC throughput',
      figure: `${remoteRate.toFixed(0)} MB/s (64 KiB messages, tasks on two nodes)`,
      ratio: remoteRate / tcpRate,
      baseline: `raw TCP between two processes on loopback (${tcpRate.toFixed(0)} MB/s)`,
      target: '>= 0.5x raw TCP',
      met: remoteRate / tcpRate >= 0.5,
    });
  } finally {
    // In reverse order of start; every step runs even when an earlier one fails.
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.error(error));
  }
}

// ---------------------------------------------------------------------------------------------
// The cluster (test/support/cluster.ts: etcd and detached node daemons), driven through the nodes'
// control sockets.
// ---------------------------------------------------------------------------------------------

class BenchNodes {
  readonly #clients: Record<string, ControlClient>;

  private constructor(
    clients: Record<string, ControlClient>,
    /** The cluster's `norma cluster init` directory (its CA issues the TLS baseline's certificates). */
    readonly directory: string,
  ) {
    this.#clients = clients;
  }

  /** Starts n1 and n2; `cleanups` gets what stops them and etcd and removes their files. */
  static async start(cleanups: (() => Promise<void>)[]): Promise<BenchNodes> {
    const cluster = await startCluster(['n1', 'n2']);
    cleanups.push(() => cluster.stop());
    const clients: Record<string, ControlClient> = {};
    cleanups.push(async () => {
      for (const client of Object.values(clients)) client.close();
    });
    for (const [name, store] of Object.entries(cluster.stores)) {
      clients[name] = await ControlClient.connect(join(store, 'node.sock'));
    }
    return new BenchNodes(clients, cluster.directory);
  }

  #client(name: string): ControlClient {
    const client = this.#clients[name];
    if (client === undefined) throw new Error(`no node ${name}`);
    return client;
  }

  /** Starts remote-bench-server on n1 and waits until n2 sees its name in the cluster. */
  async startServer(): Promise<void> {
    await this.#client('n1').call('spawn', { module: taskModulePath('remote-bench-server'), args: [] });
    for (let attempt = 0; attempt < 200; attempt++) {
      const { names } = await this.#client('n2').call('names', {});
      if (names.some((n) => n.name === 'remote-bench' && n.node === 'n1')) return;
      await sleep(50);
    }
    throw new Error('remote-bench-server did not register "remote-bench" on n1');
  }

  /** Runs a task on node `name` to its end; returns its stdout (any other exit than 0 throws). */
  async run(name: string, task: string, args: string[]): Promise<string> {
    const client = this.#client(name);
    const { id } = await client.call('spawn', { module: taskModulePath(task), args });
    let stdout = '';
    let stderr = '';
    const { exit } = await client.stream('logs', { task: String(id), follow: true }, (event) => {
      const text = Buffer.from(event.data, 'base64').toString('utf8');
      if (event.stream === 'stdout') stdout += text;
      else stderr += text;
    });
    if (exit === null || exit.code !== 0) {
      throw new Error(`${task} on ${name} ended with ${JSON.stringify(exit)}: ${stderr.trim()}`);
    }
    return stdout;
  }
}
