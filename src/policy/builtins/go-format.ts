// Go's text formatting that OPA's builtins show through: strconv.Quote, strconv's shortest
// 'g' float format, a Rego value's String(), and the fmt.Sprintf verbs sprintf uses.
import { sortValues } from './rego-order.js';
import {
  entriesOf,
  FloatNumber,
  isNumber,
  isObject,
  numberText,
  RegoSet,
  ByteString,
  type Value,
} from './rego-value.js';
import { compareValues } from './rego-order.js';

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

/** strconv.Quote: a double-quoted Go string literal, non-printable runes escaped. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (c >= 0x20 && c < 0x7f) out += ch;
    else if (c >= 0x80 && PRINTABLE.test(ch)) out += ch;
    else if (c === 7) out += '\\a';
    else if (c === 8) out += '\\b';
    else if (c === 12) out += '\\f';
    else if (c === 10) out += '\\n';
    else if (c === 13) out += '\\r';
    else if (c === 9) out += '\\t';
    else if (c === 11) out += '\\v';
    else if (c < 0x80) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c < 0x10000) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += `\\U${c.toString(16).padStart(8, '0')}`;
  }
  return out + '"';
}

/** strconv.FormatFloat(f, 'g', -1, 64) (also Go's %v of a float64). */
export function formatFloatG(f: number): string {
  if (Number.isNaN(f)) return 'NaN';
  if (!Number.isFinite(f)) return f > 0 ? '+Inf' : '-Inf';
  if (f === 0) return Object.is(f, -0) ? '-0' : '0';
  const [mant, expText] = f.toExponential().split('e') as [string, string];
  const exp = Number(expText);
  // Shortest digits; the exponent form below 1e-4 and from 1e6 on (Go's eprec 6 when shortest).
  if (exp < -4 || exp >= 6) return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return String(f);
}

/** A Rego value as OPA's ast String() writes it. */
export function regoString(v: Value): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return String(v);
  if (isNumber(v)) return numberText(v);
  if (typeof v === 'string') return goQuote(v);
  if (v instanceof ByteString) return goQuote(v.toString());
  if (Array.isArray(v)) return `[${v.map(regoString).join(', ')}]`;
  if (v instanceof RegoSet) return v.items.length ? `{${sortValues(v.items).map(regoString).join(', ')}}` : 'set()';
  if (isObject(v)) {
    const e = entriesOf(v).sort((a, b) => compareValues(a[0], b[0]));
    return `{${e.map(([k, x]) => `${regoString(k)}: ${regoString(x)}`).join(', ')}}`;
  }
  return String(v);
}

type Arg = { kind: 'int'; v: bigint } | { kind: 'float'; v: number } | { kind: 'string'; v: string };

/** The Go value OPA hands fmt.Sprintf for a Rego value (topdown/strings.go builtinSprintf). */
export function sprintfArg(v: Value): Arg {
  if (isNumber(v)) {
    const text = numberText(v);
    if (/[.eE]/.test(text)) {
      const f = Number(text);
      return Number.isFinite(f) ? { kind: 'float', v: f } : { kind: 'string', v: text };
    }
    return { kind: 'int', v: BigInt(text) };
  }
  if (typeof v === 'string') return { kind: 'string', v };
  if (v instanceof ByteString) return { kind: 'string', v: v.toString() };
  return { kind: 'string', v: regoString(v) };
}

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

function goTypeName(a: Arg): string {
  if (a.kind === 'float') return 'float64';
  if (a.kind === 'string') return 'string';
  return a.v >= INT64_MIN && a.v <= INT64_MAX ? 'int64' : '*big.Int';
}

interface Spec {
  minus: boolean;
  plus: boolean;
  sharp: boolean;
  zero: boolean;
  space: boolean;
  width: number | undefined;
  prec: number | undefined;
}

function pad(s: string, f: Spec, numeric: boolean): string {
  if (f.width === undefined || s.length >= f.width) return s;
  const n = f.width - [...s].length;
  if (n <= 0) return s;
  if (f.minus) return s + ' '.repeat(n);
  if (f.zero && !numeric) return '0'.repeat(n) + s;
  if (f.zero) {
    const sign = /^[+\- ]/.test(s) ? s[0]! : '';
    return sign + '0'.repeat(n) + s.slice(sign.length);
  }
  return ' '.repeat(n) + s;
}

function signed(s: string, neg: boolean, f: Spec): string {
  if (neg) return `-${s}`;
  if (f.plus) return `+${s}`;
  if (f.space) return ` ${s}`;
  return s;
}

const BIG_VERBS = new Set(['b', 'o', 'd', 'x', 'X', 's', 'v']);

