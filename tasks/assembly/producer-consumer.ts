// producer-consumer: 2 producer and 2 consumer threads on one port whose queue holds only 2
// messages, so producers block on the full queue. The port is a member of a port set and consumers
// receive on the set (arrivedOn tells which member a message came through). After joining the
// producers, the main thread queues one STOP per consumer: the queue is FIFO, so every value is
// consumed before the STOPs. Every value 1..2M is sent once; consumers mark what they see, so
// lost or doubled messages show up as `missing` or `duplicates`.
// Usage: producer-consumer [M=1000] (values per producer). Output (M=1000):
//   producers: 2 x 1000 values, queue limit 2
//   consumed 2000 values, sum = 2001000 (expected 2001000)
//   missing = 0, duplicates = 0, wrong port = 0
//   ok
import {
  check, Disposition, exit, intArg, join, Message, Port, println, receive, send, Thread,
} from "../sdk/norma";

const PRODUCERS = 2;
const CONSUMERS = 2;
const QUEUE_LIMIT = 2;
const ID_VALUE = 1;
const ID_STOP = 2;

// Shared by all threads (one instance, one memory). Threads switch only inside syscalls or at
// safepoints (loop headers and function entries); no update below has a call or a loop between its
// read and its write, so plain globals are enough.
let port: u32 = 0;
let portSet: u32 = 0;
let perProducer: i32 = 0;
let seen: usize = 0; // one byte per value: how many times it was consumed
let consumed: i32 = 0;
let sum: u64 = 0;
let wrongPort: i32 = 0;

/** Thread entry: sends values p*M+1 .. p*M+M. */
export function producer(p: i32): void {
  const msg = new Message(64);
  for (let i = 1; i <= perProducer; i++) {
    msg.reset().setDestination(port, Disposition.COPY_SEND).setId(ID_VALUE).putU32(<u32>(p * perProducer + i));
    check(send(msg), "producer: send");
  }
}

/** Thread entry: receives on the port set until a STOP. */
export function consumer(c: i32): void {
  const msg = new Message(64);
  while (true) {
    check(receive(portSet, msg), "consumer: receive");
    if (msg.arrivedOn != port) wrongPort++;
    if (msg.id == ID_STOP) return;
    const v = msg.u32At(0);
    store<u8>(seen + v, load<u8>(seen + v) + 1);
    consumed++;
    sum += v;
  }
}

export function _start(): void {
  perProducer = intArg(1, 1000);
  const total = PRODUCERS * perProducer;
  seen = heap.alloc(total + 1);
  memory.fill(seen, 0, total + 1);

  port = Port.allocate();
  check(Port.makeSend(port), "port_insert_right");
  check(Port.setQlimit(port, QUEUE_LIMIT), "port_set_qlimit");
  portSet = Port.allocateSet();
  check(Port.moveMember(port, portSet), "port_move_member");

  const consumers = new StaticArray<i32>(CONSUMERS);
  const producers = new StaticArray<i32>(PRODUCERS);
  for (let c = 0; c < CONSUMERS; c++) consumers[c] = Thread.spawn("consumer", c);
  for (let p = 0; p < PRODUCERS; p++) producers[p] = Thread.spawn("producer", p);
  for (let p = 0; p < PRODUCERS; p++) check(join(producers[p]), "join producer");
  const stop = new Message(64);
  for (let c = 0; c < CONSUMERS; c++) {
    check(send(stop.reset().setDestination(port, Disposition.COPY_SEND).setId(ID_STOP)), "send stop");
  }
  for (let c = 0; c < CONSUMERS; c++) check(join(consumers[c]), "join consumer");

  let missing = 0;
  let duplicates = 0;
  for (let v = 1; v <= total; v++) {
    const k = load<u8>(seen + v);
    if (k == 0) missing++;
    else if (k > 1) duplicates += k - 1;
  }
  const expected = <u64>total * <u64>(total + 1) / 2;
  println("producers: " + PRODUCERS.toString() + " x " + perProducer.toString() + " values, queue limit " + QUEUE_LIMIT.toString());
  println("consumed " + consumed.toString() + " values, sum = " + sum.toString() + " (expected " + expected.toString() + ")");
  println("missing = " + missing.toString() + ", duplicates = " + duplicates.toString() + ", wrong port = " + wrongPort.toString());
  const ok = missing == 0 && duplicates == 0 && wrongPort == 0 && consumed == total && sum == expected;
  println(ok ? "ok" : "FAILED");
  if (!ok) exit(1);
}
