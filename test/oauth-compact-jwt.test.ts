// The verifier's own JWT check (node:crypto, synchronous) against jose's jwtVerify on the same
// tokens: for every generated token both give the same verdict — accepted, or refused with the
// same failure detail. Tokens are built byte by byte and signed over exactly those bytes, so a
// malformed header, a payload that is not JSON or not UTF-8, or a segment of an impossible
// base64 length still carries a valid signature and reaches every check behind it.
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import test from 'ava';
import fc from 'fast-check';
import { createLocalJWKSet, jwtVerify, type JWK } from 'jose';
import { verifyCompactJwt } from '../src/auth/oauth/compact-jwt.js';
import { failureOf } from '../src/auth/oauth/token-failure.js';
import { looksLikeJwt } from '../src/auth/oauth/token-verifier.js';

const ISSUER = 'https://idp.example.com';
const AUDIENCE = 'https://mcp.example.com/mcp/files';
const NOW = 1_800_000_000_000;
const NOW_S = NOW / 1000;
const TOLERANCE = 30;
const ALLOWED = ['RS256', 'RS384', 'PS256', 'PS384', 'ES256', 'ES384', 'EdDSA'];

interface SigningKey {
  kid: string;
  /** The algorithms this key signs with. */
  algs: string[];
  privateKey: KeyObject;
  jwk: JWK;
}

function key(kid: string, pair: { privateKey: KeyObject; publicKey: KeyObject }, algs: string[]): SigningKey {
  return { kid, algs, privateKey: pair.privateKey, jwk: { ...pair.publicKey.export({ format: 'jwk' }), kid } };
}

const keys: SigningKey[] = [
  key('rsa', generateKeyPairSync('rsa', { modulusLength: 2048 }), ['RS256', 'RS384', 'PS256', 'PS384']),
  // Below jose's 2048-bit minimum: refused by both, whatever the signature.
  key('rsa-small', generateKeyPairSync('rsa', { modulusLength: 1024 }), ['RS256']),
  key('p256', generateKeyPairSync('ec', { namedCurve: 'P-256' }), ['ES256']),
  key('p384', generateKeyPairSync('ec', { namedCurve: 'P-384' }), ['ES384']),
  key('ed', generateKeyPairSync('ed25519'), ['EdDSA']),
];
const jwks = createLocalJWKSet({ keys: keys.map((k) => k.jwk) });

function signBytes(k: SigningKey, alg: string, input: Buffer): Buffer {
  const bits = Number(alg.slice(2));
  if (alg === 'EdDSA') return sign(null, input, k.privateKey);
  if (alg.startsWith('ES')) return sign(`sha${bits}`, input, { key: k.privateKey, dsaEncoding: 'ieee-p1363' });
  if (alg.startsWith('PS'))
    return sign(`sha${bits}`, input, {
      key: k.privateKey,
      padding: 6 /* RSA_PKCS1_PSS_PADDING */,
      saltLength: bits / 8,
    });
  return sign(`sha${bits}`, input, k.privateKey);
}

const b64 = (bytes: Buffer | string) => Buffer.from(bytes).toString('base64url');
/** Whether a segment is the one base64url spelling of its bytes (what the verifier's own check demands). */
const canonical = (segment: string) =>
  segment.length % 4 !== 1 && Buffer.from(segment, 'base64url').toString('base64url') === segment;

/** A claim value: absent, or one of the shapes a token may carry. */
const time = (around: number) =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 4, arbitrary: fc.integer({ min: -3 * TOLERANCE, max: 3 * TOLERANCE }).map((d) => around + d) },
    // The edges of the tolerance, where an off-by-one would show.
    {
      weight: 4,
      arbitrary: fc
        .constantFrom(-TOLERANCE - 1, -TOLERANCE, -TOLERANCE + 1, TOLERANCE - 1, TOLERANCE, TOLERANCE + 1)
        .map((d) => around + d),
    },
    { weight: 1, arbitrary: fc.constantFrom('1800000000', null, true, [NOW_S]) },
  );
/** Mostly `usual`, sometimes one of `others`. */
const mostly = (usual: unknown, ...others: unknown[]) =>
  fc.oneof({ weight: 6, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: fc.constantFrom(...others) });
