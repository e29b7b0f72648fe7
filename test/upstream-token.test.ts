// The pieces of upstream credentials on their own: the token cache (bound, expiry, one fetch
// per key) on a fake clock, the strict reading of token endpoint answers against a loopback
// server that answers what a broken or hostile one could, the expiry-minus-skew rule against
// the real token service, and the config checks made at load.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { CheckContext } from '../src/decision/context.js';
import { ConfigError, validateConfig } from '../src/config/load.js';
import { ANONYMOUS } from '../src/contracts/principal.js';
import { silentLogger } from '../src/log/logger.js';
import { TokenCache } from '../src/upstream/token-cache.js';
import { requestToken, UpstreamTokenError } from '../src/upstream/token-endpoint.js';
import { UpstreamCredentialBroker } from '../src/upstream/upstream-credentials.js';
import { startJwksServer } from './helpers/jwks-server.js';
import { startSts } from './helpers/sts.js';

// ---------------------------------------------------------------- the cache

test('the cache keeps at most its bound, dropping the oldest entry not used since it was last passed over', (t) => {
  const c = new TokenCache<string>(2, () => 0);
  const put = (k: string) => c.fetch(k, async () => ({ value: k, useUntilMs: 1000 })).value;
  return (async () => {
    await put('a');
    await put('b');
    t.is(c.get('a'), 'a', 'a is now the most recently used');
    await put('c');
    t.is(c.size, 2);
    t.is(c.get('b'), undefined, 'b, the least recently used, went');
    t.is(c.get('a'), 'a');
    t.is(c.get('c'), 'c');
    // Both used: after each had its second chance one of them goes, never the new entry.
    await put('d');
    t.is(c.size, 2);
    t.is(c.get('d'), 'd', 'the newest entry is kept');
    t.is([c.get('a'), c.get('c')].filter((v) => v !== undefined).length, 1);
  })();
});

test('a full cache of entries never used still takes a new one', async (t) => {
  const c = new TokenCache<string>(1, () => 0);
  for (const k of ['a', 'b', 'c']) await c.fetch(k, async () => ({ value: k, useUntilMs: 1000 })).value;
  t.is(c.size, 1);
  t.is(c.get('c'), 'c');
});

test('a cached value is used until its useUntil, not after (fake clock)', async (t) => {
  let now = 1_000;
  const c = new TokenCache<string>(10, () => now);
  await c.fetch('k', async () => ({ value: 'v', useUntilMs: 5_000 })).value;
  now = 4_999;
  t.is(c.get('k'), 'v');
  now = 5_000;
  t.is(c.get('k'), undefined);
  t.is(c.size, 0, 'the stale entry is dropped');
});

test('one fetch per key: concurrent fetches join the one in flight; a failure is not kept', async (t) => {
  const c = new TokenCache<string>(10, () => 0);
  let loads = 0;
  let release!: (v: { value: string; useUntilMs: number }) => void;
  const first = c.fetch('k', () => {
    loads++;
    return new Promise((resolve) => (release = resolve));
  });
  const second = c.fetch('k', async () => {
    loads++;
    return { value: 'other', useUntilMs: 10 };
  });
  t.false(first.joined);
  t.true(second.joined);
  release({ value: 'v', useUntilMs: 10 });
  t.deepEqual(await Promise.all([first.value, second.value]), ['v', 'v']);
  t.is(loads, 1);

  const failing = c.fetch('bad', async () => {
    throw new UpstreamTokenError('upstream_token_unavailable', 'down');
  });
  await t.throwsAsync(failing.value, { instanceOf: UpstreamTokenError });
  t.is(c.get('bad'), undefined);
  t.is(c.fetching, 0);
  const retry = c.fetch('bad', async () => ({ value: 'up', useUntilMs: 10 }));
  t.false(retry.joined, 'the next Check tries again');
  t.is(await retry.value, 'up');
});

// ---------------------------------------------------------------- token endpoint answers

type Answer = (req: IncomingMessage, res: ServerResponse) => void;

async function tokenServer(answer: Answer): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const json =
  (status: number, body: unknown, headers: Record<string, string> = {}): Answer =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };

const CASES: [string, Answer, string][] = [
  ['a truncated JSON body', json(200, '{"access_token":'), 'upstream_token_invalid'],
  ['HTML', (_q, r) => r.end('<html>hello</html>'), 'upstream_token_invalid'],
  ['a JSON array', json(200, [1, 2]), 'upstream_token_invalid'],
  ['no access_token', json(200, { token_type: 'Bearer', expires_in: 60 }), 'upstream_token_invalid'],
  ['an access_token that is a number', json(200, { access_token: 42, token_type: 'Bearer' }), 'upstream_token_invalid'],
  [
    'an access_token with a line break (header injection)',
    json(200, { access_token: 'abc\r\nx-mcp-user-id: admin', token_type: 'Bearer' }),
    'upstream_token_invalid',
  ],
  [
    'an access_token with a space',
    json(200, { access_token: 'abc def', token_type: 'Bearer' }),
    'upstream_token_invalid',
  ],
  ['an empty access_token', json(200, { access_token: '', token_type: 'Bearer' }), 'upstream_token_invalid'],
  ['token_type N_A (an ID token)', json(200, { access_token: 'abc', token_type: 'N_A' }), 'upstream_token_invalid'],
  ['token_type DPoP', json(200, { access_token: 'abc', token_type: 'DPoP' }), 'upstream_token_invalid'],
  [
    'expires_in negative',
    json(200, { access_token: 'abc', token_type: 'Bearer', expires_in: -5 }),
    'upstream_token_invalid',
  ],
  [
    'expires_in zero',
    json(200, { access_token: 'abc', token_type: 'Bearer', expires_in: 0 }),
    'upstream_token_invalid',
  ],
  [
    'expires_in a word',
    json(200, { access_token: 'abc', token_type: 'Bearer', expires_in: 'soon' }),
    'upstream_token_invalid',
  ],
  [
    'a body over 64 KiB',
    json(200, { access_token: 'a'.repeat(70_000), token_type: 'Bearer' }),
    'upstream_token_invalid',
  ],
  [
    'a redirect (never followed: it would carry the client credentials elsewhere)',
    (_q, r) => {
      r.writeHead(302, { location: 'http://127.0.0.1:1/steal' });
      r.end();
    },
    'upstream_token_invalid',
  ],
  ['400 invalid_grant', json(400, { error: 'invalid_grant' }), 'upstream_token_refused'],
  ['401 invalid_client', json(401, { error: 'invalid_client' }), 'upstream_token_refused'],
  [
    '403 with HTML',
    (_q, r) => {
      r.writeHead(403);
      r.end('<h1>no</h1>');
    },
    'upstream_token_refused',
  ],
  ['200 with an OAuth error object', json(200, { error: 'invalid_request' }), 'upstream_token_invalid'],
  ['500', json(500, { error: 'server_error' }), 'upstream_token_unavailable'],
  [
    '503',
    (_q, r) => {
      r.writeHead(503);
      r.end();
    },
    'upstream_token_unavailable',
  ],
  ['a reset connection', (req) => req.socket.destroy(), 'upstream_token_unavailable'],
];

for (const [what, answer, code] of CASES) {
  test(`a token endpoint answering ${what} is ${code}, and the error names no token`, async (t) => {
    const s = await tokenServer(answer);
    t.teardown(() => s.close());
    const err = await t.throwsAsync(
      requestToken(
        { url: s.url, form: new URLSearchParams({ subject_token: 'SUBJECT-SECRET' }), headers: {}, timeoutMs: 30_000 },
        fetch,
        Date.now,
      ),
      { instanceOf: UpstreamTokenError },
    );
    t.is(err!.code, code);
    t.false(err!.message.includes('SUBJECT-SECRET'));
    t.false(err!.message.includes('abc'));
  });
}

test('a token endpoint that never answers is upstream_token_unavailable after timeoutMs', async (t) => {
  const s = await tokenServer(() => {});
  t.teardown(() => s.close());
  const err = await t.throwsAsync(
    requestToken({ url: s.url, form: new URLSearchParams(), headers: {}, timeoutMs: 100 }, fetch, Date.now),
    { instanceOf: UpstreamTokenError },
  );
  t.is(err!.code, 'upstream_token_unavailable');
  t.regex(err!.message, /no answer within 100 ms/);
});

