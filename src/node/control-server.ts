/**
 * The node's end of the control socket: listens on a Unix socket that only its owner can use,
 * reads requests line by line (control-protocol.ts), hands each valid one to the handler, and writes
 * back its result or error. A bad request gets NODE_BAD_REQUEST and changes nothing; the handler's
 * exceptions become error responses. Nothing a client sends can end the node.
 */
import { chmod } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { NormaError } from '../errors.js';
import {
  encodeError,
  encodeLogEvent,
  encodeResult,
  LineReader,
  type ParsedRequest,
  parseRequest,
  type RequestId,
  wireError,
} from './control-protocol.js';

/** What a handler may do besides returning its result. */
export interface RequestContext {
  /** Sends a log event for this request (before its result). */
  emit(stream: 'stdout' | 'stderr', data: Uint8Array): void;
  /** Aborted when the client's connection closes. */
  readonly closed: AbortSignal;
}

export type RequestHandler = (request: ParsedRequest, context: RequestContext) => Promise<unknown>;

/** The longest path a Unix socket may have on Linux (sun_path is 108 bytes with its NUL). */
export const socketPathBytesMax = 107;

export class ControlServer {
  readonly #connections = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  /** Listens on `path` (which must not exist), mode 0600. */
  static async listen(
    path: string,
    handler: RequestHandler,
    log: (message: string) => void,
  ): Promise<ControlServer> {
    if (Buffer.byteLength(path) > socketPathBytesMax) {
      throw new NormaError(
        'USAGE',
        `the socket path ${path} is ${Buffer.byteLength(path)} bytes long; a Unix socket path has at most ${socketPathBytesMax}`,
        { hint: 'Pass a shorter --socket path (or a --store with a shorter path).' },
      );
    }
    let control!: ControlServer;
    const server = createServer((socket) => control.#serve(socket, handler, log));
    control = new ControlServer(server, path);
    // The socket file is created by bind(2) with the process umask: 0177 leaves rw for the owner
    // only from the start (no window in which another user could connect), and chmod makes sure.
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(umask);
    }
    await chmod(path, 0o600);
    server.on('error', (error) => log(`control socket error: ${error.message}`));
    return control;
  }

  /** Stops accepting connections; those open stay until `closeConnections`. */
  stopListening(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  closeConnections(): void {
    for (const socket of this.#connections) socket.end();
    // A client that does not read its responses must not keep the node alive.
    setTimeout(() => {
      for (const socket of this.#connections) socket.destroy();
    }, 1000).unref();
  }

  #serve(socket: Socket, handler: RequestHandler, log: (message: string) => void): void {
    this.#connections.add(socket);
    const closed = new AbortController();
    const send = (line: string): void => {
      if (!socket.destroyed && socket.writable) socket.write(line);
    };
    const reader = new LineReader(
      (line) => {
        const parsed = parseRequest(line);
        if (!parsed.ok) {
          send(encodeError(parsed.id, wireError(parsed.error)));
          return;
        }
        const id: RequestId = parsed.request.id;
        const context: RequestContext = {
          emit: (stream, data) => send(encodeLogEvent(id, stream, data)),
          closed: closed.signal,
        };
        handler(parsed.request, context).then(
          (result) => send(encodeResult(id, result ?? null)),
          (error: unknown) => {
            if (!(error instanceof NormaError)) log(`${parsed.request.method} failed: ${describe(error)}`);
            send(encodeError(id, wireError(error)));
          },
        );
      },
      () =>
        send(
          encodeError(
            null,
            wireError(new NormaError('NODE_BAD_REQUEST', 'the request line is longer than 1 MiB: skipped')),
          ),
        ),
    );
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('error', () => undefined); // a client gone mid-write: its connection just ends
    socket.on('close', () => {
      this.#connections.delete(socket);
      closed.abort();
    });
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
