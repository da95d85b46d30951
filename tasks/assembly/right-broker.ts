// right-broker: hands out send rights to a service it does not own, so that a right travels
// through it (NORMA tests pass a right along three nodes: server, broker, client).
// Usage: right-broker SERVICE [COUNT=1]. Looks SERVICE up (waiting up to 10 s), registers
// "broker:SERVICE", then answers COUNT requests, each with a copy of its send right to SERVICE
// in a port descriptor (COPY_SEND), and exits. Output:
//   right-broker: serving "broker:counter"
//   right-broker: handed out N rights
import { args, check, Disposition, eprintln, exit, intArg, Message, nameLookup, nameRegister, Port, PORT_NULL, println, receive, send } from "../sdk/norma";

export const BROKER_ASK: i32 = 10;
export const BROKER_RIGHT: i32 = 11;

export function _start(): void {
  const argv = args();
  const service = argv.length > 1 ? argv[1] : "counter";
  const count = intArg(2, 1);
  const right = nameLookup(service, 10000);
  if (right == PORT_NULL) {
    eprintln('right-broker: "' + service + '" not registered within 10 s');
    exit(1);
    return;
  }
  const port = Port.allocate();
  check(nameRegister("broker:" + service, port), "name_register(broker)");
  println('right-broker: serving "broker:' + service + '"');
  const req = new Message(64);
  const rep = new Message(64);
  for (let i = 0; i < count; i++) {
    check(receive(port, req), "right-broker: receive");
    if (req.id != BROKER_ASK || req.replyPort == PORT_NULL) continue;
    rep.reset().setDestination(req.replyPort, Disposition.MOVE_SEND_ONCE).setId(BROKER_RIGHT);
    rep.addPort(right, Disposition.COPY_SEND);
    check(send(rep), "right-broker: reply");
  }
  println("right-broker: handed out " + count.toString() + " rights");
}
