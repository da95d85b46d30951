// counter-server: the counter service as its own task. Registers "counter" with the name service,
// serves increment/get requests from any number of clients, and exits 0 on a stop request.
// Output: `counter-server: registered "counter"` then, at stop,
//   counter-server: stopped after R requests, counter = C
import { check, nameRegister, Port, println } from "../sdk/norma";
import { serveCounter } from "./lib/counter";

export function _start(): void {
  const port = Port.allocate();
  check(nameRegister("counter", port), "name_register(counter)");
  println('counter-server: registered "counter"');
  const stats = serveCounter(port);
  println("counter-server: stopped after " + stats.handled.toString() + " requests, counter = " + stats.value.toString());
}
