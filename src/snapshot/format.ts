/**
 * The snapshot format: the one place that defines what a frozen task is on disk, and its version.
 * docs/FORMAT.md logs every version; a change here that changes bytes is a new version there.
 *
 * A snapshot is a **manifest** plus **pages**. The manifest is a CBOR document (deterministic
 * encoding: decode then re-encode is byte-identical) in an envelope that carries a magic, the format
 * version and a checksum of the payload. It records everything about the tasks except the contents
 * of their memory, which are split into pages of `snapshotPageBytes`: an all-zero page is recorded as
 * `null` and never stored; any other page is named by the xxh128 hash of its bytes and stored once,
 * whichever snapshot refers to it (so a second snapshot of a task writes only the pages that changed).
 * The transformed module is stored the same way, as a blob named by its sha256.
 *
 * Envelope (little-endian):
 *   0  8 bytes  magic "NORMASNP"
 *   8  u32      format version (snapshotFormatVersion)
 *  12  u32      flags, 0
 *  16  u64      payload length in bytes
 *  24  16 bytes xxh128 of the payload
 *  40  payload  CBOR manifest
 */
import { Encoder } from 'cbor-x';
import { z } from 'zod';
import { NormaError } from '../errors.js';
import type { PageHasher } from './page-hash.js';

/** A whole snapshot id: 16 lower-case hex digits (a prefix of one names it on the command line). */
export const snapshotIdPattern = /^[0-9a-f]{16}$/;
export const snapshotFormatVersion = 1;
export const snapshotMagic = 'NORMASNP';
export const envelopeHeaderBytes = 40;

/** Bytes of one page: the WebAssembly page, so a memory is always a whole number of them. */
export const snapshotPageBytes = 65536;

/** A page reference: 32 lowercase hex digits (xxh128), or null for an all-zero page. */
export type PageRef = string | null;

export const pageHashPattern = /^[0-9a-f]{32}$/;
export const blobHashPattern = /^[0-9a-f]{64}$/;

/**
 * cbor-x set up for a stable format: no record extension (its structures depend on encoding
 * order), byte strings for byte arrays, bigints as 64-bit integers (and decoded as bigints), plain
 * objects as maps. Numbers above 2^32 encode as float64 and decode as numbers, so types survive.
 */
export const cbor = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  // Not in cbor-x's typings (1.6.9) but honoured: 64-bit integers decode as bigints.
  ...({ int64AsType: 'bigint' } as object),
});

// ---------------------------------------------------------------------------------------------
// The manifest. Types mirror the kernel's plain-data state; the schemas check what resume relies on.
// ---------------------------------------------------------------------------------------------

const bytes = z.custom<Uint8Array>((value) => value instanceof Uint8Array, 'expected a byte string');
const pageRef = z.union([z.string().regex(pageHashPattern), z.null()]);
const valueType = z.enum(['i32', 'i64', 'f32', 'f64', 'v128', 'ref']);

const waitSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('yield'), result: z.union([z.number(), z.bigint(), z.null()]) }),
  z.object({
    kind: z.literal('receive'),
    name: z.number(),
    portId: z.string(),
    deadlineNs: z.bigint().nullable(),
  }),
  z.object({ kind: z.literal('send'), portId: z.string(), deadlineNs: z.bigint().nullable() }),
  z.object({ kind: z.literal('sleep'), deadlineNs: z.bigint() }),
  z.object({ kind: z.literal('join'), threadId: z.number(), deadlineNs: z.bigint().nullable() }),
  z.object({ kind: z.literal('lookup'), service: z.string(), deadlineNs: z.bigint().nullable() }),
  z.object({ kind: z.literal('acquire'), objectId: z.number(), deadlineNs: z.bigint().nullable() }),
  z.object({ kind: z.literal('stdin') }),
]);

