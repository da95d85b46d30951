/**
 * Connections between the nodes of a cluster: TCP with mutual TLS, carrying the frames of
 * wire-protocol.ts. A `Transport` listens for peers and dials them; each established connection is
 * a `Peer` that sends and receives validated frames.
 *
 * Who may connect: TLS (1.3 only) requires a certificate issued by the cluster CA on both ends
 * (cluster-credentials.ts), so a client of another cluster, without a certificate or not speaking
 * TLS at all, is refused by TLS itself, before a byte of the protocol is read; the server logs it
 * and goes on. Then the dialer sends `hello` and the acceptor checks the protocol version, the
 * cluster id, and that the node name claimed is the CN of the certificate (a node cannot pose as
 * another), and answers `welcome`; the dialer checks the same of the welcome, so it need not know
 * whom it dials, only where. Anything else gets `reject` with its code, and the connection closes.
 * Each phase (TLS, then hello and welcome) has `handshakeTimeoutMs`: a peer that connects and says
 * nothing is dropped, it does not hold a socket forever.
 *
 * A peer that breaks the protocol once the connection is up (a frame malformed, oversized, cut
 * short) gets `reject` with the code, its connection is closed and the code logged; the other
 * connections and the process are untouched.
 *
 * Writes: the frames sent in one tick of the event loop leave together, as one buffer, in one TLS
 * write, when the tick ends (process.nextTick): a burst costs one TLS record and one syscall, and a
 * frame sent alone waits for no timer. So the acknowledgement of a message leaves as soon as the
 * message is queued, before its task runs: the sender takes it off its proxy while the home
 * computes the answer, not after (tried: holding acknowledgements for the answer's write saved
 * 15% of the CPU of a round trip and cost 10% of its time on this machine). One write is in flight
 * at a time: what is sent meanwhile gathers and goes as one buffer when it completes. (Node's TLS
 * copies the buffers of a writev into one before encrypting; gathering them here is that copy,
 * and a large message body, a piece of its own in `encodeFrame`, is copied only there.) Nagle is
 * off (noDelay). `send` reports when more than `peerWriteBufferBytesMax` is waiting to be written,
 * and `drained()` tells when to go on: memory stays bounded however slow the peer. The transport
 * answers pings itself; when its pongs back up (a peer that pings without reading), it stops
 * reading that connection until they drain, so a peer cannot make it buffer without bound either.
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import {
  createSecureContext,
  createServer,
  type SecureContext,
  type Server,
  type TLSSocket,
  connect as tlsConnect,
} from 'node:tls';
import { type ErrorCode, errorCodes, NormaError } from '../errors.js';
import {
  handshakeTimeoutMsDefault,
  peerCloseLingerMs,
  peerGatherBytesMax,
  peerWriteBufferBytesMax,
  rejectMessageLengthMax,
} from '../limits.js';
import type { NodeCredentials } from './cluster-credentials.js';
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  formatNodeAddress,
  type Hello,
  incarnationPattern,
  type PeerFrame,
  parseNodeAddress,
  type Reject,
  wireProtocolVersion,
} from './wire-protocol.js';

export interface TransportOptions {
  /** The address to listen on (127.0.0.1, 0.0.0.0, ::). */
  host: string;
  /** The port to listen on; 0 for any free one (see `address`). */
  port: number;
  /** This node's credentials: its name and cluster come from them. */
  credentials: NodeCredentials;
  /** This node's kernel id for this run, sent in its hello and welcome. */
  incarnation: string;
  /** The address peers dial to reach this node; by default the one it listens on. */
  advertise?: string;
  /** Called with each peer that dialed this node, once its handshake succeeded. */
  onPeer: (peer: Peer) => void;
  /** Refused connections and protocol errors, one line each, starting with their code. */
  log: (message: string) => void;
  handshakeTimeoutMs?: number;
}

export class Transport {
  readonly #server: Server;
  readonly #options: TransportOptions;
  readonly #context: SecureContext;
  readonly #timeoutMs: number;
  /** Connections in their handshake (either direction). */
  readonly #handshaking = new Set<TLSSocket>();
  readonly #peers = new Set<Peer>();
  #address = '';

