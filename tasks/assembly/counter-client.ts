// counter-client: looks "counter" up in the name service (waiting up to 10 s for the server), sends
// N increments, prints the value, then asks the server to stop (unless argv[2] is "keep", which
// leaves it running for another client, e.g. across a checkpoint or a migration).
// Usage: counter-client [N=10] [keep]. Output against a fresh server (N=10):
//   counter = 10
//   server stopped after 12 requests
// (with keep: only `counter = <value>`; the value accumulates across clients).
import { args, check, exit, eprintln, intArg, Message, nameLookup, Port, PORT_NULL, println } from "../sdk/norma";
import { COUNTER_GET, COUNTER_INCREMENT, COUNTER_STOP, counterCall } from "./lib/counter";

export function _start(): void {
  const n = intArg(1, 10);
  const argv = args();
  const keep = argv.length > 2 && argv[2] == "keep";
  const service = nameLookup("counter", 10000);
  if (service == PORT_NULL) {
    eprintln('counter-client: "counter" not registered within 10 s');
    exit(1);
    return;
  }
  const reply = Port.allocate();
  const req = new Message(64);
  const rep = new Message(64);
  for (let i = 0; i < n; i++) counterCall(service, reply, req, rep, COUNTER_INCREMENT, 1);
  println("counter = " + counterCall(service, reply, req, rep, COUNTER_GET, 0).u32At(0).toString());
  if (keep) return;
  const handled = counterCall(service, reply, req, rep, COUNTER_STOP, 0).u32At(1);
  println("server stopped after " + handled.toString() + " requests");
}
