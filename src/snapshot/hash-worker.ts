/**
 * A worker thread that hashes pages, so that reading a snapshot checks every page (xxh128, about
 * 4 GB/s on one core) without costing much more than reading it: the store's scan hands half of
 * each read range to this thread and hashes the other half itself, while the next ranges are read.
 *
 * Starting a worker costs about 40 ms, so the store starts one ahead of need (when a manifest is
 * read, which is how a resume begins) and scans use it only once it is ready; until then, or if it
 * fails, they hash everything on the main thread. The worker is unref'ed while idle, so an open
 * store never keeps a process alive.
 */
import { Worker } from 'node:worker_threads';

interface HashReply {
  id: number;
  hashes: string[];
}

export class HashWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<
    number,
    { resolve: (hashes: string[]) => void; reject: (error: Error) => void }
  >();
  private nextId = 1;
  private state: 'starting' | 'ready' | 'dead' = 'starting';

  constructor() {
    this.worker = new Worker(new URL('./hash-worker-thread.js', import.meta.url));
    this.worker.on('message', (message: HashReply | { ready: true }) => {
      if ('ready' in message) {
        if (this.state === 'starting') this.state = 'ready';
        return;
      }
      const waiter = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (this.pending.size === 0) this.worker.unref();
      waiter?.resolve(message.hashes);
    });
    const fail = (error: Error): void => {
      this.state = 'dead';
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`the hash worker exited (${code})`)));
    // After the listeners: in Node 20 adding a 'message' listener refs the worker again, and a
    // ref'ed idle worker would keep every process that ever froze anything from exiting.
    this.worker.unref();
  }

  get ready(): boolean {
    return this.state === 'ready';
  }

  /** xxh128 hex digests of the spans (pairs of offset and length) of `buffer`. */
  hash(buffer: SharedArrayBuffer, spans: Uint32Array): Promise<string[]> {
    if (this.state !== 'ready') return Promise.reject(new Error('the hash worker is not running'));
    const id = this.nextId++;
    // Referenced while a request is out: the process must not exit with a scan waiting on it.
    if (this.pending.size === 0) this.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, buffer, spans });
    });
  }

  async close(): Promise<void> {
    this.state = 'dead';
    await this.worker.terminate();
  }
}
