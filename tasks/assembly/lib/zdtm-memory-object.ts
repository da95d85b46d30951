// What zdtm-memory-object-a and zdtm-memory-object-b agree on.
export const SERVICE = "zdtm-memory-object";
export const OBJECT_BYTES: i32 = 65536;
export const HALF: i32 = OBJECT_BYTES / 2;
export const REQUEST: i32 = 1; // B -> A, with a send-once reply right; the reply carries the object
export const REPORT: i32 = 2; // B -> A: u32 bytes verified
export const MARK: u32 = 0xb0b0600d; // B writes it into the object's last word

/** Byte i of the object as A leaves it (both halves). */
export function patternByte(i: i32): u8 {
  return <u8>((i * 131 + 17) ^ (i >> 9) ^ (i < HALF ? 0 : 0x5a));
}

export function fill(window: usize, from: i32, to: i32): void {
  for (let i = from; i < to; i++) store<u8>(window + i, patternByte(i));
}

/** How many bytes of [from, to) hold the pattern. */
export function matching(window: usize, from: i32, to: i32): i32 {
  let n = 0;
  for (let i = from; i < to; i++) if (load<u8>(window + i) == patternByte(i)) n++;
  return n;
}
