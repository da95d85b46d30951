// memory-share-a: two TASKS share one memory object (run with memory-share-b). A creates a 64 KiB
// object, maps an 8 KiB window and acquires it for WRITE before B can see it, registers
// "memory-share", and answers B's request with a send right to the object. It then sleeps 50 ms
// (virtual time) so that B blocks in its READ acquire, writes a pattern and releases: B's acquire
// completes only then. B verifies, writes a mark into the last word, and reports back; A re-reads
// the window and checks the mark. Exits 0 only if all checks pass. Output:
//   ok   request id: 1
//   memory-share-a: wrote 8192 bytes, checksum 0xb524bbc5
//   ok   report id: 2
//   ok   B verified: 8192
//   ok   B's checksum: 0xb524bbc5
//   ok   B's mark: 0x0000b0b0
//   memory-share-a: all checks passed
import {
  AccessMode, check, Disposition, hex32, MemoryObject, Message, nameRegister, Port, println, receive, send, sleep,
} from "../sdk/norma";
import { expect, expectU32, finish } from "./lib/checks";
import { fillPattern, MARK, OBJECT_BYTES, REPORT, REQUEST, sumWindow, WINDOW_BYTES } from "./lib/memory-share";

export function _start(): void {
  const object = MemoryObject.create(OBJECT_BYTES);
  const window = heap.alloc(WINDOW_BYTES);
  const mapping = MemoryObject.map(object, 0, WINDOW_BYTES, window);
  check(MemoryObject.acquire(mapping, AccessMode.WRITE), "acquire WRITE");

  const service = Port.allocate();
  check(nameRegister("memory-share", service), "name_register(memory-share)");
  const msg = new Message(128);
  check(receive(service, msg), "receive request");
  expectU32("request id", msg.id, REQUEST);
  const reply = msg.replyPort;
  msg.reset().setDestination(reply, Disposition.MOVE_SEND_ONCE).setId(REQUEST);
  check(send(msg.addPort(object, Disposition.COPY_SEND)), "send object right");

  check(sleep(50), "clock_sleep"); // B now waits in its READ acquire behind our WRITE lock
  fillPattern(window);
  const sum = sumWindow(window);
  check(MemoryObject.release(mapping), "release WRITE");
  println("memory-share-a: wrote " + WINDOW_BYTES.toString() + " bytes, checksum " + hex32(sum));

  check(receive(service, msg), "receive report");
  expectU32("report id", msg.id, REPORT);
  expectU32("B verified", msg.u32At(0), WINDOW_BYTES);
  expect("B's checksum", hex32(msg.u32At(1)), hex32(sum));
  check(MemoryObject.acquire(mapping, AccessMode.READ), "acquire READ");
  expect("B's mark", hex32(load<u32>(window + WINDOW_BYTES - 4)), hex32(MARK));
  check(MemoryObject.release(mapping), "release READ");
  check(MemoryObject.unmap(mapping), "unmap");
  finish("memory-share-a");
}
