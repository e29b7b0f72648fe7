import test from 'ava';
import fc from 'fast-check';
import { decodeProtectedHeader, SignJWT } from 'jose';
import { ConfigSchema } from '../src/config/schema.js';
import { silentLogger } from '../src/log/logger.js';
import { createTokenVerifier } from '../src/auth/oauth/jwt-verifier.js';
import type { TokenResult, TokenVerifier } from '../src/auth/oauth/token-verifier.js';
import { AUTH_FAILURE_DETAILS, type AuthFailureDetail } from '../src/contracts/codes.js';
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js';

const RESOURCE = 'https://mcp.example.com/mcp/files';
const OTHER_RESOURCE = 'https://mcp.example.com/mcp/billing';

let idp: JwksServer;
let other: JwksServer;
let verifier: TokenVerifier;

test.before(async () => {
  idp = await startJwksServer({ discovery: 'none' });
  other = await startJwksServer({ discovery: 'none' });
  const { oauth } = ConfigSchema.parse({
    oauth: {
      issuers: [
        { issuer: idp.issuer, jwksUri: idp.jwksUri, userIds: 'shared' },
        { issuer: other.issuer, jwksUri: other.jwksUri, userClaim: 'email', rolesClaim: 'realm_access.roles' },
      ],
      clockToleranceSeconds: 30,
      maxTokenBytes: 4096,
    },
  });
  verifier = createTokenVerifier(oauth, { logger: silentLogger() });
});
test.after.always(async () => {
  await verifier?.close();
  await idp?.stop();
  await other?.stop();
});

const now = () => Math.floor(Date.now() / 1000);
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function assertOk(t: { fail(m: string): void }, res: TokenResult): asserts res is Extract<TokenResult, { ok: true }> {
  if (!res.ok) t.fail(`expected a valid token, got: ${res.why}`);
}

for (const alg of ['RS256', 'PS256', 'ES256', 'EdDSA'] as const) {
  test(`a ${alg} token signed by a served key verifies`, async (t) => {
    const token = await idp.sign({ sub: `user-${alg}`, aud: RESOURCE }, { alg });
    const res = await verifier.verify(token, [RESOURCE]);
    assertOk(t, res);
    t.is(res.principal.id, `${idp.issuer}#user-${alg}`);
  });
}

test('claims map to the principal: iss#sub id, userId, scope string, roles array, claims', async (t) => {
  const exp = now() + 600;
  const token = await idp.sign({
    sub: 'alice',
    aud: [RESOURCE, 'other'],
    exp,
    scope: 'tools:search  tools:read_*',
    roles: ['admin', 'user'],
  });
  const res = await verifier.verify(token, [RESOURCE]);
  assertOk(t, res);
  const p = res.principal;
  t.is(res.expiresAt, exp);
  t.like(p, {
    authenticated: true,
    method: 'oauth',
    id: `${idp.issuer}#alice`,
    userId: 'alice',
    role: 'admin',
    issuer: idp.issuer,
    subject: 'alice',
  });
  t.deepEqual(p.scopes, ['tools:search', 'tools:read_*']);
  t.deepEqual(p.roles, ['admin', 'user']);
  t.deepEqual(p.permissions, []);
  t.is(p.claims?.sub, 'alice');
  t.is(p.claims?.exp, exp);
});

test('scp array and scp string both give scopes, merged with scope', async (t) => {
  const a = await verifier.verify(
    await idp.sign({ sub: 's', aud: RESOURCE, scp: ['tools:a', 'tools:b'], scope: 'tools:c' }),
    [RESOURCE],
  );
  assertOk(t, a);
  t.deepEqual([...a.principal.scopes].sort(), ['tools:a', 'tools:b', 'tools:c']);
  const b = await verifier.verify(await idp.sign({ sub: 's', aud: RESOURCE, scp: 'tools:x tools:y' }), [RESOURCE]);
  assertOk(t, b);
  t.deepEqual(b.principal.scopes, ['tools:x', 'tools:y']);
});

test('a string roles claim is one role, and a token without roles has none', async (t) => {
  const a = await verifier.verify(await idp.sign({ sub: 's', aud: RESOURCE, roles: 'editor' }), [RESOURCE]);
  assertOk(t, a);
  t.deepEqual(a.principal.roles, ['editor']);
  t.is(a.principal.role, 'editor');
  const b = await verifier.verify(await idp.sign({ sub: 's', aud: RESOURCE }), [RESOURCE]);
  assertOk(t, b);
  t.deepEqual(b.principal.roles, []);
  t.is(b.principal.role, undefined);
});

