import { strict as assert } from 'node:assert';
import { Decoder, Encoder } from 'cbor-x';
import { isNormaError } from '../../src/errors.js';
import { frameSizeMax, messageDescriptorsMax } from '../../src/limits.js';
import {
  decodeFrameBody,
  encodeFrame,
  type Frame,
  FrameDecoder,
  type FrameKind,
  frameHeaderBytes,
  frameSchemas,
  hotFrameChecks,
  parseNodeAddress,
  wireProtocolVersion,
} from '../../src/net/wire-protocol.js';

const hello: Frame = {
  k: 'hello',
  protocol: wireProtocolVersion,
  cluster: 'c-0123456789abcdef',
  node: 'n1',
  incarnation: 'n1-1a2b3c4d',
  address: '127.0.0.1:7000',
};

/** A frame as bytes on the wire: header and body. */
function wire(frame: Frame): Buffer {
  return Buffer.concat(encodeFrame(frame));
}

function msgWithBody(body: Uint8Array): Frame {
  return {
    k: 'msg',
    port: 'n1-1a2b3c4d.7',
    seq: 9,
    dest: 's',
    id: 1234,
    reply: { kind: 'o', port: 'n2-5e6f7a8b.3' },
    descriptors: [{ t: 'port', right: { kind: 's', port: 'n3-99aabbcc.1' } }],
    body,
  };
}

/** A frame whose body is whatever CBOR value (or bytes) a broken peer might send. */
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
function rawFrame(body: Uint8Array): Buffer {
  const header = Buffer.alloc(frameHeaderBytes);
  header.writeUInt32BE(body.length);
  return Buffer.concat([header, body]);
}
function rawValue(value: unknown): Buffer {
  return rawFrame(cbor.encode(value));
}

function decodeAll(...chunks: Uint8Array[]): Frame[] {
  const decoder = new FrameDecoder();
  const frames = chunks.flatMap((chunk) => decoder.push(chunk));
  decoder.end();
  return frames;
}

/** Runs `f`, which must throw a NormaError with `code`, and returns its message. */
function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (error) {
    if (isNormaError(error)) return `${error.code}: ${error.message}`;
    throw error;
  }
  assert.fail('did not throw');
}

