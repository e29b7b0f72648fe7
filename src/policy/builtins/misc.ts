// numbers.range_step, rand.intn, semver.*, uuid.rfc4122 and urlquery.* with OPA's
// semantics (topdown/numbers.go, semver.go, uuid.go, encoding.go; Go's net/url).
import { randomBytes, randomInt } from 'node:crypto';
import { sortValues } from './rego-order.js';
import {
  bigintOf,
  BuiltinError,
  ByteString,
  isPlainObject,
  newObject,
  operandError,
  RegoSet,
  str,
  type Value,
} from './rego-value.js';
import { bytesToString } from './strings.js';
import type { Builtin } from './types.js';

// ---- semver (OPA's internal/semver) ----------------------------------------------------

interface SemVer {
  major: bigint;
  minor: bigint;
  patch: bigint;
  pre: string;
}

const META = /^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$/;
const INT64_MAX = (1n << 63n) - 1n;

function numeric(s: string): bigint {
  if (s === '' || s[0] === '+' || s[0] === '-' || (s.length > 1 && s[0] === '0') || !/^\d+$/.test(s))
    throw new BuiltinError(`${s} is not a valid numeric identifier`);
  const n = BigInt(s);
  if (n > INT64_MAX) throw new BuiltinError('value out of range');
  return n;
}

function parseSemver(input: string): SemVer {
  let v = input.startsWith('v') ? input.slice(1) : input;
  const plus = v.indexOf('+');
  if (plus >= 0) {
    if (!META.test(v.slice(plus + 1))) throw new BuiltinError('invalid metadata identifier');
    v = v.slice(0, plus);
  }
  let pre = '';
  const dash = v.indexOf('-');
  if (dash >= 0) {
    pre = v.slice(dash + 1);
    if (!META.test(pre) || pre.split('.').some((id) => id.length > 1 && id[0] === '0' && /^\d+$/.test(id)))
      throw new BuiltinError('invalid pre-release identifier');
    v = v.slice(0, dash);
  }
  const parts = v.split('.');
  if (parts.length !== 3) throw new BuiltinError('should contain major, minor, and patch versions');
  return { major: numeric(parts[0]!), minor: numeric(parts[1]!), patch: numeric(parts[2]!), pre };
}

const allDecimals = (s: string) => s !== '' && /^[0-9]+$/.test(s);
const cmp = (a: bigint | string, b: bigint | string) => (a > b ? 1 : a < b ? -1 : 0);
const cutDot = (s: string): [string, string] => {
  const i = s.indexOf('.');
  return i >= 0 ? [s.slice(0, i), s.slice(i + 1)] : [s, ''];
};

function compareSemver(x: SemVer, y: SemVer): number {
  const c = cmp(x.major, y.major) || cmp(x.minor, y.minor) || cmp(x.patch, y.patch);
  if (c) return c;
  if (x.pre === y.pre) return 0;
  if (x.pre === '') return 1;
  if (y.pre === '') return -1;
  let [a, afterA] = cutDot(x.pre);
  let [b, afterB] = cutDot(y.pre);
  for (;;) {
    if (a === '' && b !== '') return -1;
    if (a !== '' && b === '') return 1;
    const ai = allDecimals(a);
    const bi = allDecimals(b);
    if (ai && !bi) return -1;
    if (!ai && bi) return 1;
    // Go compares strings bytewise; these identifiers are ASCII.
    const r = ai && bi ? cmp(BigInt(a), BigInt(b)) : cmp(a, b);
    if (r) return r;
    if (afterA !== '' && afterB === '') return 1;
    if (afterA === '' && afterB !== '') return -1;
    [a, afterA] = cutDot(afterA);
    [b, afterB] = cutDot(afterB);
  }
}

// ---- net/url query escaping ---------------------------------------------------------------

const UNRESERVED = /[A-Za-z0-9\-_.~]/;

/** Go's url.QueryEscape. */
export function queryEscape(s: string | ByteString): string {
  const bytes = typeof s === 'string' ? Buffer.from(s) : Buffer.from(s.bytes);
  let out = '';
  for (const b of bytes) {
    const ch = String.fromCharCode(b);
    if (b < 0x80 && UNRESERVED.test(ch)) out += ch;
    else if (b === 0x20) out += '+';
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const isHex = (c: number | undefined) =>
  c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));

/** Go's url.QueryUnescape. */
export function queryUnescape(s: string): string | ByteString {
  const src = Buffer.from(s);
  const out: number[] = [];
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === 0x25) {
      if (!isHex(src[i + 1]) || !isHex(src[i + 2])) throw new BuiltinError(`invalid URL escape`);
      out.push(parseInt(String.fromCharCode(src[i + 1]!, src[i + 2]!), 16));
      i += 2;
    } else if (c === 0x2b) out.push(0x20);
    else out.push(c);
  }
  return bytesToString(Uint8Array.from(out));
}

const MAX_QUERY_PARAMS = 10000;

