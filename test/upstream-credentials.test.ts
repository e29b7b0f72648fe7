// Upstream credentials (endpoints[].upstream) through the real service: a real RFC 8693
// token service (test/sts, zitadel/oidc's OpenID provider) on loopback, real tokens from a
// real JWKS server, and each allow applied to the request the way Envoy applies it on each
// transport (demo/envoy-stand-in/envoy-apply.ts): the gRPC Check, the HTTP authorization service and
// ext_proc. The MCP server must get a token issued for it — never the caller's — and a
// token service that is down, slow, refusing or answering garbage must be a deny.
import { request as httpRequest } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import type { ProcessingRequest } from '../src/ext-proc/wire.js';
import { keysFile, mintKey } from './e2e/api-keys.js';
import {
  applyCheckOk,
  applyExtProcMutation,
  applyHttpServiceOk,
  type AuthorizationResponseConfig,
  type EnvoyRequest,
  type HeaderList,
} from '../demo/envoy-stand-in/envoy-apply.js';
import { waitFor } from './helpers/wait.js';
import { processExchange } from './helpers/ext-proc.js';
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js';
import { regoDir } from './helpers/policy.js';
import {
  deniedStatus,
  httpStatusOf,
  rpc,
  startTestService,
  type CheckResponse,
  type TestService,
} from './helpers/service.js';
import { startSts, type Sts } from './helpers/sts.js';

const HOST = 'mcp.example.com';
const DOCS_UPSTREAM = 'https://docs.internal.example';
const KEYS_UPSTREAM = 'https://reports.internal.example';
const alice = mintKey({ id: 'alice-laptop', name: 'Alice', userId: 'alice', role: 'user', permissions: ['*'] });
const STATIC_SECRET = 'static-upstream-secret-1';

const filterConfig: AuthorizationResponseConfig = {
  allowed_upstream_headers: {
    patterns: [
      { prefix: 'x-mcp-' },
      { exact: 'authorization' },
      { exact: 'x-forwarded-user' },
      { exact: 'x-upstream-key' },
    ],
  },
};

// Every authenticated caller is allowed: what is under test is what goes upstream after the allow.
const POLICY = `package mcp.authz

import rego.v1

default decision := {"allowed": false}

decision := {"allowed": true, "headers": {"x-mcp-policy-saw": json.marshal(object.get(input.endpoint, "upstream", null))}} if input.principal.authenticated

visible := [true | some _ in input.list.calls]
`;

let idp: JwksServer;
let sts: Sts;
let svc: TestService;

