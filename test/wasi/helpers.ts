// Shared by the WASI tests: running a binary under norma's WASI and under Node's node:wasi, a host
// with settable clocks, and a guest-side API for calling WASI functions by hand.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rights } from '../../src/wasi/errno.js';
import {
  Wasi,
  WasiExit,
  type WasiHost,
  type WasiModuleName,
  wasiFunctionNames,
  wasiFunctionSignature,
  wasiImportObject,
} from '../../src/wasi/wasi.js';
import { createWasiState } from '../../src/wasi/wasi-state.js';
import type { RunnerConfig, RunnerResult } from './node-wasi-runner.js';

/** The repository root: the tests run from dist/test/wasi. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export function fixture(relative: string): string {
  return path.join(repoRoot, relative);
}

/** A host whose clocks only move when a test moves them, and whose randomness is a fixed sequence. */
export class TestHost implements WasiHost {
  realtime = 1_700_000_000_000_000_000n;
  monotonic = 5_000_000_000n;
  readonly stdoutChunks: Uint8Array[] = [];
  readonly stderrChunks: Uint8Array[] = [];
  private randomState = 1;

  constructor(readonly memory: () => Uint8Array) {}

  stdout(bytes: Uint8Array): void {
    this.stdoutChunks.push(bytes);
  }

  stderr(bytes: Uint8Array): void {
    this.stderrChunks.push(bytes);
  }

  realtimeNs(): bigint {
    return this.realtime;
  }

  monotonicNs(): bigint {
    return this.monotonic;
  }

  randomFill(target: Uint8Array): void {
    for (let i = 0; i < target.length; i++) {
      this.randomState = (Math.imul(this.randomState, 1103515245) + 12345) >>> 0;
      target[i] = this.randomState >>> 24;
    }
  }
}

export interface RunOptions {
  args: string[];
  env?: Record<string, string>;
  stdin?: string;
  files?: Record<string, Uint8Array>;
  /** Files the program writes that runWithNode should return (paths inside the sandbox). */
  collect?: string[];
}

export interface RunResult {
  stdout: Buffer;
  stderr: Buffer;
  end: RunnerResult;
  /** The collected files (runWithNode only). */
  files?: Record<string, Buffer>;
}

function stubForeignImports(module: WebAssembly.Module, imports: WebAssembly.Imports): void {
  for (const entry of WebAssembly.Module.imports(module)) {
    if (entry.kind !== 'function' || entry.module.startsWith('wasi')) continue;
    imports[entry.module] = { ...imports[entry.module], [entry.name]: () => 0 };
  }
}

/** Runs a WASI command with norma's WASI, plainly instantiated, all of stdin given up front. */
export async function runWithNorma(wasmPath: string, options: RunOptions): Promise<RunResult> {
  const state = createWasiState({
    args: options.args,
    env: options.env ?? {},
    files: options.files ?? {},
    stdin: Buffer.from(options.stdin ?? ''),
    stdinClosed: true,
  });
  let memory: WebAssembly.Memory | undefined;
  const host = new TestHost(() => new Uint8Array(memory?.buffer ?? new ArrayBuffer(0)));
  const module = await WebAssembly.compile(readFileSync(wasmPath));
  const imports = wasiImportObject(new Wasi(state, host));
  stubForeignImports(module, imports);
  const instance = await WebAssembly.instantiate(module, imports);
  memory = instance.exports.memory as WebAssembly.Memory;
  let end: RunnerResult;
  try {
    (instance.exports._start as () => void)();
    end = { exitCode: 0 };
  } catch (error) {
    end = error instanceof WasiExit ? { exitCode: error.code } : { trap: (error as Error).message };
  }
  return { stdout: Buffer.concat(host.stdoutChunks), stderr: Buffer.concat(host.stderrChunks), end };
}

