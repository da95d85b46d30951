// Incremental capture (a checkpoint or freeze into the buffers of the previous one copies and hashes
// only the pages that changed) and staged restore (a task put into an instance ahead of its resume,
// from an earlier snapshot of it, so that the resume writes only what changed since).
import { strict as assert } from 'node:assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kernel, Task } from '../../src/kernel/kernel.js';
import { CaptureBuffers } from '../../src/snapshot/capture.js';
import { snapshotPageBytes } from '../../src/snapshot/format.js';
import { checkpointTasks, type FreezeStats, freezeTasks } from '../../src/snapshot/freezer.js';
import { restoreSnapshot, stageSnapshot } from '../../src/snapshot/restorer.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { taskModule, testKernel, wat } from '../support/fixtures.js';

/**
 * A task that changes its memory on command, two bytes of stdin each, and answers `ok` to each:
 * `w p` fills page p with a pattern of the command's generation, `z p` zeroes page p, `g n` grows
 * memory by n pages and fills them. Page 1 holds a data segment (written at instantiation); page 0
 * holds the command buffer, so it changes with every command.
 */
const pagerSource = `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 8)
  (data (i32.const 48) "ok\\n")
  (data (i32.const 65536) "written by a data segment when the module is instantiated")
  (global $generation (mut i32) (i32.const 1))
  (func $fill (param $page i32) (param $value i32)
    (local $at i32) (local $end i32)
    (local.set $at (i32.mul (local.get $page) (i32.const 65536)))
    (local.set $end (i32.add (local.get $at) (i32.const 65536)))
    (loop $word
      (i32.store (local.get $at)
        (select (i32.const 0) (i32.or (i32.xor (local.get $value) (local.get $at)) (i32.const 1))
          (i32.eqz (local.get $value))))
      (local.set $at (i32.add (local.get $at) (i32.const 4)))
      (br_if $word (i32.lt_u (local.get $at) (local.get $end)))))
  (func (export "_start")
    (local $op i32) (local $arg i32) (local $old i32) (local $i i32)
    (i32.store (i32.const 0) (i32.const 32))
    (i32.store (i32.const 4) (i32.const 2))
    (i32.store (i32.const 16) (i32.const 48))
    (i32.store (i32.const 20) (i32.const 3))
    (loop $next
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (i32.lt_u (i32.load (i32.const 8)) (i32.const 2)) (then (return)))
      (local.set $op (i32.load8_u (i32.const 32)))
      (local.set $arg (i32.load8_u (i32.const 33)))
      (global.set $generation (i32.add (global.get $generation) (i32.const 1)))
      (if (i32.eq (local.get $op) (i32.const 119))
        (then (call $fill (local.get $arg) (i32.mul (global.get $generation) (i32.const 0x01010101)))))
      (if (i32.eq (local.get $op) (i32.const 122))
        (then (call $fill (local.get $arg) (i32.const 0))))
      (if (i32.eq (local.get $op) (i32.const 103))
        (then
          (local.set $old (memory.grow (local.get $arg)))
          (local.set $i (i32.const 0))
          (loop $grown
            (call $fill (i32.add (local.get $old) (local.get $i))
              (i32.mul (global.get $generation) (i32.const 0x01010101)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $grown (i32.lt_u (local.get $i) (local.get $arg))))))
      (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
      (br $next))))`;

let pagerModule: Uint8Array<ArrayBuffer>;

/** The kernels of a test, shut down after it whatever its outcome (a live kernel keeps mocha running). */
const kernels: Kernel[] = [];
function newKernel(): Kernel {
  const kernel = testKernel();
  kernels.push(kernel);
  return kernel;
}

interface Pager {
  readonly kernel: Kernel;
  readonly task: Task;
  /** Sends the commands and waits for their `ok`s. */
  command(...commands: [string, number][]): Promise<void>;
  /** A copy of the guest-visible memory now. */
  memory(): Uint8Array;
  output(): string;
}

