// zdtm-port-sets: a port set with 4 member ports, 3 of them holding queued messages when the task
// is frozen (member 0: 2 messages, member 1: none, member 2: 3, member 3: 1); a fifth port outside
// the set holds one message too. After the wait (4 x 50 ms sleeps) it receives from the set until
// it is empty and checks that each of the 6 messages arrives exactly once, on the member it was
// sent to (arrivedOn), in FIFO order per member; the outsider's message stays on its own port.
// Output:
//   zdtm: ready
//   zdtm: pass zdtm-port-sets
import { Disposition, KernReturn, Message, Port, PortType, receive, send } from "../sdk/norma";
import { begin, expect, expectEq, expectKr, fail, must, ready, verdict, waitStep } from "./lib/zdtm";

const MEMBERS = 4;
const QUEUED: StaticArray<i32> = [2, 0, 3, 1]; // messages per member
const TOTAL = 6;
const ID = 0x5e7;

export function _start(): void {
  begin("zdtm-port-sets");
  const set = Port.allocateSet();
  const members = new StaticArray<u32>(MEMBERS);
  const msg = new Message(64);
  for (let m = 0; m < MEMBERS; m++) {
    members[m] = Port.allocate();
    must(Port.makeSend(members[m]), "make send");
    must(Port.moveMember(members[m], set), "move member");
  }
  const outsider = Port.allocate();
  must(Port.makeSend(outsider), "make send(outsider)");
  // Interleave the sends so no member's messages are contiguous in time.
  for (let round = 0; round < 3; round++) {
    for (let m = 0; m < MEMBERS; m++) {
      if (round >= QUEUED[m]) continue;
      msg.reset().setDestination(members[m], Disposition.COPY_SEND).setId(ID).putU32(<u32>m).putU32(<u32>round);
      must(send(msg, 0), "send to member");
    }
  }
  msg.reset().setDestination(outsider, Disposition.COPY_SEND).setId(ID + 1).putU32(99);
  must(send(msg, 0), "send to outsider");
  if (Port.type(set) != PortType.PORT_SET) fail("set is not a PORT_SET");
  ready();

  waitStep();

  const next = new StaticArray<i32>(MEMBERS); // next expected sequence number per member
  let received = 0;
  while (received <= TOTAL) {
    const kr = receive(set, msg, 0);
    if (kr == KernReturn.RCV_TIMED_OUT) break;
    if (!expectKr("receive from the set", kr)) break;
    received++;
    const m = <i32>msg.u32At(0);
    const seq = <i32>msg.u32At(1);
    expectEq("id", msg.id, ID);
    if (!expect(m >= 0 && m < MEMBERS, "member index out of range")) continue;
    expectEq("arrived on its member", msg.arrivedOn, members[m]);
    expectEq("FIFO order within a member (sequence)", seq, next[m]);
    next[m] = seq + 1;
  }
  expectEq("messages received from the set", received, TOTAL);
  for (let m = 0; m < MEMBERS; m++) expectEq("messages per member", next[m], QUEUED[m]);

  expectKr("outsider keeps its message", receive(outsider, msg, 0));
  expectEq("outsider id", msg.id, ID + 1);
  expectEq("outsider arrived on", msg.arrivedOn, outsider);
  expectKr("set: empty", receive(set, msg, 0), KernReturn.RCV_TIMED_OUT);
  verdict();
}
