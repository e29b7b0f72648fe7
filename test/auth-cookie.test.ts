// JWT in a session cookie (auth.jwtCookie; docs/clients.md "Web dashboards"), through the real
// gRPC server with real tokens from a loopback JWKS server: verified like a bearer token, used
// only on same-site requests from an allowed origin, removed upstream while the other cookies
// stay, and refused whenever the Cookie header reads two ways.
import test from 'ava';
import { explain } from '../src/cli/check-command.js';
import { ConfigError, loadConfigFile, validateConfig } from '../src/config/load.js';
import { keysFile, makeKey } from './helpers/auth-fixtures.js';
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js';
import { sample } from './helpers/prometheus.js';
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

const DASH = 'https://dash.example.com';
const RESOURCE = 'https://mcp.example.com/mcp/dash';
const BOTH = 'https://mcp.example.com/mcp/both';
const key = makeKey({ id: 'connector', permissions: ['*'] });
let svc: TestService;
let idp: JwksServer;
let jwt: string;

test.before(async () => {
  idp = await startJwksServer({ discovery: 'none' });
  jwt = await idp.sign({ sub: 'alice', aud: RESOURCE, scope: 'tools:search' });
  svc = await startTestService(
    {
      publicBaseUrl: 'https://mcp.example.com',
      apiKeys: { file: 'keys.yaml' },
      oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
      rateLimit: { failedAuth: { maxAttempts: 3, windowSeconds: 60 } },
      endpoints: [
        {
          name: 'dash',
          match: { pathPrefix: '/mcp/dash' },
          auth: { apiKey: false, jwtCookie: 'mcp_session' },
          resource: RESOURCE,
          allowedOrigins: [DASH],
        },
        {
          name: 'both',
          match: { pathPrefix: '/mcp/both' },
          auth: { apiKey: true, oauth: true, jwtCookie: 'mcp_session' },
          resource: BOTH,
          allowedOrigins: [DASH],
        },
        {
          name: 'bearer',
          match: { pathPrefix: '/mcp/bearer' },
          auth: { apiKey: false, oauth: true },
          resource: 'https://mcp.example.com/mcp/bearer',
        },
      ],
    },
    { files: { 'keys.yaml': keysFile([key]) } },
  );
});
test.after.always(async () => {
  await svc?.stop();
  await idp?.stop();
});

const call = rpc('tools/call', { name: 'search' });
/** A browser's fetch from the dashboard: Origin and Sec-Fetch-Site as a browser sends them. */
const browser = { origin: DASH, 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'cors' };
const check = (s: Partial<HttpSample> & { path?: string }) =>
  svc.check(checkRequest({ path: '/mcp/dash', body: call, ...s }));
const ok = (res: CheckResponse) => res.ok_response;
const setHeader = (res: CheckResponse, name: string) => headerValue(res.ok_response?.headers, name);

test("a JWT in the named cookie from the dashboard's origin authenticates; the other cookies go upstream without it", async (t) => {
  const res = await check({ headers: { ...browser, cookie: `theme=dark; mcp_session=${jwt}; lang=en` } });
  t.truthy(ok(res), res.denied_response?.body);
  t.is(setHeader(res, 'x-mcp-auth-method'), 'oauth');
  t.is(setHeader(res, 'x-mcp-user-id'), 'alice');
  t.is(setHeader(res, 'cookie'), 'theme=dark; lang=en', 'the Cookie header is rewritten without the session cookie');
  t.false(
    res.ok_response!.headers!.find((h) => h.header.key === 'cookie')!.append?.value ?? false,
    'replacing every Cookie header',
  );
  t.false(res.ok_response!.headers_to_remove!.includes('cookie'));
});

test('the session cookie alone: the Cookie header is removed', async (t) => {
  const res = await check({ headers: { ...browser, cookie: `mcp_session=${jwt}` } });
  t.truthy(ok(res));
  t.true(res.ok_response!.headers_to_remove!.includes('cookie'));
  t.is(setHeader(res, 'cookie'), undefined);
});

test('cookie crumbs in several headers (HTTP/2) are read as one list and merged upstream', async (t) => {
  const res = await check({
    headerList: [
      ['origin', DASH],
      ['sec-fetch-site', 'same-origin'],
      ['cookie', 'a=1'],
      ['cookie', `mcp_session=${jwt}`],
      ['cookie', 'b=2'],
    ],
  });
  t.truthy(ok(res), res.denied_response?.body);
  t.is(setHeader(res, 'cookie'), 'a=1; b=2');
});

