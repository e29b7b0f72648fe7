// RFC 8785 JSON Canonicalization Scheme: one spelling for every JSON value, so a digest of it
// names the value, not the bytes a writer happened to choose. Objects' members are sorted by
// their names' UTF-16 code units; numbers are written as ECMAScript writes a double (which is
// what RFC 8785 prescribes: 1.0, 1e0 and 1 are one number); strings escape only what JSON
// must (", \, and control characters, with the short forms \b \t \n \f \r). A value JSON
// cannot hold — a non-finite number, a lone surrogate, undefined, a function — is an error,
// never silently dropped.

export class CanonicalJsonError extends Error {}

/** The RFC 8785 form of a JSON value (as JSON.parse returns it). Throws CanonicalJsonError. */
export function canonicalJson(value: unknown): string {
  try {
    return write(value);
  } catch (err) {
    if (err !== NOT_JSON) throw err;
    throw new CanonicalJsonError(whereNotJson(value, '') ?? 'the value is not JSON');
  }
}

/** Thrown by the fast writer; the message is then found by walking the value again. */
const NOT_JSON = new Error('not JSON');

function write(v: unknown): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) throw NOT_JSON;
      // ECMAScript's Number-to-String is RFC 8785's number form; -0 is written 0.
      return JSON.stringify(v);
    case 'string':
      return quote(v);
    case 'object': {
      if (Array.isArray(v)) {
        let s = '[';
        for (let i = 0; i < v.length; i++) s += (i > 0 ? ',' : '') + write(v[i]);
        return `${s}]`;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw NOT_JSON;
      const obj = v as Record<string, unknown>;
      // The default sort compares UTF-16 code units, which is RFC 8785's order.
      const keys = Object.keys(obj).sort();
      let s = '{';
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        s += `${i > 0 ? ',' : ''}${quote(k)}:${write(obj[k])}`;
      }
      return `${s}}`;
    }
    default:
      throw NOT_JSON;
  }
}

const SURROGATE = /[\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function quote(s: string): string {
  if (SURROGATE.test(s) && LONE_SURROGATE.test(s)) throw NOT_JSON;
  // JSON.stringify escapes exactly RFC 8785's set for well-formed strings (lowercase \u00xx).
  return JSON.stringify(s);
}

/** Where a value stops being JSON, as a message; undefined when it is JSON. */
function whereNotJson(v: unknown, path: string): string | undefined {
  const at = path || 'the value';
  if (v === null || typeof v === 'boolean') return undefined;
  if (typeof v === 'number') return Number.isFinite(v) ? undefined : `${at} is not a finite number`;
  if (typeof v === 'string')
    return LONE_SURROGATE.test(v) ? `a string at ${path || 'the top level'} has a lone surrogate` : undefined;
  if (typeof v !== 'object') return `${at} is not JSON (${typeof v})`;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const w = whereNotJson(v[i], `${path}[${i}]`);
      if (w) return w;
    }
    return undefined;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return `${at} is not a plain JSON object`;
  for (const [k, e] of Object.entries(v)) {
    if (LONE_SURROGATE.test(k)) return `a member name in ${path || 'the top level'} has a lone surrogate`;
    const w = whereNotJson(e, `${path}.${k}`);
    if (w) return w;
  }
  return undefined;
}