test.before(async () => {
  idp = await startJwksServer({ discovery: 'none' });
  sts = await startSts(idp);
  const actor = await idp.sign({ sub: 'mcp-authz-workload', aud: 'sts' });
  svc = await startTestService(
    {
      listen: { extAuthzHttp: 'any' },
      extAuthzHttp: {
        pathPrefix: '',
        upstreamHeaders: ['x-mcp-*', 'authorization', 'x-forwarded-user', 'x-upstream-key'],
      },
      clientAddress: { from: 'x-forwarded-for', trustedHops: 1 },
      publicBaseUrl: `https://${HOST}`,
      apiKeys: { file: 'keys.yaml' },
      oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
      policy: { rego: regoDir({ 'policy.rego': POLICY }) },
      endpoints: [
        {
          name: 'docs',
          match: { pathPrefix: '/mcp/docs' },
          auth: { apiKey: false, oauth: true },
          resource: `https://${HOST}/mcp/docs`,
          upstream: {
            mode: 'tokenExchange',
            tokenEndpoint: sts.tokenEndpoint,
            client: { id: 'mcp-authz', secretFile: 'sts-secret' },
            audience: DOCS_UPSTREAM,
            scope: ['docs:read'],
            timeoutMs: 30_000,
          },
        },
        {
          // Waits little: the token service under test never answers it.
          name: 'impatient',
          match: { pathPrefix: '/mcp/impatient' },
          auth: { apiKey: false, oauth: true },
          resource: `https://${HOST}/mcp/impatient`,
          upstream: {
            mode: 'tokenExchange',
            tokenEndpoint: sts.tokenEndpoint,
            client: { id: 'mcp-authz', secretFile: 'sts-secret' },
            audience: DOCS_UPSTREAM,
            timeoutMs: 200,
          },
        },
        {
          name: 'signed',
          match: { pathPrefix: '/mcp/signed' },
          auth: { apiKey: false, oauth: true },
          resource: `https://${HOST}/mcp/signed`,
          upstream: {
            mode: 'tokenExchange',
            tokenEndpoint: sts.tokenEndpoint,
            client: { id: 'mcp-authz-jwt', privateKeyFile: 'client-key.pem', assertionAudience: sts.issuer },
            resource: DOCS_UPSTREAM,
            actorTokenFile: 'actor-token',
            actorTokenType: 'urn:ietf:params:oauth:token-type:access_token',
          },
        },
        {
          name: 'small',
          match: { pathPrefix: '/mcp/small' },
          auth: { apiKey: false, oauth: true },
          resource: `https://${HOST}/mcp/small`,
          upstream: {
            mode: 'tokenExchange',
            tokenEndpoint: sts.tokenEndpoint,
            client: { id: 'mcp-authz', secretFile: 'sts-secret' },
            audience: DOCS_UPSTREAM,
            cacheSize: 2,
          },
        },
        {
          name: 'reports',
          match: { pathPrefix: '/mcp/reports' },
          auth: { apiKey: true, oauth: false },
          upstream: {
            mode: 'clientCredentials',
            tokenEndpoint: sts.tokenEndpoint,
            client: { id: 'mcp-authz', secretFile: 'sts-secret' },
            audience: KEYS_UPSTREAM,
            identityHeader: 'x-forwarded-user',
          },
        },
        {
          name: 'legacy',
          match: { pathPrefix: '/mcp/legacy' },
          auth: { apiKey: true, oauth: false },
          upstream: { mode: 'static', header: 'x-upstream-key', valueFile: 'static-secret', pollIntervalMs: 200 },
        },
      ],
    },
    {
      files: {
        'keys.yaml': keysFile([alice]),
        'sts-secret': `${sts.clientSecret}\n`,
        'client-key.pem': sts.clientKeyPem,
        'actor-token': actor,
        'static-secret': STATIC_SECRET,
      },
    },
  );
});
test.after.always(async () => {
  await svc?.stop();
  await sts?.stop();
  await idp?.stop();
});

// ---------------------------------------------------------------- the three transports

type Decision = { allowed: true; upstream: EnvoyRequest } | { allowed: false; status: number; code: string };
type Transport = (path: string, headers: HeaderList) => Promise<Decision>;
const BODY = rpc('tools/call', { name: 'search', arguments: { q: 'x' } });

const viaCheck: Transport = async (path, headers) => {
  const all: HeaderList = [
    [':authority', HOST],
    [':method', 'POST'],
    [':path', path],
    [':scheme', 'https'],
    ...headers,
    ['content-length', String(BODY.length)],
  ];
  const res: CheckResponse = await svc.check({
    attributes: {
      source: { address: { socket_address: { address: '10.0.0.9', port_value: 40000 } } },
      request: {
        http: {
          id: '1',
          method: 'POST',
          path,
          host: HOST,
          scheme: 'https',
          protocol: 'HTTP/1.1',
          size: String(BODY.length),
          body: BODY,
          header_map: { headers: all.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') })) },
        },
      },
    },
  });
  if (!res.ok_response)
    return {
      allowed: false,
      status: deniedStatus(res) ?? 0,
      code: JSON.parse(res.denied_response?.body ?? '{}').error ?? '?',
    };
  return { allowed: true, upstream: applyCheckOk(original(path, headers), res.ok_response as never) };
};

const viaHttpService: Transport = (path, headers) =>
  new Promise((resolve, reject) => {
    const lines: string[] = ['host', HOST];
    for (const [k, v] of headers) lines.push(k, v);
    lines.push('content-length', String(BODY.length));
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: svc.extAuthzHttpPort,
        method: 'POST',
        path,
        headers: lines as unknown as Record<string, string>,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const answer: HeaderList = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2)
            answer.push([res.rawHeaders[i]!.toLowerCase(), res.rawHeaders[i + 1]!]);
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200)
            resolve({
              allowed: false,
              status: res.statusCode!,
              code: text.startsWith('{') ? (JSON.parse(text).error ?? '?') : '?',
            });
          else resolve({ allowed: true, upstream: applyHttpServiceOk(original(path, headers), answer, filterConfig) });
        });
      },
    );
    req.on('error', reject);
    req.end(BODY);
  });

