/**
 * Running the `norma` command as a child process, as a user would: exit code, stdout, stderr.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot, testCacheDirectory } from './fixtures.js';

export const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function norma(
  args: string[],
  options: {
    stdin?: string;
    onSpawn?: (child: ChildProcess) => void;
    /** Called with everything printed so far each time the child prints (for tests that react to output). */
    onOutput?: (output: { stdout: string; stderr: string }, child: ChildProcess) => void;
    env?: Record<string, string>;
  } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      cwd: repoRoot,
      env: { ...process.env, NORMA_CACHE_DIR: testCacheDirectory, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      options.onOutput?.({ stdout, stderr }, child);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      options.onOutput?.({ stdout, stderr }, child);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    if (options.stdin !== undefined) child.stdin.end(options.stdin);
    else child.stdin.end();
    options.onSpawn?.(child);
  });
}

/** The snapshot id from the `frozen <id>` last line of stderr, or null. */
export function frozenId(stderr: string): string | null {
  const last = stderr.trimEnd().split('\n').at(-1) ?? '';
  return /^frozen ([0-9a-f]{16})$/.exec(last)?.[1] ?? null;
}

/** Sends `signal` once, the first time `ready` holds for the output (not on a timer: start-up time varies). */
export function signalWhen(
  ready: (output: { stdout: string; stderr: string }) => boolean,
  signal: NodeJS.Signals,
): (output: { stdout: string; stderr: string }, child: ChildProcess) => void {
  let sent = false;
  return (output, child) => {
    if (sent || !ready(output)) return;
    sent = true;
    child.kill(signal);
  };
}
