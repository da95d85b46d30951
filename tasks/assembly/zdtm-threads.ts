// zdtm-threads: five threads in different states when the task is frozen, each with state in its
// locals (i32, i64, f64) that lives across the blocking call:
//  - sleeper:  5 x clock_sleep(50);
//  - joiner:   blocked in thread_join(sleeper);
//  - counter:  a loop that counts and sums squares, calling thread_yield every iteration, until
//              the main thread sets `stop`;
//  - receiver: blocked in msg_receive (no timeout) until the main thread sends it a word;
//  - main:     the wait step (4 x 50 ms sleeps), then sends, stops the counter and joins them all.
// Every thread copies the global `epoch` (1) into its locals before blocking; the main thread sets
// it to 2 after the wait, so a result computed from a reloaded or recomputed value would differ.
// Results are checked against the same functions evaluated without blocking. Output:
//   zdtm: ready
//   zdtm: pass zdtm-threads
import { Disposition, FOREVER, join, Message, Port, receive, send, sleep, Thread, yield_ } from "../sdk/norma";
import { begin, expect, expectEq, expectKr, must, ready, verdict, waitStep } from "./lib/zdtm";

const WORD: u32 = 0x7ead0042;

let epoch: i32 = 1;
let stop = false;
let started = 0;
let mailbox: u32 = 0;
let sleeperOut: u64 = 0;
let joinerOut: u64 = 0;
let receiverOut: u64 = 0;
let counted: i64 = 0;
let squares: i64 = 0;
let counterEpoch: i32 = 0;

function mix(h: u64, v: u64): u64 {
  h = (h ^ v) * 0x100000001b3;
  return h ^ (h >> 29);
}

/** What each thread computes from its locals; the checks evaluate the same with epoch = 1. */
function sleeperResult(arg: i32, e: i32): u64 {
  const a: u32 = <u32>(arg + e) * 0x9e3779b1;
  const b: u64 = (<u64>a << 17) | 0x1234;
  const c: f64 = <f64>(arg * e) * 1.25 + 0.5;
  return mix(mix(mix(0xcbf29ce484222325, a), b), reinterpret<u64>(c));
}

export function sleeper(arg: i32): void {
  const e = epoch;
  const a: u32 = <u32>(arg + e) * 0x9e3779b1;
  const b: u64 = (<u64>a << 17) | 0x1234;
  const c: f64 = <f64>(arg * e) * 1.25 + 0.5;
  started++;
  for (let i = 0; i < 5; i++) expectKr("sleeper: sleep", sleep(50));
  sleeperOut = mix(mix(mix(0xcbf29ce484222325, a), b), reinterpret<u64>(c));
}

export function joiner(sleeperTid: i32): void {
  const e: i64 = <i64>epoch;
  const x: i64 = e * 1000003 + sleeperTid;
  const y: f64 = <f64>x / 3.0;
  started++;
  expectKr("joiner: join", join(sleeperTid));
  joinerOut = mix(mix(sleeperOut, <u64>x), reinterpret<u64>(y));
}

export function counter(_arg: i32): void {
  const e = epoch;
  let count: i64 = 0;
  let sum: i64 = 0;
  started++;
  while (!stop) {
    count++;
    sum += count * count;
    yield_();
  }
  counted = count;
  squares = sum;
  counterEpoch = e;
}

export function receiver(arg: i32): void {
  const e = epoch;
  const p: u64 = <u64>(arg ^ e) << 40;
  const q: f32 = <f32>e / 7.0;
  const msg = new Message(64);
  started++;
  expectKr("receiver: receive", receive(mailbox, msg, FOREVER));
  receiverOut = mix(mix(p, <u64>reinterpret<u32>(q)), msg.u32At(0));
}

export function _start(): void {
  begin("zdtm-threads");
  mailbox = Port.allocate();
  must(Port.makeSend(mailbox), "make send");
  const msg = new Message(64);
  const mainLocal: f64 = <f64>epoch * Math.PI;

  const sleeperTid = Thread.spawn("sleeper", 11);
  const joinerTid = Thread.spawn("joiner", sleeperTid);
  const counterTid = Thread.spawn("counter", 0);
  const receiverTid = Thread.spawn("receiver", 33);
  while (started < 4) yield_();
  ready();

  waitStep();
  epoch = 2;
  stop = true;
  msg.reset().setDestination(mailbox, Disposition.COPY_SEND).putU32(WORD);
  expectKr("send to receiver", send(msg, 0));
  expectKr("join counter", join(counterTid));
  expectKr("join receiver", join(receiverTid));
  expectKr("join joiner", join(joinerTid));

  const sleeperWant = sleeperResult(11, 1);
  expect(sleeperOut == sleeperWant, "sleeper: result from its locals differs");
  const x: i64 = 1000003 + sleeperTid;
  expect(joinerOut == mix(mix(sleeperWant, <u64>x), reinterpret<u64>(<f64>x / 3.0)), "joiner: result differs");
  const q: f32 = <f32>1 / 7.0;
  expect(receiverOut == mix(mix(<u64>(33 ^ 1) << 40, <u64>reinterpret<u32>(q)), WORD), "receiver: result differs");
  expect(counted > 0, "counter: never counted");
  expectEq("counter: sum of squares of 1..count", squares, counted * (counted + 1) * (2 * counted + 1) / 6);
  expectEq("counter: epoch in its locals", counterEpoch, 1);
  expect(mainLocal == Math.PI, "main: local differs");
  verdict();
}
