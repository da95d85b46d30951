/**
 * What `norma run` and `norma resume` share once their tasks run: waiting for the main task,
 * freezing everything on --stop-after or SIGINT/SIGTERM (`frozen <id>` as the last line on stderr,
 * exit 75), periodic checkpoints (--checkpoint-every, keeping the last --keep), and statistics.
 */
import { fileURLToPath } from 'node:url';
import { isNormaError } from '../errors.js';
import type { Kernel, Task } from '../kernel/kernel.js';
import { frozenExitCode, killedExitCode } from '../kernel/task.js';
import { CaptureBuffers } from '../snapshot/capture.js';
import { checkpointTasks, type FreezeStats, freezeTasks, prepareFreezer } from '../snapshot/freezer.js';
import { SnapshotStore } from '../snapshot/store.js';

/** The default store: `$NORMA_STORE`, else the `snapshots/` folder of this norma installation. */
export function defaultStoreDirectory(): string {
  return process.env.NORMA_STORE ?? fileURLToPath(new URL('../../../snapshots/', import.meta.url));
}

export interface SessionOptions {
  readonly store: string;
  readonly stopAfterMs?: number;
  readonly checkpointEveryMs?: number;
  readonly keep: number;
  readonly stats: boolean;
  readonly json: boolean;
  /** The snapshot this session was resumed from (the parent of its first snapshot). */
  readonly parent: string | null;
}

export function formatStats(stats: FreezeStats): string {
  const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
  return [
    `frozen for ${stats.frozenMs.toFixed(1)} ms (the tasks were stopped only to copy their state)`,
    `pages: ${stats.pagesScanned} scanned, ${stats.pagesUnchanged} unchanged since the last checkpoint, ${stats.pagesZero} zero, ${stats.pagesAlreadyStored} already stored, ${stats.pagesWritten} written (${mib(stats.bytesWritten)} MiB)`,
    `hash ${stats.hashMs.toFixed(1)} ms, write ${stats.writeMs.toFixed(1)} ms, sync ${stats.syncMs.toFixed(1)} ms, total ${stats.totalMs.toFixed(1)} ms`,
  ].join('\n');
}

function reportFailure(error: unknown, what: string): void {
  if (isNormaError(error))
    process.stderr.write(`norma: ${what} failed: ${error.code}: ${error.message}\n  hint: ${error.hint}\n`);
  else
    process.stderr.write(
      `norma: ${what} failed: ${error instanceof Error ? error.message : String(error)}\n`,
    );
}

/** Runs until the main task ends (its exit code) or everything is frozen (75). */
export async function superviseSession(kernel: Kernel, main: Task, options: SessionOptions): Promise<number> {
  prepareFreezer(); // a freeze may come at any moment (a signal): have both hashing threads ready
  let store: SnapshotStore | undefined;
  let opening: Promise<SnapshotStore> | undefined;
  const openStore = (): Promise<SnapshotStore> => {
    opening ??= SnapshotStore.open(options.store).then((opened) => {
      store = opened;
      return opened;
    });
    opening.catch(() => {
      opening = undefined; // a later attempt may succeed (the disk came back)
    });
    return opening;
  };
  let parent = options.parent;
  let frozenId: string | null = null;
  let freezing: Promise<void> | null = null;
  let checkpointing: Promise<void> | null = null;
  const checkpoints: string[] = [];
  const running = (): Task[] => {
    const others = kernel.tasks.filter((task) => task !== main);
    return main.state.status === 'running' ? [main, ...others] : others;
  };

  /** The periodic checkpoints' copies: a freeze after one copies and hashes only what changed since. */
  const buffers = new CaptureBuffers();
  const freeze = (why: string): Promise<void> => {
    freezing ??= (async () => {
      try {
        // A checkpoint in flight holds the copy the freeze compares with: wait for it (as the node
        // daemon does), so that the freeze copies and hashes only what changed since.
        if (checkpointing !== null) await checkpointing;
        const tasks = running();
        if (tasks.length === 0 || main.state.status !== 'running') return;
        // Captured now, at the moment asked; the store may take a while to open.
        const { manifest, stats } = await freezeTasks(
          kernel,
          openStore(),
          tasks,
          { kind: tasks.length > 1 ? 'group' : 'task', label: main.state.name, parent },
          buffers,
        );
        frozenId = manifest.id;
        if (options.json)
          process.stderr.write(`${JSON.stringify({ frozen: manifest.id, reason: why, stats })}\n`);
        else if (options.stats) process.stderr.write(`${formatStats(stats)}\n`);
        process.stderr.write(`frozen ${manifest.id}\n`);
      } catch (error) {
        reportFailure(error, 'freeze');
        freezing = null; // the tasks run on; a later signal may try again
      }
    })();
    return freezing;
  };

  const checkpoint = (): void => {
    if (checkpointing !== null || freezing !== null || main.state.status !== 'running') return;
    checkpointing = (async () => {
      try {
        const target = await openStore();
        if (main.state.status !== 'running') return;
        const tasks = running();
        const meta = {
          kind: tasks.length > 1 ? ('group' as const) : ('task' as const),
          label: main.state.name,
          parent,
        };
        const { manifest, stats } = await checkpointTasks(kernel, target, tasks, meta, buffers);
        parent = manifest.id;
        checkpoints.push(manifest.id);
        while (checkpoints.length > options.keep) await target.remove(checkpoints.shift()!);
        if (options.json) process.stderr.write(`${JSON.stringify({ checkpoint: manifest.id, stats })}\n`);
        else if (options.stats) process.stderr.write(`checkpoint ${manifest.id}\n${formatStats(stats)}\n`);
      } catch (error) {
        reportFailure(error, 'checkpoint');
      } finally {
        checkpointing = null;
      }
    })();
  };

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      void freeze(signal);
      return;
    }
    // A second signal: stop for real, without a snapshot.
    for (const task of kernel.tasks) kernel.kill(task);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const stopTimer =
    options.stopAfterMs === undefined
      ? null
      : setTimeout(() => void freeze('stop-after'), options.stopAfterMs);
  const checkpointTimer =
    options.checkpointEveryMs === undefined ? null : setInterval(checkpoint, options.checkpointEveryMs);
  try {
    const exit = await main.exited;
    if (freezing !== null) await freezing;
    if (frozenId !== null) return frozenExitCode;
    if (options.json) process.stderr.write(`${JSON.stringify({ task: main.state.name, ...exit })}\n`);
    else if (exit.trap !== null && exit.trap !== 'killed') {
      process.stderr.write(`norma: ${main.state.name}: trapped (${exit.trap}): ${exit.message}\n`);
    }
    return exit.trap === 'killed' ? killedExitCode : exit.code;
  } finally {
    if (stopTimer) clearTimeout(stopTimer);
    if (checkpointTimer) clearInterval(checkpointTimer);
    // A checkpoint still being written completes (or fails) before the store closes.
    await checkpointing;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    kernel.shutdown();
    await (store ?? (await opening?.catch(() => undefined)))?.close();
  }
}