const viaExtProc: Transport = async (path, headers) => {
  const pairs: HeaderList = [
    [':authority', HOST],
    [':path', path],
    [':method', 'POST'],
    [':scheme', 'https'],
    ...headers,
    ['content-length', String(BODY.length)],
  ];
  const messages: ProcessingRequest[] = [
    {
      request_headers: {
        headers: { headers: pairs.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') })) },
        end_of_stream: false,
      },
    },
    { request_body: { body: Buffer.from(BODY), end_of_stream: true } },
  ];
  const { answers } = await processExchange(`127.0.0.1:${svc.grpcPort}`, messages);
  const last = answers.at(-1)!;
  if (last.immediate_response) {
    const im = last.immediate_response;
    return {
      allowed: false,
      status: httpStatusOf(im.status?.code as string | number | undefined) ?? 0,
      code: String(im.details ?? '').replace(/^mcp_authz_/, ''),
    };
  }
  const hs: HeaderList = [[':path', path], ...original(path, headers).headers];
  const err = applyExtProcMutation(hs, last.request_body?.response?.header_mutation);
  if (err !== undefined) throw new Error(`Envoy would refuse the mutation: ${err}`);
  return { allowed: true, upstream: { path, headers: hs.filter(([k]) => k !== ':path') } };
};

const TRANSPORTS: [string, Transport][] = [
  ['Check', viaCheck],
  ['HTTP service', viaHttpService],
  ['ext_proc', viaExtProc],
];

function original(path: string, headers: HeaderList): EnvoyRequest {
  return {
    path,
    headers: [...headers.map(([k, v]) => [k, v] as [string, string]), ['content-length', String(BODY.length)]],
  };
}

const all = (d: Decision, name: string) =>
  d.allowed ? d.upstream.headers.filter(([k]) => k === name).map(([, v]) => v) : [];
const bearer = (d: Decision) => {
  const values = all(d, 'authorization');
  if (values.length !== 1 || !values[0]!.startsWith('Bearer '))
    throw new Error(`expected one Bearer authorization upstream, got ${JSON.stringify(values)}`);
  return values[0]!.slice('Bearer '.length);
};
const userToken = (sub: string, aud: string, claims: Record<string, unknown> = {}) =>
  idp.sign({ sub, aud: `https://${HOST}${aud}`, scope: 'tools:search', ...claims });
let n = 0;
const fresh = (what: string) => `${what}-${++n}-${Math.random().toString(36).slice(2, 8)}`;

// Tests share one token service whose mode and counters they change: one at a time.
test.serial(
  "tokenExchange: on every transport the MCP server gets a token issued for it (audience = the upstream, subject = the caller), never the caller's; one exchange serves them all",
  async (t) => {
    const sub = fresh('carol');
    const jwt = await userToken(sub, '/mcp/docs');
    const before = await sts.stats();
    const tokens: string[] = [];
    for (const [name, via] of TRANSPORTS) {
      const d = await via('/mcp/docs', [
        ['content-type', 'application/json'],
        ['authorization', `Bearer ${jwt}`],
        ['x-forwarded-for', '203.0.113.7'],
      ]);
      t.true(d.allowed, name);
      if (!d.allowed) continue;
      const token = bearer(d);
      t.false(JSON.stringify(d.upstream).includes(jwt), `${name}: the caller's token never goes upstream`);
      const claims = await sts.verify(token);
      t.deepEqual([claims.aud].flat(), [DOCS_UPSTREAM], `${name}: issued for the upstream`);
      t.is(claims.sub, sub, name);
      t.is(claims.scope, 'docs:read', name);
      tokens.push(token);
    }
    t.is(new Set(tokens).size, 1, 'the same cached token on every transport');
    const d = await viaCheck('/mcp/docs', [
      ['content-type', 'application/json'],
      ['authorization', `Bearer ${jwt}`],
    ]);
    t.deepEqual(
      all(d, 'x-mcp-policy-saw'),
      ['{"mode":"tokenExchange"}'],
      'the policy sees the mode, not the token endpoint, client or files',
    );
    const after = await sts.stats();
    t.is(after.exchange - before.exchange, 1, 'one exchange, then the cache');
  },
);

test.serial(
  'tokenExchange with private_key_jwt and an actor token: the exchanged token names the service as the actor',
  async (t) => {
    const sub = fresh('dave');
    const jwt = await userToken(sub, '/mcp/signed');
    const d = await viaCheck('/mcp/signed', [
      ['content-type', 'application/json'],
      ['authorization', `Bearer ${jwt}`],
    ]);
    t.true(d.allowed);
    const claims = await sts.verify(bearer(d));
    t.is(claims.sub, sub);
    t.deepEqual(claims.act, { sub: 'mcp-authz-workload' });
    t.deepEqual(claims.resource, [DOCS_UPSTREAM]);
  },
);

test.serial(
  'a forged or expired subject token never reaches the token service: 401, and the exchange count does not move',
  async (t) => {
    const before = await sts.stats();
    const expired = await userToken(fresh('erin'), '/mcp/docs', {
      iat: Math.floor(Date.now() / 1000) - 7200,
      exp: Math.floor(Date.now() / 1000) - 3600,
    });
    const good = await userToken(fresh('erin'), '/mcp/docs');
    const [h, p, s] = good.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), sub: 'admin' })).toString('base64url')}.${s}`;
    for (const token of [expired, forged, 'not-a-jwt']) {
      for (const [name, via] of TRANSPORTS) {
        const d = await via('/mcp/docs', [
          ['content-type', 'application/json'],
          ['authorization', `Bearer ${token}`],
        ]);
        t.false(d.allowed, name);
        if (!d.allowed) t.is(d.status, 401, name);
      }
    }
    const after = await sts.stats();
    t.is(after.token - before.token, 0, 'the token service saw none of them');
  },
);

for (const [mode, status, code] of [
  ['garbage', 502, 'upstream_token_invalid'],
  ['refuse', 502, 'upstream_token_refused'],
  ['error500', 503, 'upstream_token_unavailable'],
  ['hang', 503, 'upstream_token_unavailable'],
] as const) {
  test.serial(
    `a token service that ${mode === 'hang' ? 'never answers' : `answers ${mode}`} is a ${status} ${code} on every transport; the caller's token never goes upstream`,
    async (t) => {
      await sts.setMode(mode);
      t.teardown(() => sts.setMode('normal'));
      const path = mode === 'hang' ? '/mcp/impatient' : '/mcp/docs';
      for (const [name, via] of TRANSPORTS) {
        // A new caller each time: nothing cached to fall back on.
        const jwt = await userToken(fresh('frank'), path);
        const d = await via(path, [
          ['content-type', 'application/json'],
          ['authorization', `Bearer ${jwt}`],
        ]);
        t.false(d.allowed, name);
        if (d.allowed) continue;
        t.is(d.status, status, name);
        t.is(d.code, code, name);
      }
    },
  );
}