function formatInt(v: bigint, verb: string, f: Spec): string | undefined {
  // A *big.Int formats itself; a verb it lacks is written as %!c(big.Int=…).
  if ((v < INT64_MIN || v > INT64_MAX) && !BIG_VERBS.has(verb)) return `%!${verb}(big.Int=${v})`;
  const neg = v < 0n;
  const abs = neg ? -v : v;
  let digits: string;
  switch (verb) {
    case 'd':
    case 'v':
      digits = abs.toString(10);
      break;
    // *big.Int formats itself: %s is its decimal too.
    case 's':
      if (v >= INT64_MIN && v <= INT64_MAX) return undefined;
      digits = abs.toString(10);
      break;
    case 'x':
      digits = abs.toString(16);
      if (f.sharp) digits = `0x${digits}`;
      break;
    case 'X':
      digits = abs.toString(16).toUpperCase();
      if (f.sharp) digits = `0X${digits}`;
      break;
    case 'o':
      digits = abs.toString(8);
      if (f.sharp) digits = `0${digits}`;
      break;
    case 'O':
      digits = `0o${abs.toString(8)}`;
      break;
    case 'b':
      digits = abs.toString(2);
      break;
    case 'q':
      return pad(goQuoteRune(v), f, false);
    case 'c':
      return v >= 0n && v <= 0x10ffffn && !(v >= 0xd800n && v <= 0xdfffn) ? String.fromCodePoint(Number(v)) : '\ufffd';
    default:
      return undefined;
  }
  if (f.prec !== undefined) {
    if (f.prec === 0 && v === 0n) digits = '';
    digits = digits.padStart(f.prec, '0');
    return pad(signed(digits, neg, f), { ...f, zero: false }, true);
  }
  return pad(signed(digits, neg, f), f, true);
}