/** Runs the same command under Node's node:wasi in a child process, capturing its stdout and stderr. */
export function runWithNode(wasmPath: string, options: RunOptions): RunResult {
  const dir = mkdtempSync(path.join(tmpdir(), 'norma-wasi-'));
  try {
    const root = path.join(dir, 'root');
    mkdirSync(root);
    for (const [file, data] of Object.entries(options.files ?? {})) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), data);
    }
    const module = new WebAssembly.Module(readFileSync(wasmPath));
    const unstable = WebAssembly.Module.imports(module).some((entry) => entry.module === 'wasi_unstable');
    const config: RunnerConfig = {
      wasm: wasmPath,
      version: unstable ? 'unstable' : 'preview1',
      args: options.args,
      env: options.env ?? {},
      root,
      resultFile: path.join(dir, 'result.json'),
    };
    const runner = fileURLToPath(new URL('./node-wasi-runner.js', import.meta.url));
    const child = spawnSync(process.execPath, ['--no-warnings', runner, JSON.stringify(config)], {
      input: options.stdin ?? '',
      maxBuffer: 64 * 1024 * 1024,
    });
    if (child.status !== 0) throw new Error(`node-wasi-runner failed: ${child.stderr.toString()}`);
    const end = JSON.parse(readFileSync(config.resultFile, 'utf8')) as RunnerResult;
    const files = Object.fromEntries(
      (options.collect ?? []).map((file) => [file, readFileSync(path.join(root, file))]),
    );
    return { stdout: child.stdout, stderr: child.stderr, end, files };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A module that imports every function of a WASI module and exports it unchanged, with a memory. */
export async function reexportModule(module: WasiModuleName): Promise<WebAssembly.Module> {
  const { default: binaryen } = await import('binaryen');
  const functions = wasiFunctionNames.flatMap((name) => {
    const signature = wasiFunctionSignature(module, name);
    if (signature === undefined) return [];
    const params = signature.params.length > 0 ? `(param ${signature.params.join(' ')})` : '';
    const results = signature.results.length > 0 ? `(result ${signature.results.join(' ')})` : '';
    return [
      `(import "${module}" "${name}" (func $${name} ${params} ${results}))`,
      `(export "${name}" (func $${name}))`,
    ];
  });
  const parsed = binaryen.parseText(`(module ${functions.join('\n')} (memory (export "memory") 2))`);
  try {
    return new WebAssembly.Module(parsed.emitBinary() as Uint8Array<ArrayBuffer>);
  } finally {
    parsed.dispose();
  }
}

type WasiExport = (...args: (number | bigint)[]) => number;

const writeRights = Rights.FD_DATASYNC | Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE;
const readRights = Rights.FD_READ | Rights.FD_READDIR;

/**
 * Calls WASI functions the way a guest does, through the exports of an instance of `reexportModule`:
 * arguments go into its memory, results are read back. Results go at 0..255, strings from 256 on.
 */
export class GuestApi {
  private readonly exports: Record<string, WasiExport>;
  private readonly memory: WebAssembly.Memory;
  private scratch = 256;

  constructor(instance: WebAssembly.Instance) {
    this.exports = instance.exports as unknown as Record<string, WasiExport>;
    this.memory = instance.exports.memory as WebAssembly.Memory;
  }

  get view(): DataView {
    return new DataView(this.memory.buffer);
  }

  call(name: string, ...args: (number | bigint)[]): number {
    const fn = this.exports[name];
    if (fn === undefined) throw new Error(`no export ${name}`);
    const errno = fn(...args);
    this.scratch = 256;
    return errno;
  }

  /** Copies bytes into memory for the next call; returns [pointer, length]. */
  put(data: string | Uint8Array): [number, number] {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const at = this.scratch;
    new Uint8Array(this.memory.buffer).set(bytes, at);
    this.scratch += bytes.length + 8 - (bytes.length % 8);
    return [at, bytes.length];
  }

  /** path_open with the rights wasi-libc would ask for: the directory's inheriting rights minus read or write. */
  open(
    dirFd: number,
    path: string,
    options: { oflags?: number; read?: boolean; write?: boolean; fdflags?: number; follow?: boolean } = {},
  ): { errno: number; fd: number } {
    const { oflags = 0, read = true, write = false, fdflags = 0, follow = true } = options;
    const stat = this.fdstat(dirFd);
    let rights = stat.rightsInheriting;
    if (!read) rights &= ~readRights;
    if (!write) rights &= ~writeRights;
    const [p, l] = this.put(path);
    const errno = this.call(
      'path_open',
      dirFd,
      follow ? 1 : 0,
      p,
      l,
      oflags,
      rights,
      stat.rightsInheriting,
      fdflags,
      0,
    );
    return { errno, fd: errno === 0 ? this.view.getUint32(0, true) : -1 };
  }

