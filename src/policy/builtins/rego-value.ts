// Rego values as host builtins see them, read from and written to the policy module's
// memory in the module's own text form (opa_value_dump / opa_value_parse): JSON plus set
// literals (`{1, 2}`, `set()`) and non-string object keys. Unlike JSON, this keeps sets
// apart from arrays and numbers exact (time in nanoseconds does not fit a double).

/** A Rego set; the module removes duplicates when the value goes back in. */
export class RegoSet {
  constructor(readonly items: Value[]) {}
}

/** An object with a key that is not a string (`{1: "a"}`): rare, kept as entries. */
export class MixedObject {
  constructor(readonly entries: [Value, Value][]) {}
}

/** A number written with a fraction or an exponent (`1.5`, `1.0`, `2e3`): its text decides how OPA formats it. */
export class FloatNumber {
  constructor(readonly text: string) {}
  get value(): number {
    return Number(this.text);
  }
}

/** A string whose bytes are not UTF-8 (from base64.decode, hex.decode): its bytes are kept. */
export class ByteString {
  constructor(readonly bytes: Uint8Array) {}
  /** The text Go shows for these bytes: each byte that is not part of valid UTF-8 is U+FFFD. */
  toString(): string {
    return goUtf8(this.bytes);
  }
}

/** Decodes UTF-8 as Go does: every invalid byte becomes one U+FFFD. */
export function goUtf8(b: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    let n = 0;
    let cp = 0;
    let min = 0;
    if (c < 0x80) {
      out += String.fromCharCode(c);
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
      min = 0x10000;
    }
    let ok = n > 0;
    for (let k = 1; ok && k <= n; k++) {
      const x = b[i + k];
      if (x === undefined || (x & 0xc0) !== 0x80) ok = false;
      else cp = (cp << 6) | (x & 0x3f);
    }
    if (ok && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) ok = false;
    if (!ok) {
      out += '\ufffd';
      i++;
      continue;
    }
    out += String.fromCodePoint(cp);
    i += n + 1;
  }
  return out;
}

export type RegoObject = { [key: string]: Value };

export type Value =
  | null
  | boolean
  | number
  | bigint
  | FloatNumber
  | string
  | ByteString
  | Value[]
  | RegoSet
  | RegoObject
  | MixedObject;

/** A builtin's failure: OPA makes the call undefined (non-strict evaluation). */
export class BuiltinError extends Error {}

export const isString = (v: Value): v is string | ByteString => typeof v === 'string' || v instanceof ByteString;
export const isNumber = (v: Value): v is number | bigint | FloatNumber =>
  typeof v === 'number' || typeof v === 'bigint' || v instanceof FloatNumber;
export const isObject = (v: Value): v is RegoObject | MixedObject =>
  v instanceof MixedObject ||
  (typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    !(v instanceof RegoSet) &&
    !(v instanceof FloatNumber) &&
    !(v instanceof ByteString));
export const isPlainObject = (v: Value): v is RegoObject => isObject(v) && !(v instanceof MixedObject);

export function typeName(v: Value): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return 'boolean';
  if (isNumber(v)) return 'number';
  if (isString(v)) return 'string';
  if (Array.isArray(v)) return 'array';
  if (v instanceof RegoSet) return 'set';
  return 'object';
}

/** OPA's operand type error: `operand N must be T but got U`. */
export function operandError(pos: number, want: string, got: Value): BuiltinError {
  return new BuiltinError(`operand ${pos} must be ${want} but got ${typeName(got)}`);
}

export function str(v: Value, pos: number): string {
  if (typeof v === 'string') return v;
  if (v instanceof ByteString) return v.toString();
  throw operandError(pos, 'string', v);
}

const utf8 = new TextEncoder();
/** The exact bytes of a string operand. */
export function bytesOf(v: Value, pos: number): Uint8Array {
  if (typeof v === 'string') return utf8.encode(v);
  if (v instanceof ByteString) return v.bytes;
  throw operandError(pos, 'string', v);
}

export function obj(v: Value, pos: number): RegoObject | MixedObject {
  if (isObject(v)) return v;
  throw operandError(pos, 'object', v);
}

