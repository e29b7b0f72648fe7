// The authentication mode table (README "Authentication modes"), cell by cell, through the real gRPC server, with
// real keys (made by `keys create`) and real tokens (a loopback JWKS server, jose keys).
import test from 'ava';
import type { CreatedKey } from '../src/cli/keys-command.js';
import { admitAuthenticatedOn, keysFile, makeKey } from './helpers/auth-fixtures.js';
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  headerValue,
  rpc,
  startTestService,
  type CheckResponse,
  type HttpSample,
  type TestService,
} from './helpers/service.js';

const BASE = 'https://mcp.example.com';
const BOTH = `${BASE}/mcp/both`;
const OAUTH = `${BASE}/mcp/oauth`;
const call = rpc('tools/call', { name: 'search', arguments: { q: 'x' } });

let svc: TestService;
let idp: JwksServer;
let alice: CreatedKey, pub: CreatedKey, expired: CreatedKey, disabled: CreatedKey, unregistered: CreatedKey;

test.before(async () => {
  idp = await startJwksServer({ discovery: 'none' });
  alice = makeKey({ id: 'alice-key', userId: 'alice', role: 'user', permissions: ['*'] });
  pub = makeKey({ id: 'public-key', permissions: ['tools:search'] });
  expired = makeKey({ id: 'expired-key', userId: 'alice', expires: '2020-01-01T00:00:00Z' });
  disabled = makeKey({ id: 'disabled-key', userId: 'alice' });
  unregistered = makeKey({ id: 'never-registered' });
  svc = await startTestService(
    {
      publicBaseUrl: BASE,
      apiKeys: { file: 'keys.yaml' },
      oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
      endpoints: [
        { name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } },
        { name: 'keys', match: { pathPrefix: '/mcp/keys' }, auth: { apiKey: true, oauth: false } },
        {
          name: 'keysq',
          match: { pathPrefix: '/mcp/keysq' },
          auth: { apiKey: true, oauth: false, queryParamKeys: true },
        },
        {
          name: 'both',
          match: { pathPrefix: '/mcp/both' },
          auth: { apiKey: true, oauth: true },
          resource: BOTH,
          scopes: ['tools:read', 'tools:write'],
        },
        { name: 'oauth', match: { pathPrefix: '/mcp/oauth' }, auth: { apiKey: false, oauth: true }, resource: OAUTH },
      ],
    },
    { files: { 'keys.yaml': keysFile([alice, pub, expired, disabled], { 'disabled-key': { disabled: true } }) } },
  );
  admitAuthenticatedOn(svc);
});
test.after.always(async () => {
  await svc?.stop();
  await idp?.stop();
});

const check = (s: HttpSample) => svc.check(checkRequest({ body: call, ...s }));
const wwwAuth = (res: CheckResponse) => headerValue(res.denied_response?.headers, 'www-authenticate');
const token = (aud: string, claims: Record<string, unknown> = {}) =>
  idp.sign({ sub: 'user-1', aud, scope: 'tools:read', ...claims });

