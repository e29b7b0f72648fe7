// The host builtins against OPA itself: the same calls, on generated arguments, evaluated by
// the real `opa eval` and by the service's WASM engine must give the same results, undefined
// included (a builtin's error is an undefined call in both). One opa eval per batch.
import test from 'ava';
import fc from 'fast-check';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { HOST } from '../src/policy/builtin-catalogue.mjs';
import { canonical, opaEval, policyDir, wasmEval } from './helpers/opa-differential.js';

// opa eval's decode_verify reads the real clock (with time.now_ns mocked or not): the engine's
// clock is fixed at the test's start, and generated expiry times stay far from it.
const NOW = BigInt(Date.now()) * 1_000_000n + 234_567n;
const NOW_S = Number(NOW / 1_000_000_000n);
const ARITY: Record<string, number> = {};

function regoFor(names: string[]): string {
  const lines = [
    'package diff',
    '',
    'results[i] := r if {',
    '\tsome i, c in input.cases',
    '\tr := call(c)',
    '}',
    '',
    'out(x) := ["set", sort(x)] if is_set(x)',
    'out(x) := [type_name(x), x] if not is_set(x)',
    '',
    'arg(c, k) := {x | some x in c.a[k]} if c.s[k]',
    'arg(c, k) := c.a[k] if not c.s[k]',
    '',
  ];
  for (const name of names) {
    const n = ARITY[name]!;
    const args = Array.from({ length: n }, (_, k) => `arg(c, ${k})`).join(', ');
    lines.push(`call(c) := out(${name}(${args})) if c.f == "${name}"`);
  }
  return `${lines.join('\n')}\n`;
}

interface Case {
  f: string;
  a: unknown[];
  s?: Record<number, boolean>;
}

async function compare(t: import('ava').ExecutionContext, cases: Case[]): Promise<void> {
  const names = [...new Set(cases.map((c) => c.f))];
  const { dir, cleanup } = policyDir({ 'policy.rego': regoFor(names) });
  try {
    const input = { cases };
    const [want, got] = await Promise.all([
      opaEval(dir, 'diff/results', input, NOW),
      wasmEval(dir, 'diff/results', input, NOW),
    ]);
    const w = canonical(want) as Record<string, unknown>;
    const g = canonical(got) as Record<string, unknown>;
    const diffs: string[] = [];
    cases.forEach((c, i) => {
      const a = JSON.stringify(w[i] ?? '<undefined>');
      const b = JSON.stringify(g[i] ?? '<undefined>');
      if (a !== b)
        diffs.push(
          `${c.f}(${JSON.stringify(c.a).slice(0, 300)}${c.s ? ` sets ${JSON.stringify(c.s)}` : ''}): opa ${a.slice(0, 300)}, service ${b.slice(0, 300)}`,
        );
    });
    t.deepEqual(diffs.slice(0, 20), [], `${diffs.length} of ${cases.length} calls differ`);
    t.true(cases.length > 0);
  } finally {
    cleanup();
  }
}

const sample = <T>(arb: fc.Arbitrary<T>, n: number): T[] => fc.sample(arb, { numRuns: n });

function arity(map: Record<string, number>): void {
  Object.assign(ARITY, map);
}

arity({
  'crypto.md5': 1,
  'crypto.sha1': 1,
  'crypto.sha256': 1,
  'crypto.hmac.md5': 2,
  'crypto.hmac.sha1': 2,
  'crypto.hmac.sha256': 2,
  'crypto.hmac.sha512': 2,
  'crypto.hmac.equal': 2,
  'hex.encode': 1,
  'hex.decode': 1,
  'base64url.encode_no_pad': 1,
  'glob.quote_meta': 1,
  indexof_n: 2,
  'strings.count': 2,
  'strings.split_n': 3,
  'strings.any_prefix_match': 2,
  'strings.any_suffix_match': 2,
  sprintf: 2,
  trace: 1,
  'numbers.range_step': 3,
  'semver.is_valid': 1,
  'semver.compare': 2,
  'urlquery.encode': 1,
  'urlquery.decode': 1,
  'urlquery.decode_object': 1,
  'urlquery.encode_object': 1,
  'net.cidr_is_valid': 1,
  'net.cidr_contains_matches': 2,
  'net.cidr_expand': 1,
  'time.now_ns': 0,
  'time.parse_rfc3339_ns': 1,
  'time.parse_duration_ns': 1,
  'time.date': 1,
  'time.clock': 1,
  'time.weekday': 1,
  'time.add_date': 4,
  'time.diff': 2,
  'time.format': 1,
  'io.jwt.decode': 1,
  'io.jwt.decode_verify': 2,
  'io.jwt.verify_rs256': 2,
  'io.jwt.verify_rs384': 2,
  'io.jwt.verify_rs512': 2,
  'io.jwt.verify_ps256': 2,
  'io.jwt.verify_ps384': 2,
  'io.jwt.verify_ps512': 2,
  'io.jwt.verify_es256': 2,
  'io.jwt.verify_es384': 2,
  'io.jwt.verify_es512': 2,
  'io.jwt.verify_eddsa': 2,
  'io.jwt.verify_hs256': 2,
  'io.jwt.verify_hs384': 2,
  'io.jwt.verify_hs512': 2,
});

