/**
 * The task journal: what the node knows of its tasks, rewritten atomically on every change
 * (`<store>/node-tasks.json`), so that a node killed without warning (SIGKILL, a crash, a power cut)
 * leaves behind which tasks were running and the last snapshot of each. The next node of the store
 * lists those as `lost` and offers their snapshots; a clean stop marks its tasks killed instead.
 *
 * Writes are serialized and coalesced: a change while a write is in flight makes one more write with
 * the state as it is then, and `write()` resolves once a write that includes the caller's change is
 * durable.
 */
import { rename } from 'node:fs/promises';
import { z } from 'zod';
import { readJson, writeJsonAtomically } from './node-files.js';

const exitSchema = z.object({
  code: z.number(),
  trap: z.string().nullable(),
  message: z.string().nullable(),
});

export const journalEntrySchema = z.object({
  id: z.number().int(),
  /** The node id of the kernel the task ran in (snapshots name it). */
  nodeId: z.string(),
  name: z.string(),
  module: z.string().nullable(),
  args: z.array(z.string()),
  preempt: z.boolean(),
  status: z.enum(['running', 'frozen', 'exited', 'killed', 'lost', 'suspended']),
  exit: exitSchema.nullable(),
  lastSnapshot: z.string().nullable(),
  checkpoint: z.object({ everyMs: z.number(), keep: z.number() }).nullable(),
  /** The periodic checkpoints kept, oldest first. */
  checkpoints: z.array(z.string()),
  checkpointsTaken: z.number().int().default(0),
  log: z.string(),
});

export type JournalEntry = z.infer<typeof journalEntrySchema>;

const journalSchema = z.object({
  version: z.literal(1),
  nodeId: z.string(),
  pid: z.number(),
  updatedAtMs: z.number(),
  tasks: z.array(journalEntrySchema),
});

export type Journal = z.infer<typeof journalSchema>;

/** The journal left by the previous node; a damaged one is moved aside (and reported), not trusted. */
export async function readJournal(path: string, log: (message: string) => void): Promise<JournalEntry[]> {
  try {
    return (await readJson(path, journalSchema))?.tasks ?? [];
  } catch (error) {
    const aside = `${path}.damaged-${Date.now()}`;
    await rename(path, aside).catch(() => undefined);
    log(`the task journal ${path} cannot be read (${(error as Error).message}); moved to ${aside}`);
    return [];
  }
}

export class JournalWriter {
  #writing: Promise<void> | null = null;
  #again = false;

  constructor(
    private readonly path: string,
    private readonly snapshot: () => Journal,
    private readonly log: (message: string) => void,
  ) {}

  /** Writes the journal as it is now (or soon after); resolves when that is durable. */
  write(): Promise<void> {
    if (this.#writing !== null) {
      // The write in flight may predate the change: its loop writes once more before it resolves.
      this.#again = true;
      return this.#writing;
    }
    this.#writing = (async () => {
      do {
        this.#again = false;
        try {
          await writeJsonAtomically(this.path, this.snapshot());
        } catch (error) {
          this.log(`cannot write the task journal ${this.path}: ${(error as Error).message}`);
        }
      } while (this.#again);
      this.#writing = null;
    })();
    return this.#writing;
  }
}
