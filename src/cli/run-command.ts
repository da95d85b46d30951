/**
 * `norma run <module.wasm> [-- args...]`: runs a task to completion on an embedded local node. The
 * task's stdout and stderr are ours, its stdin streams from ours when it reads, and its exit code
 * becomes ours. `--also` starts more tasks on the same node (servers the main task talks to).
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { NormaError } from '../errors.js';
import { Kernel, type Task } from '../kernel/kernel.js';
import type { TaskExit } from '../kernel/task.js';
import type { TransformProgress } from '../runtime/module-cache.js';

export interface RunOptions {
  readonly preempt: boolean;
  readonly entry?: string;
  readonly env: readonly string[];
  readonly also: readonly string[];
  readonly json: boolean;
  readonly cache: boolean;
}

export async function readModule(path: string): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    throw new NormaError(
      'FILE_NOT_FOUND',
      `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`,
      {
        cause: error,
      },
    );
  }
}

function parseEnv(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new NormaError('USAGE', `--env takes NAME=VALUE, got "${pair}"`);
    env[pair.slice(0, equals)] = pair.slice(equals + 1);
  }
  return env;
}

const write = (stream: NodeJS.WriteStream) => (bytes: Uint8Array) => {
  stream.write(bytes);
};

/** Streams our stdin into the task, starting only when it first reads (so a TTY is not held open). */
function streamStdin(kernel: Kernel, task: () => Task): () => void {
  return () => {
    process.stdin.on('data', (chunk: Buffer) => kernel.writeStdin(task(), new Uint8Array(chunk), false));
    process.stdin.on('end', () => kernel.writeStdin(task(), new Uint8Array(0), true));
  };
}

function describeExit(name: string, exit: TaskExit): string {
  return exit.trap === null
    ? `${name}: exited with code ${exit.code}`
    : `${name}: trapped (${exit.trap}): ${exit.message}`;
}

/** Returns the exit code for the process. */
/** Progress of a module transform on stderr, when stderr is a terminal (scripts get clean output). */
function transformProgress(event: TransformProgress): void {
  if (!process.stderr.isTTY) return;
  const megabytes = (event.bytes / 1024 / 1024).toFixed(1);
  if (event.phase === 'start')
    process.stderr.write(`norma: preparing a ${megabytes} MB module (first run only)...`);
  else process.stderr.write(` done in ${(event.milliseconds / 1000).toFixed(1)} s\n`);
}

export async function runCommand(
  modulePath: string,
  args: readonly string[],
  options: RunOptions,
): Promise<number> {
  const kernel = new Kernel({
    onTransform: transformProgress,
    ...(options.cache ? {} : { cacheDirectory: false }),
  });
  const env = parseEnv(options.env);
  const companions: Task[] = [];
  for (const path of options.also) {
    const task = await kernel.spawn({
      module: await readModule(path),
      name: basename(path, '.wasm'),
      args: [basename(path)],
      env,
      stdin: new Uint8Array(0),
      preempt: options.preempt,
      stdout: write(process.stdout),
      stderr: write(process.stderr),
    });
    companions.push(task);
  }
  let main!: Task;
  main = await kernel.spawn({
    module: await readModule(modulePath),
    name: basename(modulePath, '.wasm'),
    args: [basename(modulePath), ...args],
    env,
    preempt: options.preempt,
    ...(options.entry === undefined ? {} : { entry: options.entry }),
    stdout: write(process.stdout),
    stderr: write(process.stderr),
    onStdinWanted: streamStdin(kernel, () => main),
  });
  const stopSignals = (): void => {
    kernel.kill(main);
  };
  process.once('SIGINT', stopSignals);
  process.once('SIGTERM', stopSignals);
  const exit = await main.exited;
  process.off('SIGINT', stopSignals);
  process.off('SIGTERM', stopSignals);
  process.stdin.pause();
  process.stdin.unref?.();
  kernel.shutdown();
  if (options.json) {
    process.stderr.write(`${JSON.stringify({ task: main.state.name, ...exit })}\n`);
  } else if (exit.trap !== null) {
    process.stderr.write(`norma: ${describeExit(main.state.name, exit)}\n`);
  }
  return exit.code;
}
