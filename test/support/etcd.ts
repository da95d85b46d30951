/**
 * A real etcd for tests, and a cuttable TCP path to it.
 *
 * `startEtcd()` runs the `etcd` binary (Debian's etcd-server; `.ci/run` installs it) as a one-member
 * cluster on 127.0.0.1 with free client and peer ports and a fresh data directory, and resolves
 * once its client API answers /health. Ports are found by binding port 0 and releasing it; if etcd
 * still loses the race for one, the start is retried on new ports. The member runs with a 50 ms
 * heartbeat and a 500 ms election timeout: etcd refuses lease TTLs below 1.5 election timeouts
 * (rounded up to whole seconds), so its defaults would turn the tests' 1 s leases into 2 s ones.
 *
 * A test owns the etcd it starts: `kill()` is an outage (SIGKILL, data kept), `restart()` brings
 * the same member back on the same ports and data, `stop()` ends it and removes its data.
 *
 * `startTcpProxy()` stands between one client and etcd: `cut()` resets every connection through it
 * and refuses new ones (a network partition of that client alone, while etcd keeps running and
 * expiring its leases), `heal()` lets connections through again.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Longest an etcd start may take until /health answers true. */
const etcdStartMsMax = 15_000;
/** Pause between two /health polls. */
const etcdHealthPollMs = 50;
/** Starts on fresh ports after etcd failed to bind its ports. */
const etcdStartAttemptsMax = 5;
/** Longest a SIGTERM'd etcd may take to exit before it is killed. */
const etcdStopMsMax = 5_000;

export interface TestEtcd {
  /** The client URL, `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  readonly dataDir: string;
  /** An outage: SIGKILL, the data directory kept for restart(). */
  kill(): Promise<void>;
  /** Starts the member again (killing it first if it runs) on the same ports and data; resolves when healthy. */
  restart(): Promise<void>;
  /** Ends the member and removes its data directory. */
  stop(): Promise<void>;
}

export async function startEtcd(): Promise<TestEtcd> {
  const dataDir = mkdtempSync(join(tmpdir(), 'norma-etcd-'));
  let failure = '';
  for (let attempt = 0; attempt < etcdStartAttemptsMax; attempt++) {
    const clientPort = await freePort();
    const peerPort = await freePort();
    if (clientPort === peerPort) continue;
    const member = new EtcdMember(dataDir, clientPort, peerPort);
    const started = await member.start();
    if (started === 'healthy') return member;
    failure = started;
    if (!/address already in use/.test(started)) break;
  }
  rmSync(dataDir, { recursive: true, force: true });
  throw new Error(`etcd did not start: ${failure}`);
}

class EtcdMember implements TestEtcd {
  readonly endpoint: string;
  #process: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();

  constructor(
    readonly dataDir: string,
    clientPort: number,
    private readonly peerPort: number,
  ) {
    this.endpoint = `http://127.0.0.1:${clientPort}`;
  }

  /** 'healthy', or why it is not (the end of etcd's log). */
  async start(): Promise<string> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const child = spawn(
      'etcd',
      [
        '--name=norma-test',
        `--data-dir=${this.dataDir}`,
        `--listen-client-urls=${this.endpoint}`,
        `--advertise-client-urls=${this.endpoint}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=norma-test=${peer}`,
        '--heartbeat-interval=50',
        '--election-timeout=500',
        '--logger=zap',
        '--log-level=error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      log = (log + chunk).slice(-4000);
    });
    let exitCode: number | string | null = null;
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        exitCode = code ?? signal;
        resolve();
      });
    });
    child.once('error', (error) => {
      log += String(error);
      exitCode = 'spawn error';
    });
    this.#process = child;
    const deadline = Date.now() + etcdStartMsMax;
    while (Date.now() < deadline) {
      if (exitCode !== null) {
        this.#process = null;
        return `exited (${exitCode}): ${log}`;
      }
      if (await this.#healthy()) return 'healthy';
      await sleep(etcdHealthPollMs);
    }
    await this.kill();
    return `not healthy after ${etcdStartMsMax} ms: ${log}`;
  }

  async #healthy(): Promise<boolean> {
    try {
      const response = await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await response.json()) as { health?: string };
      return body.health === 'true';
    } catch {
      return false;
    }
  }

  async kill(): Promise<void> {
    await this.#end('SIGKILL');
  }

  async restart(): Promise<void> {
    await this.#end('SIGKILL');
    const started = await this.start();
    if (started !== 'healthy') throw new Error(`etcd did not restart: ${started}`);
  }

  async stop(): Promise<void> {
    await this.#end('SIGTERM');
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  async #end(signal: NodeJS.Signals): Promise<void> {
    const child = this.#process;
    if (child === null) return;
    this.#process = null;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), etcdStopMsMax);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** A port nobody listened on a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (typeof address === 'object' && address !== null) resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

export interface TcpProxy {
  /** `http://127.0.0.1:<port>`: give it to the client instead of the target. */
  readonly endpoint: string;
  /** Resets every open connection and refuses new ones. */
  cut(): void;
  /** Keeps every connection open but carries nothing either way (a store that hangs); heal() ends it. */
  silence(): void;
  heal(): void;
  close(): Promise<void>;
}

/** A TCP proxy on a free port of 127.0.0.1 to `target` (`http://host:port`). */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const url = new URL(target);
  const sockets = new Set<Socket>();
  let cut = false;
  let silent = false;
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const server: Server = createServer((client) => {
    track(client);
    if (cut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = netConnect(Number(url.port), url.hostname);
    track(upstream);
    client.on('data', (chunk: Buffer) => {
      if (!silent) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!silent) client.write(chunk);
    });
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('proxy has no address');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    cut() {
      cut = true;
      for (const socket of sockets) socket.resetAndDestroy();
    },
    silence() {
      silent = true;
    },
    heal() {
      cut = false;
      silent = false;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
