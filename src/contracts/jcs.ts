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
  const out: string[] = [];
  write(value, out, '');
  return out.join('');
}

function write(v: unknown, out: string[], path: string): void {
  if (v === null) {
    out.push('null');
    return;
  }
  switch (typeof v) {
    case 'boolean':
      out.push(v ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(v)) throw new CanonicalJsonError(`${path || 'the value'} is not a finite number`);
      // ECMAScript's Number-to-String is RFC 8785's number form; -0 is written 0.
      out.push(JSON.stringify(v));
      return;
    case 'string':
      out.push(quote(v, path));
      return;
    case 'object': {
      if (Array.isArray(v)) {
        out.push('[');
        for (let i = 0; i < v.length; i++) {
          if (i > 0) out.push(',');
          write(v[i], out, `${path}[${i}]`);
        }
        out.push(']');
        return;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null)
        throw new CanonicalJsonError(`${path || 'the value'} is not a plain JSON object`);
      const obj = v as Record<string, unknown>;
      // The default sort compares UTF-16 code units, which is RFC 8785's order.
      const keys = Object.keys(obj).sort();
      out.push('{');
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        if (i > 0) out.push(',');
        out.push(quote(k, path), ':');
        write(obj[k], out, `${path}.${k}`);
      }
      out.push('}');
      return;
    }
    default:
      throw new CanonicalJsonError(`${path || 'the value'} is not JSON (${typeof v})`);
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function quote(s: string, path: string): string {
  if (LONE_SURROGATE.test(s))
    throw new CanonicalJsonError(`a string at ${path || 'the top level'} has a lone surrogate`);
  // JSON.stringify escapes exactly RFC 8785's set for well-formed strings (lowercase \u00xx).
  return JSON.stringify(s);
}
