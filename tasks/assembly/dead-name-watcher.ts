// dead-name-watcher: holds a send right to the "counter" service (counter-server), asks for a
// dead-name notification on it, stops the server, and waits for the kernel to say the port died.
// Exits 0 only if every check passes. Output:
//   ok   notification id: 72
//   ok   notification names the service right: true
//   ok   the name is now a dead name: DEAD_NAME
//   ok   sending to it: MACH_SEND_INVALID_DEST
//   dead-name-watcher: all checks passed
import {
  check, eprintln, exit, Disposition, kernReturnName, Message, nameLookup, NotifyId, NotifyVariant, Port, PORT_NULL,
  portTypeName, receive, send,
} from "../sdk/norma";
import { COUNTER_STOP, counterCall } from "./lib/counter";
import { expect, expectU32, finish } from "./lib/checks";

export function _start(): void {
  const service = nameLookup("counter", 10000);
  if (service == PORT_NULL) {
    eprintln('dead-name-watcher: "counter" not registered within 10 s');
    exit(1);
    return;
  }
  const notify = Port.allocate();
  check(Port.requestNotification(service, NotifyVariant.DEAD_NAME, notify), "request dead-name");
  const reply = Port.allocate();
  const req = new Message(64);
  const rep = new Message(64);
  counterCall(service, reply, req, rep, COUNTER_STOP, 0); // the server answers, then ends

  check(receive(notify, rep, 10000), "receive the notification");
  expectU32("notification id", rep.id, NotifyId.DEAD_NAME);
  expect("notification names the service right", (rep.u32At(0) == service).toString(), "true");
  expect("the name is now a dead name", portTypeName(Port.type(service)), "DEAD_NAME");
  req.reset().setDestination(service, Disposition.COPY_SEND).setId(1);
  expect("sending to it", kernReturnName(send(req, 0)), "MACH_SEND_INVALID_DEST");
  finish("dead-name-watcher");
}
