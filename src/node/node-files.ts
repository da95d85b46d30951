/**
 * The files a node keeps beside its snapshot store, and how they are written: small JSON documents
 * replaced atomically (a temporary file, fsync, rename, fsync of the directory), so that a node
 * killed at any moment leaves the previous version or the new one, never a torn file.
 *
 *   <store>/node.sock            the control socket (--socket), mode 0600
 *   <store>/node.pid             the node's pid while it runs (--pid-file)
 *   <store>/node.log             the node's own messages when started with --detach (--log)
 *   <store>/node-tasks.json      the task journal (task-journal.ts)
 *   <store>/node-suspended.json  the suspend point `norma suspend` records and `norma resume` thaws
 *   <store>/logs/<name>-<id>.log each task's stdout and stderr
 */
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { writeFileAtomically } from '../snapshot/disk.js';

export interface NodePaths {
  readonly store: string;
  readonly socket: string;
  readonly pidFile: string;
  readonly log: string;
  readonly journal: string;
  readonly suspendRecord: string;
  readonly logsDirectory: string;
}

export function nodePaths(
  store: string,
  overrides: { socket?: string | undefined; pidFile?: string | undefined; log?: string | undefined } = {},
): NodePaths {
  store = resolve(store);
  return {
    store,
    socket: resolve(overrides.socket ?? join(store, 'node.sock')),
    pidFile: resolve(overrides.pidFile ?? join(store, 'node.pid')),
    log: resolve(overrides.log ?? join(store, 'node.log')),
    journal: join(store, 'node-tasks.json'),
    suspendRecord: join(store, 'node-suspended.json'),
    logsDirectory: join(store, 'logs'),
  };
}

export async function writeJsonAtomically(path: string, value: unknown): Promise<void> {
  await writeFileAtomically(path, new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`));
}

/** The JSON in `path` checked against `schema`; null when the file does not exist. */
export async function readJson<T>(path: string, schema: z.ZodType<T>): Promise<T | null> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  return schema.parse(JSON.parse(text));
}

/** What `norma suspend` leaves for `norma resume`. */
export const suspendRecordSchema = z.object({
  version: z.literal(1),
  /** The group snapshot of every task (null: the node had no task). */
  snapshot: z.string().nullable(),
  /** The node that suspended (the snapshot's node id). */
  nodeId: z.string(),
  suspendedAtMs: z.number(),
  tasks: z.array(z.object({ id: z.number(), name: z.string() })),
  /** Tasks that were frozen before the suspend (their ids in the snapshot): frozen again on resume. */
  frozen: z.array(z.number()),
});

export type SuspendRecord = z.infer<typeof suspendRecordSchema>;
