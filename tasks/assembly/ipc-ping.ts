// ipc-ping: the IPC round-trip benchmark. ONE task with TWO threads (so it measures the kernel's
// message path, not the name service or the node transport): the main thread sends K pings to a
// pong thread, each carrying a MAKE_SEND_ONCE reply right, and waits for each reply. No allocation
// inside the loop: both sides reuse their buffers.
// Usage: ipc-ping [K=1000]. Output: `done K` (e.g. `done 1000`).
import {
  check, Disposition, intArg, join, Message, Port, println, receive, send, Thread,
} from "../sdk/norma";

const PING: i32 = 1;
const STOP: i32 = 2;
const PONG: i32 = 3;

/** Thread entry: answers every ping on `port` with its sequence number, until STOP. */
export function pong(port: i32): void {
  const req = new Message(64);
  const rep = new Message(64);
  while (true) {
    check(receive(<u32>port, req), "pong: receive");
    rep.reset().setDestination(req.replyPort, Disposition.MOVE_SEND_ONCE).setId(PONG).putU32(req.u32At(0));
    check(send(rep), "pong: reply");
    if (req.id == STOP) return;
  }
}

export function _start(): void {
  const k = intArg(1, 1000);
  const port = Port.allocate();
  check(Port.makeSend(port), "port_insert_right");
  const reply = Port.allocate();
  const tid = Thread.spawn("pong", <i32>port);
  const req = new Message(64);
  const rep = new Message(64);
  for (let i = 0; i <= k; i++) {
    // The last round trip (i == k) is the STOP, so the pong thread has answered before it is joined.
    req.reset().setDestination(port, Disposition.COPY_SEND).setReply(reply, Disposition.MAKE_SEND_ONCE);
    req.setId(i < k ? PING : STOP).putU32(<u32>i);
    check(send(req), "ping: send");
    check(receive(reply, rep), "ping: receive");
    if (rep.id != PONG || rep.u32At(0) != <u32>i) check(-1, "ping: wrong reply to " + i.toString());
  }
  check(join(tid), "thread_join");
  println("done " + k.toString());
}
