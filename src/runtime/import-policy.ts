/**
 * What a task may import: the norma syscalls (src/abi/syscalls.ts), WASI preview1 under both of its
 * module names, and the three `env` functions AssemblyScript emits. Anything else, or a known name
 * with another signature, is refused before the module runs: a task that would fail at its first
 * call of a missing import is better refused whole.
 */
import { type assemblyScriptEnvImports, type SyscallName, syscallModule, syscalls } from '../abi/syscalls.js';
import { NormaError } from '../errors.js';
import { type WasiModuleName, wasiFunctionSignature } from '../wasi/wasi.js';

export type WasmValueType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128' | 'ref';

export interface ImportDescription {
  readonly module: string;
  readonly name: string;
  readonly params: readonly WasmValueType[];
  readonly results: readonly WasmValueType[];
}

interface Signature {
  readonly params: readonly string[];
  readonly results: readonly string[];
}

const assemblyScriptSignatures: Record<(typeof assemblyScriptEnvImports)[number], Signature> = {
  abort: { params: ['i32', 'i32', 'i32', 'i32'], results: [] },
  seed: { params: [], results: ['f64'] },
  // trace(message, n, a0..a4): AssemblyScript's debugging aid.
  trace: { params: ['i32', 'i32', 'f64', 'f64', 'f64', 'f64', 'f64'], results: [] },
};

export const wasiModules: readonly WasiModuleName[] = ['wasi_snapshot_preview1', 'wasi_unstable'];

function expectedSignature(module: string, name: string): Signature | undefined {
  if (module === syscallModule && Object.hasOwn(syscalls, name)) {
    const spec = syscalls[name as SyscallName];
    return { params: spec.params, results: spec.result === null ? [] : [spec.result] };
  }
  if ((wasiModules as readonly string[]).includes(module)) {
    return wasiFunctionSignature(module as WasiModuleName, name);
  }
  if (module === 'env' && Object.hasOwn(assemblyScriptSignatures, name)) {
    return assemblyScriptSignatures[name as keyof typeof assemblyScriptSignatures];
  }
  return undefined;
}

const sameTypes = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((type, i) => type === b[i]);

const formatSignature = (s: Signature): string => `(${s.params.join(', ')}) -> (${s.results.join(', ')})`;

/** Throws MODULE_IMPORT_MISSING unless norma provides the import with exactly this signature. */
export function checkImport(description: ImportDescription): void {
  const expected = expectedSignature(description.module, description.name);
  const what = `${description.module}.${description.name}`;
  if (expected === undefined) {
    throw new NormaError('MODULE_IMPORT_MISSING', `the module imports ${what}, which norma does not provide`);
  }
  if (!sameTypes(expected.params, description.params) || !sameTypes(expected.results, description.results)) {
    throw new NormaError(
      'MODULE_IMPORT_MISSING',
      `the module imports ${what} as ${formatSignature(description)}, but norma provides ${formatSignature(expected)}`,
    );
  }
}