  private constructor(options: TransportOptions) {
    const { credentials } = options;
    this.#options = options;
    this.#timeoutMs = options.handshakeTimeoutMs ?? handshakeTimeoutMsDefault;
    const tlsOptions = {
      key: credentials.key,
      cert: credentials.cert,
      ca: credentials.ca,
      minVersion: 'TLSv1.3' as const,
    };
    this.#context = createSecureContext(tlsOptions);
    this.#server = createServer({
      ...tlsOptions,
      requestCert: true,
      rejectUnauthorized: true,
      handshakeTimeout: this.#timeoutMs,
    });
    this.#server.on('secureConnection', (socket) => this.#accept(socket));
    this.#server.on('tlsClientError', (error: NodeJS.ErrnoException, socket) => {
      const code: ErrorCode =
        error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'NET_HANDSHAKE_TIMEOUT' : 'NET_AUTH_FAILED';
      options.log(`${code}: refused ${remoteOf(socket)} at TLS: ${error.code ?? error.message}`);
      // A failed TLS handshake destroys its socket, but a timed-out one is left open.
      socket.destroy();
    });
  }

  /** Listens for peers; resolves once listening (USAGE when the address cannot be listened on). */
  static async listen(options: TransportOptions): Promise<Transport> {
    if (!incarnationPattern.test(options.incarnation)) {
      throw new NormaError('USAGE', `${JSON.stringify(options.incarnation)} is not an incarnation id`);
    }
    if (options.advertise !== undefined && parseNodeAddress(options.advertise) === null) {
      throw new NormaError('USAGE', `${JSON.stringify(options.advertise)} is not an address (host:port)`);
    }
    const transport = new Transport(options);
    const server = transport.#server;
    await new Promise<void>((resolve, reject) => {
      const refused = (error: NodeJS.ErrnoException): void =>
        reject(
          new NormaError(
            'USAGE',
            `cannot listen on ${formatNodeAddress(options.host, options.port)}: ${error.code}`,
            {
              cause: error,
              hint: 'Choose another address or port, or stop what listens there.',
            },
          ),
        );
      server.once('error', refused);
      server.listen(options.port, options.host, () => {
        server.off('error', refused);
        resolve();
      });
    });
    server.on('error', (error) => options.log(`transport error: ${error.message}`));
    const bound = server.address() as AddressInfo;
    transport.#address = options.advertise ?? formatNodeAddress(bound.address, bound.port);
    return transport;
  }

  /** The address peers dial to reach this node (host:port): `advertise`, or where it listens. */
  get address(): string {
    return this.#address;
  }

  /** This node's name. */
  get node(): string {
    return this.#options.credentials.node;
  }

  /** The established connections, both directions. */
  get peers(): ReadonlySet<Peer> {
    return this.#peers;
  }

  /**
   * Dials the node at `address` (host:port): resolves with the peer once its welcome is checked.
   * NET_PEER_UNREACHABLE (no connection), NET_AUTH_FAILED (TLS refused either certificate, or the
   * peer's name is not its certificate's), NET_HANDSHAKE_TIMEOUT, NET_PEER_CLOSED, and the codes of
   * the peer's `reject`: NET_PROTOCOL_MISMATCH, NET_CLUSTER_MISMATCH, ...
   */
  connect(address: string): Promise<Peer> {
    const target = parseNodeAddress(address);
    if (target === null) {
      return Promise.reject(
        new NormaError('USAGE', `${JSON.stringify(address)} is not an address (host:port)`),
      );
    }
    return new Promise((resolve, reject) => {
      const deadline = performance.now() + this.#timeoutMs;
      const socket = tlsConnect({
        host: target.host,
        port: target.port,
        secureContext: this.#context,
        // The peer's name is not known in advance: TLS checks that the CA issued its certificate,
        // and the welcome that the name it claims is the certificate's CN.
        checkServerIdentity: () => undefined,
      });
      socket.setNoDelay(true);
      socket.on('error', ignore);
      this.#handshaking.add(socket);
      let connected = false;
      const onConnect = (): void => {
        connected = true;
      };
      const fail = (error: NormaError): void => {
        clearTimeout(timer);
        socket.off('connect', onConnect).off('error', onError).off('close', onClose);
        this.#handshaking.delete(socket);
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(
        () =>
          fail(
            connected
              ? new NormaError(
                  'NET_HANDSHAKE_TIMEOUT',
                  `${address} did not finish TLS in ${this.#timeoutMs} ms`,
                )
              : new NormaError(
                  'NET_PEER_UNREACHABLE',
                  `no connection to ${address} in ${this.#timeoutMs} ms`,
                ),
          ),
        this.#timeoutMs,
      );
      const onError = (error: NodeJS.ErrnoException): void => fail(socketError(error, connected, address));
      const onClose = (): void =>
        fail(new NormaError('NET_PEER_CLOSED', `${address} closed the connection during TLS`));
      socket.once('connect', onConnect).once('error', onError).once('close', onClose);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.off('connect', onConnect).off('error', onError).off('close', onClose);
        const certName = certificateName(socket);
        socket.write(Buffer.concat(encodeFrame(this.#hello('hello'))));
        const decoder = new FrameDecoder();
        readFirstFrame(socket, decoder, address, Math.max(0, deadline - performance.now()), (result) => {
          if ('error' in result) {
            this.#refuse(socket, address, result.error, true);
            reject(result.error);
            return;
          }
          const welcome = this.#check(result.frame, 'welcome', certName, address);
          if (welcome instanceof NormaError) {
            this.#refuse(socket, address, welcome, result.frame.k !== 'reject');
            reject(welcome);
            return;
          }
          resolve(this.#established(socket, decoder, welcome, 'outbound', result.rest));
        });
      });
    });
  }

  /** Stops listening and closes every connection; resolves once they are all closed. */
  async close(): Promise<void> {
    const closed = [new Promise<void>((resolve) => this.#server.close(() => resolve()))];
    for (const socket of this.#handshaking) socket.destroy();
    for (const peer of this.#peers) {
      closed.push(new Promise((resolve) => peer.once('close', () => resolve())));
      peer.close();
    }
    await Promise.all(closed);
  }

  /** This node's hello or welcome. */
  #hello(k: 'hello' | 'welcome'): Frame {
    const { credentials, incarnation } = this.#options;
    const fields = {
      protocol: wireProtocolVersion,
      cluster: credentials.cluster,
      node: credentials.node,
      incarnation,
      address: this.#address,
    } as const;
    return k === 'hello' ? { k, ...fields } : { k, ...fields };
  }

  #accept(socket: TLSSocket): void {
    socket.setNoDelay(true);
    socket.on('error', ignore);
    this.#handshaking.add(socket);
    const remote = remoteOf(socket);
    const certName = certificateName(socket);
    const decoder = new FrameDecoder();
    readFirstFrame(socket, decoder, remote, this.#timeoutMs, (result) => {
      if ('error' in result) {
        this.#refuse(socket, remote, result.error, true);
        return;
      }
      const hello = this.#check(result.frame, 'hello', certName, remote);
      if (hello instanceof NormaError) {
        this.#refuse(socket, remote, hello, result.frame.k !== 'reject');
        return;
      }
      socket.write(Buffer.concat(encodeFrame(this.#hello('welcome'))));
      this.#options.onPeer(this.#established(socket, decoder, hello, 'inbound', result.rest));
    });
  }

  /** Checks a hello or welcome: its kind, cluster, and the name against the certificate. */
  #check(
    frame: Frame,
    kind: 'hello' | 'welcome',
    certName: string | null,
    remote: string,
  ): Hello | NormaError {
    if (frame.k === 'reject') return rejected(frame, remote);
    if (frame.k !== kind) {
      return new NormaError('NET_FRAME_MALFORMED', `${remote} sent ${frame.k} where ${kind} was expected`);
    }
    const hello = frame as Hello;
    if (hello.cluster !== this.#options.credentials.cluster) {
      return new NormaError(
        'NET_CLUSTER_MISMATCH',
        `${remote} is a node of cluster ${hello.cluster}; this node is of cluster ${this.#options.credentials.cluster}`,
      );
    }
    if (hello.node !== certName) {
      return new NormaError(
        'NET_AUTH_FAILED',
        `${remote} claims to be node ${hello.node} with a certificate issued to ${certName ?? 'no name'}`,
      );
    }
    return hello;
  }

  /** Ends a handshake that failed: logs it, tells the peer why (`tell`, if it still listens), closes. */
  #refuse(socket: TLSSocket, remote: string, error: NormaError, tell: boolean): void {
    this.#handshaking.delete(socket);
    this.#options.log(`${error.code}: refused ${remote}: ${error.message}`);
    if (tell && socket.writable) {
      socket.write(Buffer.concat(encodeFrame(rejectFrame(error))));
    }
    endSocket(socket);
  }

  #established(
    socket: TLSSocket,
    decoder: FrameDecoder,
    hello: Hello,
    direction: 'inbound' | 'outbound',
    rest: Frame[],
  ): Peer {
    this.#handshaking.delete(socket);
    const peer = new Peer(socket, decoder, hello, direction, this.#options.log, rest);
    this.#peers.add(peer);
    peer.once('close', () => this.#peers.delete(peer));
    return peer;
  }
}

export interface PeerEvents {
  /** A frame from the peer, decoded and validated (pings were already answered). */
  frame: [frame: PeerFrame];
  /** The connection is closed, for `reason`: NET_PEER_CLOSED, or the code of the error that closed it. */
  close: [reason: NormaError];
  /** EventEmitter's own (the first 'frame' listener gets the frames that arrived before it). */
  newListener: [event: string | symbol, listener: (...args: unknown[]) => void];
}

/**
 * One established connection to another node, made by a Transport (never by its callers). Frames
 * that arrive before the first 'frame' listener is attached are kept for it (reading pauses
 * meanwhile), so none is lost between the handshake and the caller's `on('frame')`. Byte strings of
 * received frames are views of the connection's read buffers, which are never reused.
 */
export class Peer extends EventEmitter<PeerEvents> {
  /** The peer's node name (the CN of its certificate). */
  readonly name: string;
  /** The peer's kernel id for this run: another one after it restarts. */
  readonly incarnation: string;
  /** Where the peer listens (host:port). */
  readonly address: string;
  /** Who dialed: 'outbound' when this node did. */
  readonly direction: 'inbound' | 'outbound';
  readonly #socket: TLSSocket;
  readonly #decoder: FrameDecoder;
  readonly #log: (message: string) => void;
  /** Frames received while no 'frame' listener was attached. */
  #backlog: PeerFrame[] = [];
  /** Why reading is paused: waiting for a 'frame' listener, for pongs to drain (bits). */
  #paused = 0;
  /** Encoded frames waiting for this turn's write, and their bytes. */
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #flushScheduled = false;
  /** A write is in flight (until its callback): what is sent meanwhile waits and goes with the next. */
  #writing = false;
  /**
   * Where the pieces of a write are gathered, reused once the write completed (one is in flight
   * at a time): a stream of large messages allocates no buffer per write, which would make V8
   * collect its heap again and again for their external memory.
   */
  #gather: Buffer = Buffer.alloc(0);
  #closeReason: NormaError | null = null;
  #drained: { promise: Promise<void>; resolve: () => void; reject: (error: NormaError) => void } | null =
    null;

  constructor(
    socket: TLSSocket,
    decoder: FrameDecoder,
    hello: Hello,
    direction: 'inbound' | 'outbound',
    log: (message: string) => void,
    /** Frames that came in with the end of the handshake. */
    early: Frame[],
  ) {
    super();
    this.name = hello.node;
    this.incarnation = hello.incarnation;
    this.address = hello.address;
    this.direction = direction;
    this.#socket = socket;
    this.#decoder = decoder;
    this.#log = log;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    socket.on('error', (error) => this.#setReason(socketError(error, true, this.#label())));
    socket.on('close', () => this.#onClose());
    this.on('newListener', (event) => {
      if (event === 'frame' && this.#backlog.length > 0) queueMicrotask(() => this.#flushBacklog());
    });
    socket.resume();
    this.#receiveAll(early);
  }

  /** True once the connection is closing or closed: `send` throws NET_PEER_CLOSED. */
  get closed(): boolean {
    return this.#closeReason !== null;
  }

  /**
   * Queues a frame, to leave at the end of this tick with the others sent in it. Returns false when
   * more than peerWriteBufferBytesMax waits to be written: send no more before `drained()`.
   * Throws NET_PEER_CLOSED once closed, NET_FRAME_TOO_LARGE for a frame over frameSizeMax.
   */
  send(frame: PeerFrame): boolean {
    if (this.#closeReason !== null) {
      throw new NormaError('NET_PEER_CLOSED', `the connection to ${this.name} is closed`, {
        cause: this.#closeReason,
      });
    }
    this.#write(frame);
    return this.#queuedBytes() < peerWriteBufferBytesMax;
  }

  /**
   * Resolves when less than peerWriteBufferBytesMax waits to be written; rejects (NET_PEER_CLOSED)
   * when the connection closes first.
   */
  drained(): Promise<void> {
    if (this.#closeReason !== null) {
      return Promise.reject(new NormaError('NET_PEER_CLOSED', `the connection to ${this.name} is closed`));
    }
    if (this.#queuedBytes() < peerWriteBufferBytesMax) return Promise.resolve();
    if (this.#drained === null) {
      let resolve!: () => void;
      let reject!: (error: NormaError) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.#drained = { promise, resolve, reject };
    }
    return this.#drained.promise;
  }

  /**
   * Closes the connection once what was sent is written. With an error, the peer is sent a `reject`
   * with its code first, and the error is the close reason.
   */
  close(error?: NormaError): void {
    if (this.#closeReason !== null) return;
    this.#closeReason =
      error ?? new NormaError('NET_PEER_CLOSED', `this node closed the connection to ${this.name}`);
    if (this.#socket.writable) this.#writeNow();
    if (error !== undefined) {
      this.#log(`${error.code}: closing the connection to ${this.#label()}: ${error.message}`);
      if (this.#socket.writable) this.#socket.write(Buffer.concat(encodeFrame(rejectFrame(error))));
    }
    endSocket(this.#socket);
  }

  #receiveAll(frames: Frame[]): void {
    for (const frame of frames) {
      if (this.#closeReason !== null) return;
      this.#receive(frame);
    }
  }

  #label(): string {
    return `${this.name} (${this.direction}, ${this.address})`;
  }

  /** Bytes sent and not yet written to the socket, or written and not yet taken by it. */
  #queuedBytes(): number {
    return this.#socket.writableLength + this.#pendingBytes;
  }

  #write(frame: Frame): void {
    for (const piece of encodeFrame(frame)) {
      this.#pending.push(piece);
      this.#pendingBytes += piece.length;
    }
    if (!this.#flushScheduled && !this.#writing) {
      this.#flushScheduled = true;
      process.nextTick(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    if (!this.#writing && this.#closeReason === null) this.#writeNow();
  };

  /** Writes every pending piece as one buffer (one TLS write: TLS copies the pieces of a writev). */
  #writeNow(): void {
    const pieces = this.#pending;
    if (pieces.length === 0) return;
    let buffer: Uint8Array;
    if (pieces.length === 1) buffer = pieces[0]!;
    else if (this.#writing || this.#pendingBytes > peerGatherBytesMax) {
      // Closing, with the gather buffer in flight; or a burst too large to keep a buffer for.
      buffer = Buffer.concat(pieces, this.#pendingBytes);
    } else {
      if (this.#gather.length < this.#pendingBytes) {
        this.#gather = Buffer.allocUnsafeSlow(Math.max(this.#pendingBytes, 2 * this.#gather.length));
      }
      let offset = 0;
      for (const piece of pieces) {
        this.#gather.set(piece, offset);
        offset += piece.length;
      }
      buffer = this.#gather.subarray(0, offset);
    }
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#writing = true;
    this.#socket.write(buffer, this.#written);
  }

  readonly #written = (): void => {
    this.#writing = false;
    // Errors are the socket's 'error' and 'close' to report; what was sent meanwhile goes now.
    if (this.#closeReason === null) this.#writeNow();
    if (this.#queuedBytes() < peerWriteBufferBytesMax) this.#onDrain();
  };

  #onData(chunk: Buffer): void {
    if (this.#closeReason !== null) return;
    let frames: Frame[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (error) {
      this.close(error as NormaError);
      return;
    }
    this.#receiveAll(frames);
  }

  #receive(frame: Frame): void {
    switch (frame.k) {
      case 'hello':
      case 'welcome':
        this.close(new NormaError('NET_FRAME_MALFORMED', `${frame.k} on an established connection`));
        return;
      case 'reject': {
        const reason = rejected(frame, this.name);
        this.#log(`${reason.code}: ${this.#label()} closed the connection: ${frame.message}`);
        this.#setReason(reason);
        endSocket(this.#socket);
        return;
      }
      case 'ping':
        this.#write({ k: 'pong', seq: frame.seq, data: frame.data });
        if (this.#queuedBytes() >= peerWriteBufferBytesMax) this.#pause(pausedForDrain);
        break;
    }
    if (this.#backlog.length > 0 || this.listenerCount('frame') === 0) {
      this.#backlog.push(frame);
      this.#pause(pausedForListener);
    } else {
      this.emit('frame', frame);
    }
  }

  #flushBacklog(): void {
    while (this.#backlog.length > 0 && this.listenerCount('frame') > 0 && this.#closeReason === null) {
      this.emit('frame', this.#backlog.shift()!);
    }
    if (this.#backlog.length === 0) this.#resume(pausedForListener);
  }

  #pause(reason: number): void {
    if (this.#paused === 0) this.#socket.pause();
    this.#paused |= reason;
  }

  #resume(reason: number): void {
    if (this.#paused === 0) return;
    this.#paused &= ~reason;
    if (this.#paused === 0) this.#socket.resume();
  }

  #onDrain(): void {
    this.#resume(pausedForDrain);
    const drained = this.#drained;
    this.#drained = null;
    drained?.resolve();
  }

  #onEnd(): void {
    try {
      this.#decoder.end();
    } catch (error) {
      const reason = error as NormaError;
      this.#log(`${reason.code}: ${this.#label()}: ${reason.message}`);
      this.#setReason(reason);
      return;
    }
    this.#setReason(new NormaError('NET_PEER_CLOSED', `${this.#label()} closed the connection`));
  }

  #setReason(reason: NormaError): void {
    if (this.#closeReason === null) this.#closeReason = reason;
  }

  #onClose(): void {
    this.#setReason(new NormaError('NET_PEER_CLOSED', `the connection to ${this.#label()} was lost`));
    const reason = this.#closeReason!;
    this.#drained?.reject(reason);
    this.#drained = null;
    this.emit('close', reason);
  }
}

const pausedForListener = 1;
const pausedForDrain = 2;

type FirstFrame = { frame: Frame; rest: Frame[] } | { error: NormaError };

/**
 * Reads the first frame of a connection (the hello or the welcome) within `timeoutMs`, then stops
 * reading (the socket is paused) and hands over the decoder's state and any frames that came with it.
 */
function readFirstFrame(
  socket: TLSSocket,
  decoder: FrameDecoder,
  remote: string,
  timeoutMs: number,
  done: (result: FirstFrame) => void,
): void {
  const finish = (result: FirstFrame): void => {
    clearTimeout(timer);
    socket.pause();
    socket.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', onError);
    done(result);
  };
  const timer = setTimeout(
    () =>
      finish({
        error: new NormaError(
          'NET_HANDSHAKE_TIMEOUT',
          `no handshake from ${remote} in ${timeoutMs} ms (${decoder.pendingBytes} bytes of it)`,
        ),
      }),
    timeoutMs,
  );
  const onData = (chunk: Buffer): void => {
    let frames: Frame[];
    try {
      frames = decoder.push(chunk);
    } catch (error) {
      finish({ error: error as NormaError });
      return;
    }
    if (frames.length > 0) finish({ frame: frames[0]!, rest: frames.slice(1) });
  };
  const onEnd = (): void =>
    finish({
      error: new NormaError('NET_PEER_CLOSED', `${remote} closed the connection during the handshake`),
    });
  const onError = (error: NodeJS.ErrnoException): void => finish({ error: socketError(error, true, remote) });
  // 'close' without 'end': the socket was destroyed (Transport.close).
  socket.on('data', onData).once('end', onEnd).once('close', onEnd).once('error', onError);
}

/** The NormaError for a socket error: refused by TLS, or the connection lost. */
function socketError(error: NodeJS.ErrnoException, connected: boolean, remote: string): NormaError {
  const code = error.code ?? '';
  if (!connected) {
    return new NormaError('NET_PEER_UNREACHABLE', `cannot connect to ${remote}: ${code || error.message}`, {
      cause: error,
    });
  }
  if (/^ERR_(SSL|TLS)_|CERT/.test(code)) {
    return new NormaError('NET_AUTH_FAILED', `TLS with ${remote} failed: ${error.message}`, { cause: error });
  }
  return new NormaError('NET_PEER_CLOSED', `the connection to ${remote} was lost: ${code || error.message}`, {
    cause: error,
  });
}

/** The error a peer's reject stands for (its code, when this version knows it). */
function rejected(frame: Reject, remote: string): NormaError {
  const known = Object.hasOwn(errorCodes, frame.code);
  return new NormaError(
    known ? (frame.code as ErrorCode) : 'NET_PEER_REJECTED',
    `rejected by ${remote}: ${known ? '' : `${frame.code}: `}${frame.message}`,
  );
}

function rejectFrame(error: NormaError): Reject {
  return { k: 'reject', code: error.code, message: error.message.slice(0, rejectMessageLengthMax) };
}

/** Half-closes after what is written, and destroys the socket if the peer does not close its side. */
function endSocket(socket: TLSSocket): void {
  socket.end();
  const timer = setTimeout(() => socket.destroy(), peerCloseLingerMs).unref();
  socket.once('close', () => clearTimeout(timer));
}

/** The CN of the certificate a TLS peer presented (verified against the cluster CA by then). */
function certificateName(socket: TLSSocket): string | null {
  const cn = socket.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' ? cn : null;
}

function remoteOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return socket.remoteAddress === undefined
    ? 'a peer'
    : formatNodeAddress(socket.remoteAddress, socket.remotePort ?? 0);
}

function ignore(): void {}
