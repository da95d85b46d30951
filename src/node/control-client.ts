/**
 * A client of the node's control socket (control-protocol.ts): connects, sends requests, and turns
 * responses back into results or NormaErrors. Nothing listening is NODE_NOT_RUNNING.
 */
import { connect, type Socket } from 'node:net';
import { type ErrorCode, errorCodes, NormaError } from '../errors.js';
import {
  encodeRequest,
  type LogEvent,
  type Method,
  type ParamsIn,
  type RequestId,
  type Results,
  type WireError,
} from './control-protocol.js';

const notRunningHint = 'start it with `norma node start` (and check --store / --socket)';

function notRunning(message: string): NormaError {
  return new NormaError('NODE_NOT_RUNNING', message, { hint: notRunningHint });
}

/** Responses can be large (a `ps` of many tasks); anything beyond this is not the node speaking. */
const responseLineBytesMax = 64 * 1024 * 1024;

interface Pending {
  resolve: (result: unknown) => void;
  reject: (error: unknown) => void;
  onEvent?: (event: LogEvent) => void;
}

/** What is at a socket path: a live listener, a socket file nobody listens on, or nothing. */
export async function probeSocket(path: string): Promise<'alive' | 'stale' | 'absent'> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve('alive');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      resolve(error.code === 'ECONNREFUSED' ? 'stale' : 'absent');
    });
  });
}

export class ControlClient {
  readonly #pending = new Map<RequestId, Pending>();
  #nextId = 1;
  #buffer = '';
  #closedError: NormaError | null = null;

  /** `node`: the cluster member every request is for (the node at `socket` forwards them). */
  private constructor(
    private readonly socket: Socket,
    private readonly node: string | undefined,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.#receive(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#closedError ??= notRunning('the node closed the connection before it answered');
      for (const pending of this.#pending.values()) pending.reject(this.#closedError);
      this.#pending.clear();
    });
  }

  /** Connects to the node listening on `path`; with `node`, requests are for that cluster member. */
  static connect(path: string, node?: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(new ControlClient(socket, node));
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
          reject(notRunning(`no node is running on ${path}`));
        } else if (error.code === 'EACCES') {
          reject(
            new NormaError('NODE_NOT_RUNNING', `the node socket ${path} belongs to another user`, {
              hint: 'A node answers only its owner; start your own with `norma node start --store <dir>`.',
            }),
          );
        } else reject(notRunning(`cannot connect to ${path}: ${error.message}`));
      });
    });
  }

  call<M extends Method>(method: M, params: ParamsIn<M>): Promise<Results[M]> {
    return this.#request(method, params);
  }

  /** A request whose events (`logs`) go to `onEvent` until its result. */
  stream<M extends Method>(
    method: M,
    params: ParamsIn<M>,
    onEvent: (event: LogEvent) => void,
  ): Promise<Results[M]> {
    return this.#request(method, params, onEvent);
  }

  close(): void {
    this.#closedError = notRunning('the connection was closed');
    this.socket.end();
    this.socket.destroy();
  }

  #request<M extends Method>(
    method: M,
    params: ParamsIn<M>,
    onEvent?: (event: LogEvent) => void,
  ): Promise<Results[M]> {
    if (this.#closedError !== null) return Promise.reject(this.#closedError);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, {
        resolve: resolve as (result: unknown) => void,
        reject,
        ...(onEvent === undefined ? {} : { onEvent }),
      });
      this.socket.write(encodeRequest(id, method, params, this.node));
    });
  }

  #receive(chunk: string): void {
    this.#buffer += chunk;
    if (this.#buffer.length > responseLineBytesMax && !this.#buffer.includes('\n')) {
      this.socket.destroy();
      return;
    }
    let newline = this.#buffer.indexOf('\n');
    while (newline !== -1) {
      const line = this.#buffer.slice(0, newline);
      this.#buffer = this.#buffer.slice(newline + 1);
      if (line.trim() !== '') this.#dispatch(line);
      newline = this.#buffer.indexOf('\n');
    }
  }

  #dispatch(line: string): void {
    let message: { id?: RequestId | null; result?: unknown; error?: WireError; event?: string };
    try {
      message = JSON.parse(line);
    } catch {
      return;
    }
    const pending =
      message.id === undefined || message.id === null ? undefined : this.#pending.get(message.id);
    if (message.error !== undefined && pending === undefined) {
      // An error the node could not tie to a request: fail every request waiting.
      for (const waiting of this.#pending.values()) waiting.reject(fromWire(message.error));
      this.#pending.clear();
      return;
    }
    if (pending === undefined) return;
    if (message.event === 'log') {
      pending.onEvent?.(message as LogEvent);
      return;
    }
    this.#pending.delete(message.id!);
    if (message.error !== undefined) pending.reject(fromWire(message.error));
    else pending.resolve(message.result);
  }
}

/** A wire error as a NormaError (its code and hint kept), or a plain Error for the node's own failures. */
export function fromWire(error: WireError): Error {
  if (Object.hasOwn(errorCodes, error.code)) {
    return new NormaError(error.code as ErrorCode, error.message, {
      ...(error.hint === undefined ? {} : { hint: error.hint }),
    });
  }
  return new Error(`the node failed: ${error.message}`);
}

/** Connects, makes one call, and closes. */
export async function callNode<M extends Method>(
  socketPath: string,
  method: M,
  params: ParamsIn<M>,
  node?: string,
): Promise<Results[M]> {
  const client = await ControlClient.connect(socketPath, node);
  try {
    return await client.call(method, params);
  } finally {
    client.close();
  }
}
