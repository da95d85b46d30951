/**
 * `norma resume <snapshot-id|file>`: continues frozen tasks in this process, where they stopped.
 * The first task of the snapshot is the main one: its stdout continues ours, its exit code becomes
 * ours, and it may be frozen again (--stop-after, SIGINT, SIGTERM) into a new snapshot whose parent
 * is this one. A file argument is a portable export (`norma snapshot export`), imported first.
 */
import { existsSync } from 'node:fs';
import { Kernel, type Task } from '../kernel/kernel.js';
import { restoreSnapshot } from '../snapshot/restorer.js';
import { SnapshotStore } from '../snapshot/store.js';
import { embeddedNodeId, processIo, readModule } from './run-command.js';
import { type SessionOptions, superviseSession } from './task-session.js';

export async function resumeCommand(
  snapshot: string,
  options: SessionOptions & { modules?: readonly string[] },
): Promise<number> {
  const kernel = new Kernel({ nodeId: embeddedNodeId() });
  const store = await SnapshotStore.open(options.store);
  let id: string;
  let restored: readonly Task[];
  try {
    id = existsSync(snapshot) ? await store.importFrom(snapshot) : await store.resolveId(snapshot);
    const tasks: Task[] = [];
    const modules = await Promise.all((options.modules ?? []).map((path) => readModule(path)));
    const result = await restoreSnapshot(
      kernel,
      store,
      id,
      (_record, index) => {
        const io = processIo(kernel, () => tasks[index]!);
        // Our stdin is the main task's (the first); the others keep what their snapshot holds.
        return index === 0 ? io : { stdout: io.stdout, stderr: io.stderr };
      },
      { modules },
    );
    tasks.push(...result.tasks);
    restored = result.tasks;
  } finally {
    await store.close();
  }
  const code = await superviseSession(kernel, restored[0]!, { ...options, parent: id });
  process.stdin.pause();
  process.stdin.unref?.();
  return code;
}
