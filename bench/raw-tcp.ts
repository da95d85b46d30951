/**
 * The raw TCP baseline of the network benchmarks: two Node processes on loopback, a framed echo
 * (round trips) and a framed stream (throughput), each timed inside the client process.
 *
 * The same peers over TLS 1.3 with client certificates (the encryption the nodes must use) are the
 * context figure: what encryption alone costs against raw TCP in the same run, which no work on
 * norma's own code can win back.
 *
 * This file is also the peers' program: `node dist/bench/raw-tcp.js tcp-server|tcp-client <port>`
 * (forked by TcpPeers, driven over the child process channel, which carries no timed data; the
 * TLS credentials, if any, come in the environment as NORMA_BENCH_TLS).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as tlsCreateServer } from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { NodeCredentials } from '../src/net/cluster-credentials.js';

/** Longest a raw TCP peer may take to exit before it is killed. */
const peerStopMsMax = 5_000;

const thisFile = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------------------------

export interface TcpRequest {
  mode: 'rtt' | 'bulk';
  count: number;
  bytes: number;
  warmup: number;
}

type TcpAnswer = { ns: number } | { error: string };

export class TcpPeers {
  #pending: ((answer: TcpAnswer) => void) | null = null;

  private constructor(readonly client: ChildProcess) {
    client.on('message', (answer: TcpAnswer) => {
      const pending = this.#pending;
      this.#pending = null;
      pending?.(answer);
    });
  }

  /** Starts a server and a client process; with `tls`, they talk TLS 1.3 with these credentials. */
  static async start(cleanups: (() => Promise<void>)[], tls?: NodeCredentials): Promise<TcpPeers> {
    const env = tls === undefined ? process.env : { ...process.env, NORMA_BENCH_TLS: JSON.stringify(tls) };
    const server = fork(thisFile, ['tcp-server'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env });
    cleanups.push(() => endChild(server));
    const [listening] = (await once(server, 'message')) as [{ port: number }];
    const client = fork(thisFile, ['tcp-client', String(listening.port)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env,
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

/** The TLS options of the peers (mutual authentication, TLS 1.3, as the nodes), or null for plain TCP. */
function tlsOptions(): { key: string; cert: string; ca: string; minVersion: 'TLSv1.3' } | null {
  const given = process.env.NORMA_BENCH_TLS;
  if (given === undefined) return null;
  const { key, cert, ca } = JSON.parse(given) as NodeCredentials;
  return { key, cert, ca, minVersion: 'TLSv1.3' };
}

/** Echoes ECHO frames, counts DATA frames, answers SYNC with the count since the last one. */
function runTcpServer(): void {
  const tls = tlsOptions();
  const serve = (socket: Socket): void => {
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
  };
  const server =
    tls === null
      ? createServer(serve)
      : tlsCreateServer({ ...tls, requestCert: true, rejectUnauthorized: true }, serve);
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (typeof address === 'object' && address !== null) process.send!({ port: address.port });
  });
  process.on('disconnect', () => process.exit(0));
}

/** Connects to the server, then runs each measurement the parent asks for, one at a time. */
function runTcpClient(port: number): void {
  const tls = tlsOptions();
  const socket =
    tls === null
      ? createConnection({ port, host: '127.0.0.1', noDelay: true })
      : tlsConnect({ ...tls, port, host: '127.0.0.1', checkServerIdentity: () => undefined });
  socket.setNoDelay(true);
  let onReply: (body: Buffer) => void = () => {};
  const frames = new TcpFrames((kind, body) => {
    if (kind === tcpReply) onReply(body!);
  });
  socket.on('data', (chunk: Buffer) => frames.push(chunk));
  socket.once(tls === null ? 'connect' : 'secureConnect', () => process.send!('connected'));
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
      if (total === 0) return resolve();
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
    console.error('usage: raw-tcp.js tcp-server | tcp-client <port> (the benchmark forks them)');
    process.exit(64);
  }
}
