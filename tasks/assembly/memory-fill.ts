// memory-fill: a task with a chosen amount of memory, for the snapshot benchmarks. It allocates
// MiB mebibytes, fills them with xorshift32 words (incompressible, no zero page), prints
// `ready <MiB>` and then waits for a message that never comes, so the benchmark can checkpoint it.
// Another seed gives other contents (a store that holds one task's pages holds none of another's).
// Usage: memory-fill [MiB=64] [seed=0]. Output: `ready 64`.
import { intArg, Message, Port, println, receive } from "../sdk/norma";

export function _start(): void {
  const mib = intArg(1, 64);
  const bytes = <usize>mib << 20;
  const base = heap.alloc(bytes);
  let x: u32 = 2463534242 ^ (<u32>intArg(2, 0) * 2654435761);
  if (x == 0) x = 1; // xorshift's one stuck state
  for (let offset: usize = 0; offset < bytes; offset += 4) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    store<u32>(base + offset, x);
  }
  println("ready " + mib.toString());
  const port = Port.allocate();
  receive(port, new Message(64)); // nobody sends: the task waits here until it is killed
}
