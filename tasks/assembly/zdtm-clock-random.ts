// zdtm-clock-random: clocks and randomness across a freeze. Before `zdtm: ready` it draws 64 bytes
// with WASI random_get and 8 numbers with Math.random (AssemblyScript seeds it once from env.seed),
// and reads both clocks. Wait: 4 sleeps of 50 ms, two with norma's clock_sleep and two with WASI
// poll_oneoff (a relative monotonic clock subscription, whose start the WASI state remembers while
// it blocks); each must advance the monotonic clock by >= 50 ms, never backwards. After: the
// monotonic clock advanced >= 200 ms in all; the realtime clock reads after 2020-01-01 both times;
// 64 more random bytes differ from the first 64 and 8 more Math.random values lie in [0, 1) and
// repeat none of the 16. Nothing random or clock-dependent is printed. Output:
//   zdtm: ready
//   zdtm: pass zdtm-clock-random
import { sleep } from "../sdk/norma";
import { begin, expect, expectEq, expectKr, fail, MS, monotonicNs, ready, realtimeNs, verdict, WAIT_MS } from "./lib/zdtm";

@external("wasi_snapshot_preview1", "random_get")
declare function random_get(buf: usize, len: i32): i32;
@external("wasi_snapshot_preview1", "poll_oneoff")
declare function poll_oneoff(subscriptions: usize, events: usize, count: i32, neventsOut: usize): i32;

const YEAR_2020_NS: i64 = 1577836800 * 1_000_000_000;
const RANDOM_BYTES = 64;
const FLOATS = 8;

/** Sleeps ms with poll_oneoff: one subscription, relative, on the monotonic clock. */
function pollSleep(ms: i32): void {
  const sub = heap.alloc(48 + 32 + 8); // subscription, event, nevents
  memory.fill(sub, 0, 88);
  store<u64>(sub, 0x5eed); // userdata
  store<u8>(sub, 0, 8); // eventtype clock
  store<u32>(sub, 1, 16); // clock id: monotonic
  store<i64>(sub, <i64>ms * MS, 24); // timeout, relative (flags 0)
  store<i64>(sub, 0, 32); // precision
  const errno = poll_oneoff(sub, sub + 48, 1, sub + 80);
  expectEq("poll_oneoff errno", errno, 0);
  expectEq("poll_oneoff events", load<i32>(sub, 80), 1);
  expectEq("poll_oneoff userdata", load<i64>(sub + 48), 0x5eed);
  expectEq("poll_oneoff event errno", load<u16>(sub + 48, 8), 0);
}

export function _start(): void {
  begin("zdtm-clock-random");
  const first = heap.alloc(RANDOM_BYTES);
  const second = heap.alloc(RANDOM_BYTES);
  const floats = new StaticArray<f64>(2 * FLOATS);
  if (random_get(first, RANDOM_BYTES) != 0) fail("random_get");
  for (let i = 0; i < FLOATS; i++) floats[i] = Math.random();
  const m0 = monotonicNs();
  const r0 = realtimeNs();
  ready();

  let last = m0;
  for (let i = 0; i < 4; i++) {
    if (i % 2 == 0) expectKr("clock_sleep", sleep(50));
    else pollSleep(50);
    const now = monotonicNs();
    expect(now - last >= 50 * MS, "a 50 ms sleep advanced the monotonic clock by less (or backwards)");
    last = now;
  }
  const m1 = monotonicNs();
  const r1 = realtimeNs();
  expect(m1 - m0 >= WAIT_MS * MS, "monotonic clock advanced less than 200 ms over the wait");
  expect(r0 > YEAR_2020_NS && r1 > YEAR_2020_NS, "realtime clock before 2020");

  expectEq("random_get errno", random_get(second, RANDOM_BYTES), 0);
  expect(memory.compare(first, second, RANDOM_BYTES) != 0, "random_get repeated its first 64 bytes");
  for (let i = FLOATS; i < 2 * FLOATS; i++) floats[i] = Math.random();
  for (let i = 0; i < 2 * FLOATS; i++) {
    expect(floats[i] >= 0 && floats[i] < 1, "Math.random out of [0, 1)");
    for (let j = 0; j < i; j++) expect(floats[i] != floats[j], "Math.random repeated a value");
  }
  verdict();
}