/**
 * Go's url.ParseQuery, then the conversion to Rego: Go groups values by the key's bytes, and
 * keys whose bytes are not UTF-8 can become the same text (each invalid byte is U+FFFD). Such
 * keys are one key of the object, holding one group's values — the last here; in OPA whichever
 * Go's map order gives last.
 */
function parseQuery(query: string): Map<string, Value[]> {
  if (query.split('&').length > MAX_QUERY_PARAMS)
    throw new BuiltinError('number of URL query parameters exceeded limit');
  const groups = new Map<string, { key: string; values: Value[] }>();
  let failed = false;
  for (const part of query.split('&')) {
    if (part.includes(';')) {
      failed = true;
      continue;
    }
    if (part === '') continue;
    const eq = part.indexOf('=');
    try {
      const k = queryUnescape(eq >= 0 ? part.slice(0, eq) : part);
      const v = queryUnescape(eq >= 0 ? part.slice(eq + 1) : '');
      const bytes = k instanceof ByteString ? `b:${Buffer.from(k.bytes).toString('hex')}` : `s:${k}`;
      let group = groups.get(bytes);
      if (!group) groups.set(bytes, (group = { key: String(k), values: [] }));
      group.values.push(v);
    } catch {
      failed = true;
    }
  }
  if (failed) throw new BuiltinError('invalid URL query');
  const m = new Map<string, Value[]>();
  for (const { key, values } of groups.values()) m.set(key, values);
  return m;
}

// ---- the table ------------------------------------------------------------------------------

const HEX_DIGITS = '0123456789abcdef';

export const miscBuiltins: Record<string, Builtin> = {
  'numbers.range_step': ([a, b, s]) => {
    const x = bigintOf(a!, 1);
    const y = bigintOf(b!, 2);
    const step = bigintOf(s!, 3);
    if (step <= 0n) throw new BuiltinError('numbers.range_step: step must be a positive integer');
    const out: Value[] = [];
    if (x <= y) for (let i = x; i <= y; i += step) out.push(small(i));
    else for (let i = x; i >= y; i -= step) out.push(small(i));
    return out;
  },
  // The same (str, n) gives the same number within one evaluation, as OPA caches it per query.
  'rand.intn': ([s, n], state) => {
    const text = str(s!, 1);
    let max = bigintOf(n!, 2);
    if (max === 0n) return 0;
    if (max < 0n) max = -max;
    const key = `${text}-${max}`;
    const seen = state.randMemo.get(key);
    if (seen !== undefined) return seen;
    const r =
      max <= 281474976710655n ? randomInt(Number(max)) : Number(BigInt(`0x${randomBytes(8).toString('hex')}`) % max);
    state.markRandUsed();
    state.randMemo.set(key, r);
    return r;
  },
  'semver.is_valid': ([v]) => {
    if (typeof v !== 'string') return false;
    try {
      parseSemver(v);
      return true;
    } catch {
      return false;
    }
  },
  'semver.compare': ([a, b]) => compareSemver(parseSemver(str(a!, 1)), parseSemver(str(b!, 2))),
  // A version 4 UUID, the same for the same argument within one evaluation (OPA caches it per query).
  'uuid.rfc4122': ([k], state) => {
    const key = `uuid\u0000${JSON.stringify(String(k))}\u0000${typeof k}`;
    const seen = state.randMemo.get(key);
    if (seen !== undefined) return seen;
    const b = randomBytes(16);
    b[6] = (b[6]! & 0x0f) | 0x40;
    b[8] = (b[8]! & 0x3f) | 0x80;
    let hex = '';
    for (const x of b) hex += HEX_DIGITS[x >> 4]! + HEX_DIGITS[x & 15]!;
    const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    state.markRandUsed();
    state.randMemo.set(key, id);
    return id;
  },
  'urlquery.encode': ([s]) => queryEscape(typeof s === 'string' || s instanceof ByteString ? s : str(s!, 1)),
  'urlquery.decode': ([s]) => queryUnescape(str(s!, 1)),
  'urlquery.decode_object': ([s]) => {
    const m = parseQuery(str(s!, 1));
    return newObject([...m.entries()]);
  },
  'urlquery.encode_object': ([o]) => {
    if (!isPlainObject(o!)) throw operandError(1, 'object', o!);
    const keys = Object.keys(o).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const parts: string[] = [];
    for (const k of keys) {
      const v = o[k]!;
      const values =
        typeof v === 'string' ? [v] : Array.isArray(v) ? v : v instanceof RegoSet ? sortValues(v.items) : undefined;
      if (!values) throw new BuiltinError('operand 1 values must be string, array[string], or set[string]');
      for (const x of values) {
        if (typeof x !== 'string')
          throw new BuiltinError('operand 1 values must be string, array[string], or set[string]');
        parts.push(`${queryEscape(k)}=${queryEscape(x)}`);
      }
    }
    return parts.join('&');
  },
};

const small = (i: bigint): Value =>
  i >= BigInt(Number.MIN_SAFE_INTEGER) && i <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(i) : i;
