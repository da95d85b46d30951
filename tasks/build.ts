/**
 * Builds the example tasks: every `tasks/assembly/*.ts` becomes `tasks/build/<name>.wasm`.
 *
 *   node dist/tasks/build.js [--force] [name ...]
 *
 * A module is rebuilt only when its source, a shared file (`tasks/sdk/`, `tasks/assembly/lib/`) or
 * this script is newer than its output. Files in subfolders of `tasks/assembly/` are libraries, not
 * tasks. Tests call `buildTasks()` directly.
 */
import { mkdir, readdir, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import asc from 'assemblyscript/asc';

/**
 * The compiler options of every task. `--runtime stub`: threads are fibers with their own stacks,
 * which a tracing GC would not scan. No `--exportStart`: the module keeps a wasm start function that
 * only initializes globals (tasks have no top-level side effects) and exports `_start`, so it is a
 * plain WASI command; norma removes the start function and runs it once on a fresh start.
 */
export const ascOptions = ['-O3', '--noAssert', '--runtime', 'stub'] as const;

/** The repository root: this file is dist/tasks/build.js. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const sourceDir = path.join(repoRoot, 'tasks', 'assembly');
const outputDir = path.join(repoRoot, 'tasks', 'build');
const sharedDirs = [path.join(repoRoot, 'tasks', 'sdk'), path.join(sourceDir, 'lib')];

export interface BuildOptions {
  /** Rebuild even when the output is up to date. */
  force?: boolean;
  /** Task names (file names without `.ts`) to build; all when absent. */
  only?: string[];
  /** Receives one line per module; silent when absent. */
  log?: (line: string) => void;
}

/** The path of a built task, e.g. `wasmPath('counter-demo')`. */
export function wasmPath(name: string): string {
  return path.join(outputDir, `${name}.wasm`);
}

/** Compiles the tasks that need it; returns the output paths of all requested tasks. */
export async function buildTasks(options: BuildOptions = {}): Promise<string[]> {
  const log = options.log ?? (() => {});
  const all = (await readdir(sourceDir, { withFileTypes: true }))
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => e.name.slice(0, -3))
    .sort();
  const names = options.only ?? all;
  const unknown = names.filter((n) => !all.includes(n));
  if (unknown.length > 0) throw new Error(`unknown task(s): ${unknown.join(', ')} (have: ${all.join(', ')})`);

  const sharedMtime = Math.max(await newestMtime(sharedDirs), await mtimeOf(fileURLToPath(import.meta.url)));
  await mkdir(outputDir, { recursive: true });
  const outputs: string[] = [];
  for (const name of names) {
    const source = path.join(sourceDir, `${name}.ts`);
    const output = wasmPath(name);
    outputs.push(output);
    const inputMtime = Math.max(sharedMtime, await mtimeOf(source));
    if (!options.force && (await mtimeOf(output)) > inputMtime) {
      log(`up to date  ${path.relative(repoRoot, output)}`);
      continue;
    }
    const started = performance.now();
    const bytes = await compile(source);
    // Write then rename, so a concurrent reader never sees half a module.
    const temporary = `${output}.${process.pid}.tmp`;
    await writeFile(temporary, bytes);
    await rename(temporary, output);
    const ms = Math.round(performance.now() - started);
    log(`built       ${path.relative(repoRoot, output)} (${bytes.length} bytes, ${ms} ms)`);
  }
  return outputs;
}

/** Compiles one entry file in-process; throws with the compiler's diagnostics on failure. */
async function compile(source: string): Promise<Uint8Array> {
  let binary: Uint8Array | null = null;
  const stderr = asc.createMemoryStream();
  const entry = path.relative(repoRoot, source).split(path.sep).join('/');
  const result = await asc.main(
    [entry, ...ascOptions, '--outFile', 'out.wasm', '--baseDir', repoRoot, '--noColors'],
    {
      stdout: asc.createMemoryStream(),
      stderr,
      writeFile: (_name: string, contents: Uint8Array | string) => {
        binary = typeof contents === 'string' ? new TextEncoder().encode(contents) : contents;
      },
    },
  );
  if (result.error !== null || binary === null) {
    const reason = result.error?.message ?? 'no output';
    throw new Error(`asc ${entry}: ${reason}\n${stderr.toString().trim()}`);
  }
  return binary;
}

/** A file's modification time in ms, or 0 when it does not exist. */
async function mtimeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).mtimeMs;
  } catch {
    return 0;
  }
}

/** The newest modification time of the `.ts` files under the directories (recursively). */
async function newestMtime(dirs: string[]): Promise<number> {
  let newest = 0;
  for (const dir of dirs) {
    let entries: string[];
    try {
      entries = await readdir(dir, { recursive: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (entry.endsWith('.ts')) newest = Math.max(newest, await mtimeOf(path.join(dir, entry)));
    }
  }
  return newest;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const force = argv.includes('--force');
  const only = argv.filter((a) => a !== '--force');
  buildTasks({ force, ...(only.length > 0 ? { only } : {}), log: (line) => console.log(line) }).catch(
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exitCode = 1;
    },
  );
}