test('every provided builtin is covered by the differential tests', (t) => {
  // rand.intn and uuid.rfc4122 are random: their own test checks range, form and per-evaluation reuse.
  const untested = HOST.filter((n) => ARITY[n] === undefined && n !== 'rand.intn' && n !== 'uuid.rfc4122');
  t.deepEqual(untested, []);
});

// ---- strings, hashes, encodings ----------------------------------------------------------

const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.constantFrom('', 'a', 'abc', 'é', '日本', '💡x', 'a.b.c', '%', '*?[]{}\\', 'caf\u00e9'),
);

test('hashes, HMACs, hex, base64url and string builtins decide as opa eval', async (t) => {
  const cases: Case[] = [];
  for (const s of sample(text, 60)) {
    for (const f of [
      'crypto.md5',
      'crypto.sha1',
      'crypto.sha256',
      'hex.encode',
      'base64url.encode_no_pad',
      'glob.quote_meta',
      'trace',
    ])
      cases.push({ f, a: [s] });
  }
  for (const [a, b] of sample(fc.tuple(text, text), 60)) {
    for (const f of [
      'crypto.hmac.md5',
      'crypto.hmac.sha1',
      'crypto.hmac.sha256',
      'crypto.hmac.sha512',
      'crypto.hmac.equal',
      'indexof_n',
      'strings.count',
      'strings.any_prefix_match',
      'strings.any_suffix_match',
    ])
      cases.push({ f, a: [a, b] });
    cases.push({ f: 'crypto.hmac.equal', a: [a, a] });
  }
  for (const h of sample(fc.oneof(fc.stringMatching(/^[0-9a-fA-F]{0,12}$/), fc.string()), 40))
    cases.push({ f: 'hex.decode', a: [h] });
  for (const [s, d, n] of sample(
    fc.tuple(
      fc.stringMatching(/^[a,b.]{0,10}$/),
      fc.constantFrom(',', '.', '', 'ab', 'x'),
      fc.integer({ min: -4, max: 5 }),
    ),
    60,
  ))
    cases.push({ f: 'strings.split_n', a: [s, d, n] });
  for (const [xs, ys, sx, sy] of sample(
    fc.tuple(
      fc.array(fc.stringMatching(/^[ab/]{0,4}$/), { maxLength: 4 }),
      fc.array(fc.stringMatching(/^[ab/]{0,3}$/), { maxLength: 4 }),
      fc.boolean(),
      fc.boolean(),
    ),
    60,
  )) {
    cases.push({ f: 'strings.any_prefix_match', a: [xs, ys], s: { 0: sx, 1: sy } });
    cases.push({ f: 'strings.any_suffix_match', a: [xs, ys[0] ?? 'a'], s: { 0: sx } });
  }
  cases.push(
    { f: 'strings.any_prefix_match', a: [1, 'a'] },
    { f: 'hex.encode', a: [1] },
    { f: 'crypto.sha256', a: [null] },
  );
  await compare(t, cases);
});

