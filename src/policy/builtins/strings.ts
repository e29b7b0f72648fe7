// String builtins OPA's WASM target leaves to the host (topdown/strings.go, encoding.go, glob.go).
import { goSprintf, sprintfArg } from './go-format.js';
import { sortValues } from './rego-order.js';
import {
  arr,
  bigintOf,
  BuiltinError,
  ByteString,
  bytesOf,
  operandError,
  RegoSet,
  str,
  type Value,
} from './rego-value.js';
import type { Builtin } from './types.js';

/** The strings of an array or set operand (a set in OPA's order). */
function stringList(v: Value, pos: number): string[] {
  const items = Array.isArray(v) ? v : v instanceof RegoSet ? sortValues(v.items) : undefined;
  if (!items) throw operandError(pos, 'string, set or array', v);
  return items.map((x) => {
    if (typeof x !== 'string') throw operandError(pos, 'array of strings', v);
    return x;
  });
}

function affix(suffix: boolean): Builtin {
  return ([a, b]) => {
    const match = suffix ? (s: string, x: string) => s.endsWith(x) : (s: string, x: string) => s.startsWith(x);
    let subjects: string[];
    if (typeof a === 'string') subjects = [a];
    else if (Array.isArray(a) || a instanceof RegoSet) subjects = stringList(a, 1);
    else throw operandError(1, 'string, set or array', a!);
    let bases: string[];
    if (typeof b === 'string') bases = [b];
    else if (Array.isArray(b) || b instanceof RegoSet) bases = stringList(b, 2);
    else throw operandError(2, 'string, set or array', b!);
    return subjects.some((s) => bases.some((x) => match(s, x)));
  };
}

const codePoints = (s: string): string[] => [...s];

/** Go's strings.SplitN. */
function goSplitN(s: string, sep: string, n: number): string[] {
  if (n === 0) return [];
  if (sep === '') {
    const cps = codePoints(s);
    if (n < 0 || n >= cps.length) return cps;
    return [...cps.slice(0, n - 1), cps.slice(n - 1).join('')];
  }
  const parts = s.split(sep);
  if (n < 0 || parts.length <= n) return parts;
  return [...parts.slice(0, n - 1), parts.slice(n - 1).join(sep)];
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const GLOB_SPECIALS = new Set(['*', '?', '\\', '[', ']', '{', '}']);

export const stringBuiltins: Record<string, Builtin> = {
  'strings.any_prefix_match': affix(false),
  'strings.any_suffix_match': affix(true),
  'strings.count': ([s, sub]) => {
    const x = str(s!, 1);
    const y = str(sub!, 2);
    if (y === '') return codePoints(x).length + 1;
    return x.split(y).length - 1;
  },
  // OPA: the first n pieces (without the unsplit rest); a negative n counts from the end.
  'strings.split_n': ([s, d, n]) => {
    const text = str(s!, 1);
    const delim = str(d!, 2);
    const count = Number(bigintOf(n!, 3));
    if (count >= 0) {
      const parts = goSplitN(text, delim, count + 1 < 0 ? -1 : count + 1);
      return parts.slice(0, Math.min(count, parts.length));
    }
    const parts = goSplitN(text, delim, -1);
    return parts.slice(Math.max(parts.length + count, 0));
  },
  indexof_n: ([b, s]) => {
    const base = codePoints(str(b!, 1));
    const search = codePoints(str(s!, 2));
    if (search.length === 0) throw new BuiltinError('empty search character');
    const out: number[] = [];
    for (let i = 0; i + search.length <= base.length; i++) {
      let ok = true;
      for (let j = 0; j < search.length && ok; j++) ok = base[i + j] === search[j];
      if (ok) out.push(i);
    }
    return out;
  },
  'glob.quote_meta': ([p]) => {
    let out = '';
    for (const ch of str(p!, 1)) out += GLOB_SPECIALS.has(ch) ? `\\${ch}` : ch;
    return out;
  },
  'hex.encode': ([s]) => Buffer.from(bytesOf(s!, 1)).toString('hex'),
  'hex.decode': ([s]) => {
    const text = str(s!, 1);
    if (!HEX.test(text)) throw new BuiltinError('encoding/hex: invalid byte or odd length');
    return bytesToString(Buffer.from(text, 'hex'));
  },
  'base64url.encode_no_pad': ([s]) => Buffer.from(bytesOf(s!, 1)).toString('base64url'),
  sprintf: ([f, a]) => {
    const format = str(f!, 1);
    const args = arr(a!, 2);
    return goSprintf(format, args.map(sprintfArg));
  },
  // The trace note goes to OPA's tracer; the service has none: always true.
  trace: ([s]) => {
    str(s!, 1);
    return true;
  },
};

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/** Bytes as a Rego string: text when they are UTF-8, else kept as bytes. */
export function bytesToString(b: Uint8Array): string | ByteString {
  try {
    return utf8Fatal.decode(b);
  } catch {
    return new ByteString(Uint8Array.from(b));
  }
}
