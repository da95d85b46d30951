/**
 * Checked access to a task's linear memory. Only the guest-visible part counts: the hidden
 * asyncify pages above it are out of bounds for every syscall pointer, so a task cannot pass the
 * kernel a pointer into its own frames.
 */
export class GuestMemory {
  #buffer: ArrayBuffer | undefined;
  #view!: DataView;
  #bytes!: Uint8Array;
  #visibleBytes = 0;

  constructor(
    private readonly memory: WebAssembly.Memory,
    /** Returns the number of guest-visible bytes now (memory grows while the task runs). */
    private readonly visibleBytes: () => number,
  ) {}

  /**
   * Re-reads the buffer and the visible size only after memory grew: growing detaches the old
   * buffer (its byteLength becomes 0), and the visible size changes only when memory grows.
   * Reading `memory.buffer` and the offset global on every access cost 5% of an IPC round trip.
   */
  #refresh(): void {
    if (this.#buffer !== undefined && this.#buffer.byteLength !== 0) return;
    const buffer = this.memory.buffer;
    this.#buffer = buffer;
    this.#view = new DataView(buffer);
    this.#bytes = new Uint8Array(buffer);
    this.#visibleBytes = this.visibleBytes();
  }

  /** Forgets the cached views and size (after the host itself changed the hidden-offset global). */
  invalidate(): void {
    this.#buffer = undefined;
  }

  /** Guest-visible bytes now. */
  get size(): number {
    this.#refresh();
    return this.#visibleBytes;
  }

  /** The guest-visible bytes as one view (re-fetch after anything that may grow memory). */
  visible(): Uint8Array {
    this.#refresh();
    return this.#bytes.subarray(0, this.#visibleBytes);
  }

  /** The whole memory, hidden pages included (the runtime's own use only). */
  whole(): Uint8Array {
    this.#refresh();
    return this.#bytes;
  }

  view(): DataView {
    this.#refresh();
    return this.#view;
  }

  /** True when [pointer, pointer + length) lies inside visible memory. */
  inBounds(pointer: number, length: number): boolean {
    this.#refresh();
    return pointer >= 0 && length >= 0 && pointer + length <= this.#visibleBytes;
  }

  u32(pointer: number): number {
    this.#refresh();
    return this.#view.getUint32(pointer, true);
  }

  setU32(pointer: number, value: number): void {
    this.#refresh();
    this.#view.setUint32(pointer, value >>> 0, true);
  }

  /** A view (not a copy) of guest bytes; the caller checked bounds. */
  bytes(pointer: number, length: number): Uint8Array {
    this.#refresh();
    return this.#bytes.subarray(pointer, pointer + length);
  }

  utf8(pointer: number, length: number): string {
    return Buffer.from(this.bytes(pointer, length)).toString('utf8');
  }
}
