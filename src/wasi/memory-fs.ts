/**
 * The in-memory file system of a task, as plain data so that it travels in a snapshot with the rest of
 * the WASI state. Nodes are numbered (the number is the inode); directories list their entries.
 *
 * Path resolution follows Node's node:wasi (uvwasi), checked against Node 20:
 * - a path is resolved relative to a directory and normalized lexically first (`a/../b` is `b`
 *   even when `a` is a symbolic link), then walked from the root;
 * - `..` at the root stays at the root, so nothing can name a place outside the sandbox;
 * - a path whose normalized form leaves the directory it is resolved from is refused with
 *   ENOTCAPABLE (a descriptor for `/data` cannot reach `/etc`, nor `/data/..`);
 * - an absolute path is refused with ENOTCAPABLE (wasi-libc never sends one: it strips the preopen);
 * - unlike uvwasi, which lets the host OS follow them, symbolic links are resolved here, against the
 *   directory that holds them (absolute targets from the root), at most `symlinkFollowsMax` times.
 *
 * Every function returns an errno (a number) or its result (an object); none throws on guest input.
 */

import assert from 'node:assert';
import { memoryFsFileBytesMax } from '../limits.js';
import { Errno, Filetype } from './errno.js';

/** The root directory `/`, the node every resolution starts from. */
export const rootIno = 1;

/**
 * Largest regular file, so that one guest cannot exhaust the host. Belongs in src/limits.ts, which
 * this module may not edit yet.
 */

/** Symbolic links one resolution may follow before it fails with ELOOP (uvwasi's limit). */
export const symlinkFollowsMax = 32;

interface NodeTimes {
  atimNs: bigint;
  mtimNs: bigint;
  ctimNs: bigint;
}

export interface FileNode extends NodeTimes {
  kind: 'file';
  /** The bytes; only the first `size` are the file, the rest is room to grow without copying. */
  data: Uint8Array;
  size: number;
  /** Directory entries naming the file (hard links). */
  nlink: number;
  /** Open descriptors: an unlinked file lives on until the last one is closed. */
  opens: number;
}

export interface DirEntry {
  name: string;
  ino: number;
  /** Position in fd_readdir: entries keep their cookie, so removing one does not shift the others. */
  cookie: number;
}

export interface DirNode extends NodeTimes {
  kind: 'dir';
  /** The directory holding this one (the root holds itself); 0 once removed. */
  parent: number;
  /** The name this directory has in its parent. */
  name: string;
  /** In cookie order. An array, not an object keyed by name, so that any name (even `__proto__`) is safe. */
  entries: DirEntry[];
  nextCookie: number;
  opens: number;
}

export interface SymlinkNode extends NodeTimes {
  kind: 'symlink';
  target: string;
  nlink: number;
  opens: number;
}

export type FsNode = FileNode | DirNode | SymlinkNode;

export interface MemoryFs {
  nodes: Record<number, FsNode>;
  nextIno: number;
}

/** Where a path leads: the directory holding the last component, its name, and its node if it exists. */
export interface Location {
  dir: number;
  /** '' when the path names the root itself (it has no entry in any directory). */
  name: string;
  ino: number | undefined;
  /** The path ended with `/`: it must name a directory. */
  mustBeDir: boolean;
}

export interface NodeStat {
  filetype: number;
  nlink: number;
  size: number;
  atimNs: bigint;
  mtimNs: bigint;
  ctimNs: bigint;
}

export function createMemoryFs(): MemoryFs {
  const root: DirNode = {
    kind: 'dir',
    parent: rootIno,
    name: '',
    entries: [],
    nextCookie: 1,
    opens: 0,
    atimNs: 0n,
    mtimNs: 0n,
    ctimNs: 0n,
  };
  return { nodes: { [rootIno]: root }, nextIno: rootIno + 1 };
}

export function fsNode(fs: MemoryFs, ino: number): FsNode {
  const node = fs.nodes[ino];
  assert(node !== undefined, `memory-fs: no node ${ino}`);
  return node;
}

function dirNode(fs: MemoryFs, ino: number): DirNode {
  const node = fsNode(fs, ino);
  assert(node.kind === 'dir', `memory-fs: node ${ino} is not a directory`);
  return node;
}

