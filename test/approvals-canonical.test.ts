// RFC 8785 canonical JSON and the call digest an approval is bound to: every spelling of the
// same arguments is one digest, any change of the call is another, and what readers could take
// for two different values is refused rather than digested.
import assert from 'node:assert/strict';
import test from 'ava';
import fc from 'fast-check';
import { CanonicalJsonError, canonicalJson } from '../src/contracts/jcs.js';
import { callDigest } from '../src/approvals/call-digest.js';
import { spell, text, value } from './helpers/json-spellings.js';

// ---------------------------------------------------------------- RFC 8785 examples

test('the RFC 8785 §3.2.2 example is canonicalized as the RFC writes it', (t) => {
  const text =
    '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}';
  t.is(
    canonicalJson(JSON.parse(text), { largeNumbers: true }),
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
  );
});

test('object names are sorted by UTF-16 code units (RFC 8785 §3.2.3)', (t) => {
  const o = {
    '\u20ac': 'Euro Sign',
    '\r': 'Carriage Return',
    '\ufb33': 'Hebrew Letter Dalet With Dagesh',
    '1': 'One',
    '\ud83d\ude00': 'Emoji: Grinning Face',
    '\u0080': 'Control',
    '\u00f6': 'Latin Small Letter O With Diaeresis',
  };
  const keys = Object.keys(JSON.parse(canonicalJson(o)));
  // JSON.parse puts "1" first (an array index); the text's order is what matters.
  const order = [...canonicalJson(o).matchAll(/"([^"]*)":/g)].map((m) => m[1]);
  t.deepEqual(order, ['\\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33']);
  t.is(keys.length, 7);
});

const numbers: [number, string][] = [
  [0, '0'],
  [-0, '0'],
  [1, '1'],
  [-1.5, '-1.5'],
  [1e21, '1e+21'],
  [1e20, '100000000000000000000'],
  [1e-7, '1e-7'],
  [0.000001, '0.000001'],
  [4.5, '4.5'],
  [2 ** 53 - 1, '9007199254740991'],
  [5e-324, '5e-324'],
  [1.7976931348623157e308, '1.7976931348623157e+308'],
];
for (const [n, text] of numbers) {
  test(`the number ${Object.is(n, -0) ? '-0' : String(n)} is written ${text}, as ECMAScript writes it`, (t) => {
    t.is(canonicalJson(n, { largeNumbers: true }), text);
  });
}

test('control characters are escaped as JSON.stringify escapes them, others are kept', (t) => {
  t.is(
    canonicalJson('\u0000\u001f\b\t\n\f\r"\\/\u007f\u2028é😀'),
    '"\\u0000\\u001f\\b\\t\\n\\f\\r\\"\\\\/\u007f\u2028é😀"',
  );
});

// ---------------------------------------------------------------- refusals

const refused: [string, unknown, CanonicalJsonError['code'], string][] = [
  ['a lone high surrogate', { a: 'x\ud800' }, 'lone_surrogate', 'a'],
  ['a lone low surrogate in a key', { 'k\udc00': 1 }, 'lone_surrogate', 'k\udc00'],
  ['Infinity', { a: [1, Number.POSITIVE_INFINITY] }, 'non_finite_number', 'a[1]'],
  ['NaN', Number.NaN, 'non_finite_number', ''],
  ['an integer beyond 2^53 − 1', { id: 2 ** 53 + 2 }, 'unsafe_integer', 'id'],
  ['a large negative number', { n: -1e300 }, 'unsafe_integer', 'n'],
  ['undefined', { a: undefined }, 'not_json', 'a'],
  ['a Date', { when: new Date(0) }, 'not_json', 'when'],
];
for (const [what, value, code, path] of refused) {
  test(`${what} is refused (${code}), not canonicalized`, (t) => {
    const err = t.throws(() => canonicalJson(value), { instanceOf: CanonicalJsonError });
    t.is(err.code, code);
    t.is(err.path, path);
  });
}

// ---------------------------------------------------------------- properties

const digestOf = (args: unknown) =>
  callDigest('api_key:k1', 'files', 'tools/call', 'delete_file', canonicalJson(args), 'rev-1');

test('every JSON spelling of the same arguments gives one canonical form and one digest', (t) => {
  fc.assert(
    fc.property(fc.dictionary(text, value, { maxKeys: 6 }), fc.gen(), (args, g) => {
      const a = spell(args, g);
      const b = spell(args, g);
      const canonical = canonicalJson(JSON.parse(a));
      assert.equal(canonicalJson(JSON.parse(b)), canonical, `${a}\n${b}`);
      assert.equal(digestOf(JSON.parse(a)), digestOf(JSON.parse(b)));
      // The canonical form is JSON that reads back as the same value (-0 aside: it is 0).
      assert.deepEqual(JSON.parse(canonical), JSON.parse(JSON.stringify(args, (_k, x) => (Object.is(x, -0) ? 0 : x))));
    }),
    { numRuns: 400, endOnFailure: true },
  );
  t.pass();
});

