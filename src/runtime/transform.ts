/**
 * The module transform: what turns any WebAssembly module into a freezable norma task image.
 *
 *  1. Asyncify, with every import that may suspend listed, so a thread can unwind out of a syscall
 *     into the host and later rewind back into it (in this process or another).
 *  2. Asyncify's data lives in a secondary memory that multi-memory lowering places in hidden pages
 *     at the top of the one real memory. The lowering rewrites the guest's memory.size (minus the
 *     hidden pages) and memory.grow (grow, then move the hidden pages up), so the guest's allocator
 *     never sees, and never hands out, the frames' memory (see wasm-checkpointing.md for why).
 *  3. Every mutable global is exported so a snapshot can read and restore it.
 *  4. The start function (and a reactor's `_initialize`) is deferred: exported instead of run at
 *     instantiation, so a restored task does not run its initialization twice.
 *  5. Optionally, safepoints for preemption: a countdown in a local at each loop header (a local,
 *     not a global, because V8 keeps it in a register) and, for functions that can recurse, a
 *     countdown in a global at entry. When it reaches zero the code calls `norma_internal.safepoint`,
 *     which checks the clock and may unwind the thread.
 *
 * Loading binaryen costs about half a second, so it is imported lazily, once.
 */
import type binaryenType from 'binaryen';
import { safepointImport } from '../abi/syscalls.js';
import { NormaError } from '../errors.js';
import { asyncifyPagesDefault, fuelPerCheck } from '../limits.js';
import { checkImport, type ImportDescription, type WasmValueType } from './import-policy.js';
import { walkExpressions } from './ir-walker.js';
import { withMemoryLimits } from './wasm-binary.js';

type Binaryen = typeof binaryenType;
type BinaryenModule = InstanceType<Binaryen['Module']>;

/** Parts of binaryen.js that exist at run time but are missing from (or mistyped in) its index.d.ts. */
interface BinaryenExtras {
  _BinaryenFunctionAddVar(fn: number, type: number): number;
  Loop: {
    getBody(loop: number): number;
    setBody(loop: number, body: number): void;
    getName(loop: number): string | null;
    setName(loop: number, name: string): void;
    finalize(loop: number): void;
  };
  Break: { getName(br: number): string; setName(br: number, name: string): void };
  Switch: {
    getNumNames(br: number): number;
    getNameAt(br: number, index: number): string;
    setNameAt(br: number, index: number, name: string): void;
    getDefaultName(br: number): string;
    setDefaultName(br: number, name: string): void;
  };
  Function: { setBody(fn: number, body: number): void };
  readBinary(bytes: Uint8Array, features: number): BinaryenModule;
}
const extras = (b: Binaryen): BinaryenExtras => b as unknown as BinaryenExtras;

/** Bumped whenever the transform's output changes, so cached images of older versions are not reused. */
export const transformVersion = 2;

export interface TransformOptions {
  /** Insert safepoints so pure compute can be preempted and frozen. */
  readonly preempt: boolean;
  /** Hidden pages for asyncify frames (one thread unwinds at a time). */
  readonly hiddenPages?: number;
}

export interface GlobalExport {
  readonly exportName: string;
  /** The global's name in the module (from the name section), for diagnostics and lookups. */
  readonly name: string;
  readonly type: WasmValueType;
}

/** Everything the runtime must know about a transformed module; plain data, cached beside it. */
export interface TransformInfo {
  readonly transformVersion: number;
  readonly hiddenPages: number;
  readonly preemptible: boolean;
  readonly memoryExport: string;
  readonly mutableGlobals: readonly GlobalExport[];
  /** Export of the shadow-stack pointer (`__stack_pointer`), swapped per thread; null if none. */
  readonly stackPointerExport: string | null;
  /** Export of the byte offset where the hidden asyncify pages start (= guest-visible bytes). */
  readonly hiddenOffsetExport: string;
  /** Deferred start function and `_initialize`, to call once on a fresh start. */
  readonly initExports: readonly string[];
  readonly imports: readonly ImportDescription[];
  /** Exported functions with signature (i32) -> () that threads may use as entries. */
  readonly threadEntries: readonly string[];
}

export interface TransformResult {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly info: TransformInfo;
}

let binaryenPromise: Promise<Binaryen> | undefined;

