/**
 * The node-to-node wire protocol: the one place that defines what two nodes of a cluster say to each
 * other over their TLS connection (transport.ts), and its version. Change nothing here without a new
 * `wireProtocolVersion`.
 *
 * Framing. A connection is a sequence of frames, each a header and a body:
 *
 *   ┌────────────────────┬──────────────────────────────────────────────────────┐
 *   │ N: u32 big-endian  │ N bytes: one CBOR value, a map {k: <kind>, ...}      │
 *   └────────────────────┴──────────────────────────────────────────────────────┘
 *
 * with 1 ≤ N ≤ frameSizeMax. The length comes first so that a receiver refuses an oversized frame
 * from its header alone, before it buffers a byte of it, and decodes a body only once it is whole.
 * The body is exactly one CBOR value (RFC 8949; encoded without cbor-x's record extension): a map whose
 * string field `k` names the kind. Byte strings are CBOR byte strings and decode as Uint8Array.
 *
 * Handshake. The dialer sends `hello`; the acceptor checks the protocol version, the cluster id and
 * that the node name claimed is the one its TLS certificate was issued to, then answers `welcome`
 * (the same fields, about itself) or `reject` and closes. Either side sends `reject` just before it
 * closes a connection over a protocol error. The frame header, the `k` field and the `protocol`
 * field of hello and welcome never change across versions, so that two versions always tell each
 * other apart: NET_PROTOCOL_MISMATCH, not NET_FRAME_MALFORMED.
 *
 * After the handshake: `ping` and `pong` (the transport answers every ping with a pong carrying the
 * same seq and data: a liveness probe and a round-trip measure that do not depend on the layers
 * above), and the IPC kinds.
 *
 * Decoding always validates. Each kind has one schema in `frameSchemas` (unknown fields refused);
 * its TypeScript type follows from it, so a new kind is one entry in that table. A body that does
 * not fit is a NormaError with a stable code, and the receiver closes the connection. The kinds
 * of every message (msg, ack, nack) are also checked by hand first (`hotFrameChecks`, the same
 * rules without zod's per-frame cost); a frame that fails the hand check goes through its schema,
 * which names the problem.
 *
 * Versions: 1, the first; 2, `resume` also answers how many pages the target's stage of the task
 * held already and how many it wrote (`staged`).
 */
import { Decoder, Encoder, type Options } from 'cbor-x';
import { z } from 'zod';
import { NormaError } from '../errors.js';
import {
  controlLineBytesMax,
  frameSizeMax,
  messageDescriptorsMax,
  rejectMessageLengthMax,
} from '../limits.js';

export const wireProtocolVersion = 2;

/** Bytes of the frame header (the body's length). */
export const frameHeaderBytes = 4;

/** Node names: a DNS label (they are the CN and DNS name of the node's certificate). */
export const nodeNamePattern = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** Cluster ids, as `norma cluster init` makes them: 'c-' and 16 hex digits. */
export const clusterIdPattern = /^c-[0-9a-f]{16}$/;
/** A node's incarnation: its kernel id for this run (a restarted node is a new incarnation). */
export const incarnationPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Where a node listens, as peers dial it: host:port, an IPv6 host in brackets. */
const addressPattern = /^(?:\[([0-9A-Fa-f:.]{2,45})\]|([A-Za-z0-9.-]{1,253})):(\d{1,5})$/;
/** Error codes in a `reject`: the shape of src/errors.ts codes (a peer may know codes this node does not). */
const errorCodePattern = /^[A-Z][A-Z0-9_]{0,63}$/;

const handshake = {
  /** The version of this file the sender speaks; checked before anything else. */
  protocol: z.literal(wireProtocolVersion),
  /** The cluster id (cluster.json of the cluster directory). */
  cluster: z.string().regex(clusterIdPattern),
  /** The sender's node name: must equal the CN of its TLS certificate. */
  node: z.string().regex(nodeNamePattern),
  /** The sender's incarnation: a peer that restarts comes back with another one. */
  incarnation: z.string().regex(incarnationPattern),
  /** Where the sender listens (host:port), to be dialed back. */
  address: z.string().regex(addressPattern),
};

