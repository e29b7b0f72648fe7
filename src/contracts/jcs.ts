// RFC 8785 (JSON Canonicalization Scheme) of a parsed JSON value: object members sorted by
// their names' UTF-16 code units, no whitespace, strings escaped as ECMAScript's
// JSON.stringify escapes them, numbers written as ECMAScript writes a Number (RFC 8785 §3.2.2.3).
// The input is held to I-JSON (RFC 7493), which the scheme assumes: a value readers could take
// for something else — a lone surrogate, a number beyond a 64-bit float, an integer beyond
// ±(2^53−1) that JavaScript rounds and Python or Java keep — is refused, never canonicalized.

export type CanonicalRefusal = 'lone_surrogate' | 'non_finite_number' | 'unsafe_integer' | 'not_json';

export class CanonicalJsonError extends Error {
  constructor(
    readonly code: CanonicalRefusal,
    /** Where: `amount`, `items[2].id`; "" for the top level. */
    readonly path: string,
  ) {
    super(`${code} at ${path === '' ? 'the top level' : path}`);
  }
}

export interface CanonicalOptions {
  /**
   * Accept numbers beyond ±(2^53−1), as plain RFC 8785 does. Off by default: such a number is
   * read differently by JavaScript (rounded) and by Python or Java (every digit kept).
   */
  largeNumbers?: boolean;
}

/** The canonical text of `value`; throws CanonicalJsonError for what it refuses. */
export function canonicalJson(value: unknown, opts: CanonicalOptions = {}): string {
  const out: string[] = [];
  write(value, out, '', opts.largeNumbers === true);
  return out.join('');
}

function write(v: unknown, out: string[], path: string, large: boolean): void {
  switch (typeof v) {
    case 'string':
      out.push(quote(v, path));
      return;
    case 'number':
      out.push(number(v, path, large));
      return;
    case 'boolean':
      out.push(v ? 'true' : 'false');
      return;
    case 'object':
      if (v === null) {
        out.push('null');
        return;
      }
      if (Array.isArray(v)) {
        out.push('[');
        for (let i = 0; i < v.length; i++) {
          if (i > 0) out.push(',');
          write(v[i], out, `${path}[${i}]`, large);
        }
        out.push(']');
        return;
      }
      writeObject(v as Record<string, unknown>, out, path, large);
      return;
    default:
      throw new CanonicalJsonError('not_json', path);
  }
}

function writeObject(o: Record<string, unknown>, out: string[], path: string, large: boolean): void {
  const proto = Object.getPrototypeOf(o);
  if (proto !== Object.prototype && proto !== null) throw new CanonicalJsonError('not_json', path);
  // The default sort compares UTF-16 code units, which is the order RFC 8785 §3.2.3 asks for.
  const keys = Object.keys(o).sort();
  out.push('{');
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const at = path === '' ? k : `${path}.${k}`;
    if (i > 0) out.push(',');
    out.push(quote(k, at), ':');
    write(o[k], out, at, large);
  }
  out.push('}');
}

/** ECMAScript's Number::toString (RFC 8785 §3.2.2.3): -0 is "0"; Infinity and NaN are not JSON. */
function number(n: number, path: string, large: boolean): string {
  if (!Number.isFinite(n)) throw new CanonicalJsonError('non_finite_number', path);
  // Every double beyond 2^53 − 1 is an integer some reader keeps exactly and another rounds.
  if (!large && Math.abs(n) > Number.MAX_SAFE_INTEGER) throw new CanonicalJsonError('unsafe_integer', path);
  return String(n);
}

// In a Unicode-mode class, a surrogate pair is one code point: only a lone half matches.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * A string as JSON.stringify writes it (RFC 8785 §3.2.2.2: the same escapes, \u00xx in lower
 * case for the other control characters); a lone surrogate is refused.
 */
function quote(s: string, path: string): string {
  if (LONE_SURROGATE.test(s)) throw new CanonicalJsonError('lone_surrogate', path);
  return JSON.stringify(s);
}

/** The canonical text of one string (what canonicalJson writes for it), without the tree walk. */
export function canonicalString(s: string): string {
  return quote(s, '');
}
