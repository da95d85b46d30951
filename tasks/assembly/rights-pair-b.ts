// rights-pair-b: the client side of rights-pair-a (see there). B looks "rights-pair" up, sends A a
// send right to its own port and moves a fresh receive right to A, checks that the moved name is
// gone from its own space, receives A's answer on its port (with a send right to the moved port),
// and sends its thanks there. Exits 0 only if all checks pass. Output:
//   ok   moved receive right gone from B: NONE
//   ok   answer id: 2
//   ok   answer descriptors: 1
//   ok   descriptor 0 disposition: MOVE_SEND
//   ok   descriptor 0 port_type: SEND
//   ok   answer text: answer from A
//   rights-pair-b: all checks passed
import {
  check, Disposition, dispositionName, eprintln, exit, Message, nameLookup, Port, PORT_NULL,
  portTypeName, receive, send,
} from "../sdk/norma";
import { expect, expectU32, finish } from "./lib/checks";

const HELLO: i32 = 1;
const ANSWER: i32 = 2;
const THANKS: i32 = 3;

export function _start(): void {
  const service = nameLookup("rights-pair", 10000);
  if (service == PORT_NULL) {
    eprintln('rights-pair-b: "rights-pair" not registered within 10 s');
    exit(1);
    return;
  }
  const mine = Port.allocate();
  const fresh = Port.allocate();
  const msg = new Message(256);
  msg.reset().setDestination(service, Disposition.COPY_SEND).setId(HELLO);
  msg.addPort(mine, Disposition.MAKE_SEND).addPort(fresh, Disposition.MOVE_RECEIVE).putString("hello from B");
  check(send(msg), "send hello");
  // Moving the receive right took the name out of B's space (B held no send right to it).
  expect("moved receive right gone from B", portTypeName(Port.type(fresh)), "NONE");

  check(receive(mine, msg), "receive answer");
  expectU32("answer id", msg.id, ANSWER);
  expectU32("answer descriptors", msg.descriptorCount, 1);
  const toMoved = msg.portName(0);
  expect("descriptor 0 disposition", dispositionName(msg.portDisposition(0)), "MOVE_SEND");
  expect("descriptor 0 port_type", portTypeName(Port.type(toMoved)), "SEND");
  expect("answer text", msg.stringAt(0), "answer from A");

  msg.reset().setDestination(toMoved, Disposition.MOVE_SEND).setId(THANKS).putString("thanks from B");
  check(send(msg), "send thanks");
  finish("rights-pair-b");
}