/** binaryen.js, loaded once on first use (ESM with top-level await; costs 0.35–0.6 s). */
export function loadBinaryen(): Promise<Binaryen> {
  binaryenPromise ??= import('binaryen').then((module) => module.default);
  return binaryenPromise;
}

/** The features V8 11.3 (Node 20) runs without flags; with Features.All binaryen emits encodings it rejects. */
function nodeFeatures(b: Binaryen): number {
  const f = b.Features;
  return (
    f.MutableGlobals |
    f.SignExt |
    f.BulkMemory |
    f.BulkMemoryOpt |
    f.NontrappingFPToInt |
    f.SIMD128 |
    f.ReferenceTypes |
    f.Multivalue |
    f.ExceptionHandling |
    f.CallIndirectOverlong
  );
}

const hiddenOffsetGlobal = 'asyncify_memory_byte_offset';
const exportPrefix = '__norma_';

function valueType(b: Binaryen, type: number): WasmValueType {
  if (type === b.i32) return 'i32';
  if (type === b.i64) return 'i64';
  if (type === b.f32) return 'f32';
  if (type === b.f64) return 'f64';
  if (type === b.v128) return 'v128';
  return 'ref';
}

function valueTypes(b: Binaryen, type: number): WasmValueType[] {
  return b.expandType(type).map((t) => valueType(b, t));
}

/**
 * Refuses what cannot run or cannot be frozen, before anything runs. V8 validates the bytes (its
 * messages are precise); binaryen then tells us about imports, memories and tail calls.
 */
async function compileForValidation(bytes: Uint8Array<ArrayBuffer>): Promise<void> {
  let compiled: WebAssembly.Module;
  try {
    compiled = await WebAssembly.compile(bytes);
  } catch (error) {
    throw new NormaError('MODULE_INVALID', `not a valid WebAssembly module: ${(error as Error).message}`, {
      cause: error,
    });
  }
  // binaryen.js cannot list tags; an imported one would only fail at instantiation.
  for (const entry of WebAssembly.Module.imports(compiled)) {
    if ((entry.kind as string) === 'tag') {
      throw new NormaError(
        'MODULE_IMPORT_MISSING',
        `the module imports the exception tag ${entry.module}.${entry.name}, which norma does not provide`,
      );
    }
  }
}

function describeImports(b: Binaryen, module: BinaryenModule): ImportDescription[] {
  const imports: ImportDescription[] = [];
  for (let i = 0; i < module.getNumFunctions(); i++) {
    const info = b.getFunctionInfo(module.getFunctionByIndex(i));
    if (!info.module) continue;
    imports.push({
      module: info.module,
      name: info.base ?? '',
      params: valueTypes(b, info.params),
      results: valueTypes(b, info.results),
    });
  }
  return imports;
}

function refuseUnsupportedImports(b: Binaryen, module: BinaryenModule): void {
  const memory = module.hasMemory() ? module.getMemoryInfo() : undefined;
  if (memory?.module) {
    throw new NormaError(
      'MODULE_UNSUPPORTED',
      `the module imports its memory (${memory.module}.${memory.base}); norma needs a module that defines its own memory`,
    );
  }
  for (let i = 0; i < module.getNumGlobals(); i++) {
    const info = b.getGlobalInfo(module.getGlobalByIndex(i));
    if (info.module) {
      throw new NormaError(
        'MODULE_UNSUPPORTED',
        `the module imports the global ${info.module}.${info.base}; imported globals cannot be frozen`,
      );
    }
  }
  for (let i = 0; i < module.getNumTables(); i++) {
    const info = b.getTableInfo(module.getTableByIndex(i));
    if (info.module) {
      throw new NormaError(
        'MODULE_UNSUPPORTED',
        `the module imports the table ${info.module}.${info.base}; imported tables cannot be frozen`,
      );
    }
  }
}

interface CallGraph {
  /** Function names that can call themselves, directly or through others (including indirectly). */
  recursive: Set<string>;
}

/**
 * Walks every function once: refuses tail calls (asyncify cannot handle them) and builds the call
 * graph used to decide which functions need an entry safepoint (only those on a cycle).
 */