test('sprintf formats as Go fmt does through opa', async (t) => {
  const formats = [
    '%v',
    '%s',
    '%d',
    '%x',
    '%X',
    '%o',
    '%b',
    '%q',
    '%f',
    '%.2f',
    '%e',
    '%g',
    '%5d',
    '%-5d|',
    '%05d',
    '%t',
    '%T',
    '%%',
    '%v %v',
    '%s-%d',
    'plain',
    '%8.3f',
    '%+d',
    '%x %X',
    '%10s|',
    '%-10s|',
    '%.3s',
    '%c',
    '%v%',
  ];
  const value = fc.oneof(
    fc.integer({ min: -100000, max: 100000 }),
    fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ maxLength: 8 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('a', 'b', 'z'), fc.integer({ min: 0, max: 9 }), { maxKeys: 2 }),
    fc.constantFrom(1.5, 0.1, 1e6, 1e-7, 123456.789, 12345678901234567890n as unknown as number),
  );
  const cases: Case[] = sample(fc.tuple(fc.constantFrom(...formats), fc.array(value, { maxLength: 3 })), 300).map(
    ([f, a]) => ({ f: 'sprintf', a: [f, a.map((x) => (typeof x === 'bigint' ? Number(x) : x))] }),
  );
  // Every verb on the floats at the edges of float64: zero, subnormal, tiny, huge, a half.
  for (const f of formats)
    for (const x of [0, 5e-324, -3.3452181591924376e-258, 1e300, 1e21, 2.5, -0.5, 0.125, 1.5e-7, 9.9999996e6])
      cases.push({ f: 'sprintf', a: [f, [x]] });
  await compare(t, cases);
});

test('numbers.range_step, semver and urlquery decide as opa eval', async (t) => {
  const cases: Case[] = [];
  for (const [a, b, s] of sample(
    fc.tuple(
      fc.integer({ min: -20, max: 20 }),
      fc.integer({ min: -20, max: 20 }),
      fc.oneof(fc.integer({ min: -2, max: 7 }), fc.constant(1.5)),
    ),
    60,
  ))
    cases.push({ f: 'numbers.range_step', a: [a, b, s] });
  const ident = fc.stringMatching(/^[0-9A-Za-z-]{1,4}$/);
  const num = fc.oneof(
    fc.integer({ min: 0, max: 20 }).map(String),
    fc.constantFrom('00', '01', '', '+1', '99999999999999999999'),
  );
  const version = fc.oneof(
    fc
      .tuple(
        fc.constantFrom('', 'v'),
        num,
        num,
        num,
        fc.option(fc.array(ident, { minLength: 1, maxLength: 3 })),
        fc.option(fc.array(ident, { minLength: 1, maxLength: 2 })),
      )
      .map(
        ([v, a, b, c, pre, meta]) =>
          `${v}${a}.${b}.${c}${pre ? `-${pre.join('.')}` : ''}${meta ? `+${meta.join('.')}` : ''}`,
      ),
    fc.string({ maxLength: 8 }),
  );
  for (const [a, b] of sample(fc.tuple(version, version), 120)) {
    cases.push(
      { f: 'semver.is_valid', a: [a] },
      { f: 'semver.compare', a: [a, b] },
      { f: 'semver.compare', a: [a, a] },
    );
  }
  const q = fc.stringMatching(/^([a-z%+=&;. ]|%[0-9a-fA-F]{2}|%zz|é|💡){0,12}$/);
  for (const s of sample(q, 120)) {
    for (const f of ['urlquery.encode', 'urlquery.decode']) cases.push({ f, a: [s] });
    // Keys of different bytes that read as the same text (each invalid UTF-8 byte is U+FFFD) are
    // one key holding one of their value lists: which one, OPA leaves to Go's map order. Two
    // distinct non-ASCII escapes may make such keys, so those texts are the fixed cases below.
    if (new Set(s.match(/%[89a-fA-F][0-9a-fA-F]/g)?.map((e) => e.toLowerCase())).size < 2)
      cases.push({ f: 'urlquery.decode_object', a: [s] });
  }
  for (const s of ['%8b&%cb', '%8b=1&%8b=2&%cb=1&%cb=2', 'a%8b=x&a%cb=x&b', '%ff&%ff=&%ff=x'])
    cases.push({ f: 'urlquery.decode_object', a: [s] });
  for (const o of sample(
    fc.dictionary(
      fc.string({ maxLength: 3 }),
      fc.oneof(fc.string({ maxLength: 3 }), fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }), fc.integer()),
    ),
    60,
  ))
    cases.push({ f: 'urlquery.encode_object', a: [o] });
  await compare(t, cases);
});

// ---- networks ----------------------------------------------------------------------------

