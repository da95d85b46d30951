// remote-bench-server: the far end of the remote IPC benchmark (bench/remote-ipc.ts), run on
// another node than its client. Registers a service name and serves, until a STOP:
//   ECHO  answers through the request's reply right with the same inline bytes (a round trip);
//   DATA  only counts the message and its inline bytes (a stream, no reply);
//   SYNC  answers with the DATA messages counted since the last SYNC (u32), so that a client knows
//         every message it sent before has been received;
//   STOP  answers like SYNC, then the server ends.
// The server's queue limit is the largest there is, so the home queue never refuses a stream.
// Usage: remote-bench-server [service=remote-bench]. Output: `remote-bench-server: registered
// "<service>"`, then at STOP `remote-bench-server: stopped after <N> messages`.
import { args, check, Disposition, Message, nameRegister, Port, PORT_QUEUE_LENGTH_MAX, println, receive, send } from "../sdk/norma";
import { BENCH_DATA, BENCH_ECHO, BENCH_REPLY, BENCH_STOP, BENCH_SYNC } from "./lib/remote-bench";

export function _start(): void {
  const argv = args();
  const service = argv.length > 1 ? argv[1] : "remote-bench";
  const port = Port.allocate();
  check(Port.setQlimit(port, PORT_QUEUE_LENGTH_MAX), "port_set_qlimit");
  check(nameRegister(service, port), "name_register(" + service + ")");
  println('remote-bench-server: registered "' + service + '"');
  const req = new Message(64 * 1024 + 64);
  const rep = new Message(64 * 1024 + 64);
  let handled: i32 = 0;
  let data: u32 = 0;
  while (true) {
    check(receive(port, req), "remote-bench-server: receive");
    handled++;
    const id = req.id;
    if (id == BENCH_DATA) {
      data++;
      continue;
    }
    rep.reset().setDestination(req.replyPort, Disposition.MOVE_SEND_ONCE).setId(BENCH_REPLY);
    if (id == BENCH_ECHO) {
      rep.putBytes(req.inlinePtr, req.inlineSize);
    } else {
      rep.putU32(data);
      data = 0;
    }
    check(send(rep), "remote-bench-server: reply");
    if (id == BENCH_STOP) break;
    if (id != BENCH_ECHO && id != BENCH_SYNC) check(-1, "remote-bench-server: unknown request " + id.toString());
  }
  println("remote-bench-server: stopped after " + handled.toString() + " messages");
}
