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
 * `NODE_OPTIONS='--cpu-prof --cpu-prof-dir=DIR'` (every Node process of the run writes a profile).
 *
 * This file is also the raw TCP peer: `node dist/bench/remote-ipc.js tcp-server|tcp-client <port>`
 * (forked by the benchmark, driven over the child process channel, which carries no timed data).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../src/node/control-client.js';
import { compareMeasured, median, repoRoot, report } from './support.js';

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
/** Longest a raw TCP peer or a stopped node may take to exit before it is killed. */
const peerStopMsMax = 5_000;

const thisFile = fileURLToPath(import.meta.url);
const taskModule = (name: string): string => join(repoRoot, 'tasks', 'build', `${name}.wasm`);

type Mode = 'rtt' | 'bulk';

export async function benchRemoteIpc(runs: number): Promise<void> {
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const nodes = await BenchNodes.start(cleanups);
    const tcp = await TcpPeers.start(cleanups);
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
        remoteBulk: async () => megabytesPerSecond(await remote('bulk', bulkCount, bulkBytes, bulkWarmup)),
        tcpBulk: async () =>
          megabytesPerSecond(
            await tcp.measure({ mode: 'bulk', count: bulkCount, bytes: bulkBytes, warmup: bulkWarmup }),
          ),
      },
      runs,
    );
    const runsOf = (values: number[] | undefined, digits: number): string =>
      (values ?? []).map((v) => v.toFixed(digits)).join(', ');
    const remoteRtt = median(figures.remoteRtt!);
    const tcpRtt = median(figures.tcpRtt!);
    console.log(
      `  runs: remote round trip ${runsOf(figures.remoteRtt, 1)} us; raw TCP ${runsOf(figures.tcpRtt, 1)} us`,
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
    console.log(
      `  runs: remote throughput ${runsOf(figures.remoteBulk, 0)} MB/s; raw TCP ${runsOf(figures.tcpBulk, 0)} MB/s`,
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

  private constructor(clients: Record<string, ControlClient>) {
    this.#clients = clients;
  }

  /** Starts n1 and n2; `cleanups` gets what stops them and etcd and removes their files. */
  static async start(cleanups: (() => Promise<void>)[]): Promise<BenchNodes> {
    // Loaded here, not at the top: the raw TCP peers, forked from this file, need none of it.
    const { startCluster } = await import('../test/support/cluster.js');
    const { testCacheDirectory } = await import('../test/support/fixtures.js');
    cleanups.push(async () => rmSync(testCacheDirectory, { recursive: true, force: true }));
    const cluster = await startCluster(['n1', 'n2']);
    cleanups.push(async () => {
      await cluster.stop();
      // A node answers `node stop` before its process is gone: wait for it, so that none outlives the run.
      for (const pid of Object.values(cluster.pids)) await processGone(pid);
    });
    const clients: Record<string, ControlClient> = {};
    cleanups.push(async () => {
      for (const client of Object.values(clients)) client.close();
    });
    for (const [name, store] of Object.entries(cluster.stores)) {
      clients[name] = await ControlClient.connect(join(store, 'node.sock'));
    }
    return new BenchNodes(clients);
  }

  #client(name: string): ControlClient {
    const client = this.#clients[name];
    if (client === undefined) throw new Error(`no node ${name}`);
    return client;
  }

  /** Starts remote-bench-server on n1 and waits until n2 sees its name in the cluster. */
  async startServer(): Promise<void> {
    await this.#client('n1').call('spawn', { module: taskModule('remote-bench-server'), args: [] });
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
    const { id } = await client.call('spawn', { module: taskModule(task), args });
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

/** Resolves once process `pid` has exited; SIGKILLs it after `peerStopMsMax`. */
async function processGone(pid: number): Promise<void> {
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const deadline = performance.now() + peerStopMsMax;
  while (alive()) {
    if (performance.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      return;
    }
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------------------------
// The raw TCP baseline: two Node processes, a framed echo and a framed stream.
// ---------------------------------------------------------------------------------------------

interface TcpRequest {
  mode: 'rtt' | 'bulk';
  count: number;
  bytes: number;
  warmup: number;
}

type TcpAnswer = { ns: number } | { error: string };

class TcpPeers {
  #pending: ((answer: TcpAnswer) => void) | null = null;

  private constructor(readonly client: ChildProcess) {
    client.on('message', (answer: TcpAnswer) => {
      const pending = this.#pending;
      this.#pending = null;
      pending?.(answer);
    });
  }

  static async start(cleanups: (() => Promise<void>)[]): Promise<TcpPeers> {
    const server = fork(thisFile, ['tcp-server'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    cleanups.push(() => endChild(server));
    const [listening] = (await once(server, 'message')) as [{ port: number }];
    const client = fork(thisFile, ['tcp-client', String(listening.port)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    cleanups.push(() => endChild(client));
    await once(client, 'message'); // connected
    return new TcpPeers(client);
  }

  /** Runs one measurement in the client process; resolves with the nanoseconds it timed. */
  measure(request: TcpRequest): Promise<number> {
    return new Promise((resolve, reject) => {
      const onExit = (): void => reject(new Error('the raw TCP client exited'));
      this.client.once('exit', onExit);
      this.#pending = (answer) => {
        this.client.off('exit', onExit);
        if ('error' in answer) reject(new Error(`raw TCP client: ${answer.error}`));
        else resolve(answer.ns);
      };
      this.client.send(request);
    });
  }
}

/** Closes the child's channel (it exits, running its exit handlers); SIGKILL if it does not. */
async function endChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  if (child.connected) child.disconnect();
  else child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), peerStopMsMax);
  await exited;
  clearTimeout(timer);
}

/** Frame kinds of the raw TCP peers: [u32 body length][u8 kind][body]. */
const tcpEcho = 1;
const tcpData = 2;
const tcpSync = 3;
const tcpReply = 4;
const tcpHeaderBytes = 5;

function tcpFrame(kind: number, body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(tcpHeaderBytes + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame[4] = kind;
  frame.set(body, tcpHeaderBytes);
  return frame;
}

/**
 * Splits a byte stream into frames. Bodies of DATA frames are skipped (counted, never copied or
 * gathered); the others are handed over whole.
 */
class TcpFrames {
  readonly #header = Buffer.alloc(tcpHeaderBytes);
  #headerBytes = 0;
  #kind = 0;
  #length = 0;
  #remaining = -1;
  #parts: Buffer[] = [];

  constructor(private readonly onFrame: (kind: number, body: Buffer | null) => void) {}

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#remaining === -1) {
        const take = Math.min(tcpHeaderBytes - this.#headerBytes, chunk.length - offset);
        chunk.copy(this.#header, this.#headerBytes, offset, offset + take);
        this.#headerBytes += take;
        offset += take;
        if (this.#headerBytes < tcpHeaderBytes) return;
        this.#headerBytes = 0;
        this.#length = this.#header.readUInt32BE(0);
        this.#remaining = this.#length;
        this.#kind = this.#header[4]!;
      }
      const take = Math.min(this.#remaining, chunk.length - offset);
      if (this.#kind !== tcpData && take > 0) this.#parts.push(chunk.subarray(offset, offset + take));
      offset += take;
      this.#remaining -= take;
      if (this.#remaining > 0) return;
      this.#remaining = -1;
      if (this.#kind === tcpData) {
        this.onFrame(tcpData, null);
      } else {
        const parts = this.#parts;
        this.#parts = [];
        this.onFrame(this.#kind, parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#length));
      }
    }
  }
}

/** Echoes ECHO frames, counts DATA frames, answers SYNC with the count since the last one. */
function runTcpServer(): void {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    let data = 0;
    const frames = new TcpFrames((kind, body) => {
      if (kind === tcpData) data++;
      else if (kind === tcpEcho) socket.write(tcpFrame(tcpReply, body!));
      else if (kind === tcpSync) {
        const count = Buffer.alloc(4);
        count.writeUInt32BE(data, 0);
        data = 0;
        socket.write(tcpFrame(tcpReply, count));
      }
    });
    socket.on('data', (chunk: Buffer) => frames.push(chunk));
    socket.on('error', () => socket.destroy());
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (typeof address === 'object' && address !== null) process.send!({ port: address.port });
  });
  process.on('disconnect', () => process.exit(0));
}

/** Connects to the server, then runs each measurement the parent asks for, one at a time. */
function runTcpClient(port: number): void {
  const socket = createConnection({ port, host: '127.0.0.1', noDelay: true });
  let onReply: (body: Buffer) => void = () => {};
  const frames = new TcpFrames((kind, body) => {
    if (kind === tcpReply) onReply(body!);
  });
  socket.on('data', (chunk: Buffer) => frames.push(chunk));
  socket.once('connect', () => process.send!('connected'));
  socket.on('error', (error) => {
    process.send!({ error: error.message });
    process.exit(1);
  });
  process.on('disconnect', () => process.exit(0));
  const reply = (): Promise<Buffer> =>
    new Promise((resolve) => {
      onReply = resolve;
    });

  /** `total` echoes back to back, driven from the reply callback (no Promise per round trip). */
  const echoes = (message: Buffer, total: number): Promise<void> =>
    new Promise((resolve) => {
      let done = 0;
      onReply = () => {
        if (++done === total) resolve();
        else socket.write(message);
      };
      socket.write(message);
    });

  const stream = async (data: Buffer, count: number): Promise<void> => {
    for (let i = 0; i < count; i++) {
      if (!socket.write(data)) await once(socket, 'drain');
    }
    const answer = reply();
    socket.write(tcpFrame(tcpSync, new Uint8Array(0)));
    const received = (await answer).readUInt32BE(0);
    if (received !== count) throw new Error(`${received} of ${count} frames received`);
  };

  process.on('message', async (request: TcpRequest) => {
    try {
      const payload = Buffer.alloc(request.bytes, 7);
      let started: bigint;
      if (request.mode === 'rtt') {
        const message = tcpFrame(tcpEcho, payload);
        await echoes(message, request.warmup);
        started = process.hrtime.bigint();
        await echoes(message, request.count);
      } else {
        const data = tcpFrame(tcpData, payload);
        await stream(data, request.warmup);
        started = process.hrtime.bigint();
        await stream(data, request.count);
      }
      process.send!({ ns: Number(process.hrtime.bigint() - started) });
    } catch (error) {
      process.send!({ error: String(error) });
    }
  });
}

if (process.argv[1] === thisFile) {
  const role = process.argv[2];
  if (role === 'tcp-server') runTcpServer();
  else if (role === 'tcp-client') runTcpClient(Number(process.argv[3]));
  else {
    console.error('usage: remote-ipc.js tcp-server | tcp-client <port> (the benchmark forks them)');
    process.exit(64);
  }
}
