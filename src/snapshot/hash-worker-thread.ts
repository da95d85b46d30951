/**
 * The code of the hash worker thread (see hash-worker.ts): hashes spans of a shared buffer with
 * xxh128 and answers with their hex digests.
 */
import { parentPort } from 'node:worker_threads';
import { loadPageHasher } from './page-hash.js';

interface HashRequest {
  id: number;
  buffer: SharedArrayBuffer;
  /** Pairs of offset and length in `buffer`. */
  spans: Uint32Array;
}

const port = parentPort!;
const hasher = await loadPageHasher();
port.on('message', ({ id, buffer, spans }: HashRequest) => {
  const bytes = new Uint8Array(buffer);
  const hashes: string[] = [];
  for (let i = 0; i < spans.length; i += 2)
    hashes.push(hasher.hash(bytes.subarray(spans[i]!, spans[i]! + spans[i + 1]!)));
  port.postMessage({ id, hashes });
});
port.postMessage({ ready: true });
