// What memory-share-a and memory-share-b agree on.
export const OBJECT_BYTES: i32 = 65536;
export const WINDOW_BYTES: i32 = 8192;
export const REQUEST: i32 = 1; // B -> A with a send-once reply right; the reply carries the object
export const REPORT: i32 = 2; // B -> A: u32 bytes verified, u32 checksum seen
export const MARK: u32 = 0xb0b0; // B writes it into the window's last word

/** Byte i of the pattern A writes. */
export function patternByte(i: i32): u8 {
  return <u8>((i * 31 + 7) ^ (i >> 8));
}

export function fillPattern(window: usize): void {
  for (let i = 0; i < WINDOW_BYTES; i++) store<u8>(window + i, patternByte(i));
}

/** FNV-1a over the window. */
export function sumWindow(window: usize): u32 {
  let h: u32 = 2166136261;
  for (let i = 0; i < WINDOW_BYTES; i++) h = (h ^ load<u8>(window + i)) * 16777619;
  return h;
}