describe('wire protocol: frames', () => {
  const frames: Frame[] = [
    hello,
    { ...hello, k: 'welcome', node: 'n2', address: '[::1]:7001' },
    { k: 'ping', seq: 0, data: new Uint8Array(0) },
    { k: 'pong', seq: 2 ** 40, data: new Uint8Array([1, 2, 3, 255]) },
    { k: 'reject', code: 'NET_CLUSTER_MISMATCH', message: 'another cluster' },
  ];

  it('decodes what it encodes, byte strings as Uint8Array', () => {
    const decoded = decodeAll(...frames.map(wire));
    assert.equal(decoded.length, frames.length);
    for (const [i, frame] of decoded.entries()) {
      assert.deepEqual({ ...frame }, { ...frames[i] });
    }
    const pong = decoded[3] as Extract<Frame, { k: 'pong' }>;
    assert.ok(pong.data instanceof Uint8Array);
    assert.deepEqual([...pong.data], [1, 2, 3, 255]);
  });

  it('decodes the same whatever the chunks: split at every byte, one byte at a time, all in one', () => {
    const stream = Buffer.concat(frames.map(wire));
    const expected = JSON.stringify(decodeAll(stream));
    for (let at = 0; at <= stream.length; at++) {
      assert.equal(
        JSON.stringify(decodeAll(stream.subarray(0, at), stream.subarray(at))),
        expected,
        `split at ${at}`,
      );
    }
    const bytes = [...stream].map((byte) => Uint8Array.of(byte));
    assert.equal(JSON.stringify(decodeAll(...bytes)), expected);
  });

  it('carries a 1 MiB byte string intact, and says how much of a frame is pending', () => {
    const data = new Uint8Array(1 << 20).map((_, i) => i * 7);
    const bytes = wire({ k: 'ping', seq: 1, data });
    const decoder = new FrameDecoder();
    assert.deepEqual(decoder.push(bytes.subarray(0, 1000)), []);
    assert.equal(decoder.pendingBytes, 1000);
    const [frame] = decoder.push(bytes.subarray(1000));
    assert.equal(decoder.pendingBytes, 0);
    assert.ok(frame !== undefined && frame.k === 'ping');
    assert.ok(Buffer.from(frame.data).equals(data));
  });

  it('refuses a frame of length 0', () => {
    assert.match(
      codeOf(() => new FrameDecoder().push(Buffer.alloc(frameHeaderBytes))),
      /^NET_FRAME_MALFORMED: .*length 0/,
    );
  });

  it('refuses a length over frameSizeMax from the header alone, without waiting for the body', () => {
    const decoder = new FrameDecoder();
    const header = Buffer.alloc(frameHeaderBytes);
    header.writeUInt32BE(frameSizeMax + 1);
    assert.deepEqual(decoder.push(header.subarray(0, 3)), []);
    assert.match(
      codeOf(() => decoder.push(header.subarray(3))),
      /^NET_FRAME_TOO_LARGE/,
    );
    // Failed for good: the stream is not read past the bad frame.
    assert.match(
      codeOf(() => decoder.push(wire(hello))),
      /^NET_FRAME_TOO_LARGE/,
    );
    header.writeUInt32BE(0xffffffff);
    assert.match(
      codeOf(() => new FrameDecoder().push(header)),
      /^NET_FRAME_TOO_LARGE/,
    );
    // A frame of exactly frameSizeMax is within the limit.
    header.writeUInt32BE(frameSizeMax);
    const atLimit = new FrameDecoder();
    assert.deepEqual(atLimit.push(header), []);
    assert.equal(atLimit.pendingBytes, frameHeaderBytes);
  });

  it('refuses to encode a frame over frameSizeMax', () => {
    assert.match(
      codeOf(() => encodeFrame({ k: 'ping', seq: 1, data: new Uint8Array(frameSizeMax) })),
      /^NET_FRAME_TOO_LARGE/,
    );
    // A msg whose body travels as a piece of its own is held to the same limit.
    const body = new Uint8Array(frameSizeMax);
    assert.match(
      codeOf(() => encodeFrame(msgWithBody(body))),
      /^NET_FRAME_TOO_LARGE: a msg frame/,
    );
  });

  it('puts the same bytes on the wire for a msg whose body is a piece of its own as CBOR of the whole map', () => {
    // Around each size where the head of the body's byte string changes (1, 2, 3, 5 bytes), and
    // around the size from which the body is not copied into the encoder's buffer.
    for (const size of [0, 23, 24, 255, 256, 4095, 4096, 65535, 65536, 70_000, 1 << 20]) {
      const body = new Uint8Array(size).map((_, i) => i * 13);
      const frame = msgWithBody(body);
      const pieces = encodeFrame(frame);
      const bytes = Buffer.concat(pieces);
      assert.ok(bytes.subarray(frameHeaderBytes).equals(cbor.encode(frame)), `body of ${size} bytes`);
      assert.equal(bytes.readUInt32BE(0), bytes.length - frameHeaderBytes);
      if (size >= 4096)
        assert.ok(pieces.includes(body), `the ${size} bytes are written from the message itself`);
      const [decoded] = new FrameDecoder().push(bytes);
      assert.ok(decoded?.k === 'msg' && Buffer.from(decoded.body).equals(body));
    }
  });

  it('refuses a stream that ends inside a frame, and accepts one that ends between frames', () => {
    const bytes = wire(hello);
    for (const cut of [2, frameHeaderBytes, bytes.length - 1]) {
      const decoder = new FrameDecoder();
      decoder.push(bytes.subarray(0, cut));
      assert.match(
        codeOf(() => decoder.end()),
        /^NET_FRAME_MALFORMED: the stream ended/,
      );
    }
    const decoder = new FrameDecoder();
    decoder.push(bytes);
    decoder.end();
  });

  it('refuses a body that is not one CBOR value, or not a map', () => {
    const cases: [Buffer, RegExp][] = [
      [rawFrame(Buffer.from([0xff, 0xfe, 0xfd])), /not one CBOR value/],
      [rawFrame(Buffer.from([0xa1, 0x61])), /not one CBOR value/], // cut short inside
      [rawFrame(Buffer.concat([cbor.encode(hello), Buffer.from([0])])), /not one CBOR value/], // trailing bytes
      [rawValue([1, 2, 3]), /not a CBOR map/],
      [rawValue(7), /not a CBOR map/],
      [rawValue('hello'), /not a CBOR map/],
      [rawValue(null), /not a CBOR map/],
      [rawValue(Buffer.from('hello')), /not a CBOR map/],
    ];
    for (const [bytes, message] of cases) {
      assert.match(
        codeOf(() => new FrameDecoder().push(bytes)),
        new RegExp(`^NET_FRAME_MALFORMED: .*${message.source}`),
        bytes.toString('hex'),
      );
    }
  });

  it('refuses an unknown kind, or none', () => {
    for (const value of [
      { k: 'launch' },
      { k: 'toString' },
      { k: '__proto__' },
      { kind: 'hello' },
      { k: 7 },
    ]) {
      assert.match(
        codeOf(() => new FrameDecoder().push(rawValue(value))),
        /^NET_FRAME_MALFORMED: unknown frame kind/,
        JSON.stringify(value),
      );
    }
  });

  it('refuses fields of the wrong type or form, missing fields and unknown fields, naming them', () => {
    const cases: [unknown, RegExp][] = [
      [{ k: 'ping', seq: '1', data: new Uint8Array(0) }, /seq/],
      [{ k: 'ping', seq: -1, data: new Uint8Array(0) }, /seq/],
      [{ k: 'ping', seq: 1.5, data: new Uint8Array(0) }, /seq/],
      [{ k: 'ping', seq: 1, data: 'bytes' }, /data/],
      [{ k: 'ping', seq: 1 }, /data/],
      [{ k: 'ping', seq: 1, data: new Uint8Array(0), extra: true }, /extra/],
      [{ ...hello, node: 'N1' }, /node/],
      [{ ...hello, node: 'a'.repeat(33) }, /node/],
      [{ ...hello, cluster: 'cluster' }, /cluster/],
      [{ ...hello, address: 'nowhere' }, /address/],
      [{ ...hello, incarnation: 5 }, /incarnation/],
      [{ ...hello, protocol: '1' }, /protocol/],
      [{ k: 'reject', code: 'lower', message: '' }, /code/],
      [{ k: 'reject', code: 'X', message: 'm'.repeat(5000) }, /message/],
    ];
    for (const [value, field] of cases) {
      assert.match(
        codeOf(() => new FrameDecoder().push(rawValue(value))),
        new RegExp(`^NET_FRAME_MALFORMED: bad \\w+ frame: .*${field.source}`),
        JSON.stringify(value),
      );
    }
  });

  it('tells another protocol version by its hello, whatever else that version changed', () => {
    for (const value of [
      { ...hello, protocol: wireProtocolVersion + 1 },
      { ...hello, protocol: wireProtocolVersion - 1 },
      { k: 'welcome', protocol: 0 },
      { k: 'hello', protocol: wireProtocolVersion + 1, cluster: { id: 'c' }, features: ['x'] },
    ]) {
      assert.match(
        codeOf(() => decodeFrameBody(cbor.encode(value))),
        /^NET_PROTOCOL_MISMATCH: .*version/,
      );
    }
  });

  it('parses node addresses', () => {
    assert.deepEqual(parseNodeAddress('127.0.0.1:7000'), { host: '127.0.0.1', port: 7000 });
    assert.deepEqual(parseNodeAddress('node-1.example:1'), { host: 'node-1.example', port: 1 });
    assert.deepEqual(parseNodeAddress('[::1]:65535'), { host: '::1', port: 65535 });
    for (const bad of ['127.0.0.1', ':7000', '127.0.0.1:0', '127.0.0.1:65536', '::1:7000', 'a b:1', '']) {
      assert.equal(parseNodeAddress(bad), null, bad);
    }
  });
});