function analyzeFunctions(b: Binaryen, module: BinaryenModule): CallGraph {
  const edges = new Map<string, Set<string>>();
  const callsIndirect = new Set<string>();
  const addressTaken = new Set<string>();
  for (let i = 0; i < module.getNumElementSegments(); i++) {
    const segment = b.getElementSegmentInfo(module.getElementSegmentByIndex(i));
    for (const name of segment.data) addressTaken.add(name);
  }
  for (let i = 0; i < module.getNumFunctions(); i++) {
    const fn = module.getFunctionByIndex(i);
    const info = b.getFunctionInfo(fn);
    if (info.module) continue;
    const callees = new Set<string>();
    walkExpressions(b, info.body, (_expr, node) => {
      if (node.isReturn === true) {
        throw new NormaError(
          'MODULE_UNSUPPORTED',
          `function ${info.name} uses a tail call (return_call); asyncify cannot freeze tail calls`,
          { hint: 'Rebuild the module without tail calls (for clang: -mno-tail-call).' },
        );
      }
      if (node.id === b.CallId) callees.add(node.target as string);
      else if (node.id === b.CallIndirectId || node.id === b.CallRefId) callsIndirect.add(info.name);
      else if (node.id === b.RefFuncId) addressTaken.add(node.func as string);
    });
    edges.set(info.name, callees);
  }
  for (const caller of callsIndirect) for (const target of addressTaken) edges.get(caller)?.add(target);
  return { recursive: functionsOnCycles(edges) };
}

/** Tarjan's strongly connected components, iteratively (call graphs of real programs are deep). */
function functionsOnCycles(edges: Map<string, Set<string>>): Set<string> {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const result = new Set<string>();
  let counter = 0;
  for (const root of edges.keys()) {
    if (index.has(root)) continue;
    const work: { node: string; iterator: Iterator<string> }[] = [];
    const enter = (node: string): void => {
      index.set(node, counter);
      low.set(node, counter);
      counter++;
      stack.push(node);
      onStack.add(node);
      work.push({ node, iterator: (edges.get(node) ?? new Set<string>()).values() });
    };
    enter(root);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const next = frame.iterator.next();
      if (!next.done) {
        const callee = next.value;
        if (!edges.has(callee)) continue; // an import
        if (!index.has(callee)) enter(callee);
        else if (onStack.has(callee)) low.set(frame.node, Math.min(low.get(frame.node)!, index.get(callee)!));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        const selfLoop = edges.get(frame.node)?.has(frame.node) ?? false;
        if (component.length > 1 || selfLoop) for (const name of component) result.add(name);
      }
    }
  }
  return result;
}

/**
 * Inserts the fuel countdowns. A loop header gets
 *   fuel = fuel - 1; if ((fuel & (fuelPerCheck - 1)) == 0) pause;
 * with `fuel` a fresh local (zero at entry, so no initialization is needed); a recursive function
 * gets the same on a global at entry, because its locals start afresh at every call.
 *
 * The pause must not be a call inside the loop: asyncify would then have to be able to rewind into
 * the loop, and instruments every iteration with reads of its state global (2.5x on hot loops).
 * Instead the original loop node becomes an outer loop, and a new inner loop holds the check and
 * the body (whose branches to the loop are renamed to the inner one):
 *
 *   (loop $L                              ;; the original node
 *     (block $done
 *       (block $pause
 *         (br $done (loop $inner (if (countdown) (br $pause)) body[$L -> $inner])))
 *       (call $safepoint)
 *       (br $L)))                           ;; re-enter at the same loop header
 *
 * The inner loop contains no suspending call unless the body does, so asyncify leaves it untouched.
 */
