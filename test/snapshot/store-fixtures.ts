/**
 * Test data for the snapshot store: seeded pseudo-random pages, a valid manifest of one task that
 * refers to them, and temporary store directories. Also used by the crash-test child process.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type PageRef,
  type SnapshotManifest,
  snapshotFormatVersion,
  snapshotPageBytes,
} from '../../src/snapshot/format.js';
import { blobHash, type PageHasher } from '../../src/snapshot/page-hash.js';

/** A small seeded PRNG (mulberry32): the same seed gives the same pages and the same kill times. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A page of pseudo-random bytes determined by `seed`; `compressible` makes it mostly repetitive. */
export function makePage(seed: number, compressible = false): Uint8Array {
  const page = new Uint8Array(snapshotPageBytes);
  const view = new Uint32Array(page.buffer);
  const next = prng(seed * 2654435761 + 1);
  if (compressible) {
    for (let i = 0; i < view.length; i++) view[i] = i % 64 === 0 ? (next() * 2 ** 32) >>> 0 : i & 0xff;
  } else {
    for (let i = 0; i < view.length; i++) view[i] = (next() * 2 ** 32) >>> 0;
  }
  return page;
}

export interface TestPage {
  hash: string;
  bytes: Uint8Array;
}

export function makePages(hasher: PageHasher, seeds: readonly number[], compressible = false): TestPage[] {
  return seeds.map((seed) => {
    const bytes = makePage(seed, compressible);
    return { hash: hasher.hash(bytes), bytes };
  });
}

/** A stand-in for a transformed module: any bytes do, the store only names them by sha256. */
export function makeBlob(seed: number, length = 3000): { hash: string; bytes: Uint8Array } {
  const bytes = new Uint8Array(length);
  const next = prng(seed + 77);
  for (let i = 0; i < length; i++) bytes[i] = (next() * 256) | 0;
  return { hash: blobHash(bytes), bytes };
}

export function newId(): string {
  return randomBytes(8).toString('hex');
}

/** A valid manifest of one task whose memory is `pages` (null for zero pages). */
export function makeManifest(options: {
  pages: readonly PageRef[];
  moduleHash: string;
  id?: string;
  label?: string;
  parent?: string | null;
  createdAtMs?: number;
}): SnapshotManifest {
  return {
    format: 'norma.snapshot',
    version: snapshotFormatVersion,
    id: options.id ?? newId(),
    createdAtMs: options.createdAtMs ?? Date.now(),
    kind: 'task',
    label: options.label ?? 'test-task',
    parent: options.parent ?? null,
    node: { id: 'node-test' },
    tasks: [
      {
        state: {
          id: 1,
          name: options.label ?? 'test-task',
          moduleHash: options.moduleHash,
          preemptible: false,
          status: 'running',
          exit: null,
          threads: [
            {
              id: 1,
              calls: ['_start'],
              callIndex: 0,
              arg: null,
              status: 'blocked',
              // A Buffer: decoding gives byte strings back as Buffers, so deepEqual compares like with like.
              frames: Buffer.from([1, 2, 3, 4]),
              stackPointer: 65536,
              wait: { kind: 'sleep', deadlineNs: 1_000_000n },
              wake: null,
            },
          ],
          nextThreadId: 2,
          clock: { monotonicAtAdoptNs: 42n },
          random: { words: [1, 2, 3, 4] },
          wasi: { version: 1, args: ['test-task'], env: [] },
        },
        module: {
          originalHash: options.moduleHash,
          imageHash: options.moduleHash,
          info: {
            transformVersion: 1,
            hiddenPages: 2,
            preemptible: false,
            memoryExport: 'memory',
            mutableGlobals: [{ exportName: 'norma_global_0', name: '__stack_pointer', type: 'i32' }],
            stackPointerExport: 'norma_global_0',
            hiddenOffsetExport: 'norma_hidden_offset',
            initExports: [],
            imports: [
              {
                module: 'wasi_snapshot_preview1',
                name: 'fd_write',
                params: ['i32', 'i32', 'i32', 'i32'],
                results: ['i32'],
              },
            ],
            threadEntries: ['_start'],
          },
        },
        memory: { visibleBytes: options.pages.length * snapshotPageBytes, pages: [...options.pages] },
        globals: [{ exportName: 'norma_global_0', type: 'i32', value: 65536 }],
      },
    ],
    ipc: {},
    names: [],
    memoryObjects: { objects: [], mappings: [] },
  };
}

/** A fresh temporary directory for a store (removed by the test's after hook). */
export function tempDirectory(prefix = 'norma-store-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
