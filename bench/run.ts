/**
 * `npm run bench [-- name...] [--runs N] [--json]`: runs the benchmarks and prints each figure as a
 * ratio to a baseline measured in the same run. Names: instrumentation, ipc, move, remote-ipc,
 * transform, snapshot.
 */
import { benchInstrumentation } from './instrumentation.js';
import { benchIpc } from './ipc.js';
import { benchMove } from './move.js';
import { benchRemoteIpc } from './remote-ipc.js';
import { benchSnapshot } from './snapshot.js';
import { reportedFigures } from './support.js';
import { benchTransform } from './transform.js';

const benchmarks: Record<string, (runs: number) => Promise<void>> = {
  instrumentation: benchInstrumentation,
  ipc: benchIpc,
  move: benchMove,
  'remote-ipc': benchRemoteIpc,
  snapshot: benchSnapshot,
  transform: benchTransform,
};

const args = process.argv.slice(2);
const runsIndex = args.indexOf('--runs');
const runs = runsIndex >= 0 ? Number(args[runsIndex + 1]) : 7;
const json = args.includes('--json');
const names = args.filter((a, i) => !a.startsWith('--') && (runsIndex < 0 || i !== runsIndex + 1));
const unknown = names.filter((name) => !(name in benchmarks));
if (unknown.length > 0 || !Number.isInteger(runs) || runs < 1) {
  console.error(`usage: npm run bench -- [${Object.keys(benchmarks).join('|')}...] [--runs N] [--json]`);
  process.exit(64);
}
for (const name of names.length > 0 ? names : Object.keys(benchmarks)) await benchmarks[name]!(runs);
if (json) console.log(JSON.stringify(reportedFigures()));
