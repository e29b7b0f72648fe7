// OPA's total order of values (ast.Compare): null < booleans < numbers < strings < arrays
// < objects < sets; strings by bytes, objects by their sorted keys then values.
import { compareNumbers, entriesOf, isNumber, isObject, isString, RegoSet, type Value } from './rego-value.js';

function rank(v: Value): number {
  if (v === null) return 0;
  if (typeof v === 'boolean') return 1;
  if (isNumber(v)) return 2;
  if (isString(v)) return 3;
  if (Array.isArray(v)) return 6;
  if (v instanceof RegoSet) return 8;
  return 7;
}

/** Compares strings as Go does (bytewise UTF-8, i.e. by code point). */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length - b.length < 0 ? -1 : a.length === b.length ? 0 : 1;
}

export function compareValues(a: Value, b: Value): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case 0:
      return 0;
    case 1:
      return a === b ? 0 : a ? 1 : -1;
    case 2:
      return compareNumbers(a as number, b as number);
    case 3:
      return compareStrings(String(a), String(b));
    case 6:
      return compareLists(a as Value[], b as Value[]);
    case 8:
      return compareLists(sortValues((a as RegoSet).items), sortValues((b as RegoSet).items));
    default: {
      if (!isObject(a) || !isObject(b)) return 0;
      const x = entriesOf(a).sort((p, q) => compareValues(p[0], q[0]));
      const y = entriesOf(b).sort((p, q) => compareValues(p[0], q[0]));
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) {
        const c = compareValues(x[i]![0], y[i]![0]) || compareValues(x[i]![1], y[i]![1]);
        if (c) return c;
      }
      return x.length - y.length < 0 ? -1 : x.length === y.length ? 0 : 1;
    }
  }
}

function compareLists(a: Value[], b: Value[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compareValues(a[i]!, b[i]!);
    if (c) return c;
  }
  return a.length - b.length < 0 ? -1 : a.length === b.length ? 0 : 1;
}

/** A sorted copy, in OPA's order (how OPA iterates a set). */
export function sortValues(items: Value[]): Value[] {
  return [...items].sort(compareValues);
}

export const valuesEqual = (a: Value, b: Value): boolean => compareValues(a, b) === 0;