  fdstat(fd: number): {
    errno: number;
    filetype: number;
    flags: number;
    rightsBase: bigint;
    rightsInheriting: bigint;
  } {
    const errno = this.call('fd_fdstat_get', fd, 0);
    const view = this.view;
    return {
      errno,
      filetype: view.getUint8(0),
      flags: view.getUint16(2, true),
      rightsBase: view.getBigUint64(8, true),
      rightsInheriting: view.getBigUint64(16, true),
    };
  }

  write(fd: number, data: string, at?: bigint): { errno: number; count: number } {
    const [p, l] = this.put(data);
    const [iov] = this.put(new Uint8Array(new Uint32Array([p, l]).buffer));
    const errno =
      at === undefined ? this.call('fd_write', fd, iov, 1, 0) : this.call('fd_pwrite', fd, iov, 1, at, 0);
    return { errno, count: this.view.getUint32(0, true) };
  }

  read(fd: number, length: number, at?: bigint): { errno: number; text: string } {
    const buffer = 4096;
    const [iov] = this.put(new Uint8Array(new Uint32Array([buffer, length]).buffer));
    const errno =
      at === undefined ? this.call('fd_read', fd, iov, 1, 0) : this.call('fd_pread', fd, iov, 1, at, 0);
    const count = errno === 0 ? this.view.getUint32(0, true) : 0;
    return { errno, text: Buffer.from(this.memory.buffer, buffer, count).toString() };
  }

  seek(fd: number, offset: bigint, whence: number): { errno: number; position: bigint } {
    const errno = this.call('fd_seek', fd, offset, whence, 0);
    return { errno, position: errno === 0 ? this.view.getBigUint64(0, true) : -1n };
  }

  pathCall(name: string, fd: number, path: string): number {
    const [p, l] = this.put(path);
    return this.call(name, fd, p, l);
  }

  rename(fd: number, from: string, to: string): number {
    const [p1, l1] = this.put(from);
    const [p2, l2] = this.put(to);
    return this.call('path_rename', fd, p1, l1, fd, p2, l2);
  }

  symlink(target: string, fd: number, path: string): number {
    const [p1, l1] = this.put(target);
    const [p2, l2] = this.put(path);
    return this.call('path_symlink', p1, l1, fd, p2, l2);
  }

  link(fd: number, from: string, to: string): number {
    const [p1, l1] = this.put(from);
    const [p2, l2] = this.put(to);
    return this.call('path_link', fd, 0, p1, l1, fd, p2, l2);
  }

  readlink(fd: number, path: string, length: number): { errno: number; text: string } {
    const [p, l] = this.put(path);
    const buffer = 4096;
    const errno = this.call('path_readlink', fd, p, l, buffer, length, 0);
    const count = errno === 0 ? this.view.getUint32(0, true) : 0;
    return { errno, text: Buffer.from(this.memory.buffer, buffer, count).toString() };
  }

  /** path_filestat_get, preview1 layout. */
  stat(
    fd: number,
    path: string,
    follow = true,
  ): { errno: number; filetype: number; nlink: bigint; size: bigint } {
    const [p, l] = this.put(path);
    const errno = this.call('path_filestat_get', fd, follow ? 1 : 0, p, l, 0);
    const view = this.view;
    return errno !== 0
      ? { errno, filetype: 0, nlink: 0n, size: 0n }
      : {
          errno,
          filetype: view.getUint8(16),
          nlink: view.getBigUint64(24, true),
          size: view.getBigUint64(32, true),
        };
  }

  /** Every name fd_readdir lists, read with a small buffer so that entries are cut and re-read. */
  readdir(fd: number): { errno: number; names: string[] } {
    const names: string[] = [];
    let cookie = 0n;
    for (;;) {
      const buffer = 4096;
      const length = 64;
      const errno = this.call('fd_readdir', fd, buffer, length, cookie, 0);
      if (errno !== 0) return { errno, names };
      const used = this.view.getUint32(0, true);
      let at = 0;
      let progressed = false;
      while (at + 24 <= used) {
        const nameLength = this.view.getUint32(buffer + at + 16, true);
        if (at + 24 + nameLength > used) break;
        cookie = this.view.getBigUint64(buffer + at, true);
        names.push(Buffer.from(this.memory.buffer, buffer + at + 24, nameLength).toString());
        at += 24 + nameLength;
        progressed = true;
      }
      if (used < length) return { errno, names };
      if (!progressed) throw new Error('fd_readdir: an entry does not fit 64 bytes');
    }
  }
}
