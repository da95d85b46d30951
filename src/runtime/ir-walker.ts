/**
 * A minimal walker over binaryen IR. binaryen.js has no generic visitor, so this table lists, for
 * each expression kind that can contain other expressions, the fields of its info record that hold
 * children. Kinds not listed are treated as leaves: a loop hidden inside one (only possible with GC
 * or string proposals, which norma does not enable) would merely not get a safepoint.
 */
import type binaryenType from 'binaryen';

type Binaryen = typeof binaryenType;

const childFieldsById = (b: Binaryen): Map<number, readonly string[]> =>
  new Map<number, readonly string[]>([
    [b.BlockId, ['children']],
    [b.IfId, ['condition', 'ifTrue', 'ifFalse']],
    [b.LoopId, ['body']],
    [b.BreakId, ['condition', 'value']],
    [b.SwitchId, ['condition', 'value']],
    [b.CallId, ['operands']],
    [b.CallIndirectId, ['target', 'operands']],
    [b.LocalSetId, ['value']],
    [b.GlobalSetId, ['value']],
    [b.TableGetId, ['index']],
    [b.TableSetId, ['index', 'value']],
    [b.TableGrowId, ['value', 'delta']],
    [b.LoadId, ['ptr']],
    [b.StoreId, ['ptr', 'value']],
    [b.UnaryId, ['value']],
    [b.BinaryId, ['left', 'right']],
    [b.SelectId, ['ifTrue', 'ifFalse', 'condition']],
    [b.DropId, ['value']],
    [b.ReturnId, ['value']],
    [b.MemoryGrowId, ['delta']],
    [b.AtomicRMWId, ['ptr', 'value']],
    [b.AtomicCmpxchgId, ['ptr', 'expected', 'replacement']],
    [b.AtomicWaitId, ['ptr', 'expected', 'timeout']],
    [b.AtomicNotifyId, ['ptr', 'notifyCount']],
    [b.SIMDExtractId, ['vec']],
    [b.SIMDReplaceId, ['vec', 'value']],
    [b.SIMDShuffleId, ['left', 'right']],
    [b.SIMDTernaryId, ['a', 'b', 'c']],
    [b.SIMDShiftId, ['vec', 'shift']],
    [b.SIMDLoadId, ['ptr']],
    [b.SIMDLoadStoreLaneId, ['ptr', 'vec']],
    [b.MemoryInitId, ['dest', 'offset', 'size']],
    [b.MemoryCopyId, ['dest', 'source', 'size']],
    [b.MemoryFillId, ['dest', 'value', 'size']],
    [b.RefIsNullId, ['value']],
    [b.RefAsId, ['value']],
    [b.RefEqId, ['left', 'right']],
    [b.TryId, ['body', 'catchBodies']],
    [b.ThrowId, ['operands']],
    [b.TupleMakeId, ['operands']],
    [b.TupleExtractId, ['tuple']],
  ]);

let cachedTable: Map<number, readonly string[]> | undefined;

/** Calls `visit` for every expression under `root`, parents before children. */
export function walkExpressions(
  b: Binaryen,
  root: number,
  visit: (expr: number, info: Record<string, unknown>) => void,
): void {
  cachedTable ??= childFieldsById(b);
  const table = cachedTable;
  const stack: number[] = [root];
  while (stack.length > 0) {
    const expr = stack.pop()!;
    if (expr === 0) continue;
    // getExpressionInfo throws for kinds binaryen.js has no wrapper class for (unreachable, nop,
    // ...), so leaves other than ref.func get only their id.
    const id = b.getExpressionId(expr);
    const fields = table.get(id);
    const info =
      fields !== undefined || id === b.RefFuncId
        ? (b.getExpressionInfo(expr) as unknown as Record<string, unknown>)
        : { id };
    visit(expr, info);
    if (fields === undefined) continue;
    for (const field of fields) {
      const value = info[field];
      if (Array.isArray(value)) for (const child of value) stack.push(child as number);
      else if (typeof value === 'number' && value !== 0) stack.push(value);
    }
  }
}
