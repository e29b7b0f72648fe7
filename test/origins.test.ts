// The Origin check (docs/origins.md) through the real gRPC server: a browser request from an
// origin the endpoint does not allow is 403 origin_not_allowed before anything else runs;
// requests without Origin (MCP clients that are not browsers) are untouched.
import test from 'ava';
import fc from 'fast-check';
import { ConfigError, validateConfig } from '../src/config/load.js';
import { canonicalOrigin } from '../src/contracts/web-origin.js';
import { OriginCheck } from '../src/endpoints/origin-check.js';
import { EndpointRegistry } from '../src/endpoints/registry.js';
import { keysFile, makeKey } from './helpers/auth-fixtures.js';
import { sample } from './helpers/prometheus.js';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  rpc,
  startTestService,
  type HttpSample,
  type TestService,
} from './helpers/service.js';

const BASE = 'https://mcp.example.com';
const key = makeKey({ id: 'agent', permissions: ['*'] });
let svc: TestService;

test.before(async () => {
  svc = await startTestService(
    {
      publicBaseUrl: BASE,
      apiKeys: { file: 'keys.yaml' },
      rateLimit: { failedAuth: { maxAttempts: 3, windowSeconds: 60 } },
      endpoints: [
        // No list: no Origin, or the service's own origin (publicBaseUrl) and the resource's.
        { name: 'default', match: { pathPrefix: '/mcp/default' }, auth: { apiKey: true } },
        {
          name: 'elsewhere',
          match: { pathPrefix: '/mcp/elsewhere' },
          auth: { apiKey: true },
          resource: 'https://files.example.net/mcp',
        },
        {
          name: 'listed',
          match: { pathPrefix: '/mcp/listed' },
          auth: { apiKey: true },
          allowedOrigins: ['https://Dash.Example.com', 'http://localhost:6274'],
        },
        {
          name: 'any',
          match: { pathPrefix: '/mcp/any' },
          auth: { apiKey: false, oauth: false },
          allowedOrigins: ['*'],
        },
        { name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } },
      ],
    },
    { files: { 'keys.yaml': keysFile([key]) } },
  );
});
test.after.always(async () => svc?.stop());

const call = rpc('tools/call', { name: 'search' });
const check = (s: Partial<HttpSample> & { path: string }) =>
  svc.check(checkRequest({ body: call, ...s, headers: { 'x-api-key': key.key, ...s.headers } }));
const withOrigin = (path: string, origin: string) => check({ path, headers: { origin } });

async function refused(t: any, res: Awaited<ReturnType<typeof check>>, why: string) {
  t.falsy(res.ok_response, 'never an allow');
  t.is(deniedStatus(res), 403);
  t.is(res.status?.code, 7, 'PERMISSION_DENIED');
  const body = deniedBody(res);
  t.is(body.error, 'origin_not_allowed');
  t.is(body.origin_check, why);
  t.regex(body.error_description, /allowedOrigins/);
}

test('no Origin: an MCP client that is not a browser is untouched on every endpoint', async (t) => {
  for (const path of ['/mcp/default', '/mcp/elsewhere', '/mcp/listed'])
    t.truthy((await check({ path })).ok_response, path);
  t.truthy((await svc.check(checkRequest({ path: '/mcp/open', body: call }))).ok_response);
});

test("default: the endpoint's own origin (publicBaseUrl) is allowed, in any spelling of it", async (t) => {
  for (const o of [BASE, 'HTTPS://MCP.EXAMPLE.COM', 'https://mcp.example.com:443'])
    t.truthy((await withOrigin('/mcp/default', o)).ok_response, o);
});

test('default: any other origin is 403 origin_not_allowed — another scheme, port or host, or a look-alike', async (t) => {
  for (const o of [
    'http://mcp.example.com',
    'https://mcp.example.com:8443',
    'https://evil.example',
    'https://mcp.example.com.evil.example',
    'https://evilmcp.example.com',
  ]) {
    await refused(t, await withOrigin('/mcp/default', o), 'not_allowed');
  }
});