test('a cross-site request never authenticates by cookie, and costs no failed attempt', async (t) => {
  const refusedCookie = async (headers: Record<string, string>, method = 'POST') => {
    const res = await check({
      method,
      source: '10.44.0.1',
      headers: { cookie: `mcp_session=${jwt}`, ...headers },
      ...(method === 'GET' ? { body: undefined } : {}),
    });
    t.falsy(ok(res), JSON.stringify(headers));
    t.is(deniedStatus(res), 401);
    t.is(deniedBody(res).error, 'authentication_required');
    t.regex(deniedBody(res).error_description, /same-site requests from a page on an origin this endpoint allows/);
  };
  await refusedCookie({}); // a POST without Origin: not from a browser page we know
  await refusedCookie({ origin: DASH, 'sec-fetch-site': 'cross-site' });
  await refusedCookie({ origin: DASH, 'sec-fetch-site': 'none' });
  await refusedCookie({ origin: DASH, 'sec-fetch-site': 'same-site, cross-site' });
  await refusedCookie({}, 'GET'); // a GET without Origin or Sec-Fetch-Site: could be a cross-site navigation
  await refusedCookie({ 'sec-fetch-site': 'cross-site' }, 'GET');
  // Far more than maxAttempts (3), yet a real failure from the same address is still a 401.
  for (let i = 0; i < 5; i++) await refusedCookie({ 'sec-fetch-site': 'cross-site' });
  const bad = await check({ source: '10.44.0.1', headers: { ...browser, cookie: `mcp_session=${jwt}x` } });
  t.is(deniedStatus(bad), 401, 'not locked out');
  const m = (await svc.http('/metrics')).text;
  t.true(
    (sample(m, 'mcp_authz_auth_failures_total', {
      endpoint: 'dash',
      method: 'none',
      reason: 'authentication_required',
      detail: 'cookie_cross_site',
    }) ?? 0) >= 11,
  );
});

test('bad cookie tokens count towards the lockout: past maxAttempts even a good cookie from that address is 429 until the window ends', async (t) => {
  const from = (token: string) =>
    check({ source: '10.47.0.1', headers: { ...browser, cookie: `mcp_session=${token}` } });
  for (let i = 0; i < 3; i++) t.is(deniedStatus(await from(`${jwt}x`)), 401, `failure ${i + 1}`);
  const locked = await from(jwt);
  t.is(deniedStatus(locked), 429);
  t.is(deniedBody(locked).error, 'too_many_requests');
  t.truthy(headerValue(locked.denied_response?.headers, 'retry-after'));
  t.truthy(
    ok(await check({ source: '10.47.0.2', headers: { ...browser, cookie: `mcp_session=${jwt}` } })),
    'another address is not locked out',
  );
});

test('an Origin the endpoint does not list is 403 before the cookie is looked at', async (t) => {
  const res = await check({
    headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site', cookie: `mcp_session=${jwt}` },
  });
  t.is(deniedStatus(res), 403);
  t.is(deniedBody(res).error, 'origin_not_allowed');
});

test('a same-origin GET carries no Origin: Sec-Fetch-Site: same-origin lets the cookie authenticate it', async (t) => {
  const res = await check({
    method: 'GET',
    body: undefined,
    headers: { 'sec-fetch-site': 'same-origin', cookie: `mcp_session=${jwt}` },
  });
  t.truthy(ok(res), res.denied_response?.body);
});

test("the cookie's JWT is verified like a bearer token: another audience, an expired or altered token is 401 invalid_token", async (t) => {
  const wrongAud = await idp.sign({ sub: 'alice', aud: 'https://mcp.example.com/mcp/bearer' });
  const expired = await idp.sign({ sub: 'alice', aud: RESOURCE, exp: Math.floor(Date.now() / 1000) - 3600 });
  // Altered: one character of the signature's middle changed, so its bytes always change.
  const mid = jwt.lastIndexOf('.') + 10;
  const altered = `${jwt.slice(0, mid)}${jwt[mid] === 'A' ? 'B' : 'A'}${jwt.slice(mid + 1)}`;
  for (const [i, token] of [wrongAud, expired, altered, 'not-a-jwt'].entries()) {
    const res = await check({ source: `10.45.0.${i}`, headers: { ...browser, cookie: `mcp_session=${token}` } });
    t.is(deniedStatus(res), 401, token.slice(0, 12));
    t.is(deniedBody(res).error, 'invalid_token');
    t.is(
      headerValue(res.denied_response?.headers, 'www-authenticate'),
      undefined,
      'no Bearer challenge where bearer tokens are not taken',
    );
  }
});