test('a good answer: the token and its expiry from expires_in (a numeric string too), else from the JWT exp', async (t) => {
  const now = () => 1_000_000;
  for (const [body, expires] of [
    [{ access_token: 'abc.def', token_type: 'bearer', expires_in: 60 }, 1_060_000],
    [{ access_token: 'abc.def', token_type: 'Bearer', expires_in: '120' }, 1_120_000],
    [
      { access_token: `x.${Buffer.from(JSON.stringify({ exp: 2000 })).toString('base64url')}.y`, token_type: 'Bearer' },
      2_000_000,
    ],
    [{ access_token: 'opaque', token_type: 'Bearer' }, undefined],
  ] as const) {
    const s = await tokenServer(json(200, body));
    const got = await requestToken(
      { url: s.url, form: new URLSearchParams(), headers: {}, timeoutMs: 30_000 },
      fetch,
      now,
    );
    await s.close();
    t.is(got.accessToken, body.access_token);
    t.is(got.expiresAtMs, expires);
  }
});

// ---------------------------------------------------------------- expiry minus skew, real token service

test('an exchanged token is used until its expiry minus the skew, then exchanged again (fake clock, real token service)', async (t) => {
  const idp = await startJwksServer({ discovery: 'none' });
  const sts = await startSts(idp, { lifetime: '300s' });
  t.teardown(async () => {
    await sts.stop();
    await idp.stop();
  });
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-upstream-'));
  writeFileSync(join(dir, 'secret'), sts.clientSecret);
  let now = Date.now();
  const config = validateConfig(
    {
      oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
      endpoints: [
        {
          name: 'docs',
          match: { pathPrefix: '/mcp' },
          auth: { apiKey: false, oauth: true },
          resource: 'https://mcp.example.com/mcp',
          upstream: {
            mode: 'tokenExchange',
            tokenEndpoint: sts.tokenEndpoint,
            client: { id: 'mcp-authz', secretFile: 'secret' },
            audience: 'https://up.example',
            expirySkewSeconds: 30,
          },
        },
      ],
    },
    'test.yaml',
    dir,
    {},
  );
  const broker = (await UpstreamCredentialBroker.create({
    endpoints: config.endpoints,
    logger: silentLogger(),
    events: {},
    watch: false,
    now: () => now,
  }))!;
  t.teardown(() => broker.close());
  const subjectToken = await idp.sign({ sub: 'olga', aud: 'https://mcp.example.com/mcp' });
  const ctx = {
    endpoint: { name: 'docs' },
    principal: {
      ...ANONYMOUS,
      method: 'oauth',
      authenticated: true,
      id: `${idp.issuer}#olga`,
      issuer: idp.issuer,
      subject: 'olga',
    },
    subjectToken,
  } as unknown as CheckContext;
  const start = now;
  const first = await broker.credentialFor(ctx);
  t.is(first?.kind, 'grant');
  t.is((await sts.stats()).exchange, 1);
  // The token service says expires_in 299 or 300: kept until 269 or 270 s from now.
  now = start + 260_000;
  const cached = broker.credentialFor(ctx);
  t.false(cached instanceof Promise, 'a cache hit answers without waiting');
  t.is(cached, first);
  t.is((await sts.stats()).exchange, 1);
  now = start + 275_000;
  const renewed = await broker.credentialFor(ctx);
  t.is(renewed?.kind, 'grant');
  t.is((await sts.stats()).exchange, 2, 'within the skew of expiry: exchanged again');
});

// ---------------------------------------------------------------- config

const endpoint = (e: Record<string, unknown>, top: Record<string, unknown> = {}) =>
  validateConfig(
    {
      oauth: { issuers: [{ issuer: 'https://idp.example.com/' }] },
      ...top,
      endpoints: [{ name: 'a', match: { pathPrefix: '/a' }, resource: 'https://mcp.example.com/a', ...e }],
    },
    'test.yaml',
    '/etc/mcp-authz',
    {},
  );