test("default: the origin of the endpoint's resource is its own too", async (t) => {
  t.truthy((await withOrigin('/mcp/elsewhere', 'https://files.example.net')).ok_response);
  t.truthy((await withOrigin('/mcp/elsewhere', BASE)).ok_response, 'publicBaseUrl stays allowed');
  await refused(t, await withOrigin('/mcp/default', 'https://files.example.net'), 'not_allowed');
});

test('DNS rebinding: a page whose host name now points at the server is refused on an auth-off endpoint', async (t) => {
  // The browser thinks it talks to its own origin, so Host and Origin agree — with each other, not with the endpoint.
  const res = await svc.check(
    checkRequest({
      path: '/mcp/open',
      host: 'rebind.attacker.test:8080',
      body: call,
      headers: { origin: 'http://rebind.attacker.test:8080' },
    }),
  );
  await refused(t, res, 'not_allowed');
});

test('"null", a malformed and a repeated Origin are refused, whatever the list', async (t) => {
  await refused(t, await withOrigin('/mcp/default', 'null'), 'null');
  await refused(t, await withOrigin('/mcp/listed', 'null'), 'null');
  for (const o of [
    'https://dash.example.com/',
    'https://dash.example.com/app',
    'dash.example.com',
    'https://user@dash.example.com',
    'https://dash.example.com:0443',
    '',
  ]) {
    await refused(t, await withOrigin('/mcp/listed', o), 'malformed');
  }
  await refused(t, await withOrigin('/mcp/listed', 'https://dash.example.com, https://evil.example'), 'repeated');
  const twice = await svc.check(
    checkRequest({
      path: '/mcp/listed',
      body: call,
      headerList: [
        ['x-api-key', key.key],
        ['origin', 'https://dash.example.com'],
        ['origin', 'https://dash.example.com'],
      ],
    }),
  );
  await refused(t, twice, 'repeated');
});

test("a list replaces the default: listed origins pass, the service's own origin no longer does", async (t) => {
  t.truthy((await withOrigin('/mcp/listed', 'https://dash.example.com')).ok_response);
  t.truthy((await withOrigin('/mcp/listed', 'http://localhost:6274')).ok_response);
  await refused(t, await withOrigin('/mcp/listed', BASE), 'not_allowed');
  await refused(t, await withOrigin('/mcp/listed', 'http://localhost:6275'), 'not_allowed');
});

test('"*" admits every origin, "null" included', async (t) => {
  for (const o of ['https://anything.example', 'null', 'chrome-extension://abcdef']) {
    t.truthy((await svc.check(checkRequest({ path: '/mcp/any', body: call, headers: { origin: o } }))).ok_response, o);
  }
});

test('the Origin is checked before the lockout and authentication: refused requests cost no failed attempt', async (t) => {
  const bad = (origin?: string) =>
    svc.check(
      checkRequest({
        path: '/mcp/default',
        source: '10.9.0.1',
        body: call,
        headers: { 'x-api-key': 'mcp_wrong', ...(origin ? { origin } : {}) },
      }),
    );
  for (let i = 0; i < 10; i++) await refused(t, await bad('https://evil.example'), 'not_allowed');
  // Three real failures reach the limit of 3; none of the ten above counted.
  for (let i = 0; i < 3; i++) t.is(deniedStatus(await bad()), 401);
  t.is(deniedStatus(await bad()), 429);
});

test("discovery documents and unknown paths are not subject to an endpoint's origins", async (t) => {
  const doc = await svc.check(
    checkRequest({
      method: 'GET',
      path: '/.well-known/oauth-protected-resource/mcp/default',
      headers: { origin: 'https://evil.example' },
    }),
  );
  // No OAuth endpoint here: the discovery answer is its 404, given before any origin is looked at.
  t.is(deniedStatus(doc), 404);
  t.not(deniedBody(doc).error, 'origin_not_allowed');
  const unknown = await svc.check(
    checkRequest({ path: '/nowhere', body: call, headers: { origin: 'https://evil.example' } }),
  );
  t.is(deniedStatus(unknown), 401, 'no endpoint: answered as before, without telling which endpoints exist');
});

