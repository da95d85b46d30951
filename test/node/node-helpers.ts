/**
 * Driving a real node daemon from tests, as a user would: `norma node start --detach` in a temporary
 * store, the commands as child processes, and polling `norma ps` (a bounded number of times) until
 * a state is reached, never a fixed sleep.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TaskInfo } from '../../src/node/control-protocol.js';
import { type CliResult, norma } from '../support/cli.js';
import { runTask, taskModule, testKernel } from '../support/fixtures.js';

export function tempStore(): string {
  // Short: a Unix socket path has at most 107 bytes.
  return mkdtempSync(join(tmpdir(), 'norma-node-'));
}

/** Runs a node command against the node of `store` (--store goes before a `--`, not among the task's args). */
export function on(store: string, ...args: string[]): Promise<CliResult> {
  const end = args.indexOf('--');
  return end === -1
    ? norma([...args, '--store', store])
    : norma([...args.slice(0, end), '--store', store, ...args.slice(end)]);
}

/** Runs a node command that must succeed; returns its stdout. */
export async function ok(store: string, ...args: string[]): Promise<string> {
  const result = await on(store, ...args);
  assert.equal(result.code, 0, `norma ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

export async function startNode(store: string): Promise<{ pid: number; stdout: string }> {
  const stdout = await ok(store, 'node', 'start', '--detach');
  const pid = /^node started \(pid (\d+)\)$/m.exec(stdout);
  assert.ok(pid, `unexpected output of node start: ${stdout}`);
  return { pid: Number(pid[1]), stdout };
}

/** Stops the node of `store` if it runs; kills it if it does not answer. */
export async function stopNode(store: string): Promise<void> {
  const result = await on(store, 'node', 'stop');
  if (result.code === 0 || result.code === 69) return;
  const pidFile = join(store, 'node.pid');
  if (!existsSync(pidFile)) return;
  try {
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
  } catch {
    // already gone
  }
}

export async function spawnTask(store: string, ...args: string[]): Promise<number> {
  const stdout = await ok(store, 'spawn', ...args);
  const id = Number(stdout.trim());
  assert.ok(Number.isInteger(id) && id > 0, `spawn printed ${stdout}`);
  return id;
}

export async function ps(store: string): Promise<TaskInfo[]> {
  return (JSON.parse(await ok(store, 'ps', '--json')) as { tasks: TaskInfo[] }).tasks;
}

export async function task(store: string, id: number): Promise<TaskInfo> {
  const found = (await ps(store)).find((t) => t.id === id);
  assert.ok(found, `no task ${id} in ps`);
  return found;
}

/** Polls `check` (up to `attempts` times, 100 ms apart) until it returns a value that is not undefined. */
export async function poll<T>(what: string, check: () => Promise<T | undefined>, attempts = 300): Promise<T> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Polls `norma ps` until the task satisfies `ready`; returns it. */
export function waitForTask(
  store: string,
  id: number,
  what: string,
  ready: (task: TaskInfo) => boolean,
  attempts?: number,
): Promise<TaskInfo> {
  return poll(
    `task ${id} ${what}`,
    async () => {
      const found = (await ps(store)).find((t) => t.id === id);
      return found !== undefined && ready(found) ? found : undefined;
    },
    attempts,
  );
}

export const exited = (task: TaskInfo): boolean => task.status === 'exited';

/** Polls `norma logs` until it holds `text`. */
export function waitForLog(store: string, id: number, text: string): Promise<string> {
  return poll(`"${text}" in the log of task ${id}`, async () => {
    const log = await ok(store, 'logs', String(id));
    return log.includes(text) ? log : undefined;
  });
}

/** The stdout of an uninterrupted run of an example task (in this process, on a kernel of its own). */
export async function uninterrupted(name: string, args: string[], preempt = false): Promise<string> {
  const run = await runTask(testKernel(), {
    module: taskModule(name),
    args: [`${name}.wasm`, ...args],
    preempt,
  });
  assert.equal(run.exit.code, 0, run.stderr);
  return run.stdout;
}
