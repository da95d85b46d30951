// broker-client: gets a send right to SERVICE from "broker:SERVICE" (right-broker) instead of the
// name service, then uses it as a counter-client would: N increments, then GET. The right it uses
// came to it inside a message, from a task that got it from yet another task.
// Usage: broker-client SERVICE [N=10]. Output: `counter = <value>`
import { args, check, Disposition, eprintln, exit, intArg, Message, nameLookup, Port, PORT_NULL, println, receive, send } from "../sdk/norma";
import { COUNTER_GET, COUNTER_INCREMENT, counterCall } from "./lib/counter";

const BROKER_ASK: i32 = 10;
const BROKER_RIGHT: i32 = 11;

export function _start(): void {
  const argv = args();
  const service = argv.length > 1 ? argv[1] : "counter";
  const n = intArg(2, 10);
  const broker = nameLookup("broker:" + service, 10000);
  if (broker == PORT_NULL) {
    eprintln('broker-client: "broker:' + service + '" not registered within 10 s');
    exit(1);
    return;
  }
  const reply = Port.allocate();
  const req = new Message(64);
  const rep = new Message(64);
  req.reset().setDestination(broker, Disposition.COPY_SEND).setReply(reply, Disposition.MAKE_SEND_ONCE).setId(BROKER_ASK);
  check(send(req), "broker-client: ask");
  check(receive(reply, rep), "broker-client: receive right");
  if (rep.id != BROKER_RIGHT || rep.descriptorCount != 1) check(-1, "broker-client: bad answer");
  const right = rep.portName(0);
  for (let i = 0; i < n; i++) counterCall(right, reply, req, rep, COUNTER_INCREMENT, 1);
  println("counter = " + counterCall(right, reply, req, rep, COUNTER_GET, 0).u32At(0).toString());
}
