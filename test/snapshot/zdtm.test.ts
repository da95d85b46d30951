import { strict as assert } from 'node:assert';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Task } from '../../src/kernel/kernel.js';
import { freezeTasks } from '../../src/snapshot/freezer.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { norma } from '../support/cli.js';
import { repoRoot, runTask, taskModule, testKernel } from '../support/fixtures.js';

/**
 * The zdtm corpus (CRIU's name): each task builds one kind of state, prints `zdtm: ready`, spends a
 * while in a state that exercises it, then checks everything and prints `zdtm: pass <name>`. Here
 * each is frozen at several moments after `zdtm: ready` and resumed in a NEW process; the output of
 * the two pieces together must equal an uninterrupted run.
 */
const groups: string[][] = (() => {
  const names = readdirSync(join(repoRoot, 'tasks', 'build'))
    .filter((file) => file.startsWith('zdtm-') && file.endsWith('.wasm'))
    .map((file) => file.slice(0, -'.wasm'.length))
    .sort();
  const pairs = new Map<string, string[]>();
  for (const name of names) {
    const pair = /^(zdtm-.*)-[ab]$/.exec(name)?.[1];
    const key = pair ?? name;
    pairs.set(key, [...(pairs.get(key) ?? []), name]);
  }
  return [...pairs.values()];
})();

interface Started {
  tasks: Task[];
  outputs: string[];
  ready: Promise<void>;
}

async function startGroup(kernel: ReturnType<typeof testKernel>, names: string[]): Promise<Started> {
  const outputs = names.map(() => '');
  const seenReady = names.map(() => false);
  const tasks: Task[] = [];
  let readyCount = 0;
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  for (const [index, name] of names.entries()) {
    tasks.push(
      await kernel.spawn({
        module: taskModule(name),
        name,
        stdin: new Uint8Array(0),
        stdout: (bytes) => {
          outputs[index] += Buffer.from(bytes).toString();
          if (!seenReady[index] && outputs[index]!.includes('zdtm: ready\n')) {
            seenReady[index] = true;
            if (++readyCount === names.length) markReady();
          }
        },
      }),
    );
  }
  return { tasks, outputs, ready };
}

describe('zdtm: tasks frozen in one process and resumed in another verify their own state', function () {
  this.timeout(120_000);
  const storeDirectory = mkdtempSync(join(tmpdir(), 'norma-zdtm-'));

  it('the corpus is there', () => {
    assert.ok(groups.length >= 8, `only ${groups.length} zdtm tasks built`);
  });

  for (const names of groups) {
    for (const delayMs of [0, 40, 150]) {
      it(`${names.join(' + ')}, frozen ${delayMs} ms after ready`, async () => {
        // The reference: an uninterrupted run (each task's own output).
        const referenceKernel = testKernel();
        const reference = await Promise.all(
          names.map((name) => runTask(referenceKernel, { module: taskModule(name), name })),
        );
        for (const run of reference) assert.match(run.stdout, /zdtm: pass /, run.stdout + run.stderr);

        const kernel = testKernel();
        const started = await startGroup(kernel, names);
        await started.ready;
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        const store = await SnapshotStore.open(storeDirectory);
        let id: string;
        try {
          const running = started.tasks.filter((task) => task.state.status === 'running');
          assert.equal(running.length, names.length, 'a task ended before the freeze: its wait is too short');
          ({
            manifest: { id },
          } = await freezeTasks(kernel, store, running, {
            kind: names.length > 1 ? 'group' : 'task',
            label: names[0]!,
            parent: null,
          }));
        } finally {
          await store.close();
        }
        const before = started.outputs;
        const resumed = await norma(['resume', id, '--store', storeDirectory]);
        assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
        if (names.length === 1) {
          assert.equal(before[0]! + resumed.stdout, reference[0]!.stdout);
        } else {
          // Tasks of a group share one stdout after the resume: compare line sets.
          const lines = (text: string) => text.split('\n').filter(Boolean).sort();
          assert.deepEqual(
            lines(before.join('') + resumed.stdout),
            lines(reference.map((r) => r.stdout).join('')),
          );
        }
      });
    }
  }
});