test.serial('a token service that is not there at all is a 503 upstream_token_unavailable', async (t) => {
  const { createServer } = await import('node:net');
  const closed = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
  const local = await startTestService(
    {
      oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
      policy: { rego: regoDir({ 'policy.rego': POLICY }) },
      endpoints: [
        {
          name: 'docs',
          match: { pathPrefix: '/mcp/docs' },
          auth: { apiKey: false, oauth: true },
          resource: `https://${HOST}/mcp/docs`,
          upstream: {
            mode: 'tokenExchange',
            tokenEndpoint: `http://127.0.0.1:${closed}/oauth/token`,
            client: { id: 'mcp-authz', secretFile: 'sts-secret' },
            audience: DOCS_UPSTREAM,
          },
        },
      ],
    },
    { files: { 'sts-secret': 'x' } },
  );
  t.teardown(() => local.stop());
  const jwt = await userToken(fresh('gina'), '/mcp/docs');
  const res = await local.check({
    attributes: {
      request: {
        http: {
          method: 'POST',
          path: '/mcp/docs',
          host: HOST,
          headers: {
            ':authority': HOST,
            authorization: `Bearer ${jwt}`,
            'content-type': 'application/json',
            'content-length': String(BODY.length),
          },
          body: BODY,
        },
      },
    },
  });
  t.falsy(res.ok_response);
  t.is(JSON.parse(res.denied_response!.body!).error, 'upstream_token_unavailable');
  t.is(res.status?.code, 14);
});