export function arr(v: Value, pos: number): Value[] {
  if (Array.isArray(v)) return v;
  throw operandError(pos, 'array', v);
}

/** The number's exact text, as OPA holds it. */
export function numberText(v: number | bigint | FloatNumber): string {
  if (v instanceof FloatNumber) return v.text;
  return typeof v === 'bigint' ? v.toString() : formatNumber(v);
}

/** A number operand that must be an integer (OPA's IntOperand / int64), as a bigint. */
export function bigintOf(v: Value, pos: number): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  if (v instanceof FloatNumber) {
    const n = exactInteger(v.text);
    if (n === undefined) throw new BuiltinError(`operand ${pos} must be integer number but got floating-point number`);
    return n;
  }
  throw operandError(pos, 'number', v);
}

/** A number operand as a double. */
export function num(v: Value, pos: number): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof FloatNumber) return v.value;
  throw operandError(pos, 'number', v);
}

/** The integer a decimal text denotes exactly (`1.0`, `2e3`), or undefined. */
export function exactInteger(text: string): bigint | undefined {
  const d = parseDecimal(text);
  if (!d) return undefined;
  if (d.exp >= 0) return d.mant * 10n ** BigInt(d.exp);
  const div = 10n ** BigInt(-d.exp);
  return d.mant % div === 0n ? d.mant / div : undefined;
}

/** A decimal text as mant × 10^exp. */
export function parseDecimal(text: string): { mant: bigint; exp: number } | undefined {
  const m = /^(-?)(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return undefined;
  const frac = m[3] ?? '';
  const mant = BigInt(`${m[1]}${m[2]}${frac}`);
  return { mant, exp: Number(m[4] ?? 0) - frac.length };
}

/** Compares two numbers exactly (OPA compares decimals as rationals). */
export function compareNumbers(a: number | bigint | FloatNumber, b: number | bigint | FloatNumber): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  const x = toRational(a);
  const y = toRational(b);
  const l = x.n * y.d;
  const r = y.n * x.d;
  return l < r ? -1 : l > r ? 1 : 0;
}

function toRational(v: number | bigint | FloatNumber): { n: bigint; d: bigint } {
  if (typeof v === 'bigint') return { n: v, d: 1n };
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return { n: BigInt(v), d: 1n };
    return doubleRational(v);
  }
  const d = parseDecimal(v.text)!;
  return d.exp >= 0 ? { n: d.mant * 10n ** BigInt(d.exp), d: 1n } : { n: d.mant, d: 10n ** BigInt(-d.exp) };
}

/** The exact value of a double as a fraction. */
export function doubleRational(x: number): { n: bigint; d: bigint } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const sign = bits >> 63n ? -1n : 1n;
  const e = Number((bits >> 52n) & 0x7ffn);
  let m = bits & ((1n << 52n) - 1n);
  let exp: number;
  if (e === 0) exp = -1074;
  else {
    m |= 1n << 52n;
    exp = e - 1075;
  }
  if (exp >= 0) return { n: sign * (m << BigInt(exp)), d: 1n };
  return { n: sign * m, d: 1n << BigInt(-exp) };
}

/** A double as OPA writes a float64 result (strconv 'g', shortest, as json.Number). */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) throw new BuiltinError('number is not finite');
  if (Object.is(n, -0)) return '0';
  return String(n);
}

// ---- reading the module's text form -----------------------------------------------------

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Parses opa_value_dump output: bytes of JSON with set literals and any-typed keys. */
export function parseValue(buf: Uint8Array, start: number, end: number): Value {
  const p = new Parser(buf, start, end);
  const v = p.value();
  p.ws();
  if (p.i !== end) throw new Error(`unexpected byte at ${p.i - start} of a dumped value`);
  return v;
}

class Parser {
  constructor(
    readonly b: Uint8Array,
    public i: number,
    readonly end: number,
  ) {}

  ws(): void {
    while (this.i < this.end) {
      const c = this.b[this.i]!;
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      this.i++;
    }
  }

