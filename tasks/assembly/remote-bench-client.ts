// remote-bench-client: the timed end of the remote IPC benchmark (bench/remote-ipc.ts). Looks up
// remote-bench-server's service (waiting up to 10 s), runs `warmup` untimed rounds, then times
// `count` rounds on the task's monotonic clock (the lookup and the task's start are not timed):
//   rtt   one round is an ECHO of `bytes` inline bytes and its answer (a round trip);
//   bulk  the timed rounds are `count` DATA messages of `bytes` inline bytes, then one SYNC, whose
//         answer says every one of them was received (the warmup is `warmup` DATA and a SYNC);
//   stop  stops the server (count, bytes ignored).
// Usage: remote-bench-client <rtt|bulk|stop> [count=1000] [bytes=100] [service=remote-bench] [warmup=100]
// Output: `<mode> count=<count> bytes=<bytes> ns=<elapsed>` (stop: `stopped, <n> unsynced`); exit 1
// on a wrong answer.
import {
  args, check, Disposition, eprintln, exit, intArg, Message, nameLookup, Port, PORT_NULL, println, receive, send,
} from "../sdk/norma";
import { BENCH_DATA, BENCH_ECHO, BENCH_REPLY, BENCH_STOP, BENCH_SYNC } from "./lib/remote-bench";

// WASI's clock (the SDK declares only fd_write and the args calls).
@external("wasi_snapshot_preview1", "clock_time_get")
declare function clock_time_get(id: i32, precision: i64, timeOut: usize): i32;

const CLOCK_MONOTONIC: i32 = 1;
const clockSlot = heap.alloc(8);

function monotonicNs(): i64 {
  check(clock_time_get(CLOCK_MONOTONIC, 1, clockSlot) == 0 ? 0 : -1, "clock_time_get");
  return load<i64>(clockSlot);
}

/** One request with a MAKE_SEND_ONCE reply right, and its answer in `rep`. */
function call(service: u32, reply: u32, req: Message, rep: Message): void {
  req.setDestination(service, Disposition.COPY_SEND).setReply(reply, Disposition.MAKE_SEND_ONCE);
  check(send(req), "remote-bench-client: send");
  check(receive(reply, rep), "remote-bench-client: receive");
  if (rep.id != BENCH_REPLY) check(-1, "remote-bench-client: unexpected answer " + rep.id.toString());
}

/** SYNC (or STOP): returns the DATA messages the server counted since the previous SYNC. */
function sync(service: u32, reply: u32, req: Message, rep: Message, id: i32): u32 {
  req.reset().setId(id);
  call(service, reply, req, rep);
  return rep.u32At(0);
}

export function _start(): void {
  const argv = args();
  const mode = argv.length > 1 ? argv[1] : "rtt";
  const count = intArg(2, 1000);
  const bytes = intArg(3, 100);
  const service = argv.length > 4 ? argv[4] : "remote-bench";
  const warmup = intArg(5, 100);
  const server = nameLookup(service, 10000);
  if (server == PORT_NULL) {
    eprintln('remote-bench-client: "' + service + '" not registered within 10 s');
    exit(1);
    return;
  }
  const reply = Port.allocate();
  const payload = heap.alloc(max(bytes, 4));
  for (let i = 0; i < bytes; i++) store<u8>(payload + i, <u8>i);
  const req = new Message(bytes + 64);
  const rep = new Message(bytes + 64);
  if (mode == "stop") {
    println("stopped, " + sync(server, reply, req, rep, BENCH_STOP).toString() + " unsynced");
    return;
  }
  if (mode == "rtt") {
    req.reset().setId(BENCH_ECHO).putBytes(payload, bytes);
    let started: i64 = 0;
    for (let i = 0; i < warmup + count; i++) {
      if (i == warmup) started = monotonicNs();
      // The reply right (the header's local port) is consumed by each send: set it again.
      call(server, reply, req, rep);
      if (rep.inlineSize < bytes) check(-1, "remote-bench-client: short echo " + rep.inlineSize.toString());
    }
    const elapsed = monotonicNs() - started;
    println("rtt count=" + count.toString() + " bytes=" + bytes.toString() + " ns=" + elapsed.toString());
    return;
  }
  if (mode == "bulk") {
    const data = new Message(bytes + 64);
    data.setDestination(server, Disposition.COPY_SEND).setId(BENCH_DATA).putBytes(payload, bytes);
    for (let i = 0; i < warmup; i++) check(send(data), "remote-bench-client: send data");
    if (sync(server, reply, req, rep, BENCH_SYNC) != <u32>warmup) check(-1, "remote-bench-client: warmup lost");
    const started = monotonicNs();
    for (let i = 0; i < count; i++) check(send(data), "remote-bench-client: send data");
    const received = sync(server, reply, req, rep, BENCH_SYNC);
    const elapsed = monotonicNs() - started;
    if (received != <u32>count) check(-1, "remote-bench-client: " + received.toString() + " of " + count.toString() + " received");
    println("bulk count=" + count.toString() + " bytes=" + bytes.toString() + " ns=" + elapsed.toString());
    return;
  }
  eprintln("usage: remote-bench-client <rtt|bulk|stop> [count] [bytes] [service] [warmup]");
  exit(2);
}