/** A port id: `<incarnation>.<serial>`. */
const portId = z.string().min(3).max(256);
const incarnation = z.string().regex(incarnationPattern);
/** Message bytes, as views of the connection's read buffers (no copy). */
const bytes = z.custom<Uint8Array>((value) => value instanceof Uint8Array, 'expected bytes');
const counter = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const callOps = ['find', 'manifest', 'pages', 'blob', 'prepare', 'hand-off', 'prefetch', 'resume'] as const;
/** A right by port id: send ('s') or send-once ('o'); `dead` when its port had died at the sender. */
const wireRight = z
  .object({ kind: z.enum(['s', 'o']), port: portId, dead: z.literal(true).optional() })
  .strict();

const probe = {
  /** Chosen by the sender of the ping, returned in its pong. */
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Returned as is in the pong (empty for a liveness probe; larger to measure a link). */
  data: bytes,
};

/** Every kind of frame, by its `k`: the decoder's table. */
export const frameSchemas = {
  /** Dialer → acceptor, first frame of a connection. */
  hello: z.object({ k: z.literal('hello'), ...handshake }).strict(),
  /** Acceptor → dialer: the handshake succeeded; frames of any kind may follow. */
  welcome: z.object({ k: z.literal('welcome'), ...handshake }).strict(),
  /** The sender closes the connection right after this frame, for the reason `code`. */
  reject: z
    .object({
      k: z.literal('reject'),
      code: z.string().regex(errorCodePattern),
      message: z.string().max(rejectMessageLengthMax),
    })
    .strict(),
  /** Answered by the receiving transport with a pong of the same seq and data. */
  ping: z.object({ k: z.literal('ping'), ...probe }).strict(),
  pong: z.object({ k: z.literal('pong'), ...probe }).strict(),
  // ── NORMA IPC (src/net/norma-ipc.ts). Field names are short: they are the per-message overhead.
  /** A message for `port` (homed at the receiver), sent through a send ('s') or send-once ('o') right. */
  msg: z
    .object({
      k: z.literal('msg'),
      port: portId,
      /** Per sending node and port, from 1: the receiver queues exactly the next one it expects. */
      seq: counter,
      dest: z.enum(['s', 'o']),
      id: z
        .number()
        .int()
        .min(-(2 ** 31))
        .max(2 ** 32 - 1),
      reply: wireRight.nullable(),
      descriptors: z
        .array(
          z.union([
            z.object({ t: z.literal('port'), right: wireRight }).strict(),
            z.object({ t: z.literal('ool'), bytes }).strict(),
          ]),
        )
        .max(messageDescriptorsMax),
      body: bytes,
    })
    .strict(),
  /** Every message for `port` up to `seq` from the receiver of this frame is queued. */
  ack: z.object({ k: z.literal('ack'), port: portId, seq: counter }).strict(),
  /** Not queued from `expected` on: the queue is full (wait for `space`), or the port moved. */
  nack: z
    .object({ k: z.literal('nack'), port: portId, expected: counter, reason: z.enum(['full', 'moved']) })
    .strict(),
  /** The queue of `port` has room again (for a sender that got nack 'full'). */
  space: z.object({ k: z.literal('space'), port: portId }).strict(),
  /** Node `node` got a send right to `port` (homed at the receiver) from the sender of this frame. */
  acquire: z.object({ k: z.literal('acquire'), port: portId, node: incarnation }).strict(),
  /** A send-once right to `port` (homed at the receiver) moved from node `from` to node `to`. */
  'so-move': z.object({ k: z.literal('so-move'), port: portId, from: incarnation, to: incarnation }).strict(),
  /** The sender dropped its proxy of `port`: the `count` send rights it received are all gone. */
  release: z
    .object({
      k: z.literal('release'),
      port: portId,
      count: counter,
      /** On behalf of this node (a release passed on by the port's former home); else the sender. */
      node: incarnation.optional(),
    })
    .strict(),
  /** `port` is dead (it died, or its node does not know it): every right to it is a dead name. */
  dead: z.object({ k: z.literal('dead'), port: portId }).strict(),
  // ── Control requests for another member (`--node`), as lines of src/node/control-protocol.ts.
  ctl: z.object({ k: z.literal('ctl'), id: counter, line: z.string().max(controlLineBytesMax) }).strict(),
  'ctl-res': z
    .object({
      k: z.literal('ctl-res'),
      id: counter,
      line: z.string().max(controlLineBytesMax),
      final: z.boolean(),
    })
    .strict(),
  // ── Calls between node daemons (task migration, src/node/task-mover.ts): `arg` and `value` are
  // checked against `callSchemas` by the side that reads them.
  call: z.object({ k: z.literal('call'), id: counter, op: z.enum(callOps), arg: z.unknown() }).strict(),
  reply: z
    .object({
      k: z.literal('reply'),
      id: counter,
      value: z.unknown().optional(),
      error: z
        .object({
          code: z.string().regex(errorCodePattern),
          message: z.string().max(rejectMessageLengthMax),
          hint: z.string().max(rejectMessageLengthMax).optional(),
        })
        .strict()
        .optional(),
    })
    .strict(),
} as const;

