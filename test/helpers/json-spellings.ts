// JSON values and other JSON spellings of them (member order, whitespace, \u escapes, number
// forms), for the property tests of canonical JSON and its readers.
import fc from 'fast-check';

/** JSON values the digest accepts: well-formed strings, numbers within ±(2^53−1). */
export const safeNumber = fc.oneof(
  fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
  fc.constantFrom(0.1, 1e-7, 5e-324, 1e15, 2 ** 53 - 1, 123.456, -0),
);
export const text = fc.string({ unit: 'grapheme', maxLength: 8 });
export const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    safeNumber,
    text,
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(text, tie('v'), { maxKeys: 5 }),
  ),
})).v;

/** Another JSON spelling of `v`: member order, whitespace, \u escapes, number forms. */
export function spell(v: unknown, g: fc.GeneratorValue): string {
  const ws = () => g(() => fc.constantFrom('', '', ' ', '\n', '\t', '\r\n  '));
  if (v === null || typeof v === 'boolean') return JSON.stringify(v);
  if (typeof v === 'number') return spellNumber(v, g);
  if (typeof v === 'string') return spellString(v, g);
  if (Array.isArray(v)) return `[${ws()}${v.map((x) => spell(x, g)).join(`${ws()},${ws()}`)}${ws()}]`;
  const entries = g(() =>
    fc.shuffledSubarray(Object.entries(v as object), { minLength: Object.keys(v as object).length }),
  );
  return `{${ws()}${entries.map(([k, x]) => `${spellString(k, g)}${ws()}:${ws()}${spell(x, g)}`).join(`${ws()},${ws()}`)}${ws()}}`;
}

export function spellNumber(n: number, g: fc.GeneratorValue): string {
  if (Object.is(n, -0)) return g(() => fc.constantFrom('-0', '-0.0', '0', '0e5', '-0E-2'));
  const forms = [String(n), n.toExponential(), n.toExponential().replace('e', 'E').replace('+', '')];
  if (Number.isInteger(n))
    forms.push(`${n}.0`, `${n}.000`, `${n}e0`, `${n * 10}e-1`.replace(/^(-?)(\d+)e-1$/, '$1$2E-1'));
  const form = g(() => fc.constantFrom(...forms));
  // A form must read back as the same number, or it is not a spelling of it.
  return Number(form) === n ? form : String(n);
}

export function spellString(s: string, g: fc.GeneratorValue): string {
  let out = '"';
  for (const ch of s) {
    const plain = JSON.stringify(ch).slice(1, -1);
    // One \\u escape per UTF-16 code unit: a character beyond the BMP is written as its surrogate pair.
    const escaped = Array.from({ length: ch.length }, (_, i) => `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`);
    const upper = escaped.map((e) => e.toUpperCase().replace('\\U', '\\u'));
    out += g(() => fc.constantFrom(plain, escaped.join(''), upper.join(''), ch === '/' ? '\\/' : plain));
  }
  return `${out}"`;
}