const exchange = {
  mode: 'tokenExchange',
  tokenEndpoint: 'https://sts.example.com/token',
  client: { id: 'gw', secretFile: 'secret' },
  audience: 'https://up.example.com',
};

test('config: a valid tokenExchange endpoint loads, its files resolved against the config folder', (t) => {
  const c = endpoint({ auth: { apiKey: false, oauth: true }, upstream: exchange });
  const u = c.endpoints[0]!.upstream!;
  t.is(u.mode, 'tokenExchange');
  if (u.mode !== 'tokenExchange') return;
  t.is(u.client.secretFile, '/etc/mcp-authz/secret');
  t.is(u.timeoutMs, 5000);
  t.is(u.expirySkewSeconds, 30);
  t.is(u.cacheSize, 10_000);
});

test('config: what cannot work is refused at load, naming the field', (t) => {
  const bad: [string, Record<string, unknown>, Record<string, unknown>, RegExp][] = [
    [
      'tokenExchange on an API-key endpoint',
      { upstream: exchange },
      {},
      /endpoints\.0\.upstream\.mode: tokenExchange needs an OAuth token from every caller/,
    ],
    [
      'tokenExchange without oauth',
      { auth: { apiKey: false, oauth: false }, upstream: exchange },
      {},
      /turn on auth\.oauth/,
    ],
    [
      'no audience or resource',
      { auth: { apiKey: false, oauth: true }, upstream: { ...exchange, audience: undefined } },
      {},
      /set audience, resource, or both/,
    ],
    [
      'both a secret and a key',
      {
        auth: { apiKey: false, oauth: true },
        upstream: { ...exchange, client: { id: 'gw', secretFile: 's', privateKeyFile: 'k' } },
      },
      {},
      /exactly one of secretFile/,
    ],
    [
      'neither a secret nor a key',
      { auth: { apiKey: false, oauth: true }, upstream: { ...exchange, client: { id: 'gw' } } },
      {},
      /exactly one of secretFile/,
    ],
    [
      'a plain-http token endpoint off loopback',
      {
        auth: { apiKey: false, oauth: true },
        upstream: { ...exchange, tokenEndpoint: 'http://sts.example.com/token' },
      },
      {},
      /https, or http on a loopback address only/,
    ],
    [
      'a scope with a space',
      { auth: { apiKey: false, oauth: true }, upstream: { ...exchange, scope: ['a b'] } },
      {},
      /scope token/,
    ],
    ['an unknown mode', { upstream: { mode: 'passthrough' } }, {}, /upstream\.mode/],
    [
      'clientCredentials naming the caller in Authorization',
      { upstream: { ...exchange, mode: 'clientCredentials', identityHeader: 'Authorization' } },
      {},
      /cannot carry the caller's identity/,
    ],
    ['static without a file', { upstream: { mode: 'static' } }, {}, /valueFile/],
    [
      'removeCredentials off',
      { upstream: { mode: 'static', valueFile: 'v' } },
      { upstream: { removeCredentials: false } },
      /needs upstream\.removeCredentials/,
    ],
    [
      'the HTTP authorization service without authorization in upstreamHeaders',
      { upstream: { mode: 'static', valueFile: 'v' } },
      { listen: { extAuthzHttp: '127.0.0.1:9292' }, clientAddress: { from: 'x-forwarded-for' } },
      /extAuthzHttp\.upstreamHeaders: endpoint "a" sets the upstream request header authorization/,
    ],
  ];
  for (const [what, e, top, message] of bad) {
    const err = t.throws(() => endpoint(e, top), { instanceOf: ConfigError }, what);
    t.regex(err?.message ?? '', message, what);
  }
  t.notThrows(() =>
    endpoint(
      { upstream: { mode: 'static', valueFile: 'v' } },
      {
        listen: { extAuthzHttp: '127.0.0.1:9292' },
        clientAddress: { from: 'x-forwarded-for' },
        extAuthzHttp: { upstreamHeaders: ['x-mcp-*', 'authorization'] },
      },
    ),
  );
});