test('refusals are counted as denies_total{code="origin_not_allowed"}', async (t) => {
  const count = async () =>
    sample((await svc.http('/metrics')).text, 'mcp_authz_denies_total', {
      endpoint: 'any',
      code: 'origin_not_allowed',
    });
  t.is(await count(), 0, 'the series exists from start-up');
  const other = await svc.check(
    checkRequest({ path: '/mcp/open', body: call, headers: { origin: 'https://evil.example' } }),
  );
  t.is(deniedStatus(other), 403);
  t.true(
    (sample((await svc.http('/metrics')).text, 'mcp_authz_denies_total', {
      endpoint: 'open',
      code: 'origin_not_allowed',
    }) ?? 0) >= 1,
  );
});

test('config: origins are canonicalized; "null", paths and "*" beside others are refused', (t) => {
  const v = (allowedOrigins: unknown) =>
    validateConfig({ endpoints: [{ name: 'a', match: { pathPrefix: '/a' }, allowedOrigins }] }, 'test.yaml', '/', {});
  t.deepEqual(v(['HTTPS://Dash.Example.COM:443', 'http://localhost:6274']).endpoints[0]!.allowedOrigins, [
    'https://dash.example.com',
    'http://localhost:6274',
  ]);
  for (const [bad, msg] of [
    [['null'], /any site can send it/],
    [['https://dash.example.com/'], /without a path or trailing/],
    [['dash.example.com'], /expected an origin/],
    [['*', 'https://a.example'], /stands alone/],
    [[], /at least one origin/],
  ] as const) {
    const err = t.throws(() => v(bad), { instanceOf: ConfigError }, JSON.stringify(bad));
    t.regex(err!.message, msg);
    t.regex(err!.message, /endpoints\.0\.allowedOrigins/);
  }
});

// What a browser sends is the WHATWG URL origin of its page. Whatever string arrives, an
// allowed verdict means the string names a listed origin the way a browser would.
const hostArb = fc.oneof(
  fc.constantFrom(
    'dash.example.com',
    'DASH.example.com',
    'dash.example.com.',
    '127.0.0.1',
    '0x7f.1',
    '[::1]',
    'xn--bcher-kva.example',
    'dash_example.com',
    'évil.example',
  ),
  fc.domain(),
);
const originArb = fc
  .tuple(
    fc.constantFrom('https', 'http', 'HTTPS', 'wss', 'chrome-extension', 'h t'),
    hostArb,
    fc.option(fc.constantFrom('443', '80', '8443', '0443', '65536', ''), { nil: undefined }),
    fc.constantFrom('', '/', '/x', '?', '#', ' ', '@x'),
  )
  .map(([s, h, p, tail]) => `${s}://${h}${p === undefined ? '' : `:${p}`}${tail}`);

test('property: an allowed Origin is, read as a URL, one of the listed origins; canonical form is idempotent', (t) => {
  const listed = ['https://dash.example.com', 'http://127.0.0.1', 'http://[::1]:8080'];
  const endpoints = new EndpointRegistry(
    validateConfig({ endpoints: [{ name: 'a', match: { pathPrefix: '/a' }, allowedOrigins: listed }] }, 't', '/', {})
      .endpoints,
  );
  const origins = new OriginCheck(endpoints.all, undefined);
  fc.assert(
    fc.property(fc.oneof(originArb, fc.string(), fc.constantFrom(...listed)), (o) => {
      const c = canonicalOrigin(o);
      if (c !== undefined) t.is(canonicalOrigin(c), c);
      if (origins.verdict({ origin: [o] }, endpoints.all[0]!) !== 'allowed') return;
      const url = new URL(o);
      t.true(listed.includes(url.origin), `${JSON.stringify(o)} allowed as ${url.origin}`);
    }),
    { numRuns: 2000 },
  );
});