const octet = fc.integer({ min: 0, max: 255 });
const v4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
const hex4 = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
const v6 = fc.oneof(
  fc.array(hex4, { minLength: 8, maxLength: 8 }).map((g) => g.join(':')),
  fc
    .tuple(fc.array(hex4, { maxLength: 3 }), fc.array(hex4, { maxLength: 3 }))
    .map(([a, b]) => `${a.join(':')}::${b.join(':')}`),
  v4.map((a) => `::ffff:${a}`),
);
const cidr = fc.oneof(
  fc.tuple(v4, fc.integer({ min: 0, max: 33 })).map(([a, n]) => `${a}/${n}`),
  fc.tuple(v6, fc.integer({ min: 0, max: 129 })).map(([a, n]) => `${a}/${n}`),
  fc.constantFrom(
    '10.0.0.0/8',
    '192.168.1.0/24',
    '010.0.0.0/8',
    '1.2.3.4/032',
    '::/0',
    '::ffff:1.2.3.0/120',
    'fe80::1%eth0/64',
    '1.2.3/24',
    'x',
  ),
);

test('net.cidr_* over IPv4, IPv6 and odd forms decide as opa eval', async (t) => {
  const cases: Case[] = [];
  for (const c of sample(cidr, 150)) cases.push({ f: 'net.cidr_is_valid', a: [c] });
  for (const [a, b] of sample(
    fc.tuple(
      fc.array(cidr, { minLength: 1, maxLength: 3 }),
      fc.array(fc.oneof(cidr, v4, v6), { minLength: 1, maxLength: 3 }),
    ),
    120,
  )) {
    cases.push({ f: 'net.cidr_contains_matches', a: [a, b] });
    cases.push({ f: 'net.cidr_contains_matches', a: [a, b], s: { 0: true, 1: true } });
    cases.push({ f: 'net.cidr_contains_matches', a: [a[0], Object.fromEntries(b.map((x, i) => [`k${i}`, [x, i]]))] });
  }
  for (const c of sample(
    fc.oneof(
      fc.tuple(v4, fc.integer({ min: 24, max: 32 })).map(([a, n]) => `${a}/${n}`),
      fc.tuple(v6, fc.integer({ min: 120, max: 128 })).map(([a, n]) => `${a}/${n}`),
    ),
    40,
  ))
    cases.push({ f: 'net.cidr_expand', a: [c] });
  await compare(t, cases);
});

// ---- time ----------------------------------------------------------------------------------

const ZONES = [
  'UTC',
  '',
  'America/New_York',
  'Europe/Berlin',
  'Asia/Kolkata',
  'Australia/Lord_Howe',
  'Pacific/Chatham',
  'No/Such_Zone',
];
const nsArb = fc.oneof(
  fc.bigInt({ min: -(10n ** 18n), max: 4n * 10n ** 18n }),
  fc.bigInt({ min: 1_600_000_000n * 10n ** 9n, max: 1_800_000_000n * 10n ** 9n }),
  fc.constantFrom(0n, -1n, 951782400n * 10n ** 9n, 1_709_164_800n * 10n ** 9n),
);

function toJsonish(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : { $big: v.toString() };
  if (Array.isArray(v)) return v.map(toJsonish);
  return v;
}

