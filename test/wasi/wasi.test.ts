import { strict as assert } from 'node:assert';
import { WASI } from 'node:wasi';
import { decode, encode } from 'cbor-x';
import {
  ClockId,
  Errno,
  Eventtype,
  Fdflags,
  Filetype,
  Oflags,
  Rights,
  Subclockflags,
} from '../../src/wasi/errno.js';
import {
  Wasi,
  WasiExit,
  type WasiModuleName,
  wasiFunctionNames,
  wasiFunctionSignature,
  wasiImportObject,
} from '../../src/wasi/wasi.js';
import { createWasiState, type WasiStateOptions } from '../../src/wasi/wasi-state.js';
import { TestHost } from './helpers.js';

const memoryBytes = 65536;

/** A Wasi over a plain 64 KiB memory, called the way the kernel calls it. */
function setup(options: Partial<WasiStateOptions> = {}, module: WasiModuleName = 'wasi_snapshot_preview1') {
  let memory = new Uint8Array(memoryBytes);
  const host = new TestHost(() => memory);
  const state = createWasiState({ args: ['prog', 'arg'], env: { HOME: '/home', LANG: 'C' }, ...options });
  const wasi = new Wasi(state, host);
  return {
    host,
    state,
    wasi,
    get memory() {
      return memory;
    },
    get view() {
      return new DataView(memory.buffer);
    },
    grow(bytes: number) {
      const grown = new Uint8Array(memory.length + bytes);
      grown.set(memory);
      memory = grown;
    },
    call: (name: string, ...args: (number | bigint)[]) => wasi.call(module, name, args),
    put(at: number, data: string | Uint8Array): [number, number] {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      memory.set(bytes, at);
      return [at, bytes.length];
    },
  };
}

const success = { kind: 'return', value: Errno.SUCCESS } as const;
const errno = (value: number) => ({ kind: 'return', value }) as const;

/** Opens a file of the sandbox root with every right a file can have. */
function openFile(t: ReturnType<typeof setup>, path: string, oflags = 0): number {
  const [pointer, length] = t.put(1000, path);
  assert.deepEqual(
    t.call('path_open', 3, 1, pointer, length, oflags, 0x1fffffffn & ~Rights.SOCK_SHUTDOWN, 0n, 0, 0),
    success,
  );
  return t.view.getUint32(0, true);
}

/** Every value is a primitive, a plain object, an array or a Uint8Array: what a snapshot can carry. */
function assertPlainData(value: unknown, path = 'state'): void {
  if (value === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof value)) return;
  assert.equal(typeof value, 'object', `${path} is a ${typeof value}`);
  if (value instanceof Uint8Array) {
    assert.equal(Object.getPrototypeOf(value), Uint8Array.prototype, `${path} is a subclass of Uint8Array`);
    return;
  }
  const prototype = Object.getPrototypeOf(value);
  assert.ok(prototype === Object.prototype || prototype === Array.prototype, `${path} is not plain`);
  for (const [key, item] of Object.entries(value as object)) assertPlainData(item, `${path}.${key}`);
}

