// zdtm-queued-rights: rights in flight. Three messages wait, not yet received, on port `carrier`:
//   id 1: a send right (MAKE_SEND) to port `target`, inline 0x5e4d0001;
//   id 2: the receive right of port `moved` (MOVE_RECEIVE; the name leaves our space), whose own
//         queue holds one message (id 20, "inside the moved port"), inline 0x5e4d0002;
//   id 3: a send-once right (MAKE_SEND_ONCE) to port `once`, inline 0x5e4d0003.
// After the wait (4 x 50 ms sleeps) it receives them in order and uses every right: sends on the
// send right and receives on `target`; receives the queued message on the moved port, then sends
// to it through a new send right and receives that too; replies through the send-once right and
// receives on `once` (the send-once name is gone afterwards). Output:
//   zdtm: ready
//   zdtm: pass zdtm-queued-rights
import {
  Disposition, KernReturn, Message, Port, PORT_NULL, PortRight, PortType, receive, send,
} from "../sdk/norma";
import { begin, expect, expectEq, expectKr, fail, must, ready, verdict, waitStep } from "./lib/zdtm";

/** Receives the next message of `port` without waiting; checks its id and inline word. */
function receiveNow(port: u32, msg: Message, id: i32, word: u32, what: string): bool {
  if (!expectKr(what + ": receive", receive(port, msg, 0))) return false;
  expectEq(what + ": id", msg.id, id);
  expectEq(what + ": arrived on", msg.arrivedOn, port);
  expectEq(what + ": inline word", msg.u32At(0), word);
  return true;
}

/** The single port descriptor of a received message, checked; PORT_NULL if it is not there. */
function carriedRight(msg: Message, disposition: i32, type: u32, what: string): u32 {
  if (!expectEq(what + ": descriptors", msg.descriptorCount, 1)) return PORT_NULL;
  expectEq(what + ": disposition", msg.portDisposition(0), disposition);
  const name = msg.portName(0);
  expectEq(what + ": port_type", Port.type(name) & type, type);
  return name;
}

export function _start(): void {
  begin("zdtm-queued-rights");
  const carrier = Port.allocate();
  must(Port.makeSend(carrier), "make send(carrier)");
  const target = Port.allocate();
  const moved = Port.allocate();
  const once = Port.allocate();
  const msg = new Message(128);

  must(Port.makeSend(moved), "make send(moved)");
  msg.reset().setDestination(moved, Disposition.MOVE_SEND).setId(20).putU32(0x10ad).putString("inside the moved port");
  must(send(msg, 0), "send into moved");

  msg.reset().setDestination(carrier, Disposition.COPY_SEND).setId(1).addPort(target, Disposition.MAKE_SEND).putU32(0x5e4d0001);
  must(send(msg, 0), "send message 1 (send right)");
  msg.reset().setDestination(carrier, Disposition.COPY_SEND).setId(2).addPort(moved, Disposition.MOVE_RECEIVE).putU32(0x5e4d0002);
  must(send(msg, 0), "send message 2 (receive right)");
  msg.reset().setDestination(carrier, Disposition.COPY_SEND).setId(3).addPort(once, Disposition.MAKE_SEND_ONCE).putU32(0x5e4d0003);
  must(send(msg, 0), "send message 3 (send-once right)");

  // The state: our space holds no send right to `target`, nothing under `moved`'s old name.
  if (Port.type(target) != PortType.RECEIVE) fail("target before the wait: not just a receive right");
  if (Port.type(moved) != PortType.NONE) fail("moved name still present before the wait");
  ready();

  waitStep();

  // 1: the send right. It lands under target's own name (one name per port in a space).
  if (receiveNow(carrier, msg, 1, 0x5e4d0001, "message 1")) {
    const right = carriedRight(msg, Disposition.MOVE_SEND, PortType.SEND, "message 1");
    expectEq("message 1: send right named like its port", right, target);
    expectEq("message 1: send refs", Port.refs(target, PortRight.SEND), 1);
    msg.reset().setDestination(right, Disposition.MOVE_SEND).setId(11).putU32(0x11);
    expectKr("send on the send right", send(msg, 0));
    if (receiveNow(target, msg, 11, 0x11, "target")) expectEq("target: send right consumed", Port.type(target), PortType.RECEIVE);
  }

  // 2: the receive right, with the message queued inside it.
  if (receiveNow(carrier, msg, 2, 0x5e4d0002, "message 2")) {
    const port = carriedRight(msg, Disposition.MOVE_RECEIVE, PortType.RECEIVE, "message 2");
    if (port != PORT_NULL && receiveNow(port, msg, 20, 0x10ad, "moved port")) {
      expect(msg.stringAt(4) == "inside the moved port", "moved port: text");
      expectKr("moved port: make send", Port.makeSend(port));
      msg.reset().setDestination(port, Disposition.MOVE_SEND).setId(21).putU32(0x21);
      expectKr("send to the moved port", send(msg, 0));
      receiveNow(port, msg, 21, 0x21, "moved port again");
      expectKr("moved port: empty", receive(port, msg, 0), KernReturn.RCV_TIMED_OUT);
    }
  }

  // 3: the send-once right: usable exactly once.
  if (receiveNow(carrier, msg, 3, 0x5e4d0003, "message 3")) {
    const right = carriedRight(msg, Disposition.MOVE_SEND_ONCE, PortType.SEND_ONCE, "message 3");
    expect(right != once, "message 3: a send-once right has a name of its own");
    msg.reset().setDestination(right, Disposition.MOVE_SEND_ONCE).setId(31).putU32(0x31);
    expectKr("send on the send-once right", send(msg, 0));
    receiveNow(once, msg, 31, 0x31, "once");
    expectEq("send-once name gone after use", Port.type(right), PortType.NONE);
  }

  expectKr("carrier: empty", receive(carrier, msg, 0), KernReturn.RCV_TIMED_OUT);
  verdict();
}
