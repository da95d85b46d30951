// The counter protocol, shared by counter-demo (one task, two threads) and counter-server/-client
// (two tasks). Not an entry point: build.ts compiles only the files directly in tasks/assembly/.
import {
  check, Disposition, FOREVER, Message, PORT_NULL, receive, send,
} from "../../sdk/norma";

/** Request ids. Every request carries a send-once reply right (MAKE_SEND_ONCE). */
export const COUNTER_INCREMENT: i32 = 1; // body: u32 delta; reply: u32 new value
export const COUNTER_GET: i32 = 2; // reply: u32 value
export const COUNTER_STOP: i32 = 3; // reply: u32 value, u32 requests handled; then the server ends
export const COUNTER_REPLY: i32 = 100;

/** What a server saw by the time it stopped. */
export class CounterStats {
  value: u32 = 0;
  handled: i32 = 0;
}

/** Serves requests on the receive right `port` until a STOP. */
export function serveCounter(port: u32): CounterStats {
  const req = new Message(64);
  const rep = new Message(64);
  let counter: u32 = 0;
  let handled: i32 = 0;
  while (true) {
    check(receive(port, req), "counter server: receive");
    handled++;
    const id = req.id;
    if (id == COUNTER_INCREMENT) counter += req.u32At(0);
    if (req.replyPort != PORT_NULL) {
      // The reply consumes the send-once right the request carried.
      rep.reset().setDestination(req.replyPort, Disposition.MOVE_SEND_ONCE).setId(COUNTER_REPLY);
      rep.putU32(counter).putU32(<u32>handled);
      check(send(rep), "counter server: reply");
    }
    if (id == COUNTER_STOP) {
      const stats = new CounterStats();
      stats.value = counter;
      stats.handled = handled;
      return stats;
    }
  }
}

/**
 * One request/reply round trip to the counter service (a send right) using `replyPort` (a receive
 * right); `req` and `rep` are reused buffers. Returns the reply message (rep).
 */
export function counterCall(service: u32, replyPort: u32, req: Message, rep: Message, id: i32, delta: u32): Message {
  req.reset().setDestination(service, Disposition.COPY_SEND).setReply(replyPort, Disposition.MAKE_SEND_ONCE);
  req.setId(id).putU32(delta);
  check(send(req), "counter client: send");
  check(receive(replyPort, rep), "counter client: receive reply");
  if (rep.id != COUNTER_REPLY) check(-1, "counter client: unexpected reply id " + rep.id.toString());
  return rep;
}