describe('wire protocol: the hand-written checks of msg, ack and nack', () => {
  const port = 'n1-1a2b3c4d.17';
  const valid: Record<string, unknown>[] = [
    { k: 'msg', port, seq: 1, dest: 's', id: 7, reply: null, descriptors: [], body: new Uint8Array(100) },
    {
      k: 'msg',
      port: 'abc',
      seq: Number.MAX_SAFE_INTEGER,
      dest: 'o',
      id: -(2 ** 31),
      reply: { kind: 'o', port: 'x'.repeat(256) },
      descriptors: [
        { t: 'port', right: { kind: 's', port } },
        { t: 'port', right: { kind: 'o', port, dead: true } },
        { t: 'ool', bytes: new Uint8Array([1, 2, 3]) },
      ],
      body: new Uint8Array(0),
    },
    {
      k: 'msg',
      port,
      seq: 0,
      dest: 's',
      id: 2 ** 32 - 1,
      reply: { kind: 's', port, dead: true },
      descriptors: Array.from({ length: messageDescriptorsMax }, () => ({
        t: 'ool',
        bytes: new Uint8Array(1),
      })),
      body: new Uint8Array(1),
    },
    { k: 'ack', port, seq: 0 },
    { k: 'ack', port: 'x'.repeat(256), seq: Number.MAX_SAFE_INTEGER },
    { k: 'nack', port, expected: 3, reason: 'full' },
    { k: 'nack', port, expected: 0, reason: 'moved' },
  ];

  /** Values a broken or hostile peer might put in any field. */
  const palette: unknown[] = [
    undefined,
    null,
    true,
    false,
    0,
    -0,
    1,
    -1,
    1.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    2 ** 53,
    -(2 ** 31) - 1,
    2 ** 32,
    2n,
    '',
    'ab',
    'abc',
    'x'.repeat(256),
    'x'.repeat(257),
    's',
    'o',
    'full',
    'moved',
    'port',
    'ool',
    'msg',
    'x',
    'S',
    [],
    [1],
    {},
    new Uint8Array(2),
    Buffer.from('bytes'),
    new Uint16Array(1),
    { kind: 's', port },
    { t: 'ool', bytes: new Uint8Array(1) },
    { t: 'port', right: { kind: 's', port } },
    // Arrays are not objects to a schema, whatever properties they carry.
    Object.assign([], { kind: 's', port }),
    Object.assign([], { t: 'ool', bytes: new Uint8Array(1) }),
  ];

  /** Paths to every field of a frame, nested ones included (reply, descriptors and their rights). */
  function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
    if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return [];
    const keys: (string | number)[] = Array.isArray(value)
      ? value.slice(0, 2).map((_, i) => i)
      : Object.keys(value);
    return keys.flatMap((key) => {
      const path = [...prefix, key];
      return [path, ...paths((value as Record<string | number, unknown>)[key], path)];
    });
  }

  /** A deep copy of `frame` with the field at `path` set to `value`, or deleted (`remove`). */
  function mutated(
    frame: Record<string, unknown>,
    path: (string | number)[],
    value: unknown,
    remove = false,
  ) {
    const copy = structuredClone(frame);
    let at = copy as Record<string | number, unknown>;
    for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
    const last = path[path.length - 1]!;
    if (remove) delete at[last];
    else at[last] = value;
    return copy;
  }

  /** Every damaged variant of a valid frame: each field deleted or replaced, unknown fields added. */
  function variants(frame: Record<string, unknown>): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const path of paths(frame)) {
      if (path[0] === 'k') continue; // another kind is another schema
      out.push(mutated(frame, path, undefined, true));
      for (const value of palette) out.push(mutated(frame, path, value));
      const field = path.reduce<unknown>((at, key) => (at as Record<string | number, unknown>)[key], frame);
      if (
        field !== null &&
        typeof field === 'object' &&
        !Array.isArray(field) &&
        !(field instanceof Uint8Array)
      ) {
        out.push(mutated(frame, [...path, 'extra'], 1)); // an unknown field in a nested object
      }
    }
    out.push({ ...frame, extra: 1 });
    // A complete frame with an own "__proto__" key (as a decoded CBOR map can have), and one whose
    // fields are all there but one is inherited.
    const ownProto: Record<string, unknown> = { ...frame };
    Object.defineProperty(ownProto, '__proto__', {
      value: 1,
      enumerable: true,
      configurable: true,
      writable: true,
    });
    out.push(ownProto);
    out.push(Object.assign(Object.create({ inherited: 1 }) as object, frame));
    if (frame.k === 'msg') {
      out.push({
        ...frame,
        descriptors: Array.from({ length: messageDescriptorsMax + 1 }, () => ({
          t: 'ool',
          bytes: new Uint8Array(1),
        })),
      });
      out.push({ ...frame, descriptors: { length: 0 } });
    }
    return out;
  }

  const check = (frame: Record<string, unknown>): boolean => hotFrameChecks[frame.k as FrameKind]!(frame);
  const zodAccepts = (frame: Record<string, unknown>): boolean =>
    frameSchemas[frame.k as FrameKind].safeParse(frame).success;

  it('accepts valid msg, ack and nack frames, as their schemas do', () => {
    for (const frame of valid) {
      assert.equal(zodAccepts(frame), true, `schema: ${String(frame.k)}`);
      assert.equal(check(frame), true, `hand check: ${String(frame.k)}`);
    }
  });

  it('accepts and refuses exactly what the schemas do, for every field deleted, replaced or added', () => {
    let refused = 0;
    let total = 0;
    for (const frame of valid) {
      for (const variant of variants(frame)) {
        const expected = zodAccepts(variant);
        assert.equal(check(variant), expected, `${expected ? 'refused' : 'accepted'}: ${show(variant)}`);
        total++;
        if (!expected) refused++;
      }
    }
    // The corpus is mostly damage, and some replacements happen to be valid values.
    assert.ok(refused > total * 0.8 && refused < total, `${refused} of ${total} refused`);
  });

  it('decodes a valid msg, ack or nack frame to the frame the schema would give', () => {
    for (const frame of valid) {
      const body = Buffer.concat(encodeFrame(frame as Frame).slice(1));
      const decoded = decodeFrameBody(body) as unknown as Record<string, unknown>;
      const parsed = frameSchemas[frame.k as FrameKind].parse(offTheWire(body));
      assert.deepEqual({ ...decoded }, { ...(parsed as Record<string, unknown>) });
      assert.deepEqual(JSON.stringify(decoded), JSON.stringify(frame));
    }
  });

  it('refuses a damaged msg, ack or nack frame off the wire with NET_FRAME_MALFORMED, naming the field', () => {
    for (const frame of valid.filter((f) => f.k !== 'msg' || (f.descriptors as unknown[]).length < 10)) {
      for (const variant of variants(frame)) {
        let bytes: Uint8Array;
        try {
          bytes = cbor.encode(variant);
        } catch {
          continue; // a value CBOR cannot carry (bigint on this encoder) never comes off the wire
        }
        // What the receiver sees is what CBOR carried: judge that, not the object before encoding.
        const received = offTheWire(bytes) as Record<string, unknown>;
        if (zodAccepts(received)) {
          assert.equal(decodeFrameBody(bytes).k, frame.k);
          continue;
        }
        assert.match(
          codeOf(() => decodeFrameBody(bytes)),
          new RegExp(`^NET_FRAME_MALFORMED: bad ${String(frame.k)} frame: \\w`),
          show(variant),
        );
      }
    }
  });
});

/** A frame body decoded as wire-protocol.ts decodes it (byte strings as plain Uint8Array views). */
function offTheWire(body: Uint8Array): unknown {
  const decoder = new Decoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
  return decoder.decode(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
}

function show(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? `bytes(${v.length})` : v,
  ).slice(0, 300);
}
