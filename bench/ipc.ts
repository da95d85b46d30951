/**
 * Local IPC round trip between two threads on one node (ipc-ping: a message with a MAKE_SEND_ONCE
 * reply right, answered through it), against a plain JavaScript Promise-based ping-pong in the same
 * run. The per-round-trip time is the slope between a short and a long run, so task start-up and
 * the module load cancel out. Target: <= 5 us a round trip.
 */
import { Kernel } from '../src/kernel/kernel.js';
import { benchCacheDirectory, compareMedians, readRepoFile, report } from './support.js';

/** Two async loops passing a number back and forth through resolved Promises. */
async function promisePingPong(roundTrips: number): Promise<void> {
  let toPong: ((value: number) => void) | null = null;
  let toPing: ((value: number) => void) | null = null;
  const next = (side: 'ping' | 'pong'): Promise<number> =>
    new Promise((resolve) => {
      if (side === 'ping') toPing = resolve;
      else toPong = resolve;
    });
  const pong = (async () => {
    for (let i = 0; i < roundTrips; i++) {
      const value = await next('pong');
      toPing!(value + 1);
    }
  })();
  for (let i = 0; i < roundTrips; i++) {
    const reply = next('ping');
    toPong!(i);
    if ((await reply) !== i + 1) throw new Error('promise ping-pong: wrong reply');
  }
  await pong;
}

export async function benchIpc(runs: number): Promise<void> {
  const bytes = readRepoFile('tasks/build/ipc-ping.wasm');
  const kernel = new Kernel({ cacheDirectory: benchCacheDirectory });
  const ping = (roundTrips: number) => async () => {
    const task = await kernel.spawn({
      module: bytes,
      args: ['ipc-ping', String(roundTrips)],
      stdin: new Uint8Array(0),
    });
    const exit = await task.exited;
    if (exit.code !== 0) throw new Error(`ipc-ping exited with ${JSON.stringify(exit)}`);
  };
  const short = 1_000;
  const long = 101_000;
  const times = await compareMedians(
    {
      normaShort: ping(short),
      normaLong: ping(long),
      promiseShort: () => promisePingPong(short),
      promiseLong: () => promisePingPong(long),
    },
    runs,
  );
  const perRoundTrip = (a: number, b: number): number => ((b - a) / (long - short)) * 1000;
  const norma = perRoundTrip(times.normaShort!, times.normaLong!);
  const promise = perRoundTrip(times.promiseShort!, times.promiseLong!);
  report({
    benchmark: 'local IPC round trip',
    figure: `${norma.toFixed(2)} us`,
    ratio: norma / promise,
    baseline: `a JS Promise ping-pong (${promise.toFixed(2)} us)`,
    target: '<= 5 us',
    met: norma <= 5,
  });
}