function formatFloat(x: number, verb: string, f: Spec): string | undefined {
  const neg = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  let s: string;
  switch (verb) {
    case 'v':
    case 'g':
    case 'G':
      s = f.prec === undefined ? formatFloatG(a) : formatPrecG(a, f.prec);
      if (verb === 'G') s = s.toUpperCase();
      break;
    case 'f':
    case 'F':
      s = fixedDigits(a, f.prec ?? 6);
      break;
    case 'x':
    case 'X':
      s = hexFloat(a, f.prec);
      if (verb === 'X') s = s.toUpperCase();
      break;
    case 'b':
      s = binaryFloat(a);
      break;
    case 'e':
    case 'E': {
      const [m, n] = expDigits(a, f.prec ?? 6);
      s = `${m}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
      if (verb === 'E') s = s.toUpperCase();
      break;
    }
    default:
      return undefined;
  }
  return pad(signed(s, neg, f), f, true);
}

// strconv rounds the exact binary value half to even; JavaScript's toFixed/toExponential
// round ties up, and toFixed switches to exponent form from 1e21.

/** A finite a ≥ 0 as the exact fraction numerator / denominator (a power of two). */
function exactFraction(a: number): [bigint, bigint] {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, a);
  const bits = view.getBigUint64(0);
  const field = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  if (field !== 0) mant |= 1n << 52n;
  const e2 = (field === 0 ? 1 : field) - 1075;
  return e2 >= 0 ? [mant << BigInt(e2), 1n] : [mant, 1n << BigInt(-e2)];
}

function roundHalfEven(num: bigint, den: bigint): bigint {
  const q = num / den;
  const twice = 2n * (num - q * den);
  return twice > den || (twice === den && (q & 1n) === 1n) ? q + 1n : q;
}

/** %.{prec}f of a ≥ 0. */
function fixedDigits(a: number, prec: number): string {
  const [n, d] = exactFraction(a);
  const q = roundHalfEven(n * 10n ** BigInt(prec), d);
  if (prec === 0) return q.toString();
  const s = q.toString().padStart(prec + 1, '0');
  return `${s.slice(0, -prec)}.${s.slice(-prec)}`;
}

/** %.{prec}e of a ≥ 0: the mantissa text and the decimal exponent. */
function expDigits(a: number, prec: number): [string, number] {
  if (a === 0) return [prec ? `0.${'0'.repeat(prec)}` : '0', 0];
  const [n, d] = exactFraction(a);
  const lo = 10n ** BigInt(prec);
  let e = Math.floor(Math.log10(a));
  for (;;) {
    const k = prec - e;
    const q = k >= 0 ? roundHalfEven(n * 10n ** BigInt(k), d) : roundHalfEven(n, d * 10n ** BigInt(-k));
    if (q >= lo * 10n) e++;
    else if (q < lo) e--;
    else {
      const s = q.toString();
      return [prec ? `${s[0]}.${s.slice(1)}` : s, e];
    }
  }
}

/** strconv's 'b' format: the integer significand, 'p', the power of two (precision ignored). */
function binaryFloat(a: number): string {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, a);
  const bits = view.getBigUint64(0);
  const field = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  if (field !== 0) mant |= 1n << 52n;
  const exp = (field === 0 ? 1 : field) - 1023 - 52;
  return `${mant}p${exp >= 0 ? '+' : ''}${exp}`;
}

/** strconv's 'x' format: 0x1.hhhp±dd, the shortest mantissa (or prec hex digits). */
function hexFloat(a: number, prec: number | undefined): string {
  if (a === 0) return prec ? `0x0.${'0'.repeat(prec)}p+00` : '0x0p+00';
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, a);
  const bits = view.getBigUint64(0);
  let exp = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  if (exp === 0) {
    // Subnormal: shift until the leading 1 is the implicit bit.
    exp = 1;
    while ((mant & (1n << 52n)) === 0n) {
      mant <<= 1n;
      exp--;
    }
    mant &= (1n << 52n) - 1n;
  }
  exp -= 1023;
  let digits = mant.toString(16).padStart(13, '0');
  if (prec === undefined) digits = digits.replace(/0+$/, '');
  else if (prec < 13) {
    // Round half to even on the dropped bits.
    const full = (1n << 52n) | mant;
    const shift = BigInt((13 - prec) * 4);
    let r = full >> shift;
    const rem = full & ((1n << shift) - 1n);
    const half = 1n << (shift - 1n);
    if (rem > half || (rem === half && (r & 1n) === 1n)) r += 1n;
    if (r >> BigInt(prec * 4) >= 2n) {
      r >>= 1n;
      exp++;
    }
    digits = prec === 0 ? '' : (r & ((1n << BigInt(prec * 4)) - 1n)).toString(16).padStart(prec, '0');
  } else digits = digits.padEnd(prec, '0');
  const e = `${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return `0x1${digits ? `.${digits}` : ''}p${e}`;
}

function formatPrecG(a: number, prec: number): string {
  const p = prec === 0 ? 1 : prec;
  const [m, exp] = expDigits(a, p - 1);
  if (exp < -4 || exp >= p) {
    const mant = m.includes('.') ? m.replace(/\.?0+$/, '') : m;
    return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const fixed = fixedDigits(a, Math.max(0, p - 1 - exp));
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}

function formatString(s: string, verb: string, f: Spec): string | undefined {
  let out: string;
  switch (verb) {
    case 's':
    case 'v':
      out = f.prec === undefined ? s : [...s].slice(0, f.prec).join('');
      break;
    case 'q':
      out = goQuote(s);
      break;
    case 'x':
    case 'X': {
      const hex = Buffer.from(s).toString('hex');
      out = verb === 'X' ? hex.toUpperCase() : hex;
      break;
    }
    default:
      return undefined;
  }
  return pad(out, f, false);
}

/** A verb that does not fit the argument: Go shows the value with %v under the same flags. */
function bad(verb: string, a: Arg, f: Spec): string {
  const shown =
    a.kind === 'int'
      ? formatInt(a.v, 'v', f)
      : a.kind === 'float'
        ? formatFloat(a.v, 'v', f)
        : formatString(a.v, 'v', f);
  return `%!${verb}(${goTypeName(a)}=${shown})`;
}

/** strconv.QuoteRune, as %q writes an integer. */
function goQuoteRune(v: bigint): string {
  const valid = v >= 0n && v <= 0x10ffffn && !(v >= 0xd800n && v <= 0xdfffn);
  const ch = valid ? String.fromCodePoint(Number(v)) : '\ufffd';
  if (ch === "'") return "'\\''";
  if (ch === '"') return `'"'`;
  return `'${goQuote(ch).slice(1, -1)}'`;
}

/** fmt.Sprintf for the argument kinds OPA passes (int64 / *big.Int, float64, string). */
export function goSprintf(format: string, args: Arg[]): string {
  let out = '';
  let argi = 0;
  let i = 0;
  while (i < format.length) {
    const c = format[i]!;
    if (c !== '%') {
      out += c;
      i++;
      continue;
    }
    i++;
    const f: Spec = {
      minus: false,
      plus: false,
      sharp: false,
      zero: false,
      space: false,
      width: undefined,
      prec: undefined,
    };
    for (; i < format.length; i++) {
      const x = format[i];
      if (x === '-') f.minus = true;
      else if (x === '+') f.plus = true;
      else if (x === '#') f.sharp = true;
      else if (x === '0') f.zero = !f.minus;
      else if (x === ' ') f.space = true;
      else break;
    }
    const w = /^\d+/.exec(format.slice(i));
    if (w) {
      f.width = Number(w[0]);
      i += w[0].length;
    }
    if (format[i] === '.') {
      i++;
      const p = /^\d+/.exec(format.slice(i));
      f.prec = p ? Number(p[0]) : 0;
      if (p) i += p[0].length;
    }
    if (i >= format.length) {
      out += '%!(NOVERB)';
      break;
    }
    const verb = String.fromCodePoint(format.codePointAt(i)!);
    i += verb.length;
    if (verb === '%') {
      out += '%';
      continue;
    }
    if (argi >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    const a = args[argi++]!;
    let s: string | undefined;
    if (verb === 'T') s = pad(goTypeName(a), f, false);
    else if (a.kind === 'int') s = formatInt(a.v, verb, f);
    else if (a.kind === 'float') s = formatFloat(a.v, verb, f);
    else s = formatString(a.v, verb, f);
    out += s ?? bad(verb, a, f);
  }
  if (argi < args.length) {
    out += `%!(EXTRA ${args
      .slice(argi)
      .map((a) => `${goTypeName(a)}=${a.kind === 'float' ? formatFloatG(a.v) : String(a.v)}`)
      .join(', ')})`;
  }
  return out;
}

export { FloatNumber };