test('configured userClaim and a dotted rolesClaim read from the second issuer, whose user ids are namespaced by default', async (t) => {
  const token = await other.sign(
    { sub: 'kc-123', email: 'bob@example.com', aud: RESOURCE, realm_access: { roles: ['viewer'] } },
    { alg: 'ES256' },
  );
  const res = await verifier.verify(token, [RESOURCE]);
  assertOk(t, res);
  t.is(res.principal.id, `${other.issuer}#kc-123`);
  t.is(res.principal.userId, `${other.issuer}#bob@example.com`);
  t.deepEqual(res.principal.roles, ['viewer']);
});

test('an exp inside the clock tolerance is still accepted', async (t) => {
  const res = await verifier.verify(await idp.sign({ sub: 's', aud: RESOURCE, exp: now() - 10 }), [RESOURCE]);
  t.true(res.ok);
});

test('any one of the given audiences is enough', async (t) => {
  const res = await verifier.verify(await idp.sign({ sub: 's', aud: 'api://files' }), [RESOURCE, 'api://files']);
  t.true(res.ok);
});

// Each bad token must be refused as invalid_token for the stated reason, and the reason must
// never echo the token.
const bad: Array<[title: string, make: () => Promise<string> | string, why: RegExp, audiences?: string[]]> = [
  ['an empty string', () => '', /empty/],
  ['a garbage string', () => 'not a jwt at all', /compact JWS/],
  ['an opaque access token', () => 'ya29.a0AfH6SMBx', /well-formed|compact/],
  ['a JWE-shaped five-part string', () => 'a.b.c.d.e', /compact JWS/],
  ['base64url parts that are not JSON', () => 'aGVsbG8.d29ybGQ.c2ln', /well-formed/],
  [
    'an oversized token, before parsing',
    () => idp.sign({ sub: 's', aud: RESOURCE, pad: 'x'.repeat(5000) }),
    /larger than 4096 bytes/,
  ],
  [
    'alg none',
    () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: idp.issuer, sub: 's', aud: RESOURCE, exp: now() + 600 })}.`,
    /algorithm is not allowed/,
  ],
  [
    'HS256 signed with the RSA public key as the secret',
    () =>
      new SignJWT({ iss: idp.issuer, sub: 's', aud: RESOURCE, exp: now() + 600 })
        .setProtectedHeader({ alg: 'HS256' })
        .sign(new TextEncoder().encode(idp.publicKeyPem('RS256'))),
    /algorithm is not allowed/,
  ],
  ['an expired token', () => idp.sign({ sub: 's', aud: RESOURCE, iat: now() - 7200, exp: now() - 3600 }), /expired/],
  ['nbf in the future', () => idp.sign({ sub: 's', aud: RESOURCE, nbf: now() + 3600 }), /nbf/],
  [
    'an unconfigured iss',
    () => idp.sign({ sub: 's', aud: RESOURCE, iss: 'https://evil.example.com' }),
    /issuer is not configured/,
  ],
  ['no iss', () => idp.sign({ sub: 's', aud: RESOURCE, iss: undefined }), /no iss/],
  [
    "another issuer's iss on this issuer's key",
    () => idp.sign({ sub: 's', aud: RESOURCE, iss: other.issuer }),
    /no signing key/,
  ],
  ['a wrong aud', () => idp.sign({ sub: 's', aud: 'https://elsewhere.example.com' }), /audience/],
  ["another endpoint's resource", () => idp.sign({ sub: 's', aud: OTHER_RESOURCE }), /audience/],
  ['no aud', () => idp.sign({ sub: 's' }), /no aud claim/],
  ['no exp', () => idp.sign({ sub: 's', aud: RESOURCE, exp: undefined }), /no exp claim/],
  ['no sub', () => idp.sign({ aud: RESOURCE }), /no sub/],
  [
    'a tampered payload',
    async () => {
      const [h, , s] = (await idp.sign({ sub: 'alice', aud: RESOURCE })).split('.');
      return `${h}.${b64({ iss: idp.issuer, sub: 'admin', aud: RESOURCE, exp: now() + 600 })}.${s}`;
    },
    /signature is invalid/,
  ],
  ['an unknown kid', () => idp.sign({ sub: 's', aud: RESOURCE }, { kid: 'no-such-kid' }), /no signing key/],
  [
    'a served kid on a token signed by a foreign key',
    async () => {
      const { kid } = decodeProtectedHeader(await idp.sign({ sub: 's', aud: RESOURCE }));
      return other.sign({ sub: 's', aud: RESOURCE, iss: idp.issuer }, { kid: kid! });
    },
    /signature is invalid/,
  ],
  ['any token when the endpoint has no audience', () => idp.sign({ sub: 's', aud: RESOURCE }), /no audience/, []],
];

// The stable detail of each refusal (the decision log's auth_detail, the metric's detail label).
const DETAIL: Record<string, AuthFailureDetail> = {
  'an empty string': 'token_not_jwt',
  'a garbage string': 'token_not_jwt',
  'an opaque access token': 'token_not_jwt',
  'a JWE-shaped five-part string': 'token_not_jwt',
  'base64url parts that are not JSON': 'token_malformed',
  'an oversized token, before parsing': 'token_too_large',
  'alg none': 'token_algorithm',
  'HS256 signed with the RSA public key as the secret': 'token_algorithm',
  'an expired token': 'token_expired',
  'nbf in the future': 'token_not_yet_valid',
  'an unconfigured iss': 'token_issuer_unknown',
  'no iss': 'token_claim_missing',
  "another issuer's iss on this issuer's key": 'token_kid_unknown',
  'a wrong aud': 'token_audience',
  "another endpoint's resource": 'token_audience',
  'no aud': 'token_claim_missing',
  'no exp': 'token_claim_missing',
  'no sub': 'token_claim_missing',
  'a tampered payload': 'token_signature',
  'an unknown kid': 'token_kid_unknown',
  'a served kid on a token signed by a foreign key': 'token_signature',
  'any token when the endpoint has no audience': 'no_audience',
};

for (const [title, make, why, audiences] of bad) {
  test(`${title} is invalid_token (${DETAIL[title]}), with a reason that does not echo the token`, async (t) => {
    const token = await make();
    const res = await verifier.verify(token, audiences ?? [RESOURCE]);
    if (res.ok) return t.fail('a bad token was accepted');
    t.is(res.detail, DETAIL[title]);
    t.regex(res.why, why);
    if (token.length > 0) {
      for (const part of token.split('.').filter((p) => p.length > 8)) t.false(res.why.includes(part));
    }
  });
}

test('arbitrary strings never throw and never verify', async (t) => {
  const segment = fc.stringMatching(/^[A-Za-z0-9_-]{0,40}$/);
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.tuple(segment, segment, segment).map((parts) => parts.join('.')),
      ),
      async (token) => {
        const res = await verifier.verify(token, [RESOURCE]);
        return !res.ok && Object.hasOwn(AUTH_FAILURE_DETAILS, res.detail) && res.why.length > 0;
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('a token issued in the future (iat beyond the clock tolerance) is refused; inside the tolerance it passes', async (t) => {
  const future = await verifier.verify(await idp.sign({ sub: 's', aud: RESOURCE, iat: now() + 3600 }), [RESOURCE]);
  t.false(future.ok);
  if (!future.ok) t.regex(future.why, /issued in the future/);
  const skewed = await verifier.verify(await idp.sign({ sub: 's2', aud: RESOURCE, iat: now() + 10 }), [RESOURCE]);
  t.true(skewed.ok);
});

test('user ids are shared by default only when one issuer is configured', async (t) => {
  const { oauth } = ConfigSchema.parse({ oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] } });
  const single = createTokenVerifier(oauth, { logger: silentLogger() });
  t.teardown(() => single.close());
  const res = await single.verify(await idp.sign({ sub: 'alice', aud: RESOURCE }), [RESOURCE]);
  assertOk(t, res);
  t.is(res.principal.userId, 'alice');
  const explicit = ConfigSchema.parse({ oauth: { issuers: [{ issuer: idp.issuer, userIds: 'namespaced' }] } }).oauth;
  const namespaced = createTokenVerifier(
    { ...explicit, issuers: [{ ...explicit.issuers[0]!, jwksUri: idp.jwksUri }] },
    { logger: silentLogger() },
  );
  t.teardown(() => namespaced.close());
  const res2 = await namespaced.verify(await idp.sign({ sub: 'alice', aud: RESOURCE }), [RESOURCE]);
  assertOk(t, res2);
  t.is(res2.principal.userId, `${idp.issuer}#alice`);
});
