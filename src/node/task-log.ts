/**
 * A task's output on the node: appended to its log file (stdout and stderr interleaved, in the order
 * they were printed) and kept in memory as a tail of tagged chunks, which `norma logs` replays with
 * each chunk's stream and `--follow` continues. Output older than the tail, or from before a node
 * restart, comes from the file, where the streams are no longer told apart: it is replayed as stdout.
 */
import { closeSync, promises as fs, openSync, writeSync } from 'node:fs';
import type { TaskExit } from '../kernel/task.js';

export type Stream = 'stdout' | 'stderr';

/** Bytes of output kept in memory per task. */
const tailBytesMax = 256 * 1024;
/** Bytes of the file read at a time when it is replayed. */
const replayChunkBytes = 64 * 1024;

interface Chunk {
  readonly stream: Stream;
  readonly data: Buffer;
  /** Its offset in the file. */
  readonly at: number;
}

interface Follower {
  data: (stream: Stream, data: Uint8Array) => void;
  end: (exit: TaskExit | null) => void;
}

export class TaskLog {
  #fd: number | null = null;
  /** Size of the file: where the next write goes (once the file was opened here). */
  #size = 0;
  #sizeKnown = false;
  #tail: Chunk[] = [];
  #tailBytes = 0;
  /** Output printed before the file was opened. */
  #pending: Chunk[] = [];
  readonly #followers = new Set<Follower>();
  #failed = false;

  constructor(
    public path: string | null,
    private readonly warn: (message: string) => void,
  ) {}

  /** Opens (or reopens) the file for appending; output printed meanwhile is written first. */
  async open(path: string): Promise<void> {
    if (this.#fd !== null) return;
    const size = await fileSize(path);
    // A chunk's offset is where it lies in the file: a file written by someone else since (another
    // node) makes the tail start over at its end.
    if (path !== this.path || !this.#sizeKnown || size !== this.#size) {
      this.#tail = [];
      this.#tailBytes = 0;
    }
    this.path = path;
    this.#size = size;
    this.#sizeKnown = true;
    const pending = this.#pending;
    this.#pending = [];
    try {
      this.#fd = openSync(path, 'a', 0o600);
    } catch (error) {
      this.#warnOnce(`cannot open the log ${path}: ${(error as Error).message}`);
    }
    for (const chunk of pending) this.#append(chunk.stream, chunk.data);
  }

  close(): void {
    if (this.#fd === null) return;
    closeSync(this.#fd);
    this.#fd = null;
  }

  write(stream: Stream, bytes: Uint8Array): void {
    const data = Buffer.from(bytes); // the task's memory changes under a view
    if (this.path === null || (this.#fd === null && !this.#failed)) {
      this.#pending.push({ stream, data, at: 0 });
      return;
    }
    this.#append(stream, data);
  }

  #append(stream: Stream, data: Buffer): void {
    if (this.#fd !== null) {
      try {
        writeSync(this.#fd, data);
      } catch (error) {
        this.#warnOnce(`cannot write the log ${this.path}: ${(error as Error).message}`);
      }
    }
    this.#tail.push({ stream, data, at: this.#size });
    this.#size += data.length;
    this.#tailBytes += data.length;
    while (this.#tailBytes > tailBytesMax && this.#tail.length > 1)
      this.#tailBytes -= this.#tail.shift()!.data.length;
    for (const follower of this.#followers) follower.data(stream, data);
  }

  /** Tells the followers the task has ended (or will print no more here). */
  end(exit: TaskExit | null): void {
    for (const follower of [...this.#followers]) follower.end(exit);
    this.#followers.clear();
  }

  /**
   * Sends everything printed so far to `data` (the part older than the tail read from the file),
   * then, with `follow`, what is printed next, until `end` or `signal`. Resolves with the bytes sent.
   */
  async replay(
    data: (stream: Stream, bytes: Uint8Array) => void,
    options: { follow: boolean; signal: AbortSignal; alive: () => boolean },
  ): Promise<{ bytes: number; ended: boolean; exit: TaskExit | null }> {
    let sent = 0;
    let fileDone = 0;
    // The file part, until what is left is in the memory tail (output keeps coming meanwhile).
    for (;;) {
      if (this.path === null) break;
      const end = this.#sizeKnown ? this.#size : await fileSize(this.path);
      const tailStart = this.#tail[0]?.at ?? end;
      if (fileDone >= tailStart) break;
      fileDone += await this.#readFile(fileDone, tailStart, (bytes) => {
        sent += bytes.length;
        data('stdout', bytes);
      });
      if (options.signal.aborted) return { bytes: sent, ended: false, exit: null };
    }
    for (const chunk of this.#tail) {
      if (chunk.at + chunk.data.length <= fileDone) continue;
      const part = chunk.at < fileDone ? chunk.data.subarray(fileDone - chunk.at) : chunk.data;
      sent += part.length;
      data(chunk.stream, part);
    }
    for (const chunk of this.#pending) {
      sent += chunk.data.length;
      data(chunk.stream, chunk.data);
    }
    if (!options.follow || !options.alive() || options.signal.aborted)
      return { bytes: sent, ended: false, exit: null };
    return new Promise((resolve) => {
      const follower: Follower = {
        data: (stream, bytes) => {
          sent += bytes.length;
          data(stream, bytes);
        },
        end: (exit) => {
          options.signal.removeEventListener('abort', onAbort);
          resolve({ bytes: sent, ended: true, exit });
        },
      };
      const onAbort = (): void => {
        this.#followers.delete(follower);
        resolve({ bytes: sent, ended: false, exit: null });
      };
      options.signal.addEventListener('abort', onAbort, { once: true });
      this.#followers.add(follower);
    });
  }

  /** Reads [from, to) of the file in chunks; returns the bytes read (less if the file is shorter). */
  async #readFile(from: number, to: number, each: (bytes: Uint8Array) => void): Promise<number> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.path!, 'r');
    } catch {
      return to - from; // no file (never written, or removed): nothing to replay
    }
    let at = from;
    try {
      while (at < to) {
        const buffer = Buffer.alloc(Math.min(replayChunkBytes, to - at));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, at);
        if (bytesRead === 0) break;
        each(buffer.subarray(0, bytesRead));
        at += bytesRead;
      }
    } finally {
      await handle.close();
    }
    return to - from; // a file shorter than expected (truncated by hand): the rest is gone
  }

  #warnOnce(message: string): void {
    if (this.#failed) return;
    this.#failed = true;
    this.warn(message);
  }
}

function fileSize(path: string): Promise<number> {
  return fs.stat(path).then(
    (stat) => stat.size,
    () => 0,
  );
}