const threadSchema = z.object({
  id: z.number().int().nonnegative(),
  calls: z.array(z.string()).min(1),
  callIndex: z.number().int().nonnegative(),
  arg: z.number().nullable(),
  status: z.enum(['runnable', 'blocked', 'exited']),
  frames: bytes.nullable(),
  stackPointer: z.number().nullable(),
  wait: waitSchema.nullable(),
  wake: z.enum(['event', 'timeout']).nullable(),
});

const taskStateSchema = z.object({
  id: z.number().int().positive(),
  name: z.string(),
  moduleHash: z.string().regex(blobHashPattern),
  preemptible: z.boolean(),
  status: z.literal('running'),
  exit: z.null(),
  threads: z.array(threadSchema).min(1),
  nextThreadId: z.number().int().positive(),
  clock: z.object({ monotonicAtAdoptNs: z.bigint() }),
  random: z.object({ words: z.tuple([z.number(), z.number(), z.number(), z.number()]) }),
  // The WASI state is validated by the WASI module itself (see validateWasiState).
  wasi: z.record(z.string(), z.unknown()),
});

const transformInfoSchema = z.object({
  transformVersion: z.number(),
  hiddenPages: z.number().int().positive(),
  preemptible: z.boolean(),
  memoryExport: z.string(),
  mutableGlobals: z.array(z.object({ exportName: z.string(), name: z.string(), type: valueType })),
  stackPointerExport: z.string().nullable(),
  hiddenOffsetExport: z.string(),
  initExports: z.array(z.string()),
  imports: z.array(
    z.object({
      module: z.string(),
      name: z.string(),
      params: z.array(valueType),
      results: z.array(valueType),
    }),
  ),
  threadEntries: z.array(z.string()),
});

const taskRecordSchema = z.object({
  state: taskStateSchema,
  module: z.object({
    /** sha256 of the original module (what the user ran). */
    originalHash: z.string().regex(blobHashPattern),
    /** sha256 of the transformed module, stored as a blob: frames only make sense in that exact code. */
    imageHash: z.string().regex(blobHashPattern),
    info: transformInfoSchema,
  }),
  memory: z.object({
    /** Guest-visible bytes (a multiple of snapshotPageBytes); the hidden pages are not saved. */
    visibleBytes: z.number().int().nonnegative().multipleOf(snapshotPageBytes),
    /** One reference per page of visible memory. */
    pages: z.array(pageRef),
  }),
  globals: z.array(
    z.object({
      exportName: z.string(),
      type: z.enum(['i32', 'i64', 'f32', 'f64']),
      value: z.union([z.number(), z.bigint()]),
    }),
  ),
});

const memoryObjectsSchema = z.object({
  objects: z.array(
    z.object({
      id: z.number().int().positive(),
      size: z.number().int().positive().multipleOf(snapshotPageBytes),
      portId: z.string(),
      pages: z.array(pageRef),
    }),
  ),
  mappings: z.array(
    z.object({
      id: z.number().int().positive(),
      task: z.number().int().positive(),
      objectId: z.number().int().positive(),
      offset: z.number().int().nonnegative(),
      size: z.number().int().positive(),
      address: z.number().int().nonnegative(),
      acquired: z.number().int(),
    }),
  ),
});

export const manifestSchema = z.object({
  format: z.literal('norma.snapshot'),
  version: z.literal(snapshotFormatVersion),
  /** 16 lowercase hex digits, random; users may type any unique prefix. */
  id: z.string().regex(snapshotIdPattern),
  createdAtMs: z.number(),
  /** One task, or a consistent group of tasks frozen together (a node suspend). */
  kind: z.enum(['task', 'group']),
  /** A label for listings: the task name, or the node's for a group. */
  label: z.string(),
  /** The previous snapshot of the same task or group, if any (pages are shared by content). */
  parent: z.string().nullable(),
  node: z.object({ id: z.string() }),
  tasks: z.array(taskRecordSchema).min(1),
  /** The IPC state of these tasks: their spaces, the ports they receive on, queued messages. */
  ipc: z.record(z.string(), z.unknown()),
  /** Name-service registrations of ports in the snapshot. */
  names: z.array(z.object({ service: z.string(), portId: z.string() })),
  memoryObjects: memoryObjectsSchema,
});