/** One change somewhere in the value: a leaf altered, a member added or removed, an item appended. */
function mutate(v: unknown, g: fc.GeneratorValue): unknown {
  if (v !== null && typeof v === 'object' && g(() => fc.boolean())) {
    if (Array.isArray(v)) {
      if (v.length > 0 && g(() => fc.boolean())) {
        const i = g(() => fc.nat({ max: v.length - 1 }));
        return v.map((x, j) => (j === i ? mutate(x, g) : x));
      }
      return [...v, g(() => fc.constantFrom(null, 0, '', false))];
    }
    const keys = Object.keys(v);
    if (keys.length > 0 && g(() => fc.boolean())) {
      const k = g(() => fc.constantFrom(...keys));
      return g(() => fc.boolean()) ? { ...v, [k]: mutate((v as Record<string, unknown>)[k], g) } : omit(v, k);
    }
    const k = g(() => text.filter((x) => !keys.includes(x)));
    return { ...v, [k]: null };
  }
  if (typeof v === 'number') return g(() => fc.boolean()) ? (v > 0 ? v - 1 : v + 1) : String(v);
  if (typeof v === 'string') return `${v}x`;
  if (typeof v === 'boolean') return !v;
  if (v === null) return 0;
  if (Array.isArray(v)) return [...v, null];
  // A member the object does not have yet (it may well have "": a generated key).
  let k = '+';
  while (Object.hasOwn(v as object, k)) k += '+';
  return { ...(v as object), [k]: 0 };
}

function omit(o: object, k: string): object {
  const out: Record<string, unknown> = { ...o };
  delete out[k];
  return out;
}

test('any change of the arguments gives another digest', (t) => {
  fc.assert(
    fc.property(fc.dictionary(text, value, { maxKeys: 6 }), fc.gen(), (args, g) => {
      const changed = mutate(args, g);
      assert.notEqual(canonicalJson(changed), canonicalJson(args));
      assert.notEqual(digestOf(changed), digestOf(args));
    }),
    { numRuns: 400, endOnFailure: true },
  );
  t.pass();
});

test('the caller, endpoint, tool and policy revision are each part of the digest', (t) => {
  const args = canonicalJson({ path: '/tmp/x' });
  const base = callDigest('api_key:k1', 'files', 'tools/call', 'delete_file', args, 'rev-1');
  t.regex(base, /^[0-9a-f]{64}$/);
  t.not(callDigest('api_key:k2', 'files', 'tools/call', 'delete_file', args, 'rev-1'), base);
  t.not(callDigest('oauth:k1', 'files', 'tools/call', 'delete_file', args, 'rev-1'), base);
  t.not(callDigest('api_key:k1', 'files2', 'tools/call', 'delete_file', args, 'rev-1'), base);
  t.not(callDigest('api_key:k1', 'files', 'tools/call', 'delete_files', args, 'rev-1'), base);
  t.not(callDigest('api_key:k1', 'files', 'tools/call', 'delete_file', args, 'rev-2'), base);
  // Parts are JSON strings in one canonical object: moving text between them is another digest.
  t.not(callDigest('api_key:k1","endpoint":"files', 'x', 'tools/call', 'delete_file', args, 'rev-1'), base);
});

test('a string is refused exactly when it holds half a surrogate pair; any other reads back as itself', (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), fc.integer({ min: 0, max: 0xdfff - 0xd800 }), (s, half) => {
      // encodeURIComponent refuses a lone surrogate too: an oracle of its own.
      let paired = true;
      try {
        encodeURIComponent(s);
      } catch {
        paired = false;
      }
      let refused = false;
      try {
        t.is(JSON.parse(canonicalJson(s)), s);
      } catch (err) {
        refused = err instanceof CanonicalJsonError && err.code === 'lone_surrogate';
      }
      // A lone half inserted anywhere (not beside another half that pairs with it) is refused.
      const lone = `${s}x${String.fromCharCode(0xd800 + half)}`;
      let loneRefused = false;
      try {
        canonicalJson({ k: lone });
      } catch (err) {
        loneRefused = err instanceof CanonicalJsonError && err.code === 'lone_surrogate' && err.path === 'k';
      }
      return refused === !paired && loneRefused;
    }),
    { numRuns: 2000 },
  );
});
