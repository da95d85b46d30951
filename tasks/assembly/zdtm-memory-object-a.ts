// zdtm-memory-object-a: a memory object shared by two tasks (run with zdtm-memory-object-b; the
// harness freezes the two as a group). A creates a 64 KiB object and maps all of it. Before
// `zdtm: ready` it writes the first half's pattern and releases it (the pager now holds it), then
// acquires WRITE again and writes the second half into its own memory only, and hands B a send
// right to the object (service "zdtm-memory-object"). So when frozen: the pager holds half the
// pattern, A holds the object's WRITE lock with the other half uncommitted in its linear memory,
// and B is (about to be) blocked in its READ acquire behind that lock.
// Wait: 5 x 50 ms sleeps holding the lock, then release (B's acquire completes only now), then a
// receive for B's report. A finally re-reads the object: the pattern plus B's mark in the last
// word. Run A as the main task, B with `--also` (A ends last, so the node outlives B's verdict):
//   norma run zdtm-memory-object-a.wasm --also zdtm-memory-object-b.wasm
// Output (the two tasks' lines interleave; each task's own lines are in this order):
//   zdtm: ready
//   zdtm: pass zdtm-memory-object-a
import { AccessMode, Disposition, MemoryObject, Message, nameRegister, Port, receive, send, sleep } from "../sdk/norma";
import { begin, expectEq, expectKr, fail, must, ready, verdict } from "./lib/zdtm";
import { fill, HALF, MARK, matching, OBJECT_BYTES, REPORT, REQUEST, SERVICE } from "./lib/zdtm-memory-object";

export function _start(): void {
  begin("zdtm-memory-object-a");
  const object = MemoryObject.create(OBJECT_BYTES);
  const window = heap.alloc(OBJECT_BYTES);
  const mapping = MemoryObject.map(object, 0, OBJECT_BYTES, window);
  must(MemoryObject.acquire(mapping, AccessMode.WRITE, 0), "acquire WRITE");
  fill(window, 0, HALF);
  must(MemoryObject.release(mapping), "release WRITE (first half)");
  must(MemoryObject.acquire(mapping, AccessMode.WRITE, 0), "acquire WRITE again");
  fill(window, HALF, OBJECT_BYTES);

  const service = Port.allocate();
  must(nameRegister(SERVICE, service), "name_register");
  const msg = new Message(64);
  must(receive(service, msg, 10000), "receive B's request (is zdtm-memory-object-b running?)");
  if (msg.id != REQUEST) fail("request id " + msg.id.toString());
  const reply = msg.replyPort;
  msg.reset().setDestination(reply, Disposition.MOVE_SEND_ONCE).setId(REQUEST).addPort(object, Disposition.COPY_SEND);
  must(send(msg, 0), "send the object right");
  ready();

  for (let i = 0; i < 5; i++) expectKr("clock_sleep", sleep(50)); // holding the WRITE lock
  expectEq("second half still in our memory", matching(window, HALF, OBJECT_BYTES), HALF);
  expectKr("release WRITE (second half)", MemoryObject.release(mapping));
  if (expectKr("receive B's report", receive(service, msg, 10000))) {
    expectEq("report id", msg.id, REPORT);
    expectEq("bytes B verified", msg.u32At(0), OBJECT_BYTES);
  }
  memory.fill(window, 0, OBJECT_BYTES); // what we see next comes from the object
  if (expectKr("acquire READ", MemoryObject.acquire(mapping, AccessMode.READ, 0))) {
    expectEq("pattern bytes", matching(window, 0, OBJECT_BYTES - 4), OBJECT_BYTES - 4);
    expectEq("B's mark", load<u32>(window + OBJECT_BYTES - 4), MARK);
    expectKr("release READ", MemoryObject.release(mapping));
  }
  expectKr("unmap", MemoryObject.unmap(mapping));
  verdict();
}
