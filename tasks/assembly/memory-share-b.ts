// memory-share-b: the second task of memory-share-a (see there). Gets a send right to A's memory
// object, maps the same window, acquires it for READ (blocking until A releases its WRITE lock),
// verifies A's pattern, then acquires WRITE to leave a mark in the last word and reports to A.
// Exits 0 only if all checks pass. Output:
//   ok   object descriptors: 1
//   ok   object port_type: SEND
//   ok   pattern bytes matching: 8192
//   memory-share-b: verified 8192 bytes, checksum 0xb524bbc5
//   memory-share-b: all checks passed
import {
  AccessMode, check, Disposition, eprintln, exit, hex32, MemoryObject, Message, nameLookup, Port, PORT_NULL,
  portTypeName, println, receive, send,
} from "../sdk/norma";
import { expect, expectU32, finish } from "./lib/checks";
import { MARK, patternByte, REPORT, REQUEST, sumWindow, WINDOW_BYTES } from "./lib/memory-share";

export function _start(): void {
  const service = nameLookup("memory-share", 10000);
  if (service == PORT_NULL) {
    eprintln('memory-share-b: "memory-share" not registered within 10 s');
    exit(1);
    return;
  }
  const reply = Port.allocate();
  const msg = new Message(128);
  msg.reset().setDestination(service, Disposition.COPY_SEND).setReply(reply, Disposition.MAKE_SEND_ONCE);
  check(send(msg.setId(REQUEST)), "send request");
  check(receive(reply, msg), "receive object right");
  expectU32("object descriptors", msg.descriptorCount, 1);
  const object = msg.portName(0);
  expect("object port_type", portTypeName(Port.type(object)), "SEND");

  const window = heap.alloc(WINDOW_BYTES);
  const mapping = MemoryObject.map(object, 0, WINDOW_BYTES, window);
  check(MemoryObject.acquire(mapping, AccessMode.READ), "acquire READ"); // waits for A's release
  let matching = 0;
  for (let i = 0; i < WINDOW_BYTES; i++) if (load<u8>(window + i) == patternByte(i)) matching++;
  const sum = sumWindow(window);
  check(MemoryObject.release(mapping), "release READ");
  expectU32("pattern bytes matching", matching, WINDOW_BYTES);
  println("memory-share-b: verified " + WINDOW_BYTES.toString() + " bytes, checksum " + hex32(sum));

  check(MemoryObject.acquire(mapping, AccessMode.WRITE), "acquire WRITE");
  store<u32>(window + WINDOW_BYTES - 4, MARK);
  check(MemoryObject.release(mapping), "release WRITE");
  check(MemoryObject.unmap(mapping), "unmap");

  msg.reset().setDestination(service, Disposition.COPY_SEND).setId(REPORT);
  check(send(msg.putU32(<u32>matching).putU32(sum)), "send report");
  finish("memory-share-b");
}