/** How many pages one `pages` call asks for: 128 pages (8 MiB) stay well under frameSizeMax. */
export const pagesPerCallMax = 128;

const snapshotId = z.string().regex(/^[0-9a-f]{1,64}$/);
const holding = z.object({ send: z.number().int(), sendOnce: z.number().int() }).strict();

/** What each call takes and answers. */
export const callSchemas = {
  /** The full id of a snapshot this node's store has under the prefix, or null. */
  find: {
    arg: z.object({ snapshot: snapshotId }).strict(),
    value: z.object({ id: snapshotId.nullable() }).strict(),
  },
  /** A snapshot's manifest as stored (the envelope: checked again by the reader). */
  manifest: { arg: z.object({ id: snapshotId }).strict(), value: z.object({ bytes }).strict() },
  /** Pages by hash, in the order asked. */
  pages: {
    arg: z.object({ hashes: z.array(z.string().regex(/^[0-9a-f]{32}$/)).max(pagesPerCallMax) }).strict(),
    value: z.object({ pages: z.array(bytes).max(pagesPerCallMax) }).strict(),
  },
  /** A blob (a transformed module) by sha256. */
  blob: {
    arg: z.object({ hash: z.string().regex(/^[0-9a-f]{64}$/) }).strict(),
    value: z.object({ bytes }).strict(),
  },
  /** The caller will take the task frozen at `id`: the ports it must record as its own. */
  prepare: {
    arg: z.object({ id: snapshotId }).strict(),
    value: z.object({ ports: z.array(portId) }).strict(),
  },
  /** The task frozen at `id` leaves for the caller: its live IPC state (NormaIpc.handOff). */
  'hand-off': {
    arg: z.object({ id: snapshotId }).strict(),
    value: z
      .object({
        ipc: z.record(z.string(), z.unknown()),
        holdings: z.record(portId, z.record(incarnation, holding)),
        expected: z.record(portId, z.record(incarnation, counter)),
        names: z.array(z.object({ service: z.string().max(256), portId }).strict()),
      })
      .strict(),
  },
  /** Copy the snapshot `id` from the caller ahead of a move (its pre-copy). */
  prefetch: { arg: z.object({ id: snapshotId }).strict(), value: z.object({ pagesSent: counter }).strict() },
  /** Resume the snapshot `id` here (pulling it from the caller): the second half of a move. */
  resume: {
    arg: z.object({ id: snapshotId, precopy: snapshotId.optional() }).strict(),
    value: z
      .object({
        tasks: z.array(z.object({ id: counter, name: z.string().max(64) }).strict()),
        transfer: z
          .object({
            from: z.string().max(64),
            pagesSent: counter,
            pagesSkipped: counter,
            bytesSent: counter,
            ms: z.number(),
          })
          .strict(),
        /** Pages the task staged from the pre-copy held already, and pages the resume wrote. */
        staged: z.object({ pagesKept: counter, pagesWritten: counter }).strict().nullable(),
      })
      .strict(),
  },
} as const;

export type CallOp = keyof typeof callSchemas;
export type CallArg<Op extends CallOp> = z.infer<(typeof callSchemas)[Op]['arg']>;
export type CallValue<Op extends CallOp> = z.infer<(typeof callSchemas)[Op]['value']>;

// ── Hand-written checks of the kinds every message sends (msg, ack, nack). Each accepts exactly what
// its schema in frameSchemas accepts (test/net/wire-protocol.test.ts compares them on valid frames and
// on every kind of damage); zod costs about 1 us a msg frame, these about a tenth of it. Keep the two
// in step: a change to one of these schemas is a change here.

