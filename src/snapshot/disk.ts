/**
 * The few file-system moves the snapshot store makes durable, and how their failures become
 * NormaErrors. Everything here is about ordering: a rename or a new file only survives a power cut
 * once its directory is synced, and a full disk must read as STORE_FULL, never as a crash.
 */

import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { isNormaError, NormaError } from '../errors.js';

/** Syncs a directory, so that files created, renamed or removed in it survive a crash. */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await fs.open(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `bytes` to `path` atomically and durably: a temporary file in `tmpDirectory` (same file
 * system), synced, renamed over `path`, then the directory synced. A crash leaves the old file or
 * the new one, never a mix; the temporary name is left for the store's recovery to remove. `mode`
 * is the new file's (0o600 for a private key: it never exists with a wider one).
 */
export async function writeFileAtomically(
  path: string,
  bytes: Uint8Array,
  tmpDirectory = dirname(path),
  mode = 0o666,
): Promise<void> {
  const tmp = join(tmpDirectory, `${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await fs.open(tmp, 'wx', mode);
    try {
      await writeAll(handle, bytes, 0);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, path);
  } catch (error) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** write(2) may write less than asked (a disk filling up): loops until all is written or it fails. */
export async function writeAll(handle: fs.FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    if (bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'ENOSPC' });
    done += bytesWritten;
  }
}

/** True for the errors of a full disk or exhausted quota, from Node's fs or from LevelDB's message. */
export function isDiskFull(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return true;
  const message = String((error as { message?: unknown }).message ?? '');
  if (/No space left on device|Disk quota exceeded/i.test(message)) return true;
  return isDiskFull((error as { cause?: unknown }).cause);
}

/**
 * What the store throws for a failed write: STORE_FULL for a full disk (the caller has already
 * rolled back), NormaErrors as they are, and STORE_UNAVAILABLE for any other I/O failure.
 */
export function storeWriteError(error: unknown, directory: string, what: string): NormaError {
  if (isNormaError(error)) return error;
  if (isDiskFull(error)) {
    return new NormaError('STORE_FULL', `the disk of the snapshot store ${directory} is full (${what})`, {
      cause: error,
    });
  }
  return new NormaError(
    'STORE_UNAVAILABLE',
    `the snapshot store ${directory} failed while ${what}: ${describe(error)}`,
    {
      cause: error,
    },
  );
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * `mkdir -p` without Node's `recursive: true`, which loops forever where a parent exists but refuses
 * the child with ENOENT (e.g. anything under /proc, in Node 20): each level is tried once.
 */
export async function makeDirectories(path: string): Promise<void> {
  try {
    await fs.mkdir(path);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if (!(await fs.stat(path)).isDirectory())
        throw Object.assign(new Error(`${path} is not a directory`), { code: 'ENOTDIR' });
      return;
    }
    const parent = dirname(path);
    if (code !== 'ENOENT' || parent === path) throw error;
  }
  await makeDirectories(dirname(path));
  try {
    await fs.mkdir(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/** True when the error says the file does not exist. */
export function isMissing(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'ENOENT';
}