function findEntry(dir: DirNode, name: string): DirEntry | undefined {
  return dir.entries.find((entry) => entry.name === name);
}

/** The names from the root down to a directory, or undefined when it (or an ancestor) was removed. */
export function directoryPath(fs: MemoryFs, ino: number): string[] | undefined {
  const names: string[] = [];
  for (let at = ino; at !== rootIno; ) {
    const dir = dirNode(fs, at);
    if (dir.parent === 0) return undefined;
    names.push(dir.name);
    at = dir.parent;
  }
  return names.reverse();
}

function normalize(stack: string[], path: string): string[] {
  for (const component of path.split('/')) {
    if (component === '' || component === '.') continue;
    // Popping an empty stack does nothing: `..` at the root stays at the root.
    if (component === '..') stack.pop();
    else stack.push(component);
  }
  return stack;
}

function startsWith(path: readonly string[], prefix: readonly string[]): boolean {
  return path.length >= prefix.length && prefix.every((name, i) => path[i] === name);
}

/** Resolves `path` relative to the directory `fromDir` (see the rules at the top of this file). */
export function resolvePath(fs: MemoryFs, fromDir: number, path: string, follow: boolean): Location | number {
  if (path.length === 0) return Errno.ENOENT;
  if (path.startsWith('/')) return Errno.ENOTCAPABLE;
  const base = directoryPath(fs, fromDir);
  if (base === undefined) return Errno.ENOENT;
  const names = normalize([...base], path);
  if (!startsWith(names, base)) return Errno.ENOTCAPABLE;
  const mustBeDir = path.endsWith('/');
  return walk(fs, names, follow || mustBeDir, mustBeDir, 0);
}

function followLink(fs: MemoryFs, linkDir: number, target: string, follows: number): Location | number {
  if (follows > symlinkFollowsMax) return Errno.ELOOP;
  if (target.length === 0) return Errno.ENOENT;
  const base = target.startsWith('/') ? [] : directoryPath(fs, linkDir);
  if (base === undefined) return Errno.ENOENT;
  const mustBeDir = target.endsWith('/');
  return walk(fs, normalize(base, target), true, mustBeDir, follows);
}

function walk(
  fs: MemoryFs,
  names: readonly string[],
  followLast: boolean,
  mustBeDir: boolean,
  follows: number,
): Location | number {
  let dir = rootIno;
  for (let i = 0; i < names.length - 1; i++) {
    const entry = findEntry(dirNode(fs, dir), names[i]!);
    if (entry === undefined) return Errno.ENOENT;
    let ino = entry.ino;
    const node = fsNode(fs, ino);
    if (node.kind === 'symlink') {
      const target = followLink(fs, dir, node.target, follows + 1);
      if (typeof target === 'number') return target;
      if (target.ino === undefined) return Errno.ENOENT;
      ino = target.ino;
    }
    if (fsNode(fs, ino).kind !== 'dir') return Errno.ENOTDIR;
    dir = ino;
  }
  const name = names[names.length - 1];
  if (name === undefined) return { dir: rootIno, name: '', ino: rootIno, mustBeDir };
  const entry = findEntry(dirNode(fs, dir), name);
  if (entry === undefined) return { dir, name, ino: undefined, mustBeDir };
  const node = fsNode(fs, entry.ino);
  if (node.kind === 'symlink' && followLast) {
    const target = followLink(fs, dir, node.target, follows + 1);
    if (typeof target === 'number' || !mustBeDir) return target;
    if (target.ino !== undefined && fsNode(fs, target.ino).kind !== 'dir') return Errno.ENOTDIR;
    return { ...target, mustBeDir };
  }
  if (mustBeDir && node.kind !== 'dir') return Errno.ENOTDIR;
  return { dir, name, ino: entry.ino, mustBeDir };
}

function addNode(fs: MemoryFs, node: FsNode): number {
  const ino = fs.nextIno++;
  fs.nodes[ino] = node;
  return ino;
}

function addEntry(fs: MemoryFs, dirIno: number, name: string, ino: number, nowNs: bigint): void {
  const dir = dirNode(fs, dirIno);
  dir.entries.push({ name, ino, cookie: dir.nextCookie++ });
  dir.mtimNs = nowNs;
  dir.ctimNs = nowNs;
}