/** zod's object test: a non-null object that is not an array. */
function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Strict objects: every enumerable key (own or inherited, as zod's `for...in`) is a known one. */
function onlyKeys(value: Record<string, unknown>, known: ReadonlySet<string>): boolean {
  for (const key in value) if (!known.has(key)) return false;
  return true;
}

/** `counter`: a safe integer (so finite, not NaN) from 0 up. */
function isCounter(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isPortId(value: unknown): boolean {
  return typeof value === 'string' && value.length >= 3 && value.length <= 256;
}

const wireRightKeys: ReadonlySet<string> = new Set(['kind', 'port', 'dead']);
function isWireRight(value: unknown): boolean {
  return (
    isRecord(value) &&
    onlyKeys(value, wireRightKeys) &&
    (value.kind === 's' || value.kind === 'o') &&
    isPortId(value.port) &&
    (value.dead === undefined || value.dead === true)
  );
}

const portDescriptorKeys: ReadonlySet<string> = new Set(['t', 'right']);
const oolDescriptorKeys: ReadonlySet<string> = new Set(['t', 'bytes']);
function isWireDescriptor(value: unknown): boolean {
  if (!isRecord(value)) return false;
  if (value.t === 'port') return onlyKeys(value, portDescriptorKeys) && isWireRight(value.right);
  if (value.t === 'ool') return onlyKeys(value, oolDescriptorKeys) && value.bytes instanceof Uint8Array;
  return false;
}

const msgKeys: ReadonlySet<string> = new Set([
  'k',
  'port',
  'seq',
  'dest',
  'id',
  'reply',
  'descriptors',
  'body',
]);
const ackKeys: ReadonlySet<string> = new Set(['k', 'port', 'seq']);
const nackKeys: ReadonlySet<string> = new Set(['k', 'port', 'expected', 'reason']);

/**
 * The hand-written checks, by kind, of a decoded map whose `k` is that kind: true exactly when the
 * kind's schema accepts it. Exported for the tests that hold them to the schemas.
 */
export const hotFrameChecks: Readonly<
  Partial<Record<FrameKind, (frame: Record<string, unknown>) => boolean>>
> = {
  msg: (frame) => {
    if (!onlyKeys(frame, msgKeys) || !isPortId(frame.port) || !isCounter(frame.seq)) return false;
    if (frame.dest !== 's' && frame.dest !== 'o') return false;
    const id = frame.id;
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < -(2 ** 31) || id > 2 ** 32 - 1)
      return false;
    if (frame.reply !== null && !isWireRight(frame.reply)) return false;
    const descriptors = frame.descriptors;
    if (!Array.isArray(descriptors) || descriptors.length > messageDescriptorsMax) return false;
    for (let i = 0; i < descriptors.length; i++) if (!isWireDescriptor(descriptors[i])) return false;
    return frame.body instanceof Uint8Array;
  },
  ack: (frame) => onlyKeys(frame, ackKeys) && isPortId(frame.port) && isCounter(frame.seq),
  nack: (frame) =>
    onlyKeys(frame, nackKeys) &&
    isPortId(frame.port) &&
    isCounter(frame.expected) &&
    (frame.reason === 'full' || frame.reason === 'moved'),
};

/** The NORMA IPC frames (what src/net/norma-ipc.ts sends and handles). */
export type IpcFrame = FrameOf<'msg' | 'ack' | 'nack' | 'space' | 'acquire' | 'so-move' | 'release' | 'dead'>;
export type WireRight = z.infer<typeof wireRight>;
export type WireDescriptor = FrameOf<'msg'>['descriptors'][number];

export type FrameKind = keyof typeof frameSchemas;
export type FrameOf<K extends FrameKind> = z.infer<(typeof frameSchemas)[K]>;
export type Frame = { [K in FrameKind]: FrameOf<K> }[FrameKind];
export type Hello = FrameOf<'hello'>;
export type Reject = FrameOf<'reject'>;

/** The kinds that only the handshake and the closing of a connection use. */
export type HandshakeKind = 'hello' | 'welcome' | 'reject';
/** What the layers above send and receive once a connection is established. */
export type PeerFrame = Exclude<Frame, { k: HandshakeKind }>;

// Plain CBOR: no records (their definitions would be state shared between frames), Uint8Array as
// a plain byte string (not tag 64), maps as objects.
const cborOptions: Options = { useRecords: false, mapsAsObjects: true, tagUint8Array: false };
const encoder = new Encoder(cborOptions);
// One decoder for every connection: cbor-x keeps its decoding state in module globals and resets it
// on each decode, so a decoder per connection would isolate nothing.
const decoder = new Decoder(cborOptions);

/**
 * Encodes a frame as the pieces to write one after the other: its header, then its body. Written
 * as they are (Peer gathers the pieces of a turn into one buffer), a large byte string is copied
 * once, out of the message into that buffer. Throws NET_FRAME_TOO_LARGE when the body exceeds
 * frameSizeMax.
 *
 * The body of a `msg` frame of inlineBodyBytesMax or more is not copied into the encoder's buffer:
 * the map is encoded with an empty byte string in its place (the last key, so the last byte) and
 * the byte string's real head and the message's own bytes follow as pieces. The bytes on the wire
 * are exactly what encoding the whole map would give.
 */
export function encodeFrame(frame: Frame): Uint8Array[] {
  if (frame.k === 'msg' && frame.body.length >= inlineBodyBytesMax) {
    const { body, ...rest } = frame;
    // The encoder returns a view of its own buffer that later encodings do not overwrite.
    const prefix = encoder.encode({ ...rest, body: emptyBytes });
    if (endsWithEmptyBody(prefix)) {
      const head = byteStringHead(body.length);
      return withHeader(frame.k, prefix.length - 1 + head.length + body.length, [
        prefix.subarray(0, prefix.length - 1),
        head,
        body,
      ]);
    }
  }
  const body = encoder.encode(frame);
  return withHeader(frame.k, body.length, [body]);
}

/** A msg body from this size on travels as its own piece (below it, one copy is cheaper than three pieces). */
const inlineBodyBytesMax = 4096;
const emptyBytes = new Uint8Array(0);
/** The CBOR of the last entry of a msg map with an empty body: text "body", then bytes of length 0. */
const emptyBodyEntry = Buffer.from([0x64, 0x62, 0x6f, 0x64, 0x79, 0x40]);

function endsWithEmptyBody(encoded: Uint8Array): boolean {
  const tail = encoded.subarray(encoded.length - emptyBodyEntry.length);
  return Buffer.from(tail.buffer, tail.byteOffset, tail.length).equals(emptyBodyEntry);
}

/** The head of a CBOR byte string (major type 2) of `length` bytes (RFC 8949 §3.1). */
function byteStringHead(length: number): Buffer {
  if (length < 24) return Buffer.from([0x40 | length]);
  if (length < 0x100) return Buffer.from([0x58, length]);
  if (length < 0x10000) {
    const head = Buffer.allocUnsafe(3);
    head[0] = 0x59;
    head.writeUInt16BE(length, 1);
    return head;
  }
  const head = Buffer.allocUnsafe(5);
  head[0] = 0x5a;
  head.writeUInt32BE(length, 1);
  return head;
}

function withHeader(kind: FrameKind, bodyBytes: number, pieces: Uint8Array[]): Uint8Array[] {
  if (bodyBytes > frameSizeMax) {
    throw new NormaError(
      'NET_FRAME_TOO_LARGE',
      `a ${kind} frame of ${bodyBytes} bytes is over the limit of ${frameSizeMax} bytes`,
    );
  }
  const header = Buffer.allocUnsafe(frameHeaderBytes);
  header.writeUInt32BE(bodyBytes, 0);
  return [header, ...pieces];
}

function malformed(message: string, cause?: unknown): NormaError {
  return new NormaError('NET_FRAME_MALFORMED', message, cause === undefined ? undefined : { cause });
}

/** Decodes and validates one frame body (without its header). */
export function decodeFrameBody(body: Uint8Array): Frame {
  let value: unknown;
  try {
    // Byte strings decode as views of the input, of its class: a plain Uint8Array view makes them
    // plain Uint8Arrays (not Buffers), as a structured clone of the frame would be.
    value = decoder.decode(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
  } catch (error) {
    throw malformed(`a frame of ${body.length} bytes is not one CBOR value`, error);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw malformed('a frame is not a CBOR map');
  }
  const kind = (value as { k?: unknown }).k;
  if (typeof kind !== 'string' || !Object.hasOwn(frameSchemas, kind)) {
    throw malformed(`unknown frame kind ${JSON.stringify(kind)}`);
  }
  if (kind === 'hello' || kind === 'welcome') {
    const protocol = (value as { protocol?: unknown }).protocol;
    if (typeof protocol === 'number' && protocol !== wireProtocolVersion) {
      throw new NormaError(
        'NET_PROTOCOL_MISMATCH',
        `the peer speaks wire protocol version ${protocol}; this node speaks version ${wireProtocolVersion}`,
      );
    }
  }
  // The hot kinds pass their hand check as they are (the schema's copy would be the same fields);
  // whatever fails it goes through the schema, for the names of its problems.
  if (hotFrameChecks[kind as FrameKind]?.(value as Record<string, unknown>) === true) return value as Frame;
  const checked = frameSchemas[kind as FrameKind].safeParse(value);
  if (!checked.success) {
    const problems = checked.error.issues.map((i) => `${i.path.join('.') || 'frame'}: ${i.message}`);
    throw malformed(`bad ${kind} frame: ${problems.join('; ')}`);
  }
  return checked.data;
}

/**
 * Splits one connection's byte stream into validated frames, whatever the chunks: a frame split
 * across chunks, or many frames in one. The first bad frame throws (NET_FRAME_MALFORMED,
 * NET_FRAME_TOO_LARGE, NET_PROTOCOL_MISMATCH) and the decoder stays failed: the connection is to
 * be closed, and the frames decoded from the same chunk before the bad one are dropped with it (a
 * stream that breaks the protocol is not trusted around the break).
 */
export class FrameDecoder {
  // One per connection: the framing state of its byte stream (the CBOR decoder is shared, see above).
  readonly #header = Buffer.alloc(frameHeaderBytes);
  #headerBytes = 0;
  /** The length of the body being read, or -1 while reading a header. */
  #bodyBytes = -1;
  /** The parts of a body that spans chunks (views of the chunks: copied once, when complete). */
  #parts: Uint8Array[] = [];
  #partBytes = 0;
  #failure: NormaError | null = null;

  /** Bytes of a frame begun and not finished: 0 when the stream is between two frames. */
  get pendingBytes(): number {
    return this.#headerBytes + this.#partBytes;
  }

  push(chunk: Uint8Array): Frame[] {
    if (this.#failure !== null) throw this.#failure;
    try {
      return this.#push(chunk);
    } catch (error) {
      if (error instanceof NormaError) this.#failure = error;
      throw error;
    }
  }

  /** The stream ended: throws NET_FRAME_MALFORMED if it ended inside a frame. */
  end(): void {
    if (this.#failure !== null) throw this.#failure;
    if (this.pendingBytes > 0) {
      this.#failure = malformed(
        this.#bodyBytes === -1
          ? `the stream ended inside a frame header (${this.#headerBytes} of ${frameHeaderBytes} bytes)`
          : `the stream ended ${this.#partBytes} bytes into a frame of ${this.#bodyBytes} bytes`,
      );
      throw this.#failure;
    }
  }

  #push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#bodyBytes === -1) {
        const take = Math.min(frameHeaderBytes - this.#headerBytes, chunk.length - offset);
        this.#header.set(chunk.subarray(offset, offset + take), this.#headerBytes);
        this.#headerBytes += take;
        offset += take;
        if (this.#headerBytes < frameHeaderBytes) break;
        const length = this.#header.readUInt32BE(0);
        if (length === 0) throw malformed('a frame of length 0');
        if (length > frameSizeMax) {
          throw new NormaError(
            'NET_FRAME_TOO_LARGE',
            `the peer announced a frame of ${length} bytes; the limit is ${frameSizeMax}`,
          );
        }
        this.#bodyBytes = length;
        continue;
      }
      const take = Math.min(this.#bodyBytes - this.#partBytes, chunk.length - offset);
      const part = chunk.subarray(offset, offset + take);
      offset += take;
      if (this.#partBytes === 0 && take === this.#bodyBytes) {
        frames.push(decodeFrameBody(part));
      } else {
        this.#parts.push(part);
        this.#partBytes += take;
        if (this.#partBytes < this.#bodyBytes) break;
        const body = Buffer.concat(this.#parts, this.#bodyBytes);
        this.#parts = [];
        this.#partBytes = 0;
        frames.push(decodeFrameBody(body));
      }
      this.#bodyBytes = -1;
      this.#headerBytes = 0;
    }
    return frames;
  }
}

/** Splits a node address (host:port, [v6]:port) for dialing; null when it is not one. */
export function parseNodeAddress(address: string): { host: string; port: number } | null {
  const match = addressPattern.exec(address);
  if (match === null) return null;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return null;
  return { host: (match[1] ?? match[2])!, port };
}

/** The address of a listening socket as peers dial it. */
export function formatNodeAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
