/**
 * `norma run <module.wasm> [-- args...]`: runs a task to completion on an embedded local node. The
 * task's stdout and stderr are ours, its stdin streams from ours when it reads, and its exit code
 * becomes ours. `--also` starts more tasks on the same node (servers the main task talks to).
 * `--stop-after`, SIGINT and SIGTERM freeze them all instead (see task-session.ts).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { NormaError } from '../errors.js';
import { Kernel, type SpawnOptions, type Task } from '../kernel/kernel.js';
import type { TransformProgress } from '../runtime/module-cache.js';
import { type SessionOptions, superviseSession } from './task-session.js';

export interface RunOptions extends SessionOptions {
  readonly preempt: boolean;
  readonly entry?: string;
  readonly env: readonly string[];
  readonly also: readonly string[];
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

/** `--env NAME=VALUE` options as an environment (USAGE error for a malformed one). */
export function parseEnv(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new NormaError('USAGE', `--env takes NAME=VALUE, got "${pair}"`);
    env[pair.slice(0, equals)] = pair.slice(equals + 1);
  }
  return env;
}

/** The process wiring of a task: our stdout and stderr, and our stdin streamed in when it reads. */
export function processIo(
  kernel: Kernel,
  task: () => Task,
): Pick<SpawnOptions, 'stdout' | 'stderr' | 'onStdinWanted'> {
  return {
    stdout: (bytes) => {
      process.stdout.write(bytes);
    },
    stderr: (bytes) => {
      process.stderr.write(bytes);
    },
    onStdinWanted: () => {
      process.stdin.on('data', (chunk: Buffer) => kernel.writeStdin(task(), new Uint8Array(chunk), false));
      process.stdin.on('end', () => kernel.writeStdin(task(), new Uint8Array(0), true));
    },
  };
}

/** Progress of a module transform on stderr, when stderr is a terminal (scripts get clean output). */
export function transformProgress(event: TransformProgress): void {
  if (!process.stderr.isTTY) return;
  const size =
    event.bytes < 1024 * 1024
      ? `${Math.ceil(event.bytes / 1024)} KB`
      : `${(event.bytes / 1024 / 1024).toFixed(1)} MB`;
  if (event.phase === 'start') process.stderr.write(`norma: preparing a ${size} module (first run only)...`);
  else process.stderr.write(` done in ${(event.milliseconds / 1000).toFixed(1)} s\n`);
}

/** Each embedded node has its own id, so ports created in different processes never share one. */
export function embeddedNodeId(): string {
  return `local-${randomBytes(4).toString('hex')}`;
}

/** Returns the exit code for the process. */
export async function runCommand(
  modulePath: string,
  args: readonly string[],
  options: RunOptions,
): Promise<number> {
  const kernel = new Kernel({
    nodeId: embeddedNodeId(),
    onTransform: transformProgress,
    ...(options.cache ? {} : { cacheDirectory: false }),
  });
  const env = parseEnv(options.env);
  let main!: Task;
  try {
    for (const path of options.also) {
      let companion!: Task;
      companion = await kernel.spawn({
        module: await readModule(path),
        name: basename(path, '.wasm'),
        args: [basename(path)],
        env,
        stdin: new Uint8Array(0), // our stdin is the main task's
        preempt: options.preempt,
        ...processIo(kernel, () => companion),
      });
    }
    main = await kernel.spawn({
      module: await readModule(modulePath),
      name: basename(modulePath, '.wasm'),
      args: [basename(modulePath), ...args],
      env,
      preempt: options.preempt,
      ...(options.entry === undefined ? {} : { entry: options.entry }),
      ...processIo(kernel, () => main),
    });
  } catch (error) {
    // Companions already started would keep norma running after the error is reported.
    kernel.shutdown();
    throw error;
  }
  const code = await superviseSession(kernel, main, options);
  process.stdin.pause();
  process.stdin.unref?.();
  return code;
}
