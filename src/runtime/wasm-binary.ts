/**
 * Small edits on the WebAssembly binary format that binaryen.js does not offer: after
 * multi-memory lowering the combined memory's limits must be exactly the guest's plus the hidden
 * asyncify pages (binaryen computes them from the lowered memories' declared maxima).
 */

const memorySectionId = 5;

function readUnsignedLeb(bytes: Uint8Array, position: number): [value: number, next: number] {
  let result = 0;
  let shift = 0;
  let byte: number;
  do {
    byte = bytes[position++]!;
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [result, position];
}

function unsignedLeb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

/** Returns a copy of `bytes` whose single defined memory has the given limits (max undefined: none). */
export function withMemoryLimits(
  bytes: Uint8Array,
  initialPages: number,
  maximumPages: number | undefined,
): Uint8Array<ArrayBuffer> {
  let position = 8;
  while (position < bytes.length) {
    const id = bytes[position]!;
    const [size, bodyStart] = readUnsignedLeb(bytes, position + 1);
    const sectionEnd = bodyStart + size;
    if (id === memorySectionId) {
      const limits =
        maximumPages === undefined
          ? [0x00, ...unsignedLeb(initialPages)]
          : [0x01, ...unsignedLeb(initialPages), ...unsignedLeb(maximumPages)];
      const body = [...unsignedLeb(1), ...limits];
      const section = [memorySectionId, ...unsignedLeb(body.length), ...body];
      const out = new Uint8Array(bytes.length - (sectionEnd - position) + section.length);
      out.set(bytes.subarray(0, position));
      out.set(section, position);
      out.set(bytes.subarray(sectionEnd), position + section.length);
      return out;
    }
    position = sectionEnd;
  }
  throw new Error('withMemoryLimits: the module has no memory section');
}