async function waitFor(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

function drive(kernel: Kernel, task: Task, output: () => string): Pager {
  return {
    kernel,
    task,
    async command(...commands) {
      const before = output().split('ok\n').length;
      const bytes = commands.flatMap(([op, arg]) => [op.charCodeAt(0), arg]);
      kernel.writeStdin(task, new Uint8Array(bytes), false);
      await waitFor('the commands', () => output().split('ok\n').length === before + commands.length);
    },
    memory: () => task.instance.memory.visible().slice(),
    output,
  };
}

async function startPager(): Promise<Pager> {
  const kernel = newKernel();
  let out = '';
  const task = await kernel.spawn({
    module: pagerModule,
    name: 'pager',
    stdout: (bytes) => {
      out += Buffer.from(bytes).toString();
    },
  });
  return drive(kernel, task, () => out);
}

/** Restores snapshot `id` into a new kernel: the task (driven as a pager) and what the restore said. */
async function restoreInto(
  store: SnapshotStore,
  id: string,
  options: Parameters<typeof restoreSnapshot>[4] = {},
): Promise<{ pager: Pager; staged: { pagesKept: number; pagesWritten: number } | null }> {
  const kernel = newKernel();
  let out = '';
  const result = await restoreSnapshot(
    kernel,
    store,
    id,
    () => ({
      stdout: (bytes) => {
        out += Buffer.from(bytes).toString();
      },
    }),
    options,
  );
  return { pager: drive(kernel, result.tasks[0]!, () => out), staged: result.staged };
}

/** Pages that were copied and hashed (not found unchanged). */
const changed = (stats: FreezeStats): number => stats.pagesScanned - stats.pagesUnchanged;

function samePages(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: memory sizes differ`);
  for (let at = 0; at < expected.length; at += snapshotPageBytes) {
    const a = actual.subarray(at, at + snapshotPageBytes);
    const e = expected.subarray(at, at + snapshotPageBytes);
    assert.ok(Buffer.from(a).equals(Buffer.from(e)), `${what}: page ${at / snapshotPageBytes} differs`);
  }
}

const meta = { kind: 'task' as const, label: 'pager', parent: null };

describe('incremental capture and staged restore', function () {
  this.timeout(60_000);
  let store: SnapshotStore;

  before(async () => {
    pagerModule = await wat(pagerSource);
    store = await SnapshotStore.open(mkdtempSync(join(tmpdir(), 'norma-incremental-')));
  });

  afterEach(() => {
    for (const kernel of kernels.splice(0)) kernel.shutdown();
  });

  after(async () => {
    await store?.close();
  });

  describe('a checkpoint into the buffers of the previous one', () => {
    it('copies and hashes only the pages that changed, and restores to exactly the task memory', async () => {
      const pager = await startPager();
      await pager.command(['w', 2], ['w', 3], ['w', 4]);
      const buffers = new CaptureBuffers();
      const first = await checkpointTasks(pager.kernel, store, [pager.task], meta, buffers);
      assert.equal(first.stats.pagesUnchanged, 0, 'nothing is known before the first checkpoint');
      const pages = first.stats.pagesScanned;
      assert.equal(pages, 8);

      await pager.command(['w', 3], ['w', 5]);
      const second = await checkpointTasks(pager.kernel, store, [pager.task], meta, buffers);
      // Pages 3 and 5, and page 0 (the command buffer): nothing else was copied or hashed.
      assert.equal(second.stats.pagesScanned, pages);
      assert.equal(changed(second.stats), 3, JSON.stringify(second.stats));
      assert.equal(second.stats.pagesWritten, 3, 'the changed pages are new to the store');
      const live = pager.memory();
      const { pager: restored } = await restoreInto(store, second.manifest.id);
      samePages(restored.memory(), live, 'the restored task');

      // Nothing changed: nothing is copied or hashed, and the snapshot is the same memory.
      const third = await checkpointTasks(pager.kernel, store, [pager.task], meta, buffers);
      assert.equal(changed(third.stats), 0);
      assert.deepEqual(third.manifest.tasks[0]!.memory.pages, second.manifest.tasks[0]!.memory.pages);
    });

    it('handles a memory that grew: the old pages compared, the new ones copied and hashed', async () => {
      const pager = await startPager();
      await pager.command(['w', 2]);
      const buffers = new CaptureBuffers();
      const first = await checkpointTasks(pager.kernel, store, [pager.task], meta, buffers);
      await pager.command(['g', 3]);
      const second = await checkpointTasks(pager.kernel, store, [pager.task], meta, buffers);
      assert.equal(second.stats.pagesScanned, first.stats.pagesScanned + 3);
      // The three new pages and page 0.
      assert.equal(changed(second.stats), 4, JSON.stringify(second.stats));
      const live = pager.memory();
      const { pager: restored } = await restoreInto(store, second.manifest.id);
      samePages(restored.memory(), live, 'the restored task');
      // The larger buffer is the one kept: the next checkpoint copies nothing.
      const third = await checkpointTasks(pager.kernel, store, [pager.task], meta, buffers);
      assert.equal(changed(third.stats), 0);
    });

    it('records a page changed back to all zeros as a zero page', async () => {
      const pager = await startPager();
      await pager.command(['w', 4], ['w', 6]);
      const buffers = new CaptureBuffers();
      const first = await checkpointTasks(pager.kernel, store, [pager.task], meta, buffers);
      assert.notEqual(first.manifest.tasks[0]!.memory.pages[4], null);
      await pager.command(['z', 4]);
      const second = await checkpointTasks(pager.kernel, store, [pager.task], meta, buffers);
      assert.equal(changed(second.stats), 2, JSON.stringify(second.stats));
      assert.equal(second.manifest.tasks[0]!.memory.pages[4], null);
      assert.equal(second.stats.pagesZero, first.stats.pagesZero + 1);
      const live = pager.memory();
      const { pager: restored } = await restoreInto(store, second.manifest.id);
      samePages(restored.memory(), live, 'the restored task');
      assert.ok(
        restored
          .memory()
          .subarray(4 * snapshotPageBytes, 5 * snapshotPageBytes)
          .every((b) => b === 0),
      );
    });

    it('trusts nothing of a buffer whose snapshot was not written', async () => {
      const pager = await startPager();
      await pager.command(['w', 2]);
      const buffers = new CaptureBuffers();
      await checkpointTasks(pager.kernel, store, [pager.task], meta, buffers);
      await pager.command(['w', 2]);
      // A store that cannot take it: the capture went into the buffer, the write failed.
      const closed = await SnapshotStore.open(mkdtempSync(join(tmpdir(), 'norma-incremental-closed-')));
      await closed.close();
      await assert.rejects(checkpointTasks(pager.kernel, closed, [pager.task], meta, buffers));
      // The buffer holds the new page 2 now: the hash of the old one must not name it.
      const next = await checkpointTasks(pager.kernel, store, [pager.task], meta, buffers);
      const live = pager.memory();
      const { pager: restored } = await restoreInto(store, next.manifest.id);
      samePages(restored.memory(), live, 'the restored task');
      assert.equal(next.stats.pagesUnchanged, 0);
    });

    it('a freeze after a checkpoint copies and hashes only what changed since', async () => {
      const pager = await startPager();
      await pager.command(['w', 2], ['w', 3]);
      const buffers = new CaptureBuffers();
      await checkpointTasks(pager.kernel, store, [pager.task], meta, buffers);
      await pager.command(['w', 7]);
      const live = pager.memory();
      const frozen = await freezeTasks(pager.kernel, store, [pager.task], meta, buffers);
      assert.equal(changed(frozen.stats), 2, JSON.stringify(frozen.stats));
      assert.equal(pager.task.state.exit?.message, 'frozen');
      const { pager: restored } = await restoreInto(store, frozen.manifest.id);
      samePages(restored.memory(), live, 'the restored task');
      await restored.command(['w', 5]);
      assert.equal(restored.output(), 'ok\n');
    });
  });

  describe('a restore from a stage', () => {
    it('gives the same memory and the same run as a normal restore, writing only what changed', async () => {
      const pager = await startPager();
      await pager.command(['w', 2], ['w', 3], ['w', 4]);
      const buffers = new CaptureBuffers();
      const precopy = await checkpointTasks(pager.kernel, store, [pager.task], meta, buffers);
      // After the pre-copy: a page changed, the data segment's page zeroed, the memory grown.
      await pager.command(['w', 3], ['z', 1], ['g', 2]);
      const live = pager.memory();
      const frozen = await freezeTasks(pager.kernel, store, [pager.task], meta, buffers);

      const stagingKernel = newKernel();
      const stage = await stageSnapshot(stagingKernel, store, precopy.manifest);
      let out = '';
      const result = await restoreSnapshot(
        stagingKernel,
        store,
        frozen.manifest.id,
        () => ({
          stdout: (bytes) => {
            out += Buffer.from(bytes).toString();
          },
        }),
        { stage },
      );
      const staged = drive(stagingKernel, result.tasks[0]!, () => out);
      // Pages 0, 1 and 3 changed, 8 and 9 are new: the other 5 came from the stage.
      assert.deepEqual(result.staged, { pagesKept: 5, pagesWritten: 5 });
      const { pager: normal, staged: none } = await restoreInto(store, frozen.manifest.id);
      assert.equal(none, null);
      samePages(staged.memory(), live, 'the task restored from the stage');
      samePages(normal.memory(), live, 'the task restored normally');
      // Both run on alike: same output, same memory.
      for (const pager of [staged, normal]) await pager.command(['w', 6], ['g', 1], ['z', 2]);
      assert.equal(staged.output(), normal.output());
      samePages(staged.memory(), normal.memory(), 'the two tasks after running on');
    });

    it('falls back to a normal restore when the stage does not fit, and uses a stage once', async () => {
      const pager = await startPager();
      await pager.command(['w', 2]);
      const small = await checkpointTasks(pager.kernel, store, [pager.task], meta, new CaptureBuffers());
      await pager.command(['g', 2]);
      const grown = await checkpointTasks(pager.kernel, store, [pager.task], meta, new CaptureBuffers());
      const other = newKernel();
      let otherOut = '';
      const filler = await other.spawn({
        module: taskModule('memory-fill'),
        args: ['memory-fill', '1'],
        stdin: new Uint8Array(0),
        stdout: (bytes) => {
          otherOut += Buffer.from(bytes).toString();
        },
      });
      await waitFor('memory-fill', () => otherOut.includes('ready'));
      const elsewhere = await checkpointTasks(other, store, [filler], meta, new CaptureBuffers());

      const expected = (await restoreInto(store, small.manifest.id)).pager;
      const cases = [
        { what: 'a stage of another module', stage: elsewhere.manifest },
        { what: 'a stage larger than the snapshot', stage: grown.manifest },
      ];
      for (const { what, stage: staged } of cases) {
        const kernel = newKernel();
        const stage = await stageSnapshot(kernel, store, staged);
        const result = await restoreSnapshot(kernel, store, small.manifest.id, () => ({}), { stage });
        assert.equal(result.staged, null, what);
        samePages(result.tasks[0]!.instance.memory.visible(), expected.memory(), what);
      }
      // A stage is used up by the restore that takes it: a second one restores normally.
      const kernel = newKernel();
      const stage = await stageSnapshot(kernel, store, small.manifest);
      const first = await restoreSnapshot(kernel, store, small.manifest.id, () => ({}), { stage });
      assert.deepEqual(first.staged, { pagesKept: 8, pagesWritten: 0 });
      const againKernel = newKernel();
      const again = await restoreSnapshot(againKernel, store, small.manifest.id, () => ({}), { stage });
      assert.equal(again.staged, null);
      samePages(again.tasks[0]!.instance.memory.visible(), expected.memory(), 'the second restore');
    });
  });
});
