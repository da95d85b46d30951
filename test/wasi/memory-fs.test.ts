import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WASI } from 'node:wasi';
import { Errno, errnoName, Fdflags, Filetype, Oflags, WhencePreview1 } from '../../src/wasi/errno.js';
import {
  createMemoryFs,
  type Location,
  listDirectory,
  makeDirectory,
  makeSymlink,
  putFile,
  renameEntry,
  resolvePath,
  rootIno,
  unlinkFile,
} from '../../src/wasi/memory-fs.js';
import { Wasi, wasiImportObject } from '../../src/wasi/wasi.js';
import { createWasiState } from '../../src/wasi/wasi-state.js';
import { GuestApi, reexportModule, TestHost } from './helpers.js';

const { SET, CUR, END } = WhencePreview1;

function at(result: Location | number): Location {
  assert.equal(typeof result, 'object', `expected a location, got ${errnoName(result as number)}`);
  return result as Location;
}

/**
 * A walk through the file-system calls, from creating files to escaping the sandbox. It returns what
 * the guest observes (errnos and data, never descriptor numbers or inodes), so that norma's WASI and
 * Node's can be compared call by call.
 */
function fileSystemWalk(g: GuestApi): [string, unknown][] {
  const log: [string, unknown][] = [];
  const note = (label: string, value: unknown) => log.push([label, value]);
  const root = 3;
  const u32 = (offset: number) => g.view.getUint32(offset, true);
  // Node's fd_fdstat_get reports the host's raw fcntl flags (O_LARGEFILE, O_RDWR, ...) as fdflags:
  // only the type and the rights are comparable.
  const fdstat = (fd: number) => {
    const { errno, filetype, rightsBase, rightsInheriting } = g.fdstat(fd);
    return { errno, filetype, rightsBase, rightsInheriting };
  };

  note('prestat of the root', [g.call('fd_prestat_get', root, 0), g.view.getUint8(0), u32(4)]);
  note('prestat name', [g.call('fd_prestat_dir_name', root, 100, 1), g.view.getUint8(100)]);
  note('prestat name, no room', g.call('fd_prestat_dir_name', root, 100, 0));
  note('prestat of stdin', g.call('fd_prestat_get', 0, 0));
  note('prestat of a closed fd', g.call('fd_prestat_get', 99, 0));
  const rootStat = g.fdstat(root);
  note('fdstat of the root', fdstat(root));

  note('mkdir data', g.pathCall('path_create_directory', root, 'data'));
  note('mkdir data again', g.pathCall('path_create_directory', root, 'data'));
  note('mkdir data/sub', g.pathCall('path_create_directory', root, 'data/sub'));
  note('mkdir under a missing directory', g.pathCall('path_create_directory', root, 'missing/x'));

  const file = g.open(root, 'data/f.txt', { oflags: Oflags.CREAT, write: true });
  note('create data/f.txt', file.errno);
  note('fdstat of the file', fdstat(file.fd));
  note('write', g.write(file.fd, 'hello world'));
  note('seek to 0', g.seek(file.fd, 0n, SET));
  note('read 5', g.read(file.fd, 5));
  note('tell', [g.call('fd_tell', file.fd, 0), g.view.getBigUint64(0, true)]);
  note('seek 3 before the end', g.seek(file.fd, -3n, END));
  note('read the rest', g.read(file.fd, 100));
  note('read at the end', g.read(file.fd, 100));
  note('seek back 2', g.seek(file.fd, -2n, CUR));
  note('seek before the start', g.seek(file.fd, -100n, CUR));
  note('seek with a bad whence', g.seek(file.fd, 0n, 7));
  note('pwrite at 0', g.write(file.fd, 'HELLO', 0n));
  note('pread at 0', g.read(file.fd, 5, 0n));
  note('pread past the end', g.read(file.fd, 5, 1000n));
  note('readdir of a file', g.readdir(file.fd).errno);
  note('set size 20', g.call('fd_filestat_set_size', file.fd, 20n));
  note('stat after set size', g.stat(root, 'data/f.txt'));
  note('allocate to 30', g.call('fd_allocate', file.fd, 10n, 20n));
  note('stat after allocate', g.stat(root, 'data/f.txt'));
  note('set size 11', g.call('fd_filestat_set_size', file.fd, 11n));
  note('set times with bad flags', g.call('fd_filestat_set_times', file.fd, 0n, 0n, 3));
  note('advise with a bad advice', g.call('fd_advise', file.fd, 0n, 0n, 9));
  note('close', g.call('fd_close', file.fd));
  note('close again', g.call('fd_close', file.fd));

  const readOnly = g.open(root, 'data/f.txt');
  note('open read-only', readOnly.errno);
  note('write to a read-only fd', g.write(readOnly.fd, 'x').errno);
  note('read it', g.read(readOnly.fd, 100));
  note('fdstat of a read-only fd', fdstat(readOnly.fd));
  const appending = g.open(root, 'data/f.txt', { write: true, read: false, fdflags: Fdflags.APPEND });
  note('open for append', appending.errno);
  note('append', g.write(appending.fd, '!'));
  note('read from a write-only fd', g.read(appending.fd, 1).errno);
  note('file after append', g.read(readOnly.fd, 100, 0n));
  note('fdstat of an appending fd', fdstat(appending.fd));
  note('renumber onto the reader', g.call('fd_renumber', appending.fd, readOnly.fd));
  note('the old number is closed', g.call('fd_close', appending.fd));
  note('renumber from a closed fd', g.call('fd_renumber', appending.fd, readOnly.fd));
  note('close the renumbered fd', g.call('fd_close', readOnly.fd));

  note(
    'create exclusive an existing file',
    g.open(root, 'data/f.txt', { oflags: Oflags.CREAT | Oflags.EXCL }).errno,
  );
  note('open a missing file', g.open(root, 'data/none').errno);
  note('open a file with a trailing slash', g.open(root, 'data/f.txt/').errno);
  note('open a file as a directory', g.open(root, 'data/f.txt', { oflags: Oflags.DIRECTORY }).errno);
  note('open a directory for writing', g.open(root, 'data', { write: true }).errno);
  note('open through a file', g.open(root, 'data/f.txt/x').errno);
  const truncated = g.open(root, 'data/t.txt', { oflags: Oflags.CREAT, write: true });
  g.write(truncated.fd, 'some bytes');
  const reopened = g.open(root, 'data/t.txt', { oflags: Oflags.TRUNC, write: true });
  note('truncate on open', reopened.errno);
  note('size after truncate', g.stat(root, 'data/t.txt'));
  note('write after truncate', g.write(reopened.fd, 'replacement'));

  // The sandbox: `..` at the root stays there; leaving any other directory is refused.
  note('open .. of the root', g.open(root, '..', { oflags: Oflags.DIRECTORY }).errno);
  note('stat ../data/f.txt from the root', g.stat(root, '../data/f.txt'));
  note('stat ../../.. from the root', g.stat(root, '../../..').errno);
  note('absolute path', g.open(root, '/data/f.txt').errno);
  note('absolute root', g.stat(root, '/').errno);
  const data = g.open(root, 'data', { oflags: Oflags.DIRECTORY });
  note('open data as a directory', [data.errno, fdstat(data.fd)]);
  note('from data: f.txt', g.stat(data.fd, 'f.txt'));
  note('from data: ../data/f.txt', g.stat(data.fd, '../data/f.txt'));
  note('from data: sub/../../data/f.txt', g.stat(data.fd, 'sub/../../data/f.txt'));
  note('from data: ..', g.stat(data.fd, '..').errno);
  note('from data: ../x', g.open(data.fd, '../x', { oflags: Oflags.CREAT }).errno);
  note('from data: mkdir ../escape', g.pathCall('path_create_directory', data.fd, '../escape'));
  note('from data: sub/../..', g.stat(data.fd, 'sub/../..').errno);

  note('rename f.txt to g.txt', g.rename(root, 'data/f.txt', 'data/g.txt'));
  note('the old name is gone', g.stat(root, 'data/f.txt').errno);
  note('rename a missing file', g.rename(root, 'data/f.txt', 'data/h.txt'));
  note('rename a file over a directory', g.rename(root, 'data/g.txt', 'data/sub'));
  note('rename a directory into itself', g.rename(root, 'data', 'data/sub/data'));
  note('mkdir other/x', [
    g.pathCall('path_create_directory', root, 'other'),
    g.pathCall('path_create_directory', root, 'other/x'),
  ]);
  note('rename a directory over a non-empty one', g.rename(root, 'data/sub', 'other'));
  note('rename a directory over a file', g.rename(root, 'other', 'data/g.txt'));
  note('rename a file over a file', g.rename(root, 'data/t.txt', 'data/g.txt'));
  note('rename a directory over an empty one', g.rename(root, 'data/sub', 'other/x'));
  note('stat the moved directory', g.stat(root, 'other/x').errno);

  note('unlink a directory', g.pathCall('path_unlink_file', root, 'other'));
  note('unlink with a trailing slash', g.pathCall('path_unlink_file', root, 'data/g.txt/'));
  note('rmdir a non-empty directory', g.pathCall('path_remove_directory', root, 'other'));
  note('rmdir a file', g.pathCall('path_remove_directory', root, 'data/g.txt'));
  note('rmdir other/x', g.pathCall('path_remove_directory', root, 'other/x'));
  note('rmdir a missing directory', g.pathCall('path_remove_directory', root, 'other/x'));

  note('symlink', g.symlink('data/g.txt', root, 'link'));
  note('symlink over an existing name', g.symlink('x', root, 'link'));
  note('readlink', g.readlink(root, 'link', 100));
  note('readlink into a short buffer', g.readlink(root, 'link', 4));
  note('readlink into a buffer with no room for NUL', g.readlink(root, 'link', 10));
  note('readlink into a buffer just large enough', g.readlink(root, 'link', 11));
  note('readlink of a file', g.readlink(root, 'data/g.txt', 100).errno);
  note('stat a link', g.stat(root, 'link', false).filetype);
  note('stat through a link', g.stat(root, 'link'));
  const linked = g.open(root, 'link');
  note('read through a link', g.read(linked.fd, 100));
  note('unlink the link', g.pathCall('path_unlink_file', root, 'link'));

  note('hard link', g.link(root, 'data/g.txt', 'hard'));
  note('link count', g.stat(root, 'hard').nlink);
  note('hard link over an existing name', g.link(root, 'data/g.txt', 'hard'));
  note('hard link to a directory', g.link(root, 'data', 'dirlink'));
  note('unlink one name', g.pathCall('path_unlink_file', root, 'data/g.txt'));
  note('the other name keeps the bytes', [g.stat(root, 'hard').nlink, g.read(g.open(root, 'hard').fd, 100)]);

  note('readdir of the root', [g.readdir(root).errno, g.readdir(root).names.sort()]);
  note('readdir of data', g.readdir(data.fd).names.sort());
  note('read a directory', g.read(data.fd, 10).errno);
  note('seek a directory', g.seek(data.fd, 0n, SET).errno);
  note('sock_shutdown a directory', g.call('sock_shutdown', root, 2));
  note('sock_recv a directory', g.call('sock_recv', root, 0, 1, 0, 8, 12));
  note('sock_accept a closed fd', g.call('sock_accept', 99, 0, 0));
  note('fdstat of a closed fd', g.fdstat(99).errno);
  note('drop rights', g.call('fd_fdstat_set_rights', data.fd, rootStat.rightsBase & ~(1n << 13n), 0n));
  note('open without the right', g.open(data.fd, 'x', { oflags: Oflags.CREAT }).errno);
  note('gain rights back', g.call('fd_fdstat_set_rights', data.fd, rootStat.rightsBase, 0n));
  return log;
}

