/**
 * Large I/O buffers, kept for reuse. A buffer freshly allocated costs its first-touch page faults
 * (1.7–2 GB/s here, slower than the disk), while one already touched copies at 10+ GB/s: commits and
 * reads recycle theirs through this pool instead of allocating per write.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly bufferBytes: number,
    /** Buffers kept when given back; more than this are left to the garbage collector. */
    private readonly retainMax: number,
  ) {}

  take(): Buffer {
    // Shared memory, so that the hash worker can read a buffer without a copy.
    return this.free.pop() ?? Buffer.from(new SharedArrayBuffer(this.bufferBytes));
  }

  give(buffer: Buffer): void {
    if (buffer.length === this.bufferBytes && this.free.length < this.retainMax) this.free.push(buffer);
  }
}