function removeEntry(fs: MemoryFs, dirIno: number, name: string, nowNs: bigint): void {
  const dir = dirNode(fs, dirIno);
  const index = dir.entries.findIndex((entry) => entry.name === name);
  assert(index >= 0, `memory-fs: no entry ${name} in ${dirIno}`);
  dir.entries.splice(index, 1);
  dir.mtimNs = nowNs;
  dir.ctimNs = nowNs;
}

/** A directory can receive entries only while it is still linked into the tree. */
function isLiveDir(fs: MemoryFs, ino: number): boolean {
  return dirNode(fs, ino).parent !== 0;
}

/** Frees a node nothing names and no descriptor holds. */
function collect(fs: MemoryFs, ino: number): void {
  const node = fsNode(fs, ino);
  if (node.opens > 0) return;
  if (node.kind === 'dir' ? node.parent === 0 : node.nlink === 0) delete fs.nodes[ino];
}

/** A descriptor now holds the node. */
export function retainNode(fs: MemoryFs, ino: number): void {
  fsNode(fs, ino).opens++;
}

/** A descriptor let go of the node; it is freed if it was its last holder and it has no name. */
export function releaseNode(fs: MemoryFs, ino: number): void {
  const node = fsNode(fs, ino);
  assert(node.opens > 0, `memory-fs: node ${ino} released more than retained`);
  node.opens--;
  collect(fs, ino);
}

export function createFile(fs: MemoryFs, at: Location, nowNs: bigint): number | { ino: number } {
  assert(at.ino === undefined && at.name !== '', 'memory-fs: createFile needs a free name');
  if (!isLiveDir(fs, at.dir)) return Errno.ENOENT;
  if (at.mustBeDir) return Errno.EISDIR;
  const ino = addNode(fs, {
    kind: 'file',
    data: new Uint8Array(0),
    size: 0,
    nlink: 1,
    opens: 0,
    atimNs: nowNs,
    mtimNs: nowNs,
    ctimNs: nowNs,
  });
  addEntry(fs, at.dir, at.name, ino, nowNs);
  return { ino };
}

export function makeDirectory(fs: MemoryFs, at: Location, nowNs: bigint): number {
  if (at.ino !== undefined) return Errno.EEXIST;
  if (!isLiveDir(fs, at.dir)) return Errno.ENOENT;
  const ino = addNode(fs, {
    kind: 'dir',
    parent: at.dir,
    name: at.name,
    entries: [],
    nextCookie: 1,
    opens: 0,
    atimNs: nowNs,
    mtimNs: nowNs,
    ctimNs: nowNs,
  });
  addEntry(fs, at.dir, at.name, ino, nowNs);
  return Errno.SUCCESS;
}

export function makeSymlink(fs: MemoryFs, target: string, at: Location, nowNs: bigint): number {
  if (at.ino !== undefined) return Errno.EEXIST;
  if (!isLiveDir(fs, at.dir)) return Errno.ENOENT;
  if (at.mustBeDir) return Errno.ENOENT;
  const ino = addNode(fs, {
    kind: 'symlink',
    target,
    nlink: 1,
    opens: 0,
    atimNs: nowNs,
    mtimNs: nowNs,
    ctimNs: nowNs,
  });
  addEntry(fs, at.dir, at.name, ino, nowNs);
  return Errno.SUCCESS;
}

/** A hard link: a second name for an existing file (directories cannot be linked). */
export function linkNode(fs: MemoryFs, ino: number, at: Location, nowNs: bigint): number {
  const node = fsNode(fs, ino);
  if (node.kind === 'dir') return Errno.EPERM;
  if (at.ino !== undefined) return Errno.EEXIST;
  if (!isLiveDir(fs, at.dir)) return Errno.ENOENT;
  node.nlink++;
  node.ctimNs = nowNs;
  addEntry(fs, at.dir, at.name, ino, nowNs);
  return Errno.SUCCESS;
}

export function removeDirectory(fs: MemoryFs, at: Location, nowNs: bigint): number {
  if (at.ino === undefined) return Errno.ENOENT;
  if (at.name === '') return Errno.EBUSY;
  const node = fsNode(fs, at.ino);
  if (node.kind !== 'dir') return Errno.ENOTDIR;
  if (node.entries.length > 0) return Errno.ENOTEMPTY;
  removeEntry(fs, at.dir, at.name, nowNs);
  node.parent = 0;
  collect(fs, at.ino);
  return Errno.SUCCESS;
}