test('time builtins on timestamps, zones and layouts decide as opa eval', async (t) => {
  const cases: Case[] = [{ f: 'time.now_ns', a: [] }];
  // Nanosecond values beyond 2^53 go in as decimal strings converted by the policy itself.
  const nsSafe = (n: bigint) => Number((n / 1_000_000n) * 1_000_000n);
  for (const x of sample(
    fc.oneof(
      nsArb.map(nsSafe),
      fc.tuple(nsArb.map(nsSafe), fc.constantFrom(...ZONES)).map(([n, z]) => [n, z]),
    ),
    150,
  )) {
    for (const f of ['time.date', 'time.clock', 'time.weekday', 'time.format']) cases.push({ f, a: [x] });
  }
  const layouts = [
    'RFC3339',
    'RFC1123',
    'RFC822Z',
    'ANSIC',
    'Kitchen',
    '2006-01-02',
    '02 Jan 06 15:04 -0700',
    'Monday, January 2, 2006 3:04:05.000 PM',
    '15:04:05.999999 Z07:00',
    '2006.002',
  ];
  for (const [n, z, l] of sample(
    fc.tuple(
      fc.bigInt({ min: 0n, max: 4n * 10n ** 18n }).map(nsSafe),
      fc.constantFrom('UTC', 'America/New_York', 'Asia/Kolkata'),
      fc.constantFrom(...layouts.filter((x) => x !== 'Kitchen')),
    ),
    60,
  ))
    cases.push({ f: 'time.format', a: [[n, z, l]] });
  for (const [x, y, m, d] of sample(
    fc.tuple(
      fc.oneof(
        nsArb.map(nsSafe),
        fc.tuple(nsArb.map(nsSafe), fc.constantFrom('UTC', 'Europe/Berlin')).map(([n, z]) => [n, z]),
      ),
      fc.integer({ min: -3, max: 3 }),
      fc.integer({ min: -14, max: 14 }),
      fc.integer({ min: -40, max: 40 }),
    ),
    100,
  ))
    cases.push({ f: 'time.add_date', a: [x, y, m, d] });
  for (const [a, b] of sample(fc.tuple(nsArb.map(nsSafe), nsArb.map(nsSafe)), 100))
    cases.push({ f: 'time.diff', a: [a, b] });
  const two = (min: number, max: number) => fc.integer({ min, max }).map((n) => String(n).padStart(2, '0'));
  const rfc = fc
    .tuple(
      fc.integer({ min: 0, max: 9999 }).map((n) => String(n).padStart(4, '0')),
      two(0, 13),
      two(0, 32),
      two(0, 24),
      two(0, 60),
      two(0, 60),
      fc.constantFrom('', '.5', '.123456789', '.1234567891', '.', ',5'),
      fc.constantFrom('Z', '+00:00', '-07:00', '+05:30', '+24:00', 'z', '', '+0700'),
    )
    .map(([y, mo, d, h, mi, s, f, z]) => `${y}-${mo}-${d}T${h}:${mi}:${s}${f}${z}`);
  for (const s of sample(fc.oneof(rfc, fc.string({ maxLength: 10 })), 200))
    cases.push({ f: 'time.parse_rfc3339_ns', a: [s] });
  const unit = fc.constantFrom('ns', 'us', 'µs', 'μs', 'ms', 's', 'm', 'h', 'd', 'w', 'y', 'x', '');
  const seg = fc
    .tuple(fc.constantFrom('0', '1', '1.5', '.5', '10', '2562047', '9223372036', '', '.', '007'), unit)
    .map(([n, u]) => n + u);
  for (const s of sample(
    fc
      .tuple(fc.constantFrom('', '-', '+'), fc.array(seg, { minLength: 1, maxLength: 3 }))
      .map(([sign, segs]) => sign + segs.join('')),
    200,
  ))
    cases.push({ f: 'time.parse_duration_ns', a: [s] });
  cases.forEach((c) => (c.a = c.a.map(toJsonish)));
  await compare(t, cases);
});

// ---- JWTs ----------------------------------------------------------------------------------