const claims = fc.record(
  {
    iss: mostly(ISSUER, 'https://other.example.com', 7, undefined),
    aud: mostly(AUDIENCE, [AUDIENCE, 'x'], ['x'], 'x', [], 3, undefined),
    exp: fc.oneof({ weight: 3, arbitrary: fc.constant(NOW_S + 600) }, { weight: 2, arbitrary: time(NOW_S) }),
    nbf: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: time(NOW_S) }),
    iat: fc.oneof({ weight: 3, arbitrary: fc.constant(NOW_S - 60) }, { weight: 1, arbitrary: time(NOW_S) }),
    sub: fc.constantFrom('alice', undefined),
  },
  { requiredKeys: [] },
);

/** Payload bytes: usually a claims object, sometimes what no JWT may carry. */
const payloadBytes = fc.oneof(
  { weight: 8, arbitrary: claims.map((c) => Buffer.from(JSON.stringify(c))) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      Buffer.from('[1,2]'),
      Buffer.from('null'),
      Buffer.from('"text"'),
      Buffer.from('{"iss":'),
      Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), // {"\xff":1}: not UTF-8
      Buffer.from('\ufeff{}'),
    ),
  },
);

interface Spec {
  signer: number;
  alg: string;
  headerAlg: unknown;
  kid: string | undefined;
  extraHeader: Record<string, unknown>;
  rawHeader: Buffer | undefined;
  payload: Buffer;
  /** How the signature is spoiled, if it is. */
  signature: 'valid' | 'flipped' | 'truncated' | 'one-over' | 'empty';
  /** A segment given one base64 character too many (a length no decoder accepts). */
  overlong: 'none' | 'header' | 'payload';
}

const spec: fc.Arbitrary<Spec> = fc
  .record({
    signer: fc.nat({ max: keys.length - 1 }),
    algChoice: fc.nat({ max: 3 }),
    headerAlg: fc.oneof(
      { weight: 9, arbitrary: fc.constant('same') },
      fc.constantFrom<unknown>('HS256', 'none', 'ES512', 7),
    ),
    kid: fc.oneof({ weight: 8, arbitrary: fc.constant('own') }, fc.constantFrom('other', 'unknown', 'none')),
    extraHeader: fc.oneof(
      { weight: 6, arbitrary: fc.constant({}) },
      fc.constantFrom<Record<string, unknown>>({ typ: 'JWT' }, { b64: false }, { jku: 'https://evil' }),
    ),
    rawHeader: fc.oneof(
      { weight: 12, arbitrary: fc.constant(undefined) },
      fc.constantFrom(Buffer.from('[]'), Buffer.from('{"alg":'), Buffer.from([0x7b, 0xfe, 0x7d])),
    ),
    payload: payloadBytes,
    signature: fc.oneof(
      { weight: 12, arbitrary: fc.constant('valid') },
      fc.constantFrom('flipped', 'truncated', 'one-over', 'empty'),
    ),
    overlong: fc.oneof({ weight: 12, arbitrary: fc.constant('none') }, fc.constantFrom('header', 'payload')),
  })
  .map((r) => {
    const signer = keys[r.signer]!;
    const alg = signer.algs[r.algChoice % signer.algs.length]!;
    const kid =
      r.kid === 'own'
        ? signer.kid
        : r.kid === 'other'
          ? keys[(r.signer + 1) % keys.length]!.kid
          : r.kid === 'unknown'
            ? 'nope'
            : undefined;
    return { ...r, alg, headerAlg: r.headerAlg === 'same' ? alg : r.headerAlg, kid } as Spec;
  });

function build(s: Spec): string {
  const header =
    s.rawHeader ??
    Buffer.from(JSON.stringify({ alg: s.headerAlg, ...(s.kid ? { kid: s.kid } : {}), ...s.extraHeader }));
  let h = b64(header);
  let p = b64(s.payload);
  if (s.overlong === 'header' && h.length % 4 === 0) h += 'A';
  if (s.overlong === 'payload' && p.length % 4 === 0) p += 'A';
  let sig = b64(signBytes(keys[s.signer]!, s.alg, Buffer.from(`${h}.${p}`)));
  if (s.signature === 'flipped') sig = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
  if (s.signature === 'truncated') sig = sig.slice(0, -4);
  if (s.signature === 'one-over' && sig.length % 4 === 0) sig += 'A';
  if (s.signature === 'empty') sig = '';
  return `${h}.${p}.${sig}`;
}

