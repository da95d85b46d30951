// zdtm-memory-object-b: the second task of zdtm-memory-object-a (see there). B looks up
// "zdtm-memory-object", gets a send right to A's object and maps all 64 KiB of it, then prints
// `zdtm: ready`. Wait: its READ acquire blocks until A releases its WRITE lock (A holds it for
// 250 ms after its own ready). B then verifies both halves of the pattern (the second half
// proves it waited for A's release), writes a mark into the last word under a WRITE lock and
// reports to A. Output:
//   zdtm: ready
//   zdtm: pass zdtm-memory-object-b
import {
  AccessMode, Disposition, MemoryObject, Message, nameLookup, Port, PORT_NULL, PortType, receive, send,
} from "../sdk/norma";
import { begin, expectEq, expectKr, fail, must, ready, verdict } from "./lib/zdtm";
import { HALF, MARK, matching, OBJECT_BYTES, REPORT, REQUEST, SERVICE } from "./lib/zdtm-memory-object";

export function _start(): void {
  begin("zdtm-memory-object-b");
  const service = nameLookup(SERVICE, 10000);
  if (service == PORT_NULL) fail(SERVICE + " not registered within 10 s (is zdtm-memory-object-a running?)");
  const reply = Port.allocate();
  const msg = new Message(64);
  msg.reset().setDestination(service, Disposition.COPY_SEND).setReply(reply, Disposition.MAKE_SEND_ONCE).setId(REQUEST);
  must(send(msg), "send request");
  must(receive(reply, msg, 10000), "receive the object right");
  if (msg.descriptorCount != 1 || Port.type(msg.portName(0)) != PortType.SEND) fail("no object right in the reply");
  const object = msg.portName(0);
  const window = heap.alloc(OBJECT_BYTES);
  const mapping = MemoryObject.map(object, 0, OBJECT_BYTES, window);
  ready();

  if (expectKr("acquire READ", MemoryObject.acquire(mapping, AccessMode.READ, 10000))) { // blocks behind A
    expectEq("first half (released before ready)", matching(window, 0, HALF), HALF);
    expectEq("second half (released after A's wait)", matching(window, HALF, OBJECT_BYTES), HALF);
    expectKr("release READ", MemoryObject.release(mapping));
  }
  if (expectKr("acquire WRITE", MemoryObject.acquire(mapping, AccessMode.WRITE, 10000))) {
    store<u32>(window + OBJECT_BYTES - 4, MARK);
    expectKr("release WRITE", MemoryObject.release(mapping));
  }
  expectKr("unmap", MemoryObject.unmap(mapping));
  msg.reset().setDestination(service, Disposition.COPY_SEND).setId(REPORT).putU32(<u32>OBJECT_BYTES);
  expectKr("send report", send(msg, 10000));
  verdict();
}