function assert401(t: any, res: CheckResponse, error: string, description: string) {
  t.falsy(res.ok_response, 'never an allow');
  t.is(deniedStatus(res), 401);
  t.is(res.status?.code, 16);
  const body = deniedBody(res);
  t.is(body.error, error);
  t.is(body.error_description, description);
  t.regex(body.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  return body;
}

const bothChallenge = `Bearer realm="mcp-authz", resource_metadata="${BASE}/.well-known/oauth-protected-resource/mcp/both", scope="tools:read tools:write"`;
const bothInvalidChallenge = `Bearer realm="mcp-authz", error="invalid_token", resource_metadata="${BASE}/.well-known/oauth-protected-resource/mcp/both", scope="tools:read tools:write"`;
const oauthChallenge = `Bearer realm="mcp-authz", resource_metadata="${BASE}/.well-known/oauth-protected-resource/mcp/oauth"`;
const oauthInvalidChallenge = `Bearer realm="mcp-authz", error="invalid_token", resource_metadata="${BASE}/.well-known/oauth-protected-resource/mcp/oauth"`;

// Row 1: apiKey off, oauth off.
test('auth off, no credential: allowed as the anonymous principal', async (t) => {
  const res = await check({ path: '/mcp/open' });
  t.truthy(res.ok_response);
  t.is(headerValue(res.ok_response!.headers, 'x-mcp-auth-method'), 'anonymous');
});

test('auth off, bad credential: still allowed as the anonymous principal', async (t) => {
  const res = await check({ path: '/mcp/open', headers: { 'x-api-key': 'mcp_nope', authorization: 'Bearer garbage' } });
  t.truthy(res.ok_response);
  t.is(headerValue(res.ok_response!.headers, 'x-mcp-auth-method'), 'anonymous');
});

// Row 2: API key only.
test('API key only, no credential: 401 authentication_required without any Bearer challenge', async (t) => {
  const res = await check({ path: '/mcp/keys' });
  const body = assert401(t, res, 'authentication_required', 'Authentication required via API key');
  t.deepEqual(body.supported_methods, ['X-API-Key header']);
  t.is(wwwAuth(res), undefined);
});

test('API key only with query keys on: supported_methods lists the query parameter too', async (t) => {
  const res = await check({ path: '/mcp/keysq' });
  const body = assert401(t, res, 'authentication_required', 'Authentication required via API key');
  t.deepEqual(body.supported_methods, ['X-API-Key header', 'query parameter (api_key or apikey)']);
  t.is(wwwAuth(res), undefined);
});

test('API key only, bad key: 401 invalid_api_key without any Bearer challenge', async (t) => {
  const res = await check({ path: '/mcp/keys', headers: { 'x-api-key': unregistered.key } });
  const body = assert401(t, res, 'invalid_api_key', 'The provided API key is invalid or expired');
  t.is(body.supported_methods, undefined);
  t.is(wwwAuth(res), undefined);
});

test('API key only, a JWT as bearer: read as a key, 401 invalid_api_key without a Bearer challenge', async (t) => {
  const res = await check({ path: '/mcp/keys', headers: { authorization: `Bearer ${await token(OAUTH)}` } });
  assert401(t, res, 'invalid_api_key', 'The provided API key is invalid or expired');
  t.is(wwwAuth(res), undefined);
});

test('API key only, valid key in X-API-Key: authenticated as the key', async (t) => {
  const res = await check({ path: '/mcp/keys', headers: { 'x-api-key': alice.key } });
  t.truthy(res.ok_response);
  t.is(headerValue(res.ok_response!.headers, 'x-mcp-key-id'), 'alice-key');
});

test('API key only, valid key as Authorization: Bearer mcp_…: authenticated as the key', async (t) => {
  const res = await check({ path: '/mcp/keys', headers: { authorization: `Bearer ${alice.key}` } });
  t.truthy(res.ok_response);
  t.is(headerValue(res.ok_response!.headers, 'x-mcp-auth-method'), 'api_key');
  t.true(res.ok_response!.headers_to_remove!.includes('authorization'));
});

// Row 3: both.
test('both, no credential: 401 authentication_required with the Bearer challenge and every method', async (t) => {
  const res = await check({ path: '/mcp/both' });
  const body = assert401(
    t,
    res,
    'authentication_required',
    'Authentication required via OAuth bearer token or API key',
  );
  t.deepEqual(body.supported_methods, ['Authorization header (Bearer token)', 'X-API-Key header']);
  t.is(wwwAuth(res), bothChallenge);
});

test('both, bad API key: 401 invalid_credentials with the Bearer challenge (no token error)', async (t) => {
  const res = await check({ path: '/mcp/both', headers: { 'x-api-key': unregistered.key } });
  assert401(t, res, 'invalid_credentials', 'Authentication failed. Invalid credentials provided.');
  t.is(wwwAuth(res), bothChallenge);
});

test('both, bad token: 401 invalid_credentials with a Bearer error="invalid_token" challenge', async (t) => {
  const res = await check({ path: '/mcp/both', headers: { authorization: `Bearer ${await token(OAUTH)}` } });
  assert401(t, res, 'invalid_credentials', 'Authentication failed. Invalid credentials provided.');
  t.is(wwwAuth(res), bothInvalidChallenge);
});

test('both, valid token for the endpoint: authenticated as the token subject', async (t) => {
  const res = await check({ path: '/mcp/both', headers: { authorization: `Bearer ${await token(BOTH)}` } });
  t.truthy(res.ok_response);
  t.is(headerValue(res.ok_response!.headers, 'x-mcp-auth-method'), 'oauth');
  t.is(headerValue(res.ok_response!.headers, 'x-mcp-key-id'), undefined);
});

test('both, a valid API key decides alone even beside a bad bearer token', async (t) => {
  const res = await check({
    path: '/mcp/both',
    headers: { 'x-api-key': alice.key, authorization: 'Bearer not.a.token' },
  });
  t.truthy(res.ok_response);
  t.is(headerValue(res.ok_response!.headers, 'x-mcp-key-id'), 'alice-key');
  const removed = res.ok_response!.headers_to_remove!;
  t.true(removed.includes('x-api-key') && removed.includes('authorization'), 'both credentials stop here');
});

test('both, a bad API key decides alone even beside a valid token', async (t) => {
  const res = await check({
    path: '/mcp/both',
    headers: { 'x-api-key': unregistered.key, authorization: `Bearer ${await token(BOTH)}` },
  });
  assert401(t, res, 'invalid_credentials', 'Authentication failed. Invalid credentials provided.');
});

// Row 4: OAuth only.
test('OAuth only, no credential: 401 authentication_required with the Bearer challenge', async (t) => {
  const res = await check({ path: '/mcp/oauth' });
  const body = assert401(t, res, 'authentication_required', 'Authentication required via OAuth bearer token');
  t.deepEqual(body.supported_methods, ['Authorization header (Bearer token)']);
  t.is(wwwAuth(res), oauthChallenge);
});

test('OAuth only, a token for another endpoint\'s resource: 401 invalid_token with error="invalid_token"', async (t) => {
  const res = await check({ path: '/mcp/oauth', headers: { authorization: `Bearer ${await token(BOTH)}` } });
  assert401(t, res, 'invalid_token', 'The provided OAuth token is invalid or has expired.');
  t.is(wwwAuth(res), oauthInvalidChallenge);
});

test('OAuth only, valid token: authenticated, principal from the claims, token removed upstream', async (t) => {
  const res = await check({ path: '/mcp/oauth', headers: { authorization: `Bearer ${await token(OAUTH)}` } });
  t.truthy(res.ok_response);
  const set = res.ok_response!.headers!;
  t.is(headerValue(set, 'x-mcp-auth-method'), 'oauth');
  t.is(headerValue(set, 'x-mcp-user-id'), 'user-1');
  t.true(res.ok_response!.headers_to_remove!.includes('authorization'));
});

test('OAuth only, an expired token: 401 invalid_token', async (t) => {
  const res = await check({
    path: '/mcp/oauth',
    headers: { authorization: `Bearer ${await token(OAUTH, { exp: Math.floor(Date.now() / 1000) - 3600 })}` },
  });
  assert401(t, res, 'invalid_token', 'The provided OAuth token is invalid or has expired.');
  t.is(wwwAuth(res), oauthInvalidChallenge);
});

test('OAuth only, an API key header is not a credential there: 401 authentication_required with the challenge', async (t) => {
  const res = await check({ path: '/mcp/oauth', headers: { 'x-api-key': alice.key } });
  assert401(t, res, 'authentication_required', 'Authentication required via OAuth bearer token');
  t.is(wwwAuth(res), oauthChallenge);
});

// Bad API keys and ambiguous credentials: each a 401, never an allow.
const badKeyCases: [string, () => HttpSample][] = [
  ['an expired key', () => ({ path: '/mcp/keys', headers: { 'x-api-key': expired.key } })],
  ['a disabled key', () => ({ path: '/mcp/keys', headers: { 'x-api-key': disabled.key } })],
  ['an unknown key', () => ({ path: '/mcp/keys', headers: { 'x-api-key': unregistered.key } })],
  [
    'a key with a typo (checksum mismatch)',
    () => ({
      path: '/mcp/keys',
      headers: { 'x-api-key': alice.key.slice(0, -1) + (alice.key.endsWith('A') ? 'B' : 'A') },
    }),
  ],
  [
    'a valid key in the query where the endpoint does not enable it',
    () => ({ path: `/mcp/keys?api_key=${alice.key}` }),
  ],
  [
    'a valid header key beside a query key where query keys are off',
    () => ({ path: `/mcp/keys?apikey=${alice.key}`, headers: { 'x-api-key': alice.key } }),
  ],
  [
    'two different keys (X-API-Key and Bearer mcp_)',
    () => ({ path: '/mcp/keys', headers: { 'x-api-key': alice.key, authorization: `Bearer ${pub.key}` } }),
  ],
  [
    'header and query disagreeing',
    () => ({ path: `/mcp/keysq?api_key=${pub.key}`, headers: { 'x-api-key': alice.key } }),
  ],
  ['api_key and apikey disagreeing', () => ({ path: `/mcp/keysq?api_key=${pub.key}&apikey=${alice.key}` })],
  [
    'a repeated X-API-Key header',
    () => ({
      path: '/mcp/keys',
      headerList: [
        ['x-api-key', alice.key],
        ['x-api-key', alice.key],
      ],
    }),
  ],
  [
    'X-API-Key joined by Envoy from two headers',
    () => ({ path: '/mcp/keys', headers: { 'x-api-key': `${alice.key},${pub.key}` } }),
  ],
  ['an empty X-API-Key header', () => ({ path: '/mcp/keys', headers: { 'x-api-key': '' } })],
  [
    'a repeated Authorization header',
    () => ({
      path: '/mcp/keys',
      headerList: [
        ['authorization', `Bearer ${alice.key}`],
        ['authorization', `Bearer ${alice.key}`],
      ],
    }),
  ],
];

for (const [what, sample] of badKeyCases) {
  test(`API key endpoint refuses ${what} with 401 invalid_api_key`, async (t) => {
    const res = await check(sample());
    assert401(t, res, 'invalid_api_key', 'The provided API key is invalid or expired');
    t.is(wwwAuth(res), undefined);
  });
}

const badTokenCases: [string, () => Promise<string>][] = [
  ['a garbage bearer string', async () => 'Bearer %%%garbage%%%'],
  ['an oversized bearer string', async () => `Bearer ${'a'.repeat(20_000)}.${'b'.repeat(10)}.c`],
  ['a Bearer scheme with no value', async () => 'Bearer '],
  ['two tokens in one header', async () => `Bearer ${await token(OAUTH)}, Bearer ${await token(OAUTH)}`],
  [
    'a tampered payload',
    async () => {
      const [h, , s] = (await token(OAUTH)).split('.');
      return `Bearer ${h}.${Buffer.from(JSON.stringify({ iss: idp.issuer, sub: 'admin', aud: OAUTH, exp: 9999999999 })).toString('base64url')}.${s}`;
    },
  ],
  [
    'alg none',
    async () => {
      const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      return `Bearer ${enc({ alg: 'none' })}.${enc({ iss: idp.issuer, sub: 'x', aud: OAUTH, exp: 9999999999 })}.`;
    },
  ],
];

for (const [what, header] of badTokenCases) {
  test(`OAuth endpoint refuses ${what} with 401 invalid_token and the invalid_token challenge`, async (t) => {
    const res = await check({ path: '/mcp/oauth', headers: { authorization: await header() } });
    assert401(t, res, 'invalid_token', 'The provided OAuth token is invalid or has expired.');
    t.is(wwwAuth(res), oauthInvalidChallenge);
  });
}

test('query keys where enabled: accepted, also when the header carries the same key', async (t) => {
  const q = await check({ path: `/mcp/keysq?api_key=${alice.key}&x=1` });
  t.truthy(q.ok_response);
  t.deepEqual(q.ok_response!.query_parameters_to_remove, ['api_key']);
  const same = await check({ path: `/mcp/keysq?apikey=${alice.key}`, headers: { 'x-api-key': alice.key } });
  t.truthy(same.ok_response);
});

// Principal and identity headers.
test('identity headers are set with append false and the credentials removed before upstream', async (t) => {
  const res = await check({
    path: '/mcp/keys',
    headers: { 'x-api-key': alice.key, 'x-mcp-user-id': 'mallory', 'x-mcp-principal': 'root' },
  });
  const ok = res.ok_response!;
  const expect: Record<string, string> = {
    'x-mcp-user-id': 'alice',
    'x-mcp-principal': 'alice-key',
    'x-mcp-auth-method': 'api_key',
    'x-mcp-key-id': 'alice-key',
  };
  for (const [name, value] of Object.entries(expect)) {
    const h = ok.headers!.find((x) => x.header.key === name);
    t.is(h?.header.value, value, name);
    t.false(h?.append?.value, `${name} replaces any client copy`);
  }
  t.true(ok.headers_to_remove!.includes('x-api-key'));
});

test('a public key (no userId) sends no x-mcp-user-id and any client copy is removed', async (t) => {
  const res = await check({ path: '/mcp/keys', headers: { 'x-api-key': pub.key, 'x-mcp-user-id': 'alice' } });
  const ok = res.ok_response!;
  t.is(headerValue(ok.headers, 'x-mcp-user-id'), undefined);
  t.true(ok.headers_to_remove!.includes('x-mcp-user-id'));
  t.is(headerValue(ok.headers, 'x-mcp-key-id'), 'public-key');
});

// Unknown endpoint: no enumeration.
test('unknown endpoint: 401 without a credential, with no Bearer challenge', async (t) => {
  const res = await check({ path: '/mcp/nowhere' });
  assert401(t, res, 'authentication_required', 'Authentication required');
  t.is(wwwAuth(res), undefined);
});

test('unknown endpoint: 401 for a bad key, 404 once a valid key is shown', async (t) => {
  assert401(
    t,
    await check({ path: '/mcp/nowhere', headers: { 'x-api-key': unregistered.key } }),
    'invalid_credentials',
    'Authentication failed. Invalid credentials provided.',
  );
  const found = await check({ path: '/mcp/nowhere', headers: { 'x-api-key': pub.key } });
  t.is(deniedStatus(found), 404);
  t.is(deniedBody(found).error, 'not_found');
});

test('unknown endpoint: 404 for a token issued for one of our resources, 401 for a foreign audience', async (t) => {
  const ours = await check({ path: '/mcp/nowhere', headers: { authorization: `Bearer ${await token(BOTH)}` } });
  t.is(deniedStatus(ours), 404);
  const foreign = await check({
    path: '/mcp/nowhere',
    headers: { authorization: `Bearer ${await token('https://elsewhere.example.com/')}` },
  });
  t.is(deniedStatus(foreign), 401);
});

test('both methods: a valid API key takes precedence over a malformed Authorization header and alone decides', async (t) => {
  for (const authorization of [
    'Bearer',
    'Bearer ',
    'Bearer %%%garbage%%%',
    'Bearer a b',
    `Bearer ${'x'.repeat(20_000)}.y.z`,
    'Bearer not.a.jwt',
    'Basic dXNlcjpwdw==',
  ]) {
    const res = await check({ path: '/mcp/both', headers: { 'x-api-key': alice.key, authorization } });
    t.truthy(res.ok_response, authorization.slice(0, 40));
    t.is(headerValue(res.ok_response?.headers, 'x-mcp-key-id'), 'alice-key');
    t.true(
      res.ok_response!.headers_to_remove!.includes('authorization'),
      'the Authorization header still never reaches upstream',
    );
  }
  const repeated = await check({
    path: '/mcp/both',
    headerList: [
      ['x-api-key', alice.key],
      ['authorization', 'Bearer x'],
      ['authorization', 'Bearer y'],
    ],
  });
  t.truthy(repeated.ok_response, 'a repeated Authorization header without a key in it does not outweigh the key');
});

test('both methods: an API key beside a different key anywhere in Authorization is two keys, refused', async (t) => {
  for (const sample of [
    { path: '/mcp/both', headers: { 'x-api-key': alice.key, authorization: `Bearer ${pub.key}` } },
    { path: '/mcp/both', headers: { 'x-api-key': alice.key, authorization: `Bearer ${pub.key}, Bearer x` } },
    {
      path: '/mcp/both',
      headerList: [
        ['x-api-key', alice.key],
        ['authorization', 'Bearer x'],
        ['authorization', `Bearer ${pub.key}`],
      ] as [string, string][],
    },
  ]) {
    const res = await check(sample);
    assert401(t, res, 'invalid_credentials', 'Authentication failed. Invalid credentials provided.');
  }
});
