/**
 * Transformed modules, cached on disk by the content hash of the original bytes and the transform
 * options: the transform takes 0.4–6 s, a cache hit a few milliseconds. Entries are written to a
 * temporary file and renamed, so a crash never leaves a half-written entry that a later run trusts;
 * an entry that fails to read or compile is transformed again.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type TransformInfo, type TransformOptions, transformModule, transformVersion } from './transform.js';

export interface TaskImage {
  /** The cache key: identifies the original module and the transform applied to it. */
  readonly key: string;
  /** sha256 of the original module bytes (what a snapshot records to find its module again). */
  readonly moduleHash: string;
  readonly module: WebAssembly.Module;
  readonly info: TransformInfo;
  /** The transformed module's bytes: a snapshot stores them, since frames only fit that exact code. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** sha256 of `bytes`. */
  readonly imageHash: string;
  /** True when the transform was skipped thanks to the disk cache. */
  readonly fromCache: boolean;
}

export function defaultCacheDirectory(): string {
  if (process.env.NORMA_CACHE_DIR) return process.env.NORMA_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(base, 'norma', 'modules');
}

export function moduleHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Compiled images of this process, so several tasks of one module compile it once. */
const compiled = new Map<string, Promise<TaskImage>>();

export interface LoadOptions extends TransformOptions {
  /** Directory of the disk cache; `false` disables it (benchmarks of the transform itself). */
  readonly cacheDirectory?: string | false;
  /** Told when a transform starts and ends (it takes seconds for large modules): for progress output. */
  readonly onTransform?: (event: TransformProgress) => void;
}

export type TransformProgress =
  | { readonly phase: 'start'; readonly bytes: number }
  | { readonly phase: 'done'; readonly bytes: number; readonly milliseconds: number };

export function loadTaskImage(bytes: Uint8Array<ArrayBuffer>, options: LoadOptions): Promise<TaskImage> {
  const hash = moduleHash(bytes);
  const key = `${hash}-v${transformVersion}-${options.preempt ? 'p' : 'n'}${options.hiddenPages ?? ''}`;
  const directory = options.cacheDirectory ?? defaultCacheDirectory();
  const memoKey = `${key}:${directory}`;
  let image = compiled.get(memoKey);
  if (image === undefined) {
    image = buildImage(bytes, hash, key, directory, options);
    compiled.set(memoKey, image);
    image.catch(() => compiled.delete(memoKey));
  }
  return image;
}

async function buildImage(
  bytes: Uint8Array<ArrayBuffer>,
  hash: string,
  key: string,
  directory: string | false,
  options: LoadOptions,
): Promise<TaskImage> {
  if (directory !== false) {
    const cached = await readCached(directory, key);
    if (cached)
      return { key, moduleHash: hash, ...cached, imageHash: moduleHash(cached.bytes), fromCache: true };
  }
  const started = performance.now();
  options.onTransform?.({ phase: 'start', bytes: bytes.length });
  const result = await transformModule(bytes, {
    preempt: options.preempt,
    ...(options.hiddenPages ? { hiddenPages: options.hiddenPages } : {}),
  });
  options.onTransform?.({ phase: 'done', bytes: bytes.length, milliseconds: performance.now() - started });
  const module = await WebAssembly.compile(result.bytes);
  if (directory !== false) await writeCached(directory, key, result.bytes, result.info);
  return {
    key,
    moduleHash: hash,
    module,
    info: result.info,
    bytes: result.bytes,
    imageHash: moduleHash(result.bytes),
    fromCache: false,
  };
}

async function readCached(
  directory: string,
  key: string,
): Promise<{ module: WebAssembly.Module; info: TransformInfo; bytes: Uint8Array<ArrayBuffer> } | undefined> {
  try {
    const [wasm, json] = await Promise.all([
      readFile(join(directory, `${key}.wasm`)),
      readFile(join(directory, `${key}.json`), 'utf8'),
    ]);
    const info = JSON.parse(json) as TransformInfo;
    if (info.transformVersion !== transformVersion) return undefined;
    const bytes = new Uint8Array(wasm);
    const module = await WebAssembly.compile(bytes);
    return { module, info, bytes };
  } catch {
    return undefined; // missing or damaged: transform again
  }
}

async function writeCached(
  directory: string,
  key: string,
  bytes: Uint8Array,
  info: TransformInfo,
): Promise<void> {
  try {
    await mkdir(directory, { recursive: true });
    const suffix = `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    // The wasm first and the json last: a reader needs both, so a crash in between is a miss.
    await writeFile(join(directory, `${key}.wasm${suffix}`), bytes);
    await rename(join(directory, `${key}.wasm${suffix}`), join(directory, `${key}.wasm`));
    await writeFile(join(directory, `${key}.json${suffix}`), JSON.stringify(info));
    await rename(join(directory, `${key}.json${suffix}`), join(directory, `${key}.json`));
  } catch {
    // A cache that cannot be written only costs time; the task still runs.
  }
}

/**
 * An image from transformed bytes stored in a snapshot (no transform: the frames in the snapshot
 * fit exactly these bytes). Compiled once per process per image hash.
 */
export function imageFromSnapshot(
  bytes: Uint8Array<ArrayBuffer>,
  info: TransformInfo,
  originalHash: string,
): Promise<TaskImage> {
  const imageHash = moduleHash(bytes);
  const memoKey = `image:${imageHash}`;
  let image = compiled.get(memoKey);
  if (image === undefined) {
    image = WebAssembly.compile(bytes).then((module) => ({
      key: memoKey,
      moduleHash: originalHash,
      module,
      info,
      bytes,
      imageHash,
      fromCache: true,
    }));
    compiled.set(memoKey, image);
    image.catch(() => compiled.delete(memoKey));
  }
  return image;
}
