import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import {
  type AddressInfo,
  createServer as createTcpServer,
  type Socket,
  connect as tcpConnect,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { type ErrorCode, isNormaError, type NormaError } from '../../src/errors.js';
import { frameSizeMax } from '../../src/limits.js';
import { initCluster, loadNodeCredentials, type NodeCredentials } from '../../src/net/cluster-credentials.js';
import { type Peer, Transport } from '../../src/net/transport.js';
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  frameHeaderBytes,
  type PeerFrame,
  wireProtocolVersion,
} from '../../src/net/wire-protocol.js';

/** Resolves once `check` holds, re-checked whenever `notify` is called. */
class Signal {
  #waiters: (() => void)[] = [];

  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter();
  }

  async until<T>(check: () => T | undefined): Promise<T> {
    for (;;) {
      const value = check();
      if (value !== undefined) return value;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
}

/** A transport under test, with what it logged and the peers that dialed it. */
class TestNode {
  readonly logs: string[] = [];
  readonly accepted: Peer[] = [];
  readonly #signal = new Signal();
  transport!: Transport;

  static async start(credentials: NodeCredentials, handshakeTimeoutMs?: number): Promise<TestNode> {
    const node = new TestNode();
    node.transport = await Transport.listen({
      host: '127.0.0.1',
      port: 0,
      credentials,
      incarnation: `${credentials.node}-${process.pid}`,
      onPeer: (peer) => {
        node.accepted.push(peer);
        node.#signal.notify();
      },
      log: (line) => {
        node.logs.push(line);
        node.#signal.notify();
      },
      ...(handshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs }),
    });
    return node;
  }

  get port(): number {
    return Number(this.transport.address.split(':').at(-1));
  }

  /** The first line logged from line `since` on that matches (take `since` before the action). */
  logged(pattern: RegExp, since: number): Promise<string> {
    return this.#signal.until(() => this.logs.slice(since).find((line) => pattern.test(line)));
  }

  /** The `index`th peer that dialed this node. */
  peer(index: number): Promise<Peer> {
    return this.#signal.until(() => this.accepted[index]);
  }
}

/** Collects a peer's frames from now on. */
function collect(peer: Peer): { frames: PeerFrame[]; count: (n: number) => Promise<PeerFrame[]> } {
  const frames: PeerFrame[] = [];
  const signal = new Signal();
  peer.on('frame', (frame) => {
    frames.push(frame);
    signal.notify();
  });
  return { frames, count: (n) => signal.until(() => (frames.length >= n ? frames : undefined)) };
}

function closed(peer: Peer): Promise<NormaError> {
  return new Promise((resolve) => peer.once('close', resolve));
}

/** Sends with backpressure: waits for `drained()` whenever `send` says so. */
async function sendAll(peer: Peer, frames: Iterable<PeerFrame>): Promise<void> {
  for (const frame of frames) {
    if (!peer.send(frame)) await peer.drained();
  }
}

type Probe = Extract<PeerFrame, { k: 'ping' | 'pong' }>;

function isProbe(frame: PeerFrame): frame is Probe {
  return frame.k === 'ping' || frame.k === 'pong';
}

function* pings(count: number, from: number, data: (i: number) => Uint8Array): Generator<PeerFrame> {
  for (let i = 0; i < count; i++) yield { k: 'ping', seq: from + i, data: data(i) };
}

/** A hand-driven client: sends whatever bytes, decodes what comes back. */
class Raw {
  readonly frames: Frame[] = [];
  readonly decoder = new FrameDecoder();
  readonly closed: Promise<void>;
  readonly #signal = new Signal();

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.frames.push(...this.decoder.push(chunk));
      this.#signal.notify();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** A TLS client trusting `ca`, with the certificate of `as` (or none). */
  static tls(port: number, ca: string, as: NodeCredentials | null): Raw {
    return new Raw(
      tlsConnect({
        host: '127.0.0.1',
        port,
        ca,
        ...(as === null ? {} : { cert: as.cert, key: as.key }),
        checkServerIdentity: () => undefined,
      }),
    );
  }

  send(data: Frame | Buffer): void {
    this.socket.write(Buffer.isBuffer(data) ? data : Buffer.concat(encodeFrame(data)));
  }

  frame(index: number): Promise<Frame> {
    return this.#signal.until(() => this.frames[index]);
  }
}

