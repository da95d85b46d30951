/**
 * Buffers for the bytes of messages (bodies, out-of-line data), taken back once a message to
 * another node has been acknowledged by its home.
 *
 * Why: such a message waits in its proxy until then, long enough to outlive V8's young generation.
 * A fresh 64 KiB ArrayBuffer per message then counts as external memory that only a major GC frees,
 * and a stream of them made V8 mark the whole heap every 40-70 ms, taking one of the machine's two
 * CPUs from the daemons (the stream ran at half speed in one run out of three).
 *
 * Only buffers made here come back, and only from `Ipc.takeAcknowledged`: the message has left the
 * proxy's queue, its frame was gathered into a write (copied) before the home could acknowledge it,
 * and nothing else holds its bytes. (A resend still pending when the acknowledgement of the first
 * sending arrives would carry reused bytes: its home drops it as a duplicate by its sequence number,
 * unread.)
 */
export class ByteRecycler {
  /** Free buffers by length (a stream sends the same size again and again). */
  readonly #free = new Map<number, Uint8Array[]>();
  /** The buffers made here: nothing else is ever taken back. */
  readonly #made = new WeakSet<Uint8Array>();
  #freeBytes = 0;

  constructor(
    /** Bytes kept for reuse at most; what comes back beyond is left to the garbage collector. */
    private readonly keptBytesMax: number,
    /** Shorter copies are made with `slice` (on V8's heap or a small allocation: nothing to gain). */
    private readonly minBytes: number,
  ) {}

  /** A private copy of `bytes` (Mach copies at send). */
  copy(bytes: Uint8Array): Uint8Array {
    if (bytes.length < this.minBytes) return bytes.slice();
    let copy = this.#free.get(bytes.length)?.pop();
    if (copy !== undefined) this.#freeBytes -= copy.length;
    else {
      // Not zeroed first (`slice` zeroes, then copies over the zeros: a third of a 64 KiB send).
      copy = new Uint8Array(Buffer.allocUnsafeSlow(bytes.length).buffer, 0, bytes.length);
      this.#made.add(copy);
    }
    copy.set(bytes);
    return copy;
  }

  /** Takes back the bytes of a message nothing refers to any more (see the class comment). */
  give(bytes: Uint8Array): void {
    if (!this.#made.has(bytes) || this.#freeBytes + bytes.length > this.keptBytesMax) return;
    let free = this.#free.get(bytes.length);
    if (free === undefined) {
      free = [];
      this.#free.set(bytes.length, free);
    }
    free.push(bytes);
    this.#freeBytes += bytes.length;
  }
}