type Alg = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';
const ASYM: Alg[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

test('JWTs signed in every algorithm, tampered, expired or checked with the wrong key decide as opa eval', async (t) => {
  const keys: Record<string, { priv: CryptoKey; jwk: Record<string, unknown>; pem: string }> = {};
  for (const alg of ASYM) {
    const { privateKey, publicKey } = await generateKeyPair(alg, {
      extractable: true,
      ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
    });
    keys[alg] = {
      priv: privateKey,
      jwk: { ...(await exportJWK(publicKey)), kid: `k-${alg}`, alg },
      pem: await exportSPKI(publicKey),
    };
  }
  const other = await generateKeyPair('RS256', { extractable: true });
  const otherPem = await exportSPKI(other.publicKey);
  const secrets = ['secret', 'another-secret-that-is-long-enough-for-hs512-xxxxxxxxxxxxxxxxxxxxxxxxxxxx'];
  const jwks = JSON.stringify({ keys: Object.values(keys).map((k) => k.jwk) });
  const jwksNoKid = JSON.stringify({ keys: Object.values(keys).map((k) => ({ ...k.jwk, kid: undefined })) });

  const claims = fc.record({
    iss: fc.option(fc.constantFrom('https://idp.example.com', 'https://evil.example.com'), { nil: undefined }),
    aud: fc.option(fc.oneof(fc.constantFrom('api', 'other'), fc.constant(['x', 'api'])), { nil: undefined }),
    exp: fc.option(
      fc.oneof(
        fc.integer({ min: NOW_S - 90000, max: NOW_S - 3600 }),
        fc.integer({ min: NOW_S + 3600, max: NOW_S + 90000 }),
        fc.constant(NOW_S + 7200.5),
      ),
      { nil: undefined },
    ),
    nbf: fc.option(
      fc.oneof(
        fc.integer({ min: NOW_S - 90000, max: NOW_S - 3600 }),
        fc.integer({ min: NOW_S + 3600, max: NOW_S + 90000 }),
      ),
      { nil: undefined },
    ),
    sub: fc.string({ maxLength: 6 }),
    role: fc.constantFrom('guest', 'admin'),
  });
  const tokenSpec = fc.record({
    alg: fc.constantFrom<string>(...ASYM, 'HS256', 'HS384', 'HS512'),
    claims,
    kid: fc.boolean(),
    secret: fc.constantFrom(0, 1),
    tamper: fc.constantFrom('none', 'none', 'payload', 'signature', 'header', 'parts'),
  });
  const specs = sample(tokenSpec, 90);
  const cases: Case[] = [];
  for (const spec of specs) {
    const body = Object.fromEntries(Object.entries(spec.claims).filter(([, v]) => v !== undefined));
    const hs = spec.alg.startsWith('HS');
    const jwt = new SignJWT(body).setProtectedHeader({
      alg: spec.alg,
      typ: 'JWT',
      ...(spec.kid && !hs ? { kid: `k-${spec.alg}` } : {}),
    });
    let token = await jwt.sign(hs ? new TextEncoder().encode(secrets[spec.secret]!) : keys[spec.alg]!.priv);
    const [h, p, s] = token.split('.') as [string, string, string];
    if (spec.tamper === 'payload')
      token = `${h}.${Buffer.from(JSON.stringify({ ...body, role: 'admin', x: 1 })).toString('base64url')}.${s}`;
    if (spec.tamper === 'signature') token = `${h}.${p}.${s.slice(0, -3)}${s.endsWith('A') ? 'B' : 'A'}${s.slice(-2)}`;
    if (spec.tamper === 'header') token = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.${s}`;
    if (spec.tamper === 'parts') token = `${h}.${p}`;
    cases.push({ f: 'io.jwt.decode', a: [token] });
    const own = hs ? undefined : keys[spec.alg]!;
    const certs = [jwks, jwksNoKid, otherPem, ...(own ? [own.pem, JSON.stringify(own.jwk)] : [])];
    for (const cert of certs) {
      cases.push({ f: 'io.jwt.decode_verify', a: [token, { cert }] });
      cases.push({ f: 'io.jwt.decode_verify', a: [token, { cert, iss: 'https://idp.example.com', aud: 'api' }] });
      cases.push({ f: 'io.jwt.decode_verify', a: [token, { cert, alg: spec.alg, time: Number(NOW) - 7200e9 }] });
      // At the second of expiry and of nbf: the comparisons' edges.
      const exp = spec.claims.exp;
      if (exp !== undefined)
        for (const d of [-1e9, -1, 0, 1, 1e9])
          cases.push({ f: 'io.jwt.decode_verify', a: [token, { cert, time: exp * 1e9 + d }] });
      const nbf = spec.claims.nbf;
      if (nbf !== undefined)
        for (const d of [-1e9, 0, 1e9])
          cases.push({ f: 'io.jwt.decode_verify', a: [token, { cert, time: nbf * 1e9 + d }] });
      for (const v of ['rs256', 'rs384', 'rs512', 'ps256', 'ps384', 'ps512', 'es256', 'es384', 'es512', 'eddsa']) {
        if (v.toUpperCase().replace('EDDSA', 'EdDSA') === spec.alg || v === 'rs256')
          cases.push({ f: `io.jwt.verify_${v}`, a: [token, cert] });
      }
    }
    for (const secret of secrets) {
      cases.push({ f: 'io.jwt.decode_verify', a: [token, { secret }] });
      cases.push({ f: 'io.jwt.decode_verify', a: [token, { secret, aud: 'api' }] });
      for (const v of ['hs256', 'hs384', 'hs512']) cases.push({ f: `io.jwt.verify_${v}`, a: [token, secret] });
    }
  }
  // Constraint and input errors: undefined in both.
  const any = cases[0]!.a[0];
  cases.push(
    { f: 'io.jwt.decode_verify', a: [any, {}] },
    { f: 'io.jwt.decode_verify', a: [any, { secret: 'a', cert: jwks }] },
    { f: 'io.jwt.decode_verify', a: [any, { secret: 'a', bogus: 1 }] },
    { f: 'io.jwt.decode_verify', a: [any, { cert: 'not a key' }] },
    { f: 'io.jwt.decode_verify', a: [any, { secret: 'a', time: -1 }] },
    { f: 'io.jwt.decode_verify', a: [42, { secret: 'a' }] },
    { f: 'io.jwt.decode', a: ['a.b'] },
    { f: 'io.jwt.decode', a: ['e30.e30.'] },
    { f: 'io.jwt.decode', a: ['eyJlbmMiOiJ4In0.e30.'] },
    { f: 'io.jwt.verify_rs256', a: [any, 'not a key'] },
  );
  await compare(t, cases);
});