function insertSafepoints(b: Binaryen, module: BinaryenModule, recursive: Set<string>): void {
  const x = extras(b);
  const safepointName = `${exportPrefix}safepoint`;
  module.addFunctionImport(safepointName, safepointImport.module, safepointImport.name, b.none, b.none);
  const fuelGlobal = `${exportPrefix}fuel`;
  module.addGlobal(fuelGlobal, b.i32, true, module.i32.const(0));
  const mask = fuelPerCheck - 1;
  const countdown = (get: () => number, set: (value: number) => number): number =>
    module.block(
      null,
      [
        set(module.i32.sub(get(), module.i32.const(1))),
        module.i32.eqz(module.i32.and(get(), module.i32.const(mask))),
      ],
      b.i32,
    );
  let labels = 0;
  const fresh = (what: string): string => `${exportPrefix}${what}${labels++}`;

  const renameBranches = (body: number, from: string, to: string): void => {
    walkExpressions(b, body, (expr, node) => {
      if (node.id === b.BreakId) {
        if (x.Break.getName(expr) === from) x.Break.setName(expr, to);
      } else if (node.id === b.SwitchId) {
        for (let i = 0; i < x.Switch.getNumNames(expr); i++) {
          if (x.Switch.getNameAt(expr, i) === from) x.Switch.setNameAt(expr, i, to);
        }
        if (x.Switch.getDefaultName(expr) === from) x.Switch.setDefaultName(expr, to);
      }
    });
  };

  const functionCount = module.getNumFunctions();
  for (let i = 0; i < functionCount; i++) {
    const fn = module.getFunctionByIndex(i);
    const info = b.getFunctionInfo(fn);
    if (info.module) continue;
    const loops: number[] = [];
    walkExpressions(b, info.body, (expr, node) => {
      if (node.id === b.LoopId) loops.push(expr);
    });
    if (loops.length > 0) {
      const fuelLocal = x._BinaryenFunctionAddVar(fn, b.i32);
      for (const loop of loops) {
        const type = b.getExpressionType(loop);
        let outerName = x.Loop.getName(loop);
        const innerName = fresh('inner');
        const body = x.Loop.getBody(loop);
        if (outerName) renameBranches(body, outerName, innerName);
        else {
          outerName = fresh('outer');
          x.Loop.setName(loop, outerName);
        }
        const done = fresh('done');
        const pause = fresh('pause');
        const check = module.if(
          countdown(
            () => module.local.get(fuelLocal, b.i32),
            (value) => module.local.set(fuelLocal, value),
          ),
          module.br(pause),
        );
        const inner = module.loop(
          innerName,
          module.block(null, [check, body], type === b.unreachable ? b.none : type),
        );
        const leave =
          type === b.none || type === b.unreachable
            ? [inner, module.br(done)]
            : [module.br(done, undefined, inner)];
        x.Loop.setBody(
          loop,
          module.block(
            done,
            [
              module.block(pause, leave, b.none),
              module.call(safepointName, [], b.none),
              module.br(outerName),
            ],
            type === b.unreachable ? b.none : type,
          ),
        );
        x.Loop.finalize(loop);
      }
    }
    if (recursive.has(info.name)) {
      const check = module.if(
        countdown(
          () => module.global.get(fuelGlobal, b.i32),
          (value) => module.global.set(fuelGlobal, value),
        ),
        module.call(safepointName, [], b.none),
      );
      x.Function.setBody(fn, module.block(null, [check, info.body], info.results));
    }
  }
}

/** Exports of shape (i32) -> () usable as thread entries. */
function threadEntryExports(b: Binaryen, module: BinaryenModule): string[] {
  const entries: string[] = [];
  for (let i = 0; i < module.getNumExports(); i++) {
    const info = b.getExportInfo(module.getExportByIndex(i));
    if (info.kind !== b.ExternalFunction) continue;
    const fn = b.getFunctionInfo(module.getFunction(info.value));
    if (fn.params === b.i32 && fn.results === b.none) entries.push(info.name);
  }
  return entries;
}

function deferInitialization(b: Binaryen, module: BinaryenModule): string[] {
  const initExports: string[] = [];
  const start = module.getStart();
  if (start !== 0) {
    const name = b.getFunctionInfo(start).name;
    module.setStart(0);
    module.addFunctionExport(name, `${exportPrefix}start`);
    initExports.push(`${exportPrefix}start`);
  }
  if (module.getExport('_initialize') !== 0) initExports.push('_initialize');
  return initExports;
}

function ensureMemoryExport(b: Binaryen, module: BinaryenModule): string {
  for (let i = 0; i < module.getNumExports(); i++) {
    const info = b.getExportInfo(module.getExportByIndex(i));
    if (info.kind === b.ExternalMemory) return info.name;
  }
  module.addMemoryExport('0', `${exportPrefix}memory`);
  return `${exportPrefix}memory`;
}

