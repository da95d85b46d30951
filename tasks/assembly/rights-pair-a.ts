// rights-pair-a: the service side of a pair of tasks that hand rights to each other (run with
// rights-pair-b). A registers "rights-pair"; B sends it a send right to B's own port (MAKE_SEND)
// and the receive right of a fresh port (MOVE_RECEIVE). A checks both, answers on the send right it
// received, attaching a send right it makes from the receive right it now owns; B then sends to the
// fresh port and A receives there. Exits 0 only if all checks pass. Output:
//   ok   hello id: 1
//   ok   hello descriptors: 2
//   ok   descriptor 0 disposition: MOVE_SEND
//   ok   descriptor 0 port_type: SEND
//   ok   descriptor 1 disposition: MOVE_RECEIVE
//   ok   descriptor 1 port_type: RECEIVE
//   ok   hello text: hello from B
//   ok   thanks id: 3
//   ok   thanks arrived on the moved port: true
//   ok   thanks text: thanks from B
//   rights-pair-a: all checks passed
import {
  check, Disposition, dispositionName, Message, nameRegister, Port, portTypeName, receive, send,
} from "../sdk/norma";
import { expect, expectU32, finish } from "./lib/checks";

const HELLO: i32 = 1;
const ANSWER: i32 = 2;
const THANKS: i32 = 3;

export function _start(): void {
  const service = Port.allocate();
  check(nameRegister("rights-pair", service), "name_register(rights-pair)");
  const msg = new Message(256);

  check(receive(service, msg), "receive hello");
  expectU32("hello id", msg.id, HELLO);
  expectU32("hello descriptors", msg.descriptorCount, 2);
  const peer = msg.portName(0);
  const moved = msg.portName(1);
  expect("descriptor 0 disposition", dispositionName(msg.portDisposition(0)), "MOVE_SEND");
  expect("descriptor 0 port_type", portTypeName(Port.type(peer)), "SEND");
  expect("descriptor 1 disposition", dispositionName(msg.portDisposition(1)), "MOVE_RECEIVE");
  expect("descriptor 1 port_type", portTypeName(Port.type(moved)), "RECEIVE");
  expect("hello text", msg.stringAt(0), "hello from B");

  // Answer on the received send right, handing B a send right to the port A now receives on.
  msg.reset().setDestination(peer, Disposition.COPY_SEND).setId(ANSWER);
  msg.addPort(moved, Disposition.MAKE_SEND).putString("answer from A");
  check(send(msg), "send answer");

  check(receive(moved, msg), "receive thanks");
  expectU32("thanks id", msg.id, THANKS);
  expect("thanks arrived on the moved port", (msg.arrivedOn == moved).toString(), "true");
  expect("thanks text", msg.stringAt(0), "thanks from B");
  finish("rights-pair-a");
}
