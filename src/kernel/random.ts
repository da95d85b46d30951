/**
 * A task's random numbers: xoshiro128** over four 32-bit words of plain state, seeded once from
 * the host's entropy when the task is created. A restored task continues the same sequence, so a
 * frozen-and-resumed run produces the same output as an uninterrupted one.
 */
import { randomFillSync } from 'node:crypto';

export interface RandomState {
  words: [number, number, number, number];
}

export function createRandomState(seed?: Uint32Array): RandomState {
  const words = seed ?? randomFillSync(new Uint32Array(4));
  if (words.every((w) => w === 0)) words[0] = 1; // the all-zero state is a fixed point
  return { words: [words[0]!, words[1]!, words[2]!, words[3]!] };
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

export function nextU32(state: RandomState): number {
  const s = state.words;
  const result = (rotl(Math.imul(s[1], 5) >>> 0, 7) * 9) >>> 0;
  const t = (s[1] << 9) >>> 0;
  s[2] = (s[2] ^ s[0]) >>> 0;
  s[3] = (s[3] ^ s[1]) >>> 0;
  s[1] = (s[1] ^ s[2]) >>> 0;
  s[0] = (s[0] ^ s[3]) >>> 0;
  s[2] = (s[2] ^ t) >>> 0;
  s[3] = rotl(s[3], 11);
  return result;
}

export function fillRandom(state: RandomState, target: Uint8Array): void {
  for (let i = 0; i < target.length; i += 4) {
    let word = nextU32(state);
    for (let j = i; j < Math.min(i + 4, target.length); j++) {
      target[j] = word & 0xff;
      word >>>= 8;
    }
  }
}

/** A float in [0, 1) with 53 random bits (AssemblyScript's `env.seed` wants an f64). */
export function nextFloat(state: RandomState): number {
  return (nextU32(state) * 2 ** 21 + (nextU32(state) >>> 11)) / 2 ** 53;
}