export type SnapshotManifest = z.infer<typeof manifestSchema>;
export type TaskRecord = z.infer<typeof taskRecordSchema>;

/** Every page hash a manifest refers to (memories and memory objects), without duplicates. */
export function referencedPages(manifest: SnapshotManifest): Set<string> {
  const pages = new Set<string>();
  for (const task of manifest.tasks) for (const page of task.memory.pages) if (page !== null) pages.add(page);
  for (const object of manifest.memoryObjects.objects)
    for (const page of object.pages) if (page !== null) pages.add(page);
  return pages;
}

/** Every blob (transformed module) a manifest refers to. */
export function referencedBlobs(manifest: SnapshotManifest): Set<string> {
  return new Set(manifest.tasks.map((task) => task.module.imageHash));
}

// ---------------------------------------------------------------------------------------------
// The envelope. Decoding always validates; every failure is a NormaError with a stable code.
// ---------------------------------------------------------------------------------------------

export function encodeManifest(manifest: SnapshotManifest, hasher: PageHasher): Uint8Array {
  const payload = cbor.encode(manifest) as Uint8Array;
  const out = new Uint8Array(envelopeHeaderBytes + payload.length);
  const view = new DataView(out.buffer);
  out.set(Buffer.from(snapshotMagic, 'latin1'), 0);
  view.setUint32(8, snapshotFormatVersion, true);
  view.setUint32(12, 0, true);
  view.setBigUint64(16, BigInt(payload.length), true);
  out.set(Buffer.from(hasher.hash(payload), 'hex'), 24);
  out.set(payload, envelopeHeaderBytes);
  return out;
}

const corrupt = (what: string): NormaError =>
  new NormaError('SNAPSHOT_CORRUPT', `the snapshot manifest ${what}`);

export function decodeManifest(envelope: Uint8Array, hasher: PageHasher): SnapshotManifest {
  if (envelope.length < envelopeHeaderBytes) throw corrupt(`is truncated (${envelope.length} bytes)`);
  if (Buffer.from(envelope.subarray(0, 8)).toString('latin1') !== snapshotMagic) {
    throw corrupt('does not start with NORMASNP (not a norma snapshot)');
  }
  const view = new DataView(envelope.buffer, envelope.byteOffset, envelope.byteLength);
  const version = view.getUint32(8, true);
  if (version !== snapshotFormatVersion) {
    throw new NormaError(
      'SNAPSHOT_VERSION_UNSUPPORTED',
      `the snapshot has format version ${version}; this norma reads version ${snapshotFormatVersion}`,
    );
  }
  if (view.getUint32(12, true) !== 0) throw corrupt('has unknown flags');
  const length = view.getBigUint64(16, true);
  if (length !== BigInt(envelope.length - envelopeHeaderBytes)) {
    throw corrupt(
      `is truncated or padded (payload of ${envelope.length - envelopeHeaderBytes} bytes, header says ${length})`,
    );
  }
  const payload = envelope.subarray(envelopeHeaderBytes);
  if (hasher.hash(payload) !== Buffer.from(envelope.subarray(24, 40)).toString('hex')) {
    throw corrupt('fails its checksum (damaged on disk or in transit)');
  }
  let decoded: unknown;
  try {
    decoded = cbor.decode(payload);
  } catch (error) {
    throw corrupt(`is not valid CBOR: ${(error as Error).message}`);
  }
  const parsed = manifestSchema.safeParse(decoded);
  if (!parsed.success) throw corrupt(`is malformed: ${z.prettifyError(parsed.error)}`);
  return decoded as SnapshotManifest;
}
