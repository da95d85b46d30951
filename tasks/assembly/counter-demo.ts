// counter-demo: one task, two threads. The main thread allocates a port and spawns a server thread
// that owns a counter; it sends N increment requests (each with a MAKE_SEND_ONCE reply port, the
// server answers through that send-once right), reads the value back, stops the server and joins it.
// Usage: counter-demo [N=10]. Output (N=10):
//   counter = 10
//   server handled 12 requests
import { check, intArg, join, println, Port, Message, Thread } from "../sdk/norma";
import { COUNTER_GET, COUNTER_INCREMENT, COUNTER_STOP, counterCall, serveCounter } from "./lib/counter";

/** Thread entry: serves the counter on the receive right `port`. */
export function server(port: i32): void {
  serveCounter(<u32>port);
}

export function _start(): void {
  const n = intArg(1, 10);
  const port = Port.allocate();
  check(Port.makeSend(port), "port_insert_right");
  const reply = Port.allocate();
  const tid = Thread.spawn("server", <i32>port);
  const req = new Message(64);
  const rep = new Message(64);
  for (let i = 1; i <= n; i++) {
    const value = counterCall(port, reply, req, rep, COUNTER_INCREMENT, 1).u32At(0);
    if (value != <u32>i) check(-1, "increment " + i.toString() + " returned " + value.toString());
  }
  println("counter = " + counterCall(port, reply, req, rep, COUNTER_GET, 0).u32At(0).toString());
  const handled = counterCall(port, reply, req, rep, COUNTER_STOP, 0).u32At(1);
  check(join(tid), "thread_join");
  println("server handled " + handled.toString() + " requests");
}