function exportMutableGlobals(b: Binaryen, module: BinaryenModule): GlobalExport[] {
  const exported = new Map<string, string>();
  for (let i = 0; i < module.getNumExports(); i++) {
    const info = b.getExportInfo(module.getExportByIndex(i));
    if (info.kind === b.ExternalGlobal) exported.set(info.value, info.name);
  }
  const globals: GlobalExport[] = [];
  for (let i = 0; i < module.getNumGlobals(); i++) {
    const info = b.getGlobalInfo(module.getGlobalByIndex(i));
    if (!info.mutable) continue;
    let exportName = exported.get(info.name);
    if (exportName === undefined) {
      exportName = `${exportPrefix}global_${i}`;
      module.addGlobalExport(info.name, exportName);
    }
    globals.push({ exportName, name: info.name, type: valueType(b, info.type) });
  }
  return globals;
}

/** The asyncify import list: every import that may suspend a thread. */
export const suspendingImports = [
  'norma.*',
  'wasi_snapshot_preview1.*',
  'wasi_unstable.*',
  `${safepointImport.module}.${safepointImport.name}`,
].join(',');

/** Transforms module bytes into a norma task image. Throws NormaError for modules it refuses. */
export async function transformModule(
  original: Uint8Array<ArrayBuffer>,
  options: TransformOptions,
): Promise<TransformResult> {
  await compileForValidation(original);
  const b = await loadBinaryen();
  const features = nodeFeatures(b);
  const hiddenPages = options.hiddenPages ?? asyncifyPagesDefault;
  let module: BinaryenModule;
  try {
    module = extras(b).readBinary(original, features | b.Features.MultiMemory);
  } catch (error) {
    throw new NormaError(
      'MODULE_UNSUPPORTED',
      'binaryen cannot read the module (it uses a feature norma does not enable)',
      {
        cause: error,
      },
    );
  }
  try {
    module.setFeatures(features | b.Features.MultiMemory);
    refuseUnsupportedImports(b, module);
    const imports = describeImports(b, module);
    for (const description of imports) checkImport(description);
    const graph = analyzeFunctions(b, module);

    const guestMemory = module.hasMemory() ? module.getMemoryInfo() : undefined;
    if (guestMemory === undefined) module.setMemory(0, 65536 - hiddenPages, 'memory');
    const guestInitialPages = guestMemory?.initial ?? 0;
    const guestMaximumPages = guestMemory?.max;
    if (guestMaximumPages !== undefined && guestMaximumPages + hiddenPages > 65536) {
      throw new NormaError(
        'MODULE_UNSUPPORTED',
        'the module may use all 4 GiB of memory; norma needs a few pages of it',
      );
    }
    const memoryExport = ensureMemoryExport(b, module);
    const initExports = deferInitialization(b, module);
    const threadEntries = threadEntryExports(b, module);
    if (options.preempt) insertSafepoints(b, module, graph.recursive);

    b.setOptimizeLevel(2);
    b.setShrinkLevel(0);
    b.clearPassArguments();
    b.setPassArgument('asyncify-imports', suspendingImports);
    b.setPassArgument('asyncify-in-secondary-memory', '1');
    b.setPassArgument('asyncify-secondary-memory-size', String(hiddenPages));
    module.runPasses(['asyncify']);
    module.runPasses(['multi-memory-lowering']);
    module.setFeatures(features);

    const mutableGlobals = exportMutableGlobals(b, module);
    const hidden = mutableGlobals.find((g) => g.name === hiddenOffsetGlobal);
    if (!hidden) throw new Error('transform: multi-memory lowering produced no offset global');
    const stackPointer = mutableGlobals.find((g) => g.name === '__stack_pointer' && g.type === 'i32');

    const emitted = module.emitBinary();
    const bytes = withMemoryLimits(
      emitted,
      guestInitialPages + hiddenPages,
      guestMaximumPages === undefined ? undefined : guestMaximumPages + hiddenPages,
    );
    return {
      bytes,
      info: {
        transformVersion,
        hiddenPages,
        preemptible: options.preempt,
        memoryExport,
        mutableGlobals,
        stackPointerExport: stackPointer?.exportName ?? null,
        hiddenOffsetExport: hidden.exportName,
        initExports,
        imports,
        threadEntries,
      },
    };
  } catch (error) {
    if (error instanceof NormaError) throw error;
    throw new NormaError(
      'MODULE_UNSUPPORTED',
      'the asyncify transform failed on this module; `node_modules/binaryen/bin/wasm-opt in.wasm --asyncify` prints the reason',
      { cause: error },
    );
  } finally {
    module.dispose();
  }
}
