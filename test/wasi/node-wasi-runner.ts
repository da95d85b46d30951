// Runs a WASI command under Node's own node:wasi, the reference the tests compare norma's WASI with.
// Usage: node node-wasi-runner.js '<RunnerConfig as JSON>'. The guest's stdin, stdout and stderr are
// this process's; how the guest ended is written as JSON to config.resultFile.
import { readFileSync, writeFileSync } from 'node:fs';
import { WASI } from 'node:wasi';

export interface RunnerConfig {
  wasm: string;
  version: 'preview1' | 'unstable';
  args: string[];
  env: Record<string, string>;
  /** A host directory preopened as `/`, as norma preopens its sandbox root. */
  root: string;
  resultFile: string;
}

export type RunnerResult = { exitCode: number } | { trap: string };

const config = JSON.parse(process.argv[2] ?? '') as RunnerConfig;
const wasi = new WASI({
  version: config.version,
  args: config.args,
  env: config.env,
  preopens: { '/': config.root },
  returnOnExit: true,
});
const module = await WebAssembly.compile(readFileSync(config.wasm));
const imports = wasi.getImportObject() as WebAssembly.Imports;
// Some test binaries import a host function of their own; a no-op stands in for it on both sides.
for (const entry of WebAssembly.Module.imports(module)) {
  if (entry.kind !== 'function' || entry.module.startsWith('wasi')) continue;
  imports[entry.module] = { ...imports[entry.module], [entry.name]: () => 0 };
}
const instance = await WebAssembly.instantiate(module, imports);
let result: RunnerResult;
try {
  result = { exitCode: wasi.start(instance) };
} catch (error) {
  result = { trap: (error as Error).message };
}
writeFileSync(config.resultFile, JSON.stringify(result));