export function unlinkFile(fs: MemoryFs, at: Location, nowNs: bigint): number {
  if (at.ino === undefined) return Errno.ENOENT;
  const node = fsNode(fs, at.ino);
  if (node.kind === 'dir') return Errno.EISDIR;
  removeEntry(fs, at.dir, at.name, nowNs);
  node.nlink--;
  node.ctimNs = nowNs;
  collect(fs, at.ino);
  return Errno.SUCCESS;
}

function isAncestorOrSelf(fs: MemoryFs, ancestor: number, dirIno: number): boolean {
  for (let at = dirIno; ; ) {
    if (at === ancestor) return true;
    if (at === rootIno || at === 0) return false;
    at = dirNode(fs, at).parent;
  }
}

/** rename(2): moves an entry, replacing what the destination names when POSIX allows it. */
export function renameEntry(fs: MemoryFs, from: Location, to: Location, nowNs: bigint): number {
  if (from.ino === undefined) return Errno.ENOENT;
  if (from.name === '' || to.name === '') return Errno.EBUSY;
  const source = fsNode(fs, from.ino);
  if (to.mustBeDir && source.kind !== 'dir') return Errno.ENOTDIR;
  if (from.ino === to.ino) return Errno.SUCCESS;
  if (!isLiveDir(fs, to.dir)) return Errno.ENOENT;
  const replaced = to.ino === undefined ? undefined : fsNode(fs, to.ino);
  if (source.kind === 'dir') {
    if (replaced !== undefined && replaced.kind !== 'dir') return Errno.ENOTDIR;
    if (replaced?.kind === 'dir' && replaced.entries.length > 0) return Errno.ENOTEMPTY;
    if (isAncestorOrSelf(fs, from.ino, to.dir)) return Errno.EINVAL;
  } else if (replaced?.kind === 'dir') {
    return Errno.EISDIR;
  }
  if (to.ino !== undefined && replaced !== undefined) {
    removeEntry(fs, to.dir, to.name, nowNs);
    if (replaced.kind === 'dir') replaced.parent = 0;
    else replaced.nlink--;
    collect(fs, to.ino);
  }
  removeEntry(fs, from.dir, from.name, nowNs);
  addEntry(fs, to.dir, to.name, from.ino, nowNs);
  if (source.kind === 'dir') {
    source.parent = to.dir;
    source.name = to.name;
  }
  source.ctimNs = nowNs;
  return Errno.SUCCESS;
}

export function listDirectory(fs: MemoryFs, ino: number): readonly DirEntry[] {
  return dirNode(fs, ino).entries;
}

export function nodeFiletype(node: FsNode): number {
  if (node.kind === 'dir') return Filetype.DIRECTORY;
  if (node.kind === 'symlink') return Filetype.SYMBOLIC_LINK;
  return Filetype.REGULAR_FILE;
}

export function statNode(fs: MemoryFs, ino: number): NodeStat {
  const node = fsNode(fs, ino);
  const times = { atimNs: node.atimNs, mtimNs: node.mtimNs, ctimNs: node.ctimNs };
  if (node.kind === 'file')
    return { filetype: Filetype.REGULAR_FILE, nlink: node.nlink, size: node.size, ...times };
  if (node.kind === 'symlink') {
    const size = new TextEncoder().encode(node.target).length;
    return { filetype: Filetype.SYMBOLIC_LINK, nlink: node.nlink, size, ...times };
  }
  // 1 is the customary "not counted" link count of a directory: it turns off find's leaf optimisation.
  return { filetype: Filetype.DIRECTORY, nlink: node.parent === 0 ? 0 : 1, size: 0, ...times };
}

/** Sets the times a *_set_times call asked for; `undefined` leaves one as it is. */
export function setNodeTimes(
  fs: MemoryFs,
  ino: number,
  atimNs: bigint | undefined,
  mtimNs: bigint | undefined,
  nowNs: bigint,
): void {
  const node = fsNode(fs, ino);
  if (atimNs !== undefined) node.atimNs = atimNs;
  if (mtimNs !== undefined) node.mtimNs = mtimNs;
  node.ctimNs = nowNs;
}