test.serial("two Checks for one caller at once make one exchange: the second waits for the first's", async (t) => {
  const sub = fresh('hank');
  const jwt = await userToken(sub, '/mcp/docs');
  await sts.setMode('hold');
  t.teardown(() => sts.setMode('normal'));
  const before = await sts.stats();
  const joinedBefore = await joinedCount();
  const headers: HeaderList = [
    ['content-type', 'application/json'],
    ['authorization', `Bearer ${jwt}`],
  ];
  const first = viaCheck('/mcp/docs', headers);
  await waitFor(
    'the first exchange to reach the token service',
    async () => (await sts.stats()).exchange > before.exchange,
    60_000,
    20,
  );
  const second = viaCheck('/mcp/docs', headers);
  await waitFor(
    'the second Check to join the exchange in flight',
    async () => (await joinedCount()) > joinedBefore,
    60_000,
    20,
  );
  await sts.release();
  const [a, b] = await Promise.all([first, second]);
  t.true(a.allowed && b.allowed);
  t.is(bearer(a), bearer(b));
  t.is((await sts.stats()).exchange - before.exchange, 1, 'one exchange for both');
});

test.serial(
  'the token cache is bounded: with cacheSize 2, a third caller pushes the first out and the first is exchanged again',
  async (t) => {
    const subs = [fresh('ivy'), fresh('jon'), fresh('kim')];
    const jwts = await Promise.all(subs.map((s) => userToken(s, '/mcp/small')));
    const call = (jwt: string) =>
      viaCheck('/mcp/small', [
        ['content-type', 'application/json'],
        ['authorization', `Bearer ${jwt}`],
      ]);
    const before = await sts.stats();
    for (const jwt of jwts) t.true((await call(jwt)).allowed);
    t.is((await sts.stats()).exchange - before.exchange, 3);
    t.true((await call(jwts[2]!)).allowed, 'the newest is cached');
    t.true((await call(jwts[1]!)).allowed, 'so is the one before');
    t.is((await sts.stats()).exchange - before.exchange, 3);
    t.true((await call(jwts[0]!)).allowed, 'the oldest was pushed out');
    t.is((await sts.stats()).exchange - before.exchange, 4);
  },
);

