/**
 * A pager supplies and stores the contents of memory objects (Mach's memory_object interface,
 * reduced to the two calls norma's copy-in/copy-out sharing needs). The default pager keeps the
 * pages in the kernel's memory as plain data, which the snapshot captures; a remote pager (another
 * node's kernel) will implement the same interface.
 */
export interface Pager {
  /** Copies [offset, offset + target.length) of the object into target. */
  read(objectId: number, offset: number, target: Uint8Array): void;
  /** Stores source at offset in the object. */
  write(objectId: number, offset: number, source: Uint8Array): void;
}

/** Plain data of the default pager: the bytes of every object it backs. */
export interface DefaultPagerState {
  objects: Record<number, Uint8Array>;
}

export class DefaultPager implements Pager {
  constructor(readonly state: DefaultPagerState = { objects: {} }) {}

  create(objectId: number, size: number): void {
    this.state.objects[objectId] = new Uint8Array(size);
  }

  destroy(objectId: number): void {
    delete this.state.objects[objectId];
  }

  read(objectId: number, offset: number, target: Uint8Array): void {
    target.set(this.#object(objectId).subarray(offset, offset + target.length));
  }

  write(objectId: number, offset: number, source: Uint8Array): void {
    this.#object(objectId).set(source, offset);
  }

  #object(objectId: number): Uint8Array {
    const object = this.state.objects[objectId];
    if (object === undefined) throw new Error(`DefaultPager: no object ${objectId}`);
    return object;
  }
}