  value(): Value {
    this.ws();
    const c = this.b[this.i];
    switch (c) {
      case 0x22: // "
        return this.string();
      case 0x5b: // [
        return this.array();
      case 0x7b: // {
        return this.objectOrSet();
      case 0x74: // true
        this.i += 4;
        return true;
      case 0x66: // false
        this.i += 5;
        return false;
      case 0x6e: // null
        this.i += 4;
        return null;
      case 0x73: // set()
        this.i += 5;
        return new RegoSet([]);
      default:
        return this.number();
    }
  }

  number(): Value {
    const s = this.i;
    while (this.i < this.end) {
      const c = this.b[this.i]!;
      if ((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45) this.i++;
      else break;
    }
    if (s === this.i) throw new Error(`unexpected byte ${this.b[s]} in a dumped value`);
    const text = String.fromCharCode(...this.b.subarray(s, this.i));
    return numberFromText(text);
  }

  string(): string | ByteString {
    this.i++; // opening quote
    let s = this.i;
    let plain = true;
    while (this.i < this.end && this.b[this.i] !== 0x22) {
      if (this.b[this.i] === 0x5c) {
        plain = false;
        this.i += 2;
      } else this.i++;
    }
    if (plain) {
      const bytes = this.b.subarray(s, this.i);
      this.i++;
      return decodeBytes(bytes);
    }
    // With escapes: collect the bytes (the dump escapes only \\ \" \n \r \t \u00XX).
    const out: number[] = [];
    this.i = s;
    while (this.b[this.i] !== 0x22) {
      const c = this.b[this.i]!;
      if (c !== 0x5c) {
        out.push(c);
        this.i++;
        continue;
      }
      const e = this.b[this.i + 1]!;
      this.i += 2;
      switch (e) {
        case 0x6e:
          out.push(0x0a);
          break;
        case 0x72:
          out.push(0x0d);
          break;
        case 0x74:
          out.push(0x09);
          break;
        case 0x62:
          out.push(0x08);
          break;
        case 0x66:
          out.push(0x0c);
          break;
        case 0x75: {
          const code = parseInt(String.fromCharCode(...this.b.subarray(this.i, this.i + 4)), 16);
          this.i += 4;
          // The dump writes \u00XX only for control bytes; other escapes come from input text.
          for (const x of utf8.encode(String.fromCharCode(code))) out.push(x);
          break;
        }
        default:
          out.push(e);
      }
    }
    this.i++;
    s = 0;
    return decodeBytes(Uint8Array.from(out));
  }

  array(): Value[] {
    this.i++;
    const out: Value[] = [];
    this.ws();
    if (this.b[this.i] === 0x5d) {
      this.i++;
      return out;
    }
    for (;;) {
      out.push(this.value());
      this.ws();
      const c = this.b[this.i++];
      if (c === 0x5d) return out;
      if (c !== 0x2c) throw new Error('malformed array in a dumped value');
    }
  }

  objectOrSet(): Value {
    this.i++;
    this.ws();
    if (this.b[this.i] === 0x7d) {
      this.i++;
      return Object.create(null) as RegoObject;
    }
    const first = this.value();
    this.ws();
    if (this.b[this.i] !== 0x3a) {
      const items = [first];
      for (;;) {
        this.ws();
        const c = this.b[this.i++];
        if (c === 0x7d) return new RegoSet(items);
        if (c !== 0x2c) throw new Error('malformed set in a dumped value');
        items.push(this.value());
      }
    }
    const entries: [Value, Value][] = [];
    let key = first;
    for (;;) {
      this.ws();
      this.i++; // colon
      entries.push([key, this.value()]);
      this.ws();
      const c = this.b[this.i++];
      if (c === 0x7d) break;
      if (c !== 0x2c) throw new Error('malformed object in a dumped value');
      key = this.value();
    }
    if (entries.every(([k]) => typeof k === 'string')) {
      const o = Object.create(null) as RegoObject;
      for (const [k, v] of entries) o[k as string] = v;
      return o;
    }
    return new MixedObject(entries);
  }
}

function decodeBytes(bytes: Uint8Array): string | ByteString {
  // Most strings are ASCII: decode those without the UTF-8 validator's overhead.
  let ascii = true;
  for (let k = 0; k < bytes.length; k++) {
    if (bytes[k]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return bytes.length < 64 ? String.fromCharCode(...bytes) : decoder.decode(bytes);
  try {
    return decoder.decode(bytes);
  } catch {
    return new ByteString(bytes.slice());
  }
}

export function numberFromText(text: string): number | bigint | FloatNumber {
  if (/^-?\d+$/.test(text)) {
    if (text.length <= 15) return Number(text);
    const b = BigInt(text);
    return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
  }
  return new FloatNumber(text);
}

// ---- writing the module's text form ------------------------------------------------------

const utf8Encoder = new TextEncoder();

/** Serializes a value in the text form opa_value_parse reads. */
export function serializeValue(v: Value): Uint8Array {
  const w = new Writer();
  w.value(v);
  return w.bytes();
}

class Writer {
  private parts: (string | Uint8Array)[] = [];
  private text = '';

  bytes(): Uint8Array {
    if (this.parts.length === 0) return utf8Encoder.encode(this.text);
    this.flush();
    const chunks = this.parts.map((p) => (typeof p === 'string' ? utf8Encoder.encode(p) : p));
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }

  private flush(): void {
    if (this.text) this.parts.push(this.text);
    this.text = '';
  }

  value(v: Value): void {
    if (v === null) this.text += 'null';
    else if (typeof v === 'boolean') this.text += v ? 'true' : 'false';
    else if (typeof v === 'number') this.text += formatNumber(v);
    else if (typeof v === 'bigint') this.text += v.toString();
    else if (typeof v === 'string') this.text += JSON.stringify(v);
    else if (v instanceof FloatNumber) this.text += v.text;
    // The module accepts UTF-8 only: other bytes become U+FFFD, as OPA's JSON output shows them.
    else if (v instanceof ByteString) this.text += JSON.stringify(v.toString());
    else if (Array.isArray(v)) this.list('[', ']', v);
    else if (v instanceof RegoSet) {
      if (v.items.length === 0) this.text += 'set()';
      else this.list('{', '}', v.items);
    } else if (v instanceof MixedObject) {
      this.text += '{';
      v.entries.forEach(([k, x], i) => {
        if (i) this.text += ',';
        this.value(k);
        this.text += ':';
        this.value(x);
      });
      this.text += '}';
    } else {
      this.text += '{';
      let first = true;
      for (const k in v) {
        if (!first) this.text += ',';
        first = false;
        this.text += JSON.stringify(k);
        this.text += ':';
        this.value(v[k]!);
      }
      this.text += '}';
    }
  }

  private list(open: string, close: string, items: Value[]): void {
    this.text += open;
    for (let i = 0; i < items.length; i++) {
      if (i) this.text += ',';
      this.value(items[i]!);
    }
    this.text += close;
  }
}

/** A new object without a prototype, so keys such as `__proto__` are plain keys. */
export function newObject(entries: Iterable<[string, Value]> = []): RegoObject {
  const o = Object.create(null) as RegoObject;
  for (const [k, v] of entries) o[k] = v;
  return o;
}

/** The entries of an object of either kind. */
export function entriesOf(o: RegoObject | MixedObject): [Value, Value][] {
  return o instanceof MixedObject ? o.entries : Object.keys(o).map((k) => [k, o[k]!]);
}

/**
 * Parses JSON text as OPA's json.unmarshal does: numbers keep their exact text, objects have
 * no prototype; the last of duplicate keys wins. Throws a BuiltinError on invalid JSON.
 */
export function parseJson(text: string): Value {
  try {
    return JSON.parse(text, jsonReviver) as Value;
  } catch (err) {
    throw new BuiltinError(`invalid JSON: ${(err as Error).message}`);
  }
}

function jsonReviver(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === 'number') return numberFromText(context!.source!);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const o = Object.create(null) as RegoObject;
  for (const k of Object.keys(value)) o[k] = (value as RegoObject)[k]!;
  return o;
}