test.serial(
  "clientCredentials for API-key callers: the service's own token for the upstream, the caller in x-forwarded-user, a client's own copy replaced, the key never upstream",
  async (t) => {
    const before = await sts.stats();
    for (const [name, via] of TRANSPORTS) {
      const d = await via('/mcp/reports', [
        ['content-type', 'application/json'],
        ['x-api-key', alice.key],
        ['x-forwarded-user', 'admin'],
        ['x_forwarded_user', 'admin'],
      ]);
      t.true(d.allowed, `${name}: ${JSON.stringify(d)}`);
      if (!d.allowed) continue;
      const claims = await sts.verify(bearer(d));
      t.deepEqual([claims.aud].flat(), [KEYS_UPSTREAM], name);
      t.is(claims.sub, 'mcp-authz', `${name}: the service's own identity`);
      t.deepEqual(all(d, 'x-forwarded-user'), ['alice-laptop'], `${name}: the caller, as the service names it`);
      t.deepEqual(all(d, 'x_forwarded_user'), [], `${name}: the underscore spelling removed`);
      t.false(JSON.stringify(d.upstream).includes(alice.key), `${name}: the API key never goes upstream`);
    }
    t.is((await sts.stats()).client_credentials - before.client_credentials, 1, 'one token for every caller, cached');
  },
);

test.serial('static: the header value from the mounted file, replaced when the file changes', async (t) => {
  const headers: HeaderList = [
    ['content-type', 'application/json'],
    ['x-api-key', alice.key],
    ['x-upstream-key', 'client-chosen'],
  ];
  for (const [name, via] of TRANSPORTS) {
    const d = await via('/mcp/legacy', headers);
    t.true(d.allowed, name);
    t.deepEqual(all(d, 'x-upstream-key'), [STATIC_SECRET], name);
  }
  writeFileSync(join(svc.dir, 'static-secret'), 'rotated-secret-2\n');
  await waitFor(
    'the new secret to be in force',
    async () => {
      const d = await viaCheck('/mcp/legacy', headers);
      return d.allowed && all(d, 'x-upstream-key')[0] === 'rotated-secret-2';
    },
    60_000,
    20,
  );
  for (const [name, via] of TRANSPORTS)
    t.deepEqual(all(await via('/mcp/legacy', headers), 'x-upstream-key'), ['rotated-secret-2'], name);
});

test.serial('metrics count exchanges, cache hits and failures by code', async (t) => {
  const series = (result: string) =>
    `mcp_authz_upstream_token_requests_total{endpoint="docs",mode="tokenExchange",result="${result}"}`;
  const hits = 'mcp_authz_upstream_token_cache_total{endpoint="docs",mode="tokenExchange",result="hit"}';
  const denies = 'mcp_authz_denies_total{endpoint="docs",code="upstream_token_invalid"}';
  const before = await metricValues([series('ok'), series('upstream_token_invalid'), hits, denies]);
  const call = async (sub: string) =>
    viaCheck('/mcp/docs', [
      ['content-type', 'application/json'],
      ['authorization', `Bearer ${await userToken(sub, '/mcp/docs')}`],
    ]);
  const sub = fresh('lea');
  t.true((await call(sub)).allowed);
  t.true((await call(sub)).allowed);
  await sts.setMode('garbage');
  t.teardown(() => sts.setMode('normal'));
  t.false((await call(fresh('max'))).allowed);
  const after = await metricValues([series('ok'), series('upstream_token_invalid'), hits, denies]);
  t.deepEqual(
    after.map((v, i) => v - before[i]!),
    [1, 1, 1, 1],
    'one exchange, one failure by its code, one cache hit, one deny',
  );
  const text = (await svc.http('/metrics')).text;
  t.false(/eyJ[A-Za-z0-9_-]{10,}/.test(text), 'no token in any label');
});

async function metricValues(names: string[]): Promise<number[]> {
  const text = (await svc.http('/metrics')).text;
  return names.map((name) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    if (line === undefined) throw new Error(`no series ${name}`);
    return Number(line.slice(name.length + 1));
  });
}

async function joinedCount(): Promise<number> {
  return (
    await metricValues(['mcp_authz_upstream_token_cache_total{endpoint="docs",mode="tokenExchange",result="joined"}'])
  )[0]!;
}