const verdict = (p: Promise<unknown>) =>
  p.then(
    () => 'accepted',
    (err: unknown) => failureOf(err).detail,
  );

const viaJose = (token: string) =>
  verdict(
    jwtVerify(token, jwks, {
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ALLOWED,
      clockTolerance: TOLERANCE,
      requiredClaims: ['exp'],
      currentDate: new Date(NOW),
    }),
  );

const viaOwn = (token: string) =>
  verdict(
    verifyCompactJwt(token, jwks, {
      issuer: ISSUER,
      audiences: [AUDIENCE],
      algorithms: ALLOWED,
      clockTolerance: TOLERANCE,
      now: NOW,
    }),
  );

test('every generated token gets the same verdict from jose and from the verifier’s own check', async (t) => {
  const seen = new Map<string, number>();
  let respelt = 0;
  await fc.assert(
    fc.asyncProperty(spec, async (s) => {
      const token = build(s);
      if (!looksLikeJwt(token)) return; // the verifier refuses it before either check runs
      const [jose, own] = await Promise.all([viaJose(token), viaOwn(token)]);
      seen.set(jose, (seen.get(jose) ?? 0) + 1);
      if (token.split('.').every(canonical)) t.is(own, jose, `token ${token}`);
      else {
        // A second spelling of some segment's bytes: refused as malformed, or on a check before it.
        respelt++;
        t.not(own, 'accepted', `token ${token}`);
        if (own !== jose) t.is(own, 'token_malformed', `token ${token}`);
      }
    }),
    { numRuns: 3000 },
  );
  t.true(respelt > 0, 'tokens with a non-canonical segment were generated');
  // The generator reaches acceptance and the main refusals, so agreement is not agreement on one answer.
  for (const detail of [
    'accepted',
    'token_signature',
    'token_expired',
    'token_audience',
    'token_malformed',
    'token_not_yet_valid',
  ])
    t.true((seen.get(detail) ?? 0) > 0, `${detail} was generated (${JSON.stringify([...seen])})`);
});

test('a token whose header carries crit is refused, even a crit jose would accept', async (t) => {
  const k = keys[0]!;
  const h = b64(JSON.stringify({ alg: 'RS256', kid: k.kid, crit: ['b64'], b64: true }));
  const p = b64(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, exp: NOW_S + 600 }));
  const token = `${h}.${p}.${b64(signBytes(k, 'RS256', Buffer.from(`${h}.${p}`)))}`;
  t.is(await viaJose(token), 'accepted');
  t.is(await viaOwn(token), 'token_malformed');
});

test('a segment spelt other than its canonical base64url is refused, where jose reads the same bytes', async (t) => {
  const k = keys[0]!;
  const h = b64(JSON.stringify({ alg: 'RS256', kid: k.kid }));
  const p = b64(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, exp: NOW_S + 600 }));
  const sig = b64(signBytes(k, 'RS256', Buffer.from(`${h}.${p}`)));
  t.is(await viaOwn(`${h}.${p}.${sig}`), 'accepted');
  // 256 bytes of signature: 342 characters, the last one carrying 2 bits and 4 unused ones.
  t.is(sig.length % 4, 2);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(sig.at(-1)!);
  const other = `${sig.slice(0, -1)}${alphabet[last | 1]}`; // the same 2 data bits, an unused bit set
  t.deepEqual(Buffer.from(other, 'base64url'), Buffer.from(sig, 'base64url'), 'the same bytes');
  t.is(await viaJose(`${h}.${p}.${other}`), 'accepted');
  t.is(await viaOwn(`${h}.${p}.${other}`), 'token_malformed');
});

test('the signature is checked over the bytes as sent: the same claims re-encoded do not verify', async (t) => {
  const k = keys[2]!;
  const h = b64(JSON.stringify({ alg: 'ES256', kid: k.kid }));
  const claimsJson = JSON.stringify({ iss: ISSUER, aud: AUDIENCE, exp: NOW_S + 600 });
  const p = b64(claimsJson);
  const sig = b64(signBytes(k, 'ES256', Buffer.from(`${h}.${p}`)));
  t.is(await viaOwn(`${h}.${p}.${sig}`), 'accepted');
  const spaced = b64(claimsJson.replace(':', ': '));
  t.is(await viaOwn(`${h}.${spaced}.${sig}`), 'token_signature');
});