describe('Wasi', () => {
  describe('functions and signatures', () => {
    for (const [module, version] of [
      ['wasi_snapshot_preview1', 'preview1'],
      ['wasi_unstable', 'unstable'],
    ] as const) {
      it(`provides the functions node:wasi provides in ${module}`, () => {
        const nodeImports = new WASI({ version }).getImportObject() as Record<
          string,
          Record<string, unknown>
        >;
        const provided = wasiFunctionNames.filter(
          (name) => wasiFunctionSignature(module, name) !== undefined,
        );
        assert.deepEqual(provided.sort(), Object.keys(nodeImports[module] ?? {}).sort());
      });
    }

    it('describes each signature in wasm types', () => {
      assert.deepEqual(wasiFunctionSignature('wasi_snapshot_preview1', 'fd_seek'), {
        params: ['i32', 'i64', 'i32', 'i32'],
        results: ['i32'],
      });
      assert.deepEqual(wasiFunctionSignature('wasi_unstable', 'path_open'), {
        params: ['i32', 'i32', 'i32', 'i32', 'i32', 'i64', 'i64', 'i32', 'i32'],
        results: ['i32'],
      });
      assert.deepEqual(wasiFunctionSignature('wasi_unstable', 'proc_exit'), { params: ['i32'], results: [] });
      assert.deepEqual(wasiFunctionSignature('wasi_snapshot_preview1', 'sched_yield'), {
        params: [],
        results: ['i32'],
      });
      assert.equal(wasiFunctionSignature('wasi_snapshot_preview1', 'fd_mmap'), undefined);
      assert.equal(wasiFunctionSignature('wasi_snapshot_preview1', 'toString'), undefined);
      assert.equal(wasiFunctionSignature('wasi' as WasiModuleName, 'fd_write'), undefined);
    });
  });

  describe('arguments, environment, clocks and randomness', () => {
    it('hands out the arguments and the environment as NUL-terminated strings', () => {
      const t = setup();
      assert.deepEqual(t.call('args_sizes_get', 0, 4), success);
      assert.deepEqual([t.view.getUint32(0, true), t.view.getUint32(4, true)], [2, 'prog\0arg\0'.length]);
      assert.deepEqual(t.call('args_get', 100, 200), success);
      assert.deepEqual([t.view.getUint32(100, true), t.view.getUint32(104, true)], [200, 205]);
      assert.equal(Buffer.from(t.memory.subarray(200, 209)).toString(), 'prog\0arg\0');
      assert.deepEqual(t.call('environ_sizes_get', 0, 4), success);
      assert.deepEqual(
        [t.view.getUint32(0, true), t.view.getUint32(4, true)],
        [2, 'HOME=/home\0LANG=C\0'.length],
      );
      assert.deepEqual(t.call('environ_get', 100, 200), success);
      assert.equal(Buffer.from(t.memory.subarray(200, 218)).toString(), 'HOME=/home\0LANG=C\0');
    });

    it('reads every clock from the host, the CPU-time clocks from the monotonic one', () => {
      const t = setup();
      t.host.realtime = 1_234_567_890_123_456_789n;
      t.host.monotonic = 42n;
      const read = (id: number) => {
        assert.deepEqual(t.call('clock_time_get', id, 1000n, 8), success);
        return t.view.getBigUint64(8, true);
      };
      assert.equal(read(ClockId.REALTIME), 1_234_567_890_123_456_789n);
      assert.equal(read(ClockId.MONOTONIC), 42n);
      assert.equal(read(ClockId.PROCESS_CPUTIME_ID), 42n);
      assert.deepEqual(t.call('clock_time_get', 7, 0n, 8), errno(Errno.EINVAL));
      assert.deepEqual(t.call('clock_res_get', ClockId.MONOTONIC, 8), success);
      assert.equal(t.view.getBigUint64(8, true), 1n);
      assert.deepEqual(t.call('clock_res_get', 4, 8), errno(Errno.EINVAL));
    });

    it('fills random_get from host.randomFill only', () => {
      const t = setup();
      const expected = new Uint8Array(16);
      new TestHost(() => new Uint8Array(0)).randomFill(expected);
      assert.deepEqual(t.call('random_get', 300, 16), success);
      assert.deepEqual(t.memory.subarray(300, 316), expected);
    });
  });

  describe('bad pointers', () => {
    it('returns EFAULT for any range past the end of memory, and does nothing', () => {
      const t = setup({ stdin: Buffer.from('input'), stdinClosed: true });
      const before = structuredClone(t.state);
      const end = memoryBytes;
      assert.deepEqual(t.call('args_sizes_get', end - 2, 0), errno(Errno.EFAULT));
      assert.deepEqual(t.call('args_get', 0, end - 4), errno(Errno.EFAULT));
      assert.deepEqual(t.call('clock_time_get', 0, 0n, end - 7), errno(Errno.EFAULT));
      assert.deepEqual(t.call('random_get', end - 8, 9), errno(Errno.EFAULT));
      // An iovec array that runs off the end, an iovec pointing outside, a result pointer outside.
      t.put(0, new Uint8Array(new Uint32Array([100, 5]).buffer));
      t.put(100, 'hello');
      assert.deepEqual(t.call('fd_write', 1, end - 4, 1, 16), errno(Errno.EFAULT));
      t.put(8, new Uint8Array(new Uint32Array([end - 2, 5]).buffer));
      assert.deepEqual(t.call('fd_write', 1, 8, 1, 16), errno(Errno.EFAULT));
      assert.deepEqual(t.call('fd_write', 1, 0, 1, -1), errno(Errno.EFAULT));
      assert.deepEqual(t.call('fd_read', 0, 0, 1, end), errno(Errno.EFAULT));
      assert.equal(t.host.stdoutChunks.length, 0);
      // path_open whose result pointer is outside: the file must not have been created.
      const [path, length] = t.put(200, 'created');
      assert.deepEqual(
        t.call('path_open', 3, 0, path, length, Oflags.CREAT, Rights.FD_WRITE, 0n, 0, end),
        errno(Errno.EFAULT),
      );
      assert.deepEqual(
        t.call('path_open', 3, 0, end - 3, 4, Oflags.CREAT, Rights.FD_WRITE, 0n, 0, 16),
        errno(Errno.EFAULT),
      );
      assert.deepEqual(t.call('poll_oneoff', 0, end - 31, 1, 16), errno(Errno.EFAULT));
      assert.deepEqual(t.state, before);
      // The memory is fetched again on every call: after it grows, the same pointer is fine.
      t.grow(65536);
      assert.deepEqual(t.call('args_sizes_get', end - 2, 0), success);
    });
  });

  describe('stdin', () => {
    function readStdin(t: ReturnType<typeof setup>) {
      t.put(0, new Uint8Array(new Uint32Array([100, 10]).buffer));
      return t.call('fd_read', 0, 0, 1, 8);
    }

    it('blocks on an empty stdin without effect, then the same call completes after pushStdin', () => {
      const t = setup();
      t.put(0, new Uint8Array(new Uint32Array([100, 10]).buffer));
      t.put(8, new Uint8Array([9, 9, 9, 9]));
      const state = structuredClone(t.state);
      const memory = Uint8Array.from(t.memory);
      assert.deepEqual(readStdin(t), { kind: 'block', on: 'stdin' });
      assert.deepEqual(t.state, state);
      assert.deepEqual(t.memory, memory);

      Wasi.pushStdin(t.state, Buffer.from('hello'), false);
      assert.deepEqual(readStdin(t), success);
      assert.equal(t.view.getUint32(8, true), 5);
      assert.equal(Buffer.from(t.memory.subarray(100, 105)).toString(), 'hello');
      assert.deepEqual(readStdin(t), { kind: 'block', on: 'stdin' });

      Wasi.pushStdin(t.state, Buffer.from('0123456789abc'), false);
      assert.deepEqual(readStdin(t), success);
      assert.equal(Buffer.from(t.memory.subarray(100, 110)).toString(), '0123456789');
      Wasi.pushStdin(t.state, new Uint8Array(0), true);
      assert.deepEqual(readStdin(t), success);
      assert.equal(Buffer.from(t.memory.subarray(100, 103)).toString(), 'abc');
      assert.deepEqual(readStdin(t), success);
      assert.equal(t.view.getUint32(8, true), 0, 'end of file');
    });

    it('returns EAGAIN instead of blocking when stdin is non-blocking', () => {
      const t = setup();
      assert.deepEqual(t.call('fd_fdstat_set_flags', 0, Fdflags.NONBLOCK), success);
      assert.deepEqual(readStdin(t), errno(Errno.EAGAIN));
    });

    it('serves stdin given up front and then reports its end', () => {
      const t = setup({ stdin: Buffer.from('all'), stdinClosed: true });
      assert.deepEqual(readStdin(t), success);
      assert.equal(t.view.getUint32(8, true), 3);
      assert.deepEqual(readStdin(t), success);
      assert.equal(t.view.getUint32(8, true), 0);
    });
  });

  describe('poll_oneoff', () => {
    const subscriptions = 0;
    const events = 1024;
    const nevents = 2048;

    /** A clock subscription in the preview1 layout (48 bytes), or in wasi_unstable's (56 bytes). */
    function clockSubscription(
      t: ReturnType<typeof setup>,
      at: number,
      clock: { userdata: bigint; id: number; timeout: bigint; flags?: number },
      unstable = false,
    ): void {
      const view = t.view;
      view.setBigUint64(at, clock.userdata, true);
      view.setUint8(at + 8, Eventtype.CLOCK);
      const body = at + (unstable ? 24 : 16);
      view.setUint32(body, clock.id, true);
      view.setBigUint64(body + 8, clock.timeout, true);
      view.setUint16(body + 24, clock.flags ?? 0, true);
    }

    function fdSubscription(
      t: ReturnType<typeof setup>,
      at: number,
      userdata: bigint,
      type: number,
      fd: number,
    ) {
      t.view.setBigUint64(at, userdata, true);
      t.view.setUint8(at + 8, type);
      t.view.setUint32(at + 16, fd, true);
    }

    function event(t: ReturnType<typeof setup>, index: number) {
      const at = events + index * 32;
      const view = t.view;
      return {
        userdata: view.getBigUint64(at, true),
        error: view.getUint16(at + 8, true),
        type: view.getUint8(at + 10),
        nbytes: view.getBigUint64(at + 16, true),
        flags: view.getUint16(at + 24, true),
      };
    }

    it('sleeps until a relative clock is due, keeping the first deadline across re-executions', () => {
      const t = setup();
      const start = t.host.monotonic;
      clockSubscription(t, subscriptions, {
        userdata: 0x1234n,
        id: ClockId.MONOTONIC,
        timeout: 1_000_000_000n,
      });
      const until = start + 1_000_000_000n;
      assert.deepEqual(t.call('poll_oneoff', subscriptions, events, 1, nevents), {
        kind: 'block',
        on: 'sleep',
        untilMonotonicNs: until,
      });
      t.host.monotonic = start + 400_000_000n;
      assert.deepEqual(t.call('poll_oneoff', subscriptions, events, 1, nevents), {
        kind: 'block',
        on: 'sleep',
        untilMonotonicNs: until,
      });
      assert.equal(t.state.pendingPolls.length, 1);
      t.host.monotonic = until;
      assert.deepEqual(t.call('poll_oneoff', subscriptions, events, 1, nevents), success);
      assert.equal(t.view.getUint32(nevents, true), 1);
      assert.deepEqual(event(t, 0), {
        userdata: 0x1234n,
        error: 0,
        type: Eventtype.CLOCK,
        nbytes: 0n,
        flags: 0,
      });
      assert.deepEqual(t.state.pendingPolls, []);
      // A new sleep counts from now again.
      t.host.monotonic = until + 5n;
      assert.deepEqual(t.call('poll_oneoff', subscriptions, events, 1, nevents), {
        kind: 'block',
        on: 'sleep',
        untilMonotonicNs: until + 5n + 1_000_000_000n,
      });
    });

    it('reads wasi_unstable subscriptions and converts an absolute realtime deadline', () => {
      const t = setup({}, 'wasi_unstable');
      clockSubscription(
        t,
        subscriptions,
        {
          userdata: 7n,
          id: ClockId.REALTIME,
          timeout: t.host.realtime + 2_000_000_000n,
          flags: Subclockflags.ABSTIME,
        },
        true,
      );
      const outcome = t.call('poll_oneoff', subscriptions, events, 1, nevents);
      assert.deepEqual(outcome, {
        kind: 'block',
        on: 'sleep',
        untilMonotonicNs: t.host.monotonic + 2_000_000_000n,
      });
      t.host.monotonic += 2_000_000_000n;
      assert.deepEqual(t.call('poll_oneoff', subscriptions, events, 1, nevents), success);
      assert.equal(event(t, 0).userdata, 7n);
    });

    it('reports ready descriptors and due clocks at once, and blocks on stdin when only it is awaited', () => {
      const t = setup();
      fdSubscription(t, subscriptions, 1n, Eventtype.FD_READ, 0);
      assert.deepEqual(t.call('poll_oneoff', subscriptions, events, 1, nevents), {
        kind: 'block',
        on: 'stdin',
      });
      Wasi.pushStdin(t.state, Buffer.from('abc'), false);
      fdSubscription(t, subscriptions + 48, 2n, Eventtype.FD_WRITE, 1);
      fdSubscription(t, subscriptions + 96, 3n, Eventtype.FD_READ, 99);
      clockSubscription(t, subscriptions + 144, { userdata: 4n, id: ClockId.MONOTONIC, timeout: 0n });
      assert.deepEqual(t.call('poll_oneoff', subscriptions, events, 4, nevents), success);
      assert.equal(t.view.getUint32(nevents, true), 4);
      assert.deepEqual(
        [0, 1, 2, 3].map((i) => event(t, i)),
        [
          { userdata: 1n, error: 0, type: Eventtype.FD_READ, nbytes: 3n, flags: 0 },
          { userdata: 2n, error: 0, type: Eventtype.FD_WRITE, nbytes: 0n, flags: 0 },
          { userdata: 3n, error: Errno.EBADF, type: Eventtype.FD_READ, nbytes: 0n, flags: 0 },
          { userdata: 4n, error: 0, type: Eventtype.CLOCK, nbytes: 0n, flags: 0 },
        ],
      );
      assert.deepEqual(t.call('poll_oneoff', subscriptions, events, 0, nevents), errno(Errno.EINVAL));
    });
  });

  describe('proc_exit', () => {
    it('ends with an exit outcome and keeps the code in the state', () => {
      const t = setup();
      assert.deepEqual(t.call('proc_exit', 3), { kind: 'exit', code: 3 });
      assert.equal(t.state.exitCode, 3);
    });

    it('throws WasiExit from the plain import object, and an Error where it would block', () => {
      const t = setup();
      t.put(0, new Uint8Array(new Uint32Array([100, 10]).buffer));
      const imports = wasiImportObject(t.wasi) as Record<
        string,
        Record<string, (...args: number[]) => number>
      >;
      assert.throws(
        () => imports.wasi_unstable?.proc_exit?.(42),
        (error: unknown) => error instanceof WasiExit && error.code === 42,
      );
      assert.throws(() => imports.wasi_snapshot_preview1?.fd_read?.(0, 0, 1, 8), /would block on stdin/);
      assert.equal(imports.wasi_snapshot_preview1?.sched_yield?.(), Errno.SUCCESS);
    });
  });

  describe('layouts of wasi_unstable and preview1', () => {
    it('numbers whence differently and lays out filestat differently', () => {
      const files = { '/f': Buffer.from('0123456789') };
      const unstable = setup({ files }, 'wasi_unstable');
      const fd = openFile(unstable, 'f');
      // wasi_unstable: CUR = 0, END = 1, SET = 2.
      assert.deepEqual(unstable.call('fd_seek', fd, -3n, 1, 8), success);
      assert.equal(unstable.view.getBigUint64(8, true), 7n);
      assert.deepEqual(unstable.call('fd_seek', fd, 1n, 0, 8), success);
      assert.equal(unstable.view.getBigUint64(8, true), 8n);
      assert.deepEqual(unstable.call('fd_seek', fd, 2n, 2, 8), success);
      assert.equal(unstable.view.getBigUint64(8, true), 2n);
      unstable.memory.fill(0xff, 100, 200);
      assert.deepEqual(unstable.call('fd_filestat_get', fd, 100), success);
      assert.equal(unstable.view.getUint8(116), Filetype.REGULAR_FILE);
      assert.equal(unstable.view.getUint32(120, true), 1, 'nlink is a u32 at 20');
      assert.equal(unstable.view.getBigUint64(124, true), 10n, 'size at 24');
      assert.equal(unstable.view.getUint8(156), 0xff, 'the struct is 56 bytes');

      const preview1 = setup({ files });
      const fd1 = openFile(preview1, 'f');
      // preview1: SET = 0, CUR = 1, END = 2.
      assert.deepEqual(preview1.call('fd_seek', fd1, -3n, 2, 8), success);
      assert.equal(preview1.view.getBigUint64(8, true), 7n);
      assert.deepEqual(preview1.call('fd_seek', fd1, 2n, 0, 8), success);
      assert.equal(preview1.view.getBigUint64(8, true), 2n);
      preview1.memory.fill(0xff, 100, 200);
      assert.deepEqual(preview1.call('fd_filestat_get', fd1, 100), success);
      assert.equal(preview1.view.getBigUint64(124, true), 1n, 'nlink is a u64 at 24');
      assert.equal(preview1.view.getBigUint64(132, true), 10n, 'size at 32');
      assert.equal(preview1.view.getUint8(164), 0xff, 'the struct is 64 bytes');
    });
  });

  describe('state', () => {
    it('is plain data that survives structuredClone and cbor-x, and a Wasi on a copy carries on', () => {
      const t = setup({ files: { '/data/in.txt': Buffer.from('abcdefgh') }, stdin: Buffer.from('xy') });
      const fd = openFile(t, 'data/in.txt');
      const iovec = 500;
      t.put(iovec, new Uint8Array(new Uint32Array([100, 3]).buffer));
      assert.deepEqual(t.call('fd_read', fd, iovec, 1, 8), success);
      const [dir, dirLength] = t.put(1000, 'made');
      assert.deepEqual(t.call('path_create_directory', 3, dir, dirLength), success);
      openFile(t, 'made/new.txt', Oflags.CREAT);
      assert.deepEqual(t.call('fd_read', 0, iovec, 1, 8), success);
      t.view.setUint8(2008, Eventtype.CLOCK);
      t.view.setBigUint64(2024, 1_000n, true);
      assert.equal(t.call('poll_oneoff', 2000, 3000, 1, 8).kind, 'block');

      assertPlainData(t.state);
      assert.deepEqual(structuredClone(t.state), t.state);
      const restored = decode(encode(t.state));
      assert.deepEqual(restored, t.state);

      // The copy continues where the original was: the file offset, the pending sleep.
      let memory = Uint8Array.from(t.memory);
      const host = new TestHost(() => memory);
      host.monotonic = t.host.monotonic + 1_000n;
      const resumed = new Wasi(restored, host);
      assert.deepEqual(resumed.call('wasi_snapshot_preview1', 'fd_read', [fd, iovec, 1, 8]), success);
      assert.equal(Buffer.from(memory.subarray(100, 103)).toString(), 'def');
      assert.deepEqual(resumed.call('wasi_snapshot_preview1', 'poll_oneoff', [2000, 3000, 1, 8]), success);
      memory = new Uint8Array(0);
      assert.deepEqual(
        resumed.call('wasi_snapshot_preview1', 'fd_read', [fd, iovec, 1, 8]),
        errno(Errno.EFAULT),
      );
    });
  });
});