test('a Cookie header that reads two ways is refused, whatever else the request carries', async (t) => {
  const headers = [
    `mcp_session=${jwt}; mcp_session=${jwt}x`,
    `MCP_SESSION=${jwt}`,
    `theme=dark,mcp_session=${jwt}`, // a reader splitting on "," (and Envoy joining repeated headers) sees it
    `theme="x; mcp_session=${jwt}"`,
  ];
  for (const [i, cookie] of headers.entries()) {
    const res = await check({
      path: '/mcp/both',
      source: `10.46.0.${i}`,
      headers: { ...browser, cookie, 'x-api-key': key.key },
    });
    t.is(deniedStatus(res), 401, cookie);
    t.is(deniedBody(res).error, 'invalid_credentials');
  }
});

test('precedence: an API key or a bearer token decides; the session cookie is still removed upstream', async (t) => {
  const withKey = await check({
    path: '/mcp/both',
    headers: { ...browser, 'x-api-key': key.key, cookie: `mcp_session=${jwt}; theme=dark` },
  });
  t.is(setHeader(withKey, 'x-mcp-auth-method'), 'api_key');
  t.is(setHeader(withKey, 'cookie'), 'theme=dark');
  const bearer = await idp.sign({ sub: 'bob', aud: BOTH, scope: 'tools:search' });
  const withToken = await check({
    path: '/mcp/both',
    headers: { ...browser, authorization: `Bearer ${bearer}`, cookie: `mcp_session=${jwt}` },
  });
  t.is(setHeader(withToken, 'x-mcp-user-id'), 'bob');
  t.true(withToken.ok_response!.headers_to_remove!.includes('cookie'));
  // A bad bearer token never falls back to the cookie.
  const badBearer = await check({
    path: '/mcp/both',
    headers: { ...browser, authorization: `Bearer ${bearer}x`, cookie: `mcp_session=${jwt}` },
  });
  t.is(deniedStatus(badBearer), 401);
});

test('cookies are not a credential where the endpoint names no cookie, nor a bearer token where it takes only the cookie', async (t) => {
  const bearerOnly = await check({
    path: '/mcp/bearer',
    headers: { ...browser, origin: 'https://mcp.example.com', cookie: `mcp_session=${jwt}` },
  });
  t.is(deniedStatus(bearerOnly), 401);
  t.is(deniedBody(bearerOnly).error_description, 'Authentication required via OAuth bearer token');
  const cookieOnly = await check({ headers: { ...browser, authorization: `Bearer ${jwt}` } });
  t.is(deniedStatus(cookieOnly), 401);
  t.deepEqual(deniedBody(cookieOnly).supported_methods, ['Cookie mcp_session (JWT, from a page on an allowed origin)']);
  t.is(deniedBody(cookieOnly).error_description, 'Authentication required via session cookie');
});

test('mcp-authz check shows a cookie principal as an OAuth principal with tokenSource "cookie"', async (t) => {
  const cli = (await explain(loadConfigFile(svc.configFile, {}), {
    method: 'POST',
    path: '/mcp/dash',
    host: 'mcp.example.com',
    body: call,
    headers: [
      ['origin', DASH],
      ['sec-fetch-site', 'same-site'],
      ['cookie', `theme=dark; mcp_session=${jwt}`],
    ],
  })) as Record<string, any>;
  t.is(cli.decision, 'allow');
  t.like(cli.policy.input.principal, { method: 'oauth', userId: 'alice', tokenSource: 'cookie' });
  t.is(cli.policy.input.request.headers.cookie, '[REDACTED]');
});

test('config: a JWT cookie needs issuers, an audience and an origin list that is not "*"', (t) => {
  const v = (
    e: Record<string, unknown>,
    oauth: Record<string, unknown> = { issuers: [{ issuer: 'https://idp.example.com' }] },
  ) =>
    validateConfig(
      { oauth, endpoints: [{ name: 'a', match: { pathPrefix: '/a' }, resource: 'https://mcp.example.com/a', ...e }] },
      'test.yaml',
      '/',
      {},
    );
  t.notThrows(() => v({ auth: { jwtCookie: '__Host-mcp' }, allowedOrigins: [DASH] }));
  const fails = (e: Record<string, unknown>, msg: RegExp, oauth?: Record<string, unknown>) =>
    t.regex(t.throws(() => v(e, oauth), { instanceOf: ConfigError })!.message, msg);
  fails({ auth: { jwtCookie: 'mcp_session' } }, /allowedOrigins.*never "\*"/);
  fails({ auth: { jwtCookie: 'mcp_session' }, allowedOrigins: ['*'] }, /cross-site page must never authenticate/);
  fails({ auth: { jwtCookie: 'mcp_session' }, allowedOrigins: [DASH] }, /configure oauth\.issuers/, { issuers: [] });
  fails({ auth: { jwtCookie: 'mcp session' }, allowedOrigins: [DASH] }, /a cookie name/);
  fails({ auth: { jwtCookie: 'mcp_session' }, allowedOrigins: [DASH], resource: undefined }, /canonical resource URI/);
});
