// zdtm-receive-timeout: two threads blocked in msg_receive when the task is frozen.
//  - `timed` receives with a 300 ms timeout on a port nobody sends to: after a resume the timeout
//    keeps its remaining part, so it returns MACH_RCV_TIMED_OUT no earlier than 300 ms of virtual
//    monotonic time after it started;
//  - `forever` receives with no timeout on a second port; the main thread sends it a message only
//    after the wait (id 7, payload 0xfeed0001 and "after the wait").
// Wait: the main thread sleeps 4 x 50 ms, joins `timed` (up to ~100 ms more), sends, joins `forever`.
// Output:
//   zdtm: ready
//   zdtm: pass zdtm-receive-timeout
import { Disposition, FOREVER, join, KernReturn, Message, Port, receive, send, Thread, yield_ } from "../sdk/norma";
import { begin, expect, expectEq, expectKr, MS, monotonicNs, must, ready, verdict, waitStep } from "./lib/zdtm";

const TIMEOUT_MS: i32 = 300;

let silent: u32 = 0; // nobody ever sends here
let mailbox: u32 = 0; // the main thread sends here after the wait
let started = 0;

let timedKr: i32 = -1;
let timedElapsedNs: i64 = 0;
let foreverKr: i32 = -1;
let foreverId: i32 = 0;
let foreverWord: u32 = 0;
let foreverText = "";

export function timed(_arg: i32): void {
  const msg = new Message(64);
  const start = monotonicNs();
  started++;
  timedKr = receive(silent, msg, TIMEOUT_MS);
  timedElapsedNs = monotonicNs() - start;
}

export function forever(_arg: i32): void {
  const msg = new Message(64);
  started++;
  foreverKr = receive(mailbox, msg, FOREVER);
  foreverId = msg.id;
  foreverWord = msg.u32At(0);
  foreverText = msg.stringAt(4);
}

export function _start(): void {
  begin("zdtm-receive-timeout");
  silent = Port.allocate();
  mailbox = Port.allocate();
  must(Port.makeSend(mailbox), "make send");
  const msg = new Message(64); // allocated before the threads block: nothing to build later
  const timedTid = Thread.spawn("timed", 0);
  const foreverTid = Thread.spawn("forever", 0);
  while (started < 2) yield_(); // both threads are now inside msg_receive
  ready();

  waitStep();
  expectKr("join timed", join(timedTid));
  expectKr("timed receive", timedKr, KernReturn.RCV_TIMED_OUT);
  expect(timedElapsedNs >= <i64>TIMEOUT_MS * MS, "timed receive returned after " + (timedElapsedNs / MS).toString() + " ms, before its 300 ms timeout");
  expectEq("forever receive still waiting (kr)", foreverKr, -1);

  msg.reset().setDestination(mailbox, Disposition.COPY_SEND).setId(7).putU32(0xfeed0001).putString("after the wait");
  expectKr("send", send(msg, 0));
  expectKr("join forever", join(foreverTid));
  expectKr("forever receive", foreverKr);
  expectEq("forever id", foreverId, 7);
  expectEq("forever word", foreverWord, 0xfeed0001);
  expect(foreverText == "after the wait", "forever text: got \"" + foreverText + "\"");
  verdict();
}
