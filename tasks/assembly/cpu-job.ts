// cpu-job: pure computation with no syscall inside its loops, so it can only be frozen or preempted
// through the safepoints norma inserts. run(n): a sieve of Eratosthenes below n, then an array of n
// xorshift32 words mixed for ROUNDS rounds with FNV-1a. About 1 s uninstrumented at the default n.
// Usage: cpu-job [n=4000000]. Output (default n):
//   cpu-job n=4000000 primes=283146 checksum=0x52c34f26
// `run` is exported so a benchmark can call the core directly (same n, same checksum).
import { hex32, intArg, println } from "../sdk/norma";

const DEFAULT_N = 4000000;
const ROUNDS = 200;
const FNV_OFFSET: u32 = 2166136261;
const FNV_PRIME: u32 = 16777619;

/** The number of primes below n found by the last run. */
let primes: i32 = 0;

// Buffers are kept between runs: the stub runtime never frees, and a benchmark calls run() often.
let sieve: usize = 0;
let words: usize = 0;
let capacity: i32 = 0;

export function run(n: i32): i32 {
  if (n < 16) n = 16;
  if (n > capacity) {
    sieve = heap.alloc(n);
    words = heap.alloc(<usize>n << 2);
    capacity = n;
  }
  // 1. Sieve: sieve[i] = 1 when i is prime.
  memory.fill(sieve, 1, n);
  store<u8>(sieve, 0);
  store<u8>(sieve + 1, 0);
  for (let i = 2; i * i < n; i++) {
    if (load<u8>(sieve + i) == 0) continue;
    for (let j = i * i; j < n; j += i) store<u8>(sieve + j, 0);
  }
  let count = 0;
  let h = FNV_OFFSET;
  for (let i = 0; i < n; i++) {
    if (load<u8>(sieve + i) == 0) continue;
    count++;
    h = (h ^ <u32>i) * FNV_PRIME;
  }
  primes = count;
  // 2. Fill with a xorshift32 stream seeded by the primes' hash.
  let x = h | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    store<u32>(words + (<usize>i << 2), x);
  }
  // 3. Rounds, one call each: V8 runs a long loop in baseline code until the call returns, so a
  //    single call would do all the work unoptimized; per-round calls tier up after the first few.
  //    The recursion keeps binaryen from inlining the rounds back into one loop.
  h = mix(n, h, 0);
  return <i32>(h ^ <u32>count);
}

/** Round r and the ones after it: FNV-1a over the words, each word perturbed by the running hash. */
function mix(n: i32, h: u32, r: i32): u32 {
  for (let i = 0; i < n; i++) {
    const p = words + (<usize>i << 2);
    const w = load<u32>(p);
    h = (h ^ w) * FNV_PRIME;
    store<u32>(p, w ^ rotr<u32>(h, r + 1));
  }
  return r + 1 < ROUNDS ? mix(n, h, r + 1) : h;
}

export function _start(): void {
  const n = intArg(1, DEFAULT_N);
  const checksum = run(n);
  println("cpu-job n=" + n.toString() + " primes=" + primes.toString() + " checksum=" + hex32(<u32>checksum));
}
