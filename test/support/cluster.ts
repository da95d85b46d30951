// A cluster of node daemons for tests and benchmarks: its own etcd (fresh data dir, loopback),
// `norma cluster init`, and one detached node daemon per name, each with its own store.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ok, stopNode, tempStore } from '../node/node-helpers.js';
import { norma } from './cli.js';
import { startEtcd, type TestEtcd } from './etcd.js';

export interface TestCluster {
  readonly etcd: TestEtcd;
  /** The `norma cluster init` directory. */
  readonly directory: string;
  /** Each node's store, by node name (commands go to a node through its store). */
  readonly stores: Record<string, string>;
  /** Each node daemon's process id, by node name. */
  readonly pids: Record<string, number>;
  /** Stops the nodes and etcd, and removes every directory. */
  stop(): Promise<void>;
}

/** Longest a stopped node may take to exit before it is killed. */
const nodeExitMsMax = 5_000;

/** Resolves once process `pid` has exited; SIGKILLs it after `nodeExitMsMax`. */
async function processGone(pid: number): Promise<void> {
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const deadline = performance.now() + nodeExitMsMax;
  while (alive()) {
    if (performance.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function startCluster(
  names: readonly string[],
  options: { leaseTtl?: number } = {},
): Promise<TestCluster> {
  const etcd = await startEtcd();
  const directory = join(tempStore(), 'cluster');
  const stores: Record<string, string> = {};
  const pids: Record<string, number> = {};
  const stop = async (): Promise<void> => {
    // A node stops even when etcd is down (it cannot leave then; its lease expires instead).
    for (const store of Object.values(stores)) await stopNode(store).catch(() => {});
    // It answers `node stop` before its process is gone: none may outlive the cluster.
    for (const pid of Object.values(pids)) await processGone(pid);
    await etcd.stop();
    for (const store of Object.values(stores)) rmSync(store, { recursive: true, force: true });
    rmSync(join(directory, '..'), { recursive: true, force: true });
  };
  try {
    const init = await norma(['cluster', 'init', directory]);
    if (init.code !== 0) throw new Error(`norma cluster init: ${init.stderr}`);
    for (const name of names) {
      stores[name] = tempStore();
      const lease = options.leaseTtl === undefined ? [] : ['--lease-ttl', String(options.leaseTtl)];
      const started = await ok(
        stores[name]!,
        'node',
        'start',
        '--detach',
        '--cluster',
        directory,
        '--name',
        name,
        '--etcd',
        etcd.endpoint,
        ...lease,
      );
      pids[name] = Number(/pid (\d+)/.exec(started)?.[1]);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { etcd, directory, stores, pids, stop };
}
