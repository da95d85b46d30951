// ipc-features: the kernel paths of IPC that the other examples do not take, each checked by the
// task itself. Exits 0 only if every check passes. Output:
//   ok   small buffer: MACH_RCV_TOO_LARGE
//   ok   size reported: 20544
//   ok   receive after growing: KERN_SUCCESS
//   ok   out-of-line size: 20480
//   ok   out-of-line inside the buffer: true
//   ok   out-of-line bytes intact: true
//   ok   inline text: inline part
//   ok   no-senders notification id: 70
//   ok   no-senders make-send count: 1
//   ok   send-once notification id: 71
//   ok   blocked receiver sees its port die: MACH_RCV_PORT_DIED
//   ipc-features: all checks passed
import {
  check, Disposition, join, kernReturnName, Message, msg_receive, NotifyId, NotifyVariant, Port, receive, send,
  sleep, Thread,
} from "../sdk/norma";
import { expect, expectU32, finish } from "./lib/checks";

const OOL_BYTES: i32 = 20480;

/** Thread entry: blocks receiving on `port` (no timeout) and stores the result for the main thread. */
let blockedResult: i32 = 0;
export function blockedReceiver(port: i32): void {
  const msg = new Message(64);
  blockedResult = receive(<u32>port, msg);
}

function outOfLine(): void {
  const port = Port.allocate();
  check(Port.makeSend(port), "make send");
  const region = heap.alloc(OOL_BYTES);
  for (let i = 0; i < OOL_BYTES; i++) store<u8>(region + i, <u8>(i * 7 + 3));
  const msg = new Message(256);
  msg.reset().setDestination(port, Disposition.COPY_SEND).setId(1).addOutOfLine(region, OOL_BYTES).putString("inline part");
  check(send(msg), "send out-of-line");
  // The sender may reuse its memory at once: the bytes were copied at send time.
  memory.fill(region, 0, OOL_BYTES);

  const small = new Message(64);
  const kr = msg_receive(port, small.buf, small.capacity, 0);
  expect("small buffer", kernReturnName(kr), "MACH_RCV_TOO_LARGE");
  const needed = load<i32>(small.buf, 4);
  // header 24 + count 4 + one descriptor 16 + inline 16 = 60, aligned to 64, + the region.
  expectU32("size reported", needed, 20544);
  const big = new Message(needed);
  expect("receive after growing", kernReturnName(receive(port, big, 0)), "KERN_SUCCESS");
  expectU32("out-of-line size", big.oolSize(0), OOL_BYTES);
  const address = big.oolAddress(0);
  expect("out-of-line inside the buffer", (address >= big.buf && address + OOL_BYTES <= big.buf + big.capacity).toString(), "true");
  let intact = true;
  for (let i = 0; i < OOL_BYTES; i++) if (load<u8>(address + i) != <u8>(i * 7 + 3)) intact = false;
  expect("out-of-line bytes intact", intact.toString(), "true");
  expect("inline text", big.stringAt(0), "inline part");
}

function notifications(): void {
  const notify = Port.allocate();
  const msg = new Message(64);

  // No-senders: the only send right to `watched` goes away.
  const watched = Port.allocate();
  check(Port.makeSend(watched), "make send");
  check(Port.requestNotification(watched, NotifyVariant.NO_SENDERS, notify), "request no-senders");
  check(Port.deallocate(watched), "deallocate the send right");
  check(receive(notify, msg, 0), "receive no-senders");
  expectU32("no-senders notification id", msg.id, NotifyId.NO_SENDERS);
  expectU32("no-senders make-send count", msg.u32At(0), 1);

  // Send-once: a reply right dies unused inside a message whose port is destroyed.
  const doomed = Port.allocate();
  check(Port.makeSend(doomed), "make send");
  msg.reset().setDestination(doomed, Disposition.COPY_SEND).setReply(notify, Disposition.MAKE_SEND_ONCE).setId(5);
  check(send(msg), "send with a reply right");
  check(Port.destroy(doomed), "destroy the port with the queued message");
  check(receive(notify, msg, 0), "receive send-once notification");
  expectU32("send-once notification id", msg.id, NotifyId.SEND_ONCE);
}

function portDeath(): void {
  const port = Port.allocate();
  const tid = Thread.spawn("blockedReceiver", <i32>port);
  sleep(20); // the receiver is now blocked in msg_receive
  check(Port.destroy(port), "destroy the port");
  check(join(tid), "join");
  expect("blocked receiver sees its port die", kernReturnName(blockedResult), "MACH_RCV_PORT_DIED");
}

export function _start(): void {
  outOfLine();
  notifications();
  portDeath();
  finish("ipc-features");
}