function fileNode(fs: MemoryFs, ino: number): FileNode {
  const node = fsNode(fs, ino);
  assert(node.kind === 'file', `memory-fs: node ${ino} is not a regular file`);
  return node;
}

/** The bytes of a file in [offset, offset + length), clipped at its end; a view, not a copy. */
export function readFile(
  fs: MemoryFs,
  ino: number,
  offset: number,
  length: number,
  nowNs: bigint,
): Uint8Array {
  const node = fileNode(fs, ino);
  node.atimNs = nowNs;
  const start = Math.min(offset, node.size);
  return node.data.subarray(start, Math.min(node.size, start + length));
}

function reserve(node: FileNode, size: number): void {
  if (size <= node.data.length) return;
  // Doubling keeps appends linear; the spare room is bounded by the file size.
  const grown = new Uint8Array(Math.min(memoryFsFileBytesMax, Math.max(size, node.data.length * 2, 64)));
  grown.set(node.data.subarray(0, node.size));
  node.data = grown;
}

/** Writes the chunks one after the other from `offset`, growing the file (holes read as zeros). */
export function writeFile(
  fs: MemoryFs,
  ino: number,
  offset: number,
  chunks: readonly Uint8Array[],
  nowNs: bigint,
): number | { written: number } {
  const node = fileNode(fs, ino);
  const length = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  if (length === 0) return { written: 0 };
  if (offset + length > memoryFsFileBytesMax) return Errno.EFBIG;
  reserve(node, offset + length);
  if (offset > node.size) node.data.fill(0, node.size, offset);
  let at = offset;
  for (const chunk of chunks) {
    node.data.set(chunk, at);
    at += chunk.length;
  }
  node.size = Math.max(node.size, at);
  node.mtimNs = nowNs;
  node.ctimNs = nowNs;
  return { written: length };
}

export function truncateFile(fs: MemoryFs, ino: number, size: number, nowNs: bigint): number {
  const node = fileNode(fs, ino);
  if (size > memoryFsFileBytesMax) return Errno.EFBIG;
  if (size > node.size) {
    reserve(node, size);
    node.data.fill(0, node.size, size);
  }
  node.size = size;
  node.mtimNs = nowNs;
  node.ctimNs = nowNs;
  return Errno.SUCCESS;
}

/** Puts a file at an absolute path, creating the directories above it: how a task's files are given. */
export function putFile(fs: MemoryFs, absolutePath: string, data: Uint8Array, nowNs: bigint): void {
  assert(absolutePath.startsWith('/'), `memory-fs: ${absolutePath} is not an absolute path`);
  const names = normalize([], absolutePath);
  assert(names.length > 0, `memory-fs: ${absolutePath} names the root, not a file`);
  let dir = rootIno;
  for (const name of names.slice(0, -1)) {
    if (findEntry(dirNode(fs, dir), name) === undefined) {
      makeDirectory(fs, { dir, name, ino: undefined, mustBeDir: true }, nowNs);
    }
    const entry = findEntry(dirNode(fs, dir), name);
    assert(
      entry !== undefined && fsNode(fs, entry.ino).kind === 'dir',
      `memory-fs: ${name} is not a directory`,
    );
    dir = entry.ino;
  }
  const name = names[names.length - 1]!;
  assert(findEntry(dirNode(fs, dir), name) === undefined, `memory-fs: ${absolutePath} given twice`);
  const ino = addNode(fs, {
    kind: 'file',
    data: Uint8Array.from(data),
    size: data.length,
    nlink: 1,
    opens: 0,
    atimNs: nowNs,
    mtimNs: nowNs,
    ctimNs: nowNs,
  });
  addEntry(fs, dir, name, ino, nowNs);
}

/** The contents of the regular file at an absolute path (following symlinks), or undefined. */
export function getFile(fs: MemoryFs, absolutePath: string): Uint8Array | undefined {
  const location = resolvePath(fs, rootIno, absolutePath.replace(/^\/+/, ''), true);
  if (typeof location === 'number' || location.ino === undefined) return undefined;
  const node = fsNode(fs, location.ino);
  return node.kind === 'file' ? node.data.slice(0, node.size) : undefined;
}
