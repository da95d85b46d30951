// zdtm-heap: a large, fragmented heap. Before `zdtm: ready` the task allocates 8 MiB in 512 blocks
// (511 of 1..32768 bytes, sizes from a fixed LCG, and a last one of the rest, 164256 bytes, so
// exactly 8 MiB in all), which grows the memory well past its initial size, and fills every byte
// with a pattern that depends on the block and the offset. Wait: 4 x 50 ms sleeps. Then it checks
// that every block still starts where it did, every byte holds its pattern, and memory did not
// shrink. Output:
//   zdtm: ready
//   zdtm: pass zdtm-heap
import { begin, expect, expectEq, ready, verdict, waitStep } from "./lib/zdtm";

const BLOCKS = 512;
const TOTAL_BYTES = 8 * 1024 * 1024;

function patternByte(block: i32, i: i32): u8 {
  return <u8>((i * 29 + block * 101) ^ (i >> 7) ^ (block >> 3));
}

export function _start(): void {
  begin("zdtm-heap");
  const pagesBefore = memory.size();
  const addresses = new StaticArray<usize>(BLOCKS);
  const sizes = new StaticArray<i32>(BLOCKS);
  let seed: u32 = 12345;
  let total = 0;
  for (let b = 0; b < BLOCKS; b++) {
    seed = seed * 1103515245 + 12345;
    let size = <i32>((seed >> 16) & 0x7fff) + 1;
    if (b == BLOCKS - 1) size = TOTAL_BYTES - total; // exactly 8 MiB in all
    sizes[b] = size;
    total += size;
    const p = heap.alloc(size);
    addresses[b] = p;
    for (let i = 0; i < size; i++) store<u8>(p + i, patternByte(b, i));
  }
  const pagesAfter = memory.size();
  expect(pagesAfter - pagesBefore >= TOTAL_BYTES / 65536, "memory did not grow by 8 MiB");
  const where = changetype<usize>(addresses);
  ready();

  waitStep();

  expectEq("block table where it was", changetype<usize>(addresses), where);
  expectEq("memory pages", memory.size(), pagesAfter);
  expectEq("total bytes", total, TOTAL_BYTES);
  let bad = 0;
  let firstBad = -1;
  for (let b = 0; b < BLOCKS; b++) {
    const p = addresses[b];
    const size = sizes[b];
    for (let i = 0; i < size; i++) {
      if (load<u8>(p + i) != patternByte(b, i)) {
        if (bad == 0) firstBad = b;
        bad++;
      }
    }
  }
  expect(bad == 0, bad.toString() + " wrong bytes, first in block " + firstBad.toString());
  verdict();
}
