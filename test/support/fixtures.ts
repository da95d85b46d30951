/**
 * Shared test fixtures: the example tasks, WAT modules compiled on the fly, a module cache private
 * to this test run, and a helper that runs a task on a kernel and collects what it printed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kernel, type KernelOptions, type SpawnOptions } from '../../src/kernel/kernel.js';
import type { TaskExit } from '../../src/kernel/task.js';
import { loadBinaryen } from '../../src/runtime/transform.js';

/** The repository root (this file runs from dist/test/support/). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** One module cache for the whole run: transforms are slow, and ~/.cache is not the tests' to fill. */
export const testCacheDirectory = mkdtempSync(join(tmpdir(), 'norma-test-cache-'));
process.on('exit', () => rmSync(testCacheDirectory, { recursive: true, force: true }));

/** The file of a built task (tasks/build/<name>.wasm), for commands that take a module path. */
export function taskModulePath(name: string): string {
  return join(repoRoot, 'tasks', 'build', `${name}.wasm`);
}

export function taskModule(name: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(readFileSync(taskModulePath(name)));
}

export function packageFile(path: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(readFileSync(join(repoRoot, 'node_modules', path)));
}

/** Compiles WebAssembly text (binaryen's parser) with the name section kept. */
export async function wat(text: string, extraFeatures = 0): Promise<Uint8Array<ArrayBuffer>> {
  const b = await loadBinaryen();
  const module = b.parseText(text);
  try {
    module.setFeatures(
      b.Features.MutableGlobals | b.Features.BulkMemory | b.Features.SignExt | extraFeatures,
    );
    b.setDebugInfo(true);
    return new Uint8Array(module.emitBinary());
  } finally {
    b.setDebugInfo(false);
    module.dispose();
  }
}

export function testKernel(options: KernelOptions = {}): Kernel {
  return new Kernel({ cacheDirectory: testCacheDirectory, ...options });
}

export interface TaskRun {
  readonly exit: TaskExit;
  readonly stdout: string;
  readonly stderr: string;
}

/** Spawns a task, waits for it to end, and returns its exit and output. */
export async function runTask(kernel: Kernel, options: SpawnOptions): Promise<TaskRun> {
  const started = await startTask(kernel, options);
  return started.done;
}

/** Spawns a task and returns a promise of its run (for several tasks at once). */
export async function startTask(kernel: Kernel, options: SpawnOptions): Promise<{ done: Promise<TaskRun> }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const task = await kernel.spawn({
    stdin: new Uint8Array(0),
    ...options,
    stdout: (bytes) => out.push(Buffer.from(bytes)),
    stderr: (bytes) => err.push(Buffer.from(bytes)),
  });
  return {
    done: task.exited.then((exit) => ({
      exit,
      stdout: Buffer.concat(out).toString(),
      stderr: Buffer.concat(err).toString(),
    })),
  };
}

/** Imports of the norma syscalls used by the WAT fixtures, by name. */
export const normaImports = {
  port_allocate: '(import "norma" "port_allocate" (func $port_allocate (param i32 i32) (result i32)))',
  port_insert_right:
    '(import "norma" "port_insert_right" (func $port_insert_right (param i32 i32) (result i32)))',
  msg_send: '(import "norma" "msg_send" (func $msg_send (param i32 i32 i32) (result i32)))',
  msg_receive: '(import "norma" "msg_receive" (func $msg_receive (param i32 i32 i32 i32) (result i32)))',
  thread_create:
    '(import "norma" "thread_create" (func $thread_create (param i32 i32 i32 i32 i32 i32) (result i32)))',
  thread_join: '(import "norma" "thread_join" (func $thread_join (param i32 i32) (result i32)))',
  thread_yield: '(import "norma" "thread_yield" (func $thread_yield))',
  clock_sleep: '(import "norma" "clock_sleep" (func $clock_sleep (param i32) (result i32)))',
  task_exit: '(import "norma" "task_exit" (func $task_exit (param i32)))',
} as const;