describe('memory-fs', () => {
  describe('against node:wasi, call by call', () => {
    let module: WebAssembly.Module;
    let hostDir: string;

    before(async () => {
      module = await reexportModule('wasi_snapshot_preview1');
      hostDir = mkdtempSync(path.join(tmpdir(), 'norma-wasi-fs-'));
    });

    after(() => rmSync(hostDir, { recursive: true, force: true }));

    it('observes the same results for the same calls', async () => {
      const nodeWasi = new WASI({ version: 'preview1', preopens: { '/': hostDir } });
      const nodeInstance = await WebAssembly.instantiate(
        module,
        nodeWasi.getImportObject() as WebAssembly.Imports,
      );
      nodeWasi.initialize(nodeInstance);
      const expected = fileSystemWalk(new GuestApi(nodeInstance));

      let memory: WebAssembly.Memory | undefined;
      const host = new TestHost(() => new Uint8Array(memory?.buffer ?? new ArrayBuffer(0)));
      const wasi = new Wasi(createWasiState({ args: [], env: {} }), host);
      const instance = await WebAssembly.instantiate(module, wasiImportObject(wasi));
      memory = instance.exports.memory as WebAssembly.Memory;
      const actual = fileSystemWalk(new GuestApi(instance));

      assert.deepEqual(actual, expected);
    });
  });

  describe('paths', () => {
    it('keeps `..` at the root and refuses to leave any other directory', () => {
      const fs = createMemoryFs();
      putFile(fs, '/data/in.txt', new Uint8Array([1]), 0n);
      const data = at(resolvePath(fs, rootIno, 'data', true)).ino!;
      assert.equal(at(resolvePath(fs, rootIno, '../../data/in.txt', true)).name, 'in.txt');
      assert.equal(at(resolvePath(fs, rootIno, '..', true)).ino, rootIno);
      assert.equal(resolvePath(fs, data, '..', true), Errno.ENOTCAPABLE);
      assert.equal(resolvePath(fs, data, '../data/../in.txt', true), Errno.ENOTCAPABLE);
      assert.equal(at(resolvePath(fs, data, '../data/in.txt', true)).dir, data);
      assert.equal(resolvePath(fs, rootIno, '/data/in.txt', true), Errno.ENOTCAPABLE);
      assert.equal(resolvePath(fs, rootIno, '', true), Errno.ENOENT);
      assert.equal(resolvePath(fs, rootIno, 'data/in.txt/', true), Errno.ENOTDIR);
      assert.equal(resolvePath(fs, rootIno, 'data/in.txt/x', true), Errno.ENOTDIR);
    });

    it('follows symbolic links relative to their directory, never out of the root, and stops loops', () => {
      const fs = createMemoryFs();
      putFile(fs, '/a/b/file', new Uint8Array([7]), 0n);
      const a = at(resolvePath(fs, rootIno, 'a', true)).ino!;
      assert.equal(makeSymlink(fs, 'b/file', at(resolvePath(fs, a, 'rel', false)), 0n), Errno.SUCCESS);
      assert.equal(makeSymlink(fs, '/a/b', at(resolvePath(fs, rootIno, 'abs', false)), 0n), Errno.SUCCESS);
      assert.equal(makeSymlink(fs, '../../../../a', at(resolvePath(fs, a, 'up', false)), 0n), Errno.SUCCESS);
      assert.equal(makeSymlink(fs, 'loop', at(resolvePath(fs, rootIno, 'loop', false)), 0n), Errno.SUCCESS);
      const file = at(resolvePath(fs, rootIno, 'a/b/file', true)).ino;
      assert.equal(at(resolvePath(fs, rootIno, 'a/rel', true)).ino, file);
      assert.equal(at(resolvePath(fs, rootIno, 'abs/file', true)).ino, file);
      assert.equal(at(resolvePath(fs, rootIno, 'a/up/b/file', true)).ino, file);
      assert.notEqual(at(resolvePath(fs, rootIno, 'a/rel', false)).ino, file);
      assert.equal(resolvePath(fs, rootIno, 'loop', true), Errno.ELOOP);
      assert.equal(resolvePath(fs, rootIno, 'loop/x', true), Errno.ELOOP);
    });
  });

  describe('directories', () => {
    it('keeps readdir cookies stable when entries are removed during a listing', () => {
      const fs = createMemoryFs();
      for (const name of ['a', 'b', 'c', 'd']) putFile(fs, `/${name}`, new Uint8Array(0), 0n);
      const [first, second] = listDirectory(fs, rootIno);
      assert.deepEqual([first?.name, second?.name], ['a', 'b']);
      // A guest deleting what it listed, then continuing after the last cookie it saw.
      unlinkFile(fs, at(resolvePath(fs, rootIno, 'a', false)), 0n);
      unlinkFile(fs, at(resolvePath(fs, rootIno, 'b', false)), 0n);
      const rest = listDirectory(fs, rootIno).filter((entry) => entry.cookie > (second?.cookie ?? 0));
      assert.deepEqual(
        rest.map((entry) => entry.name),
        ['c', 'd'],
      );
    });

    it('renames a directory with its contents and refuses to move it under itself', () => {
      const fs = createMemoryFs();
      putFile(fs, '/x/y/z', new Uint8Array([1, 2]), 0n);
      const from = at(resolvePath(fs, rootIno, 'x', false));
      assert.equal(renameEntry(fs, from, at(resolvePath(fs, rootIno, 'x/y/x', false)), 0n), Errno.EINVAL);
      assert.equal(makeDirectory(fs, at(resolvePath(fs, rootIno, 'w', false)), 0n), Errno.SUCCESS);
      assert.equal(renameEntry(fs, from, at(resolvePath(fs, rootIno, 'w/x', false)), 0n), Errno.SUCCESS);
      assert.equal(resolvePath(fs, rootIno, 'x/y/z', true), Errno.ENOENT);
      assert.equal(at(resolvePath(fs, rootIno, 'w/x/y/z', true)).name, 'z');
      assert.equal(at(resolvePath(fs, from.ino!, 'y/z', true)).name, 'z');
    });
  });

  describe('files through WASI', () => {
    async function guest(files: Record<string, Uint8Array> = {}) {
      const state = createWasiState({ args: [], env: {}, files });
      let memory: WebAssembly.Memory | undefined;
      const host = new TestHost(() => new Uint8Array(memory?.buffer ?? new ArrayBuffer(0)));
      const module = await reexportModule('wasi_snapshot_preview1');
      const instance = await WebAssembly.instantiate(module, wasiImportObject(new Wasi(state, host)));
      memory = instance.exports.memory as WebAssembly.Memory;
      return { state, host, api: new GuestApi(instance) };
    }

    it('reads the files the task was given, at their absolute paths', async () => {
      const { api } = await guest({ '/data/in.txt': Buffer.from('given bytes') });
      const file = api.open(3, 'data/in.txt');
      assert.equal(file.errno, Errno.SUCCESS);
      assert.deepEqual(api.read(file.fd, 100), { errno: Errno.SUCCESS, text: 'given bytes' });
      assert.deepEqual(api.readdir(3).names, ['data']);
      assert.equal(api.stat(3, 'data').filetype, Filetype.DIRECTORY);
    });

    it('keeps an unlinked file readable until its last descriptor closes, then frees it', async () => {
      const { state, api } = await guest({ '/f': Buffer.from('still here') });
      const file = api.open(3, 'f');
      assert.equal(api.pathCall('path_unlink_file', 3, 'f'), Errno.SUCCESS);
      assert.equal(api.stat(3, 'f').errno, Errno.ENOENT);
      assert.deepEqual(api.read(file.fd, 100), { errno: Errno.SUCCESS, text: 'still here' });
      const nodesBefore = Object.keys(state.fs.nodes).length;
      assert.equal(api.call('fd_close', file.fd), Errno.SUCCESS);
      assert.equal(Object.keys(state.fs.nodes).length, nodesBefore - 1);
    });

    it('writes past the end with a hole of zeros, and stamps times from the host clock', async () => {
      const { host, api } = await guest();
      host.realtime = 42_000_000_000n;
      const file = api.open(3, 'sparse', { oflags: Oflags.CREAT, write: true });
      assert.deepEqual(api.write(file.fd, 'end', 5n), { errno: Errno.SUCCESS, count: 3 });
      assert.deepEqual(api.read(file.fd, 100, 0n), { errno: Errno.SUCCESS, text: '\0\0\0\0\0end' });
      assert.equal(api.call('fd_filestat_get', file.fd, 0), Errno.SUCCESS);
      assert.equal(api.view.getBigUint64(48, true), 42_000_000_000n);
    });
  });
});
