// zdtm-send-once: outstanding send-once rights. The task sends N=4 requests to its own `server`
// port, each with a reply port made into a send-once right (MAKE_SEND_ONCE), receives them all and
// keeps the 4 send-once rights in its space, unused, across the wait (4 x 50 ms sleeps). Then it
// replies through each right in reverse order (MOVE_SEND_ONCE, id 200+i, word 0x0ce00000+i) and
// receives every reply on its reply port; each send-once name is gone once used, and a second use
// fails with MACH_SEND_INVALID_DEST. Output:
//   zdtm: ready
//   zdtm: pass zdtm-send-once
import { Disposition, KernReturn, Message, Port, PortRight, PortType, receive, send } from "../sdk/norma";
import { begin, expectEq, expectKr, fail, must, ready, verdict, waitStep } from "./lib/zdtm";

const N = 4;

export function _start(): void {
  begin("zdtm-send-once");
  const server = Port.allocate();
  must(Port.makeSend(server), "make send(server)");
  const replyPorts = new StaticArray<u32>(N);
  const rights = new StaticArray<u32>(N);
  const msg = new Message(64);

  for (let i = 0; i < N; i++) {
    replyPorts[i] = Port.allocate();
    msg.reset().setDestination(server, Disposition.COPY_SEND).setReply(replyPorts[i], Disposition.MAKE_SEND_ONCE);
    must(send(msg.setId(100 + i).putU32(<u32>i), 0), "send request");
  }
  for (let i = 0; i < N; i++) {
    must(receive(server, msg, 0), "receive request");
    if (msg.id != 100 + i || msg.u32At(0) != <u32>i) fail("request " + i.toString() + " out of order");
    rights[i] = msg.replyPort;
    if (Port.type(rights[i]) != PortType.SEND_ONCE) fail("reply right " + i.toString() + " is not SEND_ONCE");
    if (Port.refs(rights[i], PortRight.SEND_ONCE) != 1) fail("reply right " + i.toString() + ": refs != 1");
  }
  ready();

  waitStep();

  for (let i = N - 1; i >= 0; i--) {
    expectEq("right still SEND_ONCE after the wait", Port.type(rights[i]), PortType.SEND_ONCE);
    msg.reset().setDestination(rights[i], Disposition.MOVE_SEND_ONCE).setId(200 + i).putU32(0x0ce00000 + <u32>i);
    expectKr("reply", send(msg, 0));
    expectEq("send-once name gone after use", Port.type(rights[i]), PortType.NONE);
    msg.reset().setDestination(rights[i], Disposition.MOVE_SEND_ONCE).setId(300 + i);
    expectKr("second use", send(msg, 0), KernReturn.SEND_INVALID_DEST);
  }
  for (let i = 0; i < N; i++) {
    if (!expectKr("receive reply", receive(replyPorts[i], msg, 0))) continue;
    expectEq("reply id", msg.id, 200 + i);
    expectEq("reply word", msg.u32At(0), 0x0ce00000 + <u32>i);
    expectEq("reply carries no reply right", msg.replyPort, 0);
    expectKr("one reply only", receive(replyPorts[i], msg, 0), KernReturn.RCV_TIMED_OUT);
  }
  expectKr("server: empty", receive(server, msg, 0), KernReturn.RCV_TIMED_OUT);
  verdict();
}