function hello(from: NodeCredentials, fields: Partial<Record<string, unknown>> = {}): Frame {
  return {
    k: 'hello',
    protocol: wireProtocolVersion,
    cluster: from.cluster,
    node: from.node,
    incarnation: `${from.node}-raw`,
    address: '127.0.0.1:9',
    ...fields,
  } as Frame;
}

function header(length: number): Buffer {
  const bytes = Buffer.alloc(frameHeaderBytes);
  bytes.writeUInt32BE(length);
  return bytes;
}

function hasCode(code: ErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isNormaError(error), String(error));
    assert.equal(error.code, code, error.message);
    return true;
  };
}

describe('transport: TLS connections between nodes', () => {
  let root: string;
  const creds: Record<'n1' | 'n2' | 'n3' | 'x1', NodeCredentials> = {} as never;
  let n1: TestNode;
  const started: TestNode[] = [];

  async function start(credentials: NodeCredentials, handshakeTimeoutMs?: number): Promise<TestNode> {
    const node = await TestNode.start(credentials, handshakeTimeoutMs);
    started.push(node);
    return node;
  }

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'norma-transport-'));
    await initCluster(join(root, 'a'));
    await initCluster(join(root, 'b'));
    for (const name of ['n1', 'n2', 'n3'] as const) {
      creds[name] = await loadNodeCredentials(join(root, 'a'), name, { issueIfMissing: true });
    }
    creds.x1 = await loadNodeCredentials(join(root, 'b'), 'x1', { issueIfMissing: true });
    n1 = await start(creds.n1);
  });

  after(async () => {
    await Promise.all(started.map((node) => node.transport.close()));
    rmSync(root, { recursive: true, force: true });
  });

  it('dials a node by address and learns its name, incarnation and address; the node learns the same of it', async () => {
    const n2 = await start(creds.n2);
    const index = n1.accepted.length;
    const peer = await n2.transport.connect(n1.transport.address);
    assert.equal(peer.name, 'n1');
    assert.equal(peer.incarnation, `n1-${process.pid}`);
    assert.equal(peer.address, n1.transport.address);
    assert.equal(peer.direction, 'outbound');
    const back = await n1.peer(index);
    assert.equal(back.name, 'n2');
    assert.equal(back.address, n2.transport.address);
    assert.equal(back.direction, 'inbound');
    assert.ok(n1.transport.peers.has(back));
    assert.ok(n2.transport.peers.has(peer));
  });

  it('tells peers the address it advertises, and refuses an address it cannot listen on', async () => {
    const options = {
      host: '127.0.0.1',
      port: 0,
      credentials: creds.n3,
      incarnation: 'n3-1',
      advertise: 'n3.example:7000',
      onPeer: () => undefined,
      log: () => undefined,
    };
    const n3 = await Transport.listen(options);
    try {
      const index = n1.accepted.length;
      await n3.connect(n1.transport.address);
      assert.equal((await n1.peer(index)).address, 'n3.example:7000');
      await assert.rejects(Transport.listen({ ...options, port: n1.port }), hasCode('USAGE'));
      await assert.rejects(Transport.listen({ ...options, advertise: 'n3' }), hasCode('USAGE'));
    } finally {
      await n3.close();
    }
  });

  it('carries frames both ways in order: 10,000 small ones and 1 MiB ones, pings answered with pongs', async () => {
    const n2 = await start(creds.n2);
    const index = n1.accepted.length;
    const out = await n2.transport.connect(n1.transport.address);
    const back = await n1.peer(index);
    const atN2 = collect(out);
    const atN1 = collect(back);
    const count = 10_000;
    const small = (i: number) => Uint8Array.of(i & 0xff, i >> 8);
    const big = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
    await Promise.all([
      sendAll(out, pings(count, 0, small)).then(() => sendAll(out, [{ k: 'ping', seq: count, data: big }])),
      sendAll(back, pings(count, 0, small)).then(() => sendAll(back, [{ k: 'ping', seq: count, data: big }])),
    ]);
    // Each side sees the other's pings and the pongs to its own, each stream in order.
    for (const side of [atN1, atN2]) {
      const frames = await side.count(2 * (count + 1));
      for (const kind of ['ping', 'pong'] as const) {
        const ofKind = frames.filter(isProbe).filter((frame) => frame.k === kind);
        assert.deepEqual(
          ofKind.map((frame) => frame.seq),
          Array.from({ length: count + 1 }, (_, i) => i),
        );
        for (const frame of ofKind.slice(0, count)) assert.deepEqual(frame.data, small(frame.seq));
        const last = ofKind[count]!;
        assert.ok(last.data instanceof Uint8Array && Buffer.from(last.data).equals(big));
      }
    }
  });

  it('carries large msg frames and small ones mixed, in order and intact, across turns and writes in flight', async () => {
    const n2 = await start(creds.n2);
    const index = n1.accepted.length;
    const out = await n2.transport.connect(n1.transport.address);
    const atN1 = collect(await n1.peer(index));
    const body = (i: number) =>
      new Uint8Array(i % 3 === 0 ? 70_000 : 64 * 1024).map((_, j) => (i + j) & 0xff);
    const sent: PeerFrame[] = [];
    for (let turn = 0; turn < 40; turn++) {
      // Some turns send while the previous turn's write is still in flight.
      for (let i = 0; i < 5; i++) {
        const n = turn * 5 + i;
        const frame: PeerFrame =
          n % 2 === 0
            ? {
                k: 'msg',
                port: 'n2-1a2b3c4d.1',
                seq: n + 1,
                dest: 's',
                id: n,
                reply: null,
                descriptors: [],
                body: body(n),
              }
            : { k: 'ack', port: 'n2-1a2b3c4d.1', seq: n };
        sent.push(frame);
        if (!out.send(frame)) await out.drained();
      }
      if (turn % 4 === 0) await new Promise(setImmediate);
    }
    const frames = await atN1.count(sent.length);
    assert.equal(frames.length, sent.length);
    frames.forEach((frame, n) => {
      const expected = sent[n]!;
      assert.equal(frame.k, expected.k, `frame ${n}`);
      if (frame.k === 'msg' && expected.k === 'msg') {
        assert.equal(frame.id, expected.id);
        assert.ok(Buffer.from(frame.body).equals(expected.body), `the body of frame ${n}`);
      } else assert.deepEqual(frame, expected);
    });
  });

  it('keeps frames that arrive before the first frame listener for it', async () => {
    const n2 = await start(creds.n2);
    const index = n1.accepted.length;
    const out = await n2.transport.connect(n1.transport.address);
    out.send({ k: 'ping', seq: 1, data: new Uint8Array(0) });
    out.send({ k: 'ping', seq: 2, data: new Uint8Array(0) });
    const pongs = collect(out);
    await pongs.count(2); // answered by n1's transport, before anyone listens there
    const back = await n1.peer(index);
    const frames = await collect(back).count(2);
    assert.deepEqual(
      frames.filter(isProbe).map((frame) => frame.seq),
      [1, 2],
    );
  });

  it('tells a sender to wait when too much is unsent, and when to go on', async () => {
    const n2 = await start(creds.n2);
    const index = n1.accepted.length;
    const out = await n2.transport.connect(n1.transport.address);
    collect(await n1.peer(index)); // n1 reads (else the socket buffers alone decide when it drains)
    const data = new Uint8Array(256 * 1024);
    let refused = 0;
    for (let seq = 0; seq < 16; seq++) if (!out.send({ k: 'ping', seq, data })) refused++;
    assert.ok(refused > 0, 'send says to wait');
    await out.drained();
    assert.ok(out.send({ k: 'ping', seq: 16, data: new Uint8Array(0) }));
  });

  it('closes a connection that sends a bad frame, with reject and its code, and serves the others on', async () => {
    const n2 = await start(creds.n2);
    const good = await n2.transport.connect(n1.transport.address);
    const goodFrames = collect(good);
    const garbage = Buffer.from([0xff, 0xfe, 0xfd, 0xfc]);
    const cases: [string, Buffer, ErrorCode][] = [
      ['length 0', header(0), 'NET_FRAME_MALFORMED'],
      ['length over frameSizeMax', header(frameSizeMax + 1), 'NET_FRAME_TOO_LARGE'],
      ['CBOR garbage', Buffer.concat([header(garbage.length), garbage]), 'NET_FRAME_MALFORMED'],
      [
        'unknown kind',
        Buffer.concat(encodeFrame({ k: 'launch' } as unknown as Frame)),
        'NET_FRAME_MALFORMED',
      ],
      [
        'wrong field type',
        Buffer.concat(encodeFrame({ k: 'ping', seq: 'one', data: new Uint8Array(0) } as unknown as Frame)),
        'NET_FRAME_MALFORMED',
      ],
      ['a second hello', Buffer.concat(encodeFrame(hello(creds.n3))), 'NET_FRAME_MALFORMED'],
    ];
    for (const [what, bytes, code] of cases) {
      const since = n1.logs.length;
      const index = n1.accepted.length;
      const raw = Raw.tls(n1.port, creds.n3.ca, creds.n3);
      raw.send(hello(creds.n3));
      assert.equal((await raw.frame(0)).k, 'welcome', what);
      const peer = await n1.peer(index);
      const reason = closed(peer);
      raw.send(bytes);
      const reject = await raw.frame(1);
      assert.ok(reject.k === 'reject', what);
      assert.equal(reject.code, code, what);
      await raw.closed;
      assert.equal((await reason).code, code, what);
      await n1.logged(new RegExp(`^${code}: closing the connection to n3`), since);
    }
    good.send({ k: 'ping', seq: 7, data: new Uint8Array(0) });
    const [pong] = await goodFrames.count(1);
    assert.deepEqual(pong, { k: 'pong', seq: 7, data: new Uint8Array(0) });
  });

  it('closes a connection whose peer stops in the middle of a frame, as malformed', async () => {
    const since = n1.logs.length;
    const index = n1.accepted.length;
    const raw = Raw.tls(n1.port, creds.n3.ca, creds.n3);
    raw.send(hello(creds.n3));
    await raw.frame(0);
    const peer = await n1.peer(index);
    const reason = closed(peer);
    const ping = Buffer.concat(encodeFrame({ k: 'ping', seq: 1, data: new Uint8Array(100) }));
    raw.socket.end(ping.subarray(0, 50));
    assert.equal((await reason).code, 'NET_FRAME_MALFORMED');
    assert.match((await reason).message, /ended 46 bytes into a frame/);
    await n1.logged(/^NET_FRAME_MALFORMED: n3 .*ended 46 bytes into a frame/, since);
  });

  it('refuses at TLS a client with a certificate of another cluster, and serves a good peer after it', async () => {
    const since = n1.logs.length;
    const raw = Raw.tls(n1.port, creds.n1.ca, creds.x1);
    raw.send(hello(creds.x1));
    await raw.closed;
    assert.deepEqual(raw.frames, []);
    await n1.logged(/^NET_AUTH_FAILED: refused .* at TLS/, since);

    // A whole node of the other cluster: refused either way.
    const x1 = await start(creds.x1);
    await assert.rejects(x1.transport.connect(n1.transport.address), hasCode('NET_AUTH_FAILED'));
    await assert.rejects(n1.transport.connect(x1.transport.address), hasCode('NET_AUTH_FAILED'));

    const n2 = await start(creds.n2);
    const peer = await n2.transport.connect(n1.transport.address);
    assert.equal(peer.name, 'n1');
  });

  it('refuses at TLS a client without a certificate', async () => {
    const since = n1.logs.length;
    const raw = Raw.tls(n1.port, creds.n1.ca, null);
    raw.send(hello(creds.n2));
    await raw.closed;
    assert.deepEqual(raw.frames, []);
    await n1.logged(/^NET_AUTH_FAILED: refused .* at TLS: .*CERTIFICATE/, since);
  });

  it('refuses a client that does not speak TLS', async () => {
    const since = n1.logs.length;
    const raw = new Raw(tcpConnect(n1.port, '127.0.0.1'));
    raw.send(hello(creds.n2));
    await raw.closed;
    assert.deepEqual(raw.frames, []);
    await n1.logged(/^NET_AUTH_FAILED: refused .* at TLS: ERR_SSL_/, since);
  });

  it('rejects a hello of another protocol version, another cluster, or a name its certificate does not bear', async () => {
    const cases: [Frame, ErrorCode][] = [
      [hello(creds.n3, { protocol: wireProtocolVersion + 1 }), 'NET_PROTOCOL_MISMATCH'],
      [hello(creds.n3, { cluster: 'c-0000000000000000' }), 'NET_CLUSTER_MISMATCH'],
      [hello(creds.n3, { node: 'n2' }), 'NET_AUTH_FAILED'],
      [{ k: 'ping', seq: 1, data: new Uint8Array(0) }, 'NET_FRAME_MALFORMED'],
    ];
    const accepted = n1.accepted.length;
    for (const [frame, code] of cases) {
      const since = n1.logs.length;
      const raw = Raw.tls(n1.port, creds.n3.ca, creds.n3);
      raw.send(frame);
      const reject = await raw.frame(0);
      assert.ok(reject.k === 'reject');
      assert.equal(reject.code, code);
      await raw.closed;
      assert.equal(raw.frames.length, 1);
      await n1.logged(new RegExp(`^${code}: refused 127\\.0\\.0\\.1:\\d+: `), since);
    }
    assert.equal(n1.accepted.length, accepted, 'no peer was made');
  });

  it('drops a peer that connects and says nothing, or only part of its hello, after the handshake timeout', async () => {
    const slow = await start(creds.n1, 150);
    const silent = Raw.tls(slow.port, creds.n3.ca, creds.n3);
    const partial = Raw.tls(slow.port, creds.n3.ca, creds.n3);
    partial.send(Buffer.concat(encodeFrame(hello(creds.n3))).subarray(0, 10));
    for (const raw of [silent, partial]) {
      const reject = await raw.frame(0);
      assert.ok(reject.k === 'reject');
      assert.equal(reject.code, 'NET_HANDSHAKE_TIMEOUT');
      await raw.closed;
    }
    // Nor may a client stall TLS itself.
    const tcp = new Raw(tcpConnect(slow.port, '127.0.0.1'));
    await tcp.closed;
    await slow.logged(/^NET_HANDSHAKE_TIMEOUT: refused .* at TLS/, 0);
    assert.equal(slow.accepted.length, 0);
  });

  it('reports why a dial failed: nobody listening, nobody answering, a wrong name, a reject', async () => {
    const n2 = await start(creds.n2, 150);
    const free = createTcpServer();
    await new Promise<void>((resolve) => free.listen(0, '127.0.0.1', resolve));
    const freePort = (free.address() as AddressInfo).port;
    await new Promise((resolve) => free.close(resolve));
    await assert.rejects(n2.transport.connect(`127.0.0.1:${freePort}`), hasCode('NET_PEER_UNREACHABLE'));
    await assert.rejects(n2.transport.connect('nowhere'), hasCode('USAGE'));

    // A TCP server that accepts and never answers.
    const mute = createTcpServer(() => undefined);
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
    const mutePort = (mute.address() as AddressInfo).port;
    await assert.rejects(n2.transport.connect(`127.0.0.1:${mutePort}`), hasCode('NET_HANDSHAKE_TIMEOUT'));

    // A node of the cluster that answers as another than its certificate, or rejects.
    const answers: Frame[] = [
      { ...hello(creds.n1, { node: 'n3' }), k: 'welcome' } as Frame,
      { k: 'reject', code: 'NET_PROTOCOL_MISMATCH', message: 'version 9' },
      { k: 'reject', code: 'NET_FROM_THE_FUTURE', message: 'something new' },
    ];
    const fake = createTlsServer({ ...creds.n1, requestCert: true, minVersion: 'TLSv1.3' }, (socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end(Buffer.concat(encodeFrame(answers.shift()!))));
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const fakeAddress = `127.0.0.1:${(fake.address() as AddressInfo).port}`;
    await assert.rejects(n2.transport.connect(fakeAddress), hasCode('NET_AUTH_FAILED'));
    await assert.rejects(n2.transport.connect(fakeAddress), hasCode('NET_PROTOCOL_MISMATCH'));
    await assert.rejects(n2.transport.connect(fakeAddress), (error) => {
      assert.ok(isNormaError(error, 'NET_PEER_REJECTED'));
      assert.match(error.message, /NET_FROM_THE_FUTURE: something new/);
      return true;
    });
    mute.close();
    fake.close();
    assert.equal(n2.transport.peers.size, 0);
  });

  it('closes a peer: the other side learns it, and sending on it fails', async () => {
    const n2 = await start(creds.n2);
    const index = n1.accepted.length;
    const out = await n2.transport.connect(n1.transport.address);
    const back = await n1.peer(index);
    const farReason = closed(back);
    const nearReason = closed(out);
    out.close();
    assert.ok(out.closed);
    assert.throws(() => out.send({ k: 'ping', seq: 1, data: new Uint8Array(0) }), hasCode('NET_PEER_CLOSED'));
    await assert.rejects(out.drained(), hasCode('NET_PEER_CLOSED'));
    assert.equal((await farReason).code, 'NET_PEER_CLOSED');
    assert.equal((await nearReason).code, 'NET_PEER_CLOSED');
    assert.ok(!n1.transport.peers.has(back));

    // Closing a transport closes its connections.
    const again = await n2.transport.connect(n1.transport.address);
    const lost = closed(again);
    await n2.transport.close();
    assert.equal((await lost).code, 'NET_PEER_CLOSED');
    assert.equal(n2.transport.peers.size, 0);
  });
});
