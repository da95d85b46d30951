/** Mutual exclusion for async sections (the store's catalogue-changing steps run one at a time). */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  /** Resolves when the caller holds the mutex, with the function that releases it. */
  acquire(): Promise<() => void> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise((resolve) => {
      release = resolve;
    });
    return previous.then(() => release);
  }

  async run<T>(section: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await section();
    } finally {
      release();
    }
  }
}
