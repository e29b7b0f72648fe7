// Every header mutation means the same on the three transports Envoy asks mcp-authz on: the
// gRPC Check (ext_authz grpc_service), the HTTP authorization service (ext_authz
// http_service) and ext_proc. One generated request — a principal of each kind, its
// credential in a header, the query or a cookie, other cookies, forged x-mcp-* headers, a
// policy that sets, appends and removes headers — goes to the real service through each
// transport's real answer (Check over real gRPC, the HTTP service over real HTTP, a Process
// stream over real gRPC), and each answer is applied to the request as Envoy applies it
// (demo/envoy-stand-in/envoy-apply.ts, one model per transport, each citing Envoy's documentation), with
// the filter configured as examples/envoy/envoy-http.yaml documents. The MCP server must get
// the same request whichever transport decided it, never a credential, and the identity
// headers the service set, never the client's. Where the HTTP service cannot express the
// allow (a query parameter to remove, a header the filter does not copy) it must refuse it,
// and only then.
import { request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { parse } from 'yaml';
import type { ProcessingRequest } from '../src/ext-proc/wire.js';
import { keysFile, mintKey, type TestKey } from './e2e/api-keys.js';
import {
  applyCheckOk,
  applyExtProcMutation,
  applyHttpServiceOk,
  bytesOf,
  upstreamView,
  type AuthorizationResponseConfig,
  type EnvoyRequest,
  type HeaderList,
  type StringMatcher,
} from '../demo/envoy-stand-in/envoy-apply.js';
import { processExchange } from './helpers/ext-proc.js';
import { startJwksServer } from './helpers/jwks-server.js';
import { regoDir } from './helpers/policy.js';
import { rpc, startTestService, type CheckResponse, type TestService } from './helpers/service.js';

const alice = mintKey({ id: 'alice-laptop', name: 'Alice', userId: 'alice', role: 'user', permissions: ['*'] });
const shared = mintKey({ id: 'shared', name: 'Shared', role: 'user', permissions: ['*'] });
const HOST = 'mcp.example.com';
const DASHBOARD = 'https://dash.example.com';
const SESSION = 'mcp_session';

// The filter's authorization_response as the example documents it, plus the one name this
// test's policy sets that the operator adds ("add the names your policy sets").
const EXAMPLE = parse(readFileSync(join(import.meta.dirname, '..', 'examples', 'envoy', 'envoy-http.yaml'), 'utf8'));
const exampleFilter = EXAMPLE.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters.find(
  (f: { name: string }) => f.name === 'envoy.filters.http.ext_authz',
).typed_config;
const documented: AuthorizationResponseConfig = exampleFilter.http_service.authorization_response;
const POLICY_NAMES: StringMatcher[] = [{ exact: 'x-tenant' }];
const filterConfig: AuthorizationResponseConfig = {
  allowed_upstream_headers: { patterns: [...documented.allowed_upstream_headers!.patterns, ...POLICY_NAMES] },
};
/** extAuthzHttp.upstreamHeaders: the same names, in the service's notation. */
const upstreamHeaders = filterConfig.allowed_upstream_headers!.patterns.map((p) =>
  p.prefix !== undefined ? `${p.prefix}*` : p.exact!,
);

// The policy: allow, and set, append (a list of values), remove and add to the response what
// the request's x-test-policy header asks, in opa-envoy-plugin's decision shape.
const POLICY = `package mcp.authz

import rego.v1

default spec := {}

spec := json.unmarshal(input.request.headers["x-test-policy"]) if input.request.headers["x-test-policy"]

decision := {
	"allowed": true,
	"headers": object.get(spec, "headers", {}),
	"request_headers_to_remove": object.get(spec, "remove", []),
	"response_headers_to_add": object.get(spec, "response", {}),
}

visible := [true | some _ in input.list.calls]
`;

let svc: TestService;
let idp: Awaited<ReturnType<typeof startJwksServer>>;

test.before(async () => {
  idp = await startJwksServer();
  svc = await startTestService(
    {
      listen: { extAuthzHttp: 'any' },
      extAuthzHttp: { pathPrefix: '', upstreamHeaders },
      clientAddress: { from: 'x-forwarded-for', trustedHops: 1 },
      apiKeys: { file: 'keys.yaml' },
      oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
      publicBaseUrl: `https://${HOST}`,
      policy: { rego: regoDir({ 'policy.rego': POLICY }) },
      endpoints: [
        {
          name: 'keys',
          match: { pathPrefix: '/mcp/keys' },
          auth: { apiKey: true, oauth: false, queryParamKeys: true },
        },
        {
          name: 'tokens',
          match: { pathPrefix: '/mcp/tokens' },
          auth: { apiKey: false, oauth: true },
          resource: `https://${HOST}/mcp/tokens`,
        },
        {
          name: 'web',
          match: { pathPrefix: '/mcp/web' },
          auth: { apiKey: false, oauth: false, jwtCookie: SESSION },
          resource: `https://${HOST}/mcp/web`,
          allowedOrigins: [DASHBOARD],
        },
        { name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } },
      ],
    },
    { files: { 'keys.yaml': keysFile([alice, shared]) } },
  );
});
test.after.always(async () => {
  await svc?.stop();
  await idp?.stop();
});

// ---------------------------------------------------------------- the three transports

type Decision =
  | { allowed: true; upstream: EnvoyRequest; answer: unknown }
  | { allowed: false; status: number; code: string };

interface Case {
  path: string;
  /** Header lines as the client sent them (names lower-case, values as bytes: Latin-1 text). */
  headers: HeaderList;
  body: string;
}

/** Envoy's CheckRequest for the request: every header in header_map, as bytes. */
async function viaCheck(c: Case): Promise<Decision> {
  const all: HeaderList = [
    [':authority', HOST],
    [':method', 'POST'],
    [':path', c.path],
    [':scheme', 'https'],
    ...c.headers,
    ['content-length', String(Buffer.byteLength(c.body))],
  ];
  const res: CheckResponse = await svc.check({
    attributes: {
      source: { address: { socket_address: { address: '10.0.0.9', port_value: 40000 } } },
      destination: { address: { socket_address: { address: '10.0.0.1', port_value: 8080 } } },
      request: {
        time: { seconds: '1700000000', nanos: 0 },
        http: {
          id: '1',
          method: 'POST',
          path: c.path,
          host: HOST,
          scheme: 'https',
          protocol: 'HTTP/1.1',
          size: String(Buffer.byteLength(c.body)),
          body: c.body,
          header_map: { headers: all.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') })) },
        },
      },
    },
  });
  if (!res.ok_response)
    return {
      allowed: false,
      status: Number(res.denied_response?.status?.code ?? 403),
      code: JSON.parse(res.denied_response?.body ?? '{}').error ?? '?',
    };
  return { allowed: true, upstream: applyCheckOk(original(c), res.ok_response as never), answer: res.ok_response };
}

/** The request as Envoy's http_service forwards it (allowed_headers: every header, path_prefix ""). */
function viaHttpService(c: Case): Promise<Decision> {
  const body = Buffer.from(c.body);
  const lines: string[] = ['host', HOST];
  for (const [k, v] of c.headers) lines.push(k, v);
  lines.push('content-length', String(body.length));
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: svc.extAuthzHttpPort,
        method: 'POST',
        path: c.path,
        headers: lines as unknown as Record<string, string>,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const answer: HeaderList = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2)
            answer.push([res.rawHeaders[i]!.toLowerCase(), res.rawHeaders[i + 1]!]);
          if (res.statusCode !== 200) {
            const text = Buffer.concat(chunks).toString();
            resolve({
              allowed: false,
              status: res.statusCode!,
              code: text.startsWith('{') ? (JSON.parse(text).error ?? '?') : '?',
            });
            return;
          }
          resolve({ allowed: true, upstream: applyHttpServiceOk(original(c), answer, filterConfig), answer });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The Process stream as Envoy's ext_proc filter opens it: the request headers, then the buffered body. */
async function viaExtProc(c: Case): Promise<Decision> {
  const pairs: HeaderList = [
    [':authority', HOST],
    [':path', c.path],
    [':method', 'POST'],
    [':scheme', 'https'],
    ...c.headers,
    ['content-length', String(Buffer.byteLength(c.body))],
  ];
  const messages: ProcessingRequest[] = [
    {
      request_headers: {
        headers: { headers: pairs.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') })) },
        end_of_stream: false,
      },
    },
    { request_body: { body: Buffer.from(c.body), end_of_stream: true } },
  ];
  const { answers } = await processExchange(`127.0.0.1:${svc.grpcPort}`, messages);
  const last = answers.at(-1)!;
  if (last.immediate_response) {
    const im = last.immediate_response;
    return {
      allowed: false,
      status: Number(im.status?.code ?? 0),
      code: String(im.details ?? '').replace(/^mcp_authz_/, ''),
    };
  }
  const mutation = last.request_body?.response?.header_mutation;
  const headers: HeaderList = [[':path', c.path], ...original(c).headers];
  const err = applyExtProcMutation(headers, mutation);
  if (err !== undefined) throw new Error(`Envoy would refuse the mutation: ${err}`);
  const path = headers.find(([k]) => k === ':path')![1];
  return { allowed: true, upstream: { path, headers: headers.filter(([k]) => k !== ':path') }, answer: mutation };
}

function original(c: Case): EnvoyRequest {
  return {
    path: c.path,
    headers: [
      ...c.headers.map(([k, v]) => [k, v] as [string, string]),
      ['content-length', String(Buffer.byteLength(c.body))],
    ],
  };
}

// ---------------------------------------------------------------- the generated requests

type Kind = 'key-header' | 'key-bearer' | 'key-query' | 'token' | 'cookie' | 'anonymous';

interface Scenario {
  kind: Kind;
  key: TestKey;
  querySpelling: string;
  sub: string;
  otherParams: [string, string][];
  cookies: [string, string][];
  sessionAt: number;
  forged: HeaderList;
  policy: { headers?: Record<string, string | string[]>; remove?: string[]; response?: Record<string, string> };
  extra: HeaderList;
}

const word = fc.stringMatching(/^[a-z0-9]{1,6}$/);
const text = fc.constantFrom('acme', 'globex', 'josé', '東京', 'a b', 'x,y', 'ü;v', '');
const scenario: fc.Arbitrary<Scenario> = fc.record({
  kind: fc.constantFrom<Kind>('key-header', 'key-bearer', 'key-query', 'token', 'cookie', 'anonymous'),
  key: fc.constantFrom(alice, shared),
  querySpelling: fc.constantFrom('api_key', 'api%5Fkey', 'api%5fkey'),
  sub: fc.constantFrom('alice', 'bob', 'josé', '田中', 'user@example.com'),
  otherParams: fc.array(fc.tuple(fc.constantFrom('tenant', 'b', 'a', 'z', 'page'), word), { maxLength: 3 }),
  cookies: fc.uniqueArray(
    fc.tuple(fc.constantFrom('theme', 'lang', 'csrf', 'ab_test', '_ga'), fc.oneof(word, fc.constant(bytesOf('café')))),
    { maxLength: 3, selector: ([n]) => n },
  ),
  sessionAt: fc.nat({ max: 3 }),
  forged: fc.subarray<[string, string]>([
    ['x-mcp-user-id', 'mallory'],
    ['x-mcp-principal', 'mallory'],
    ['x-mcp-key-id', 'mallory'],
    ['x-mcp-auth-method', 'mallory'],
    ['x_mcp_user_id', 'mallory'],
    ['x-mcp-tenant', 'mallory'],
    ['x-tenant', 'mallory'],
  ]),
  policy: fc.record(
    {
      headers: fc.dictionary(
        fc.constantFrom('x-tenant', 'x-mcp-tenant', 'x-mcp-user-id', 'x-undeclared'),
        fc.oneof(text, fc.array(text, { minLength: 1, maxLength: 3 })),
        { maxKeys: 3 },
      ),
      remove: fc.subarray(['x-tenant', 'x-mcp-user-id', 'x-other', 'cookie']),
      response: fc.constantFrom<Record<string, string>>({}, { 'x-ratelimit-remaining': '5' }, { 'x-mcp-note': 'n' }),
    },
    { requiredKeys: [] },
  ),
  extra: fc.subarray<[string, string]>([
    ['x-other', 'kept'],
    ['accept', 'application/json, text/event-stream'],
    ['user-agent', 'test/1.0'],
  ]),
});

/** JSON with every non-ASCII character escaped: the header carrying it stays ASCII. */
const asciiJson = (v: unknown) =>
  JSON.stringify(v).replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);

interface Built {
  c: Case;
  /** Secrets that must never reach the MCP server. */
  secrets: string[];
  /** The identity headers the MCP server must get (before the policy's own changes). */
  identity: Record<string, string>;
  /** The Cookie header the MCP server must get (before the policy's own changes), or undefined for none. */
  cookie: string | undefined;
}

async function build(s: Scenario, n: number): Promise<Built> {
  const endpoint = s.kind.startsWith('key')
    ? 'keys'
    : s.kind === 'token'
      ? 'tokens'
      : s.kind === 'cookie'
        ? 'web'
        : 'open';
  const params: [string, string][] = [...s.otherParams];
  const headers: HeaderList = [
    ['content-type', 'application/json'],
    ['x-forwarded-for', '203.0.113.7'],
    ['x-forwarded-proto', 'https'],
    ['x-request-id', `req-${n}`],
  ];
  const secrets: string[] = [];
  let identity: Record<string, string> = { 'x-mcp-auth-method': 'anonymous' };
  const keyIdentity = (k: TestKey) => ({
    'x-mcp-auth-method': 'api_key',
    'x-mcp-principal': k.id,
    'x-mcp-key-id': k.id,
    ...(k.userId ? { 'x-mcp-user-id': k.userId } : {}),
  });
  if (s.kind === 'key-header') headers.push(['x-api-key', s.key.key]);
  if (s.kind === 'key-bearer') headers.push(['authorization', `Bearer ${s.key.key}`]);
  if (s.kind === 'key-query') params.splice(Math.min(s.sessionAt, params.length), 0, [s.querySpelling, s.key.key]);
  if (s.kind.startsWith('key')) {
    secrets.push(s.key.key);
    identity = keyIdentity(s.key);
  }
  const cookies = s.cookies.map(([k, v]) => `${k}=${v}`);
  const expectedCookie = cookies.length > 0 ? cookies.join('; ') : undefined;
  if (s.kind === 'token' || s.kind === 'cookie') {
    const token = await idp.sign({ sub: s.sub, aud: `https://${HOST}/mcp/${endpoint}`, scope: 'tools:search' });
    secrets.push(token);
    identity = {
      'x-mcp-auth-method': 'oauth',
      'x-mcp-principal': bytesOf(`${idp.issuer}#${s.sub}`),
      'x-mcp-user-id': bytesOf(s.sub),
    };
    if (s.kind === 'token') headers.push(['authorization', `Bearer ${token}`]);
    else {
      cookies.splice(Math.min(s.sessionAt, cookies.length), 0, `${SESSION}=${token}`);
      headers.push(['origin', DASHBOARD], ['sec-fetch-site', 'same-site']);
    }
  }
  if (cookies.length > 0) headers.push(['cookie', cookies.join('; ')]);
  headers.push(...s.forged, ...s.extra, ['x-test-policy', asciiJson(s.policy)]);
  const query = params.map(([k, v]) => `${k}=${v}`).join('&');
  return {
    c: {
      path: `/mcp/${endpoint}${query ? `?${query}` : ''}`,
      headers,
      body: rpc('tools/call', { name: 'search', arguments: { q: 'x' } }, n),
    },
    secrets,
    identity,
    cookie: expectedCookie,
  };
}

// ---------------------------------------------------------------- the property

const mayCopy = (name: string) =>
  filterConfig.allowed_upstream_headers!.patterns.some((p) =>
    p.prefix !== undefined ? name.startsWith(p.prefix) : name === p.exact,
  );

/** Why the HTTP service must refuse what the Check allowed, judged from the Check answer alone. */
function httpRefusal(ok: CheckResponse['ok_response'] & {}): string | undefined {
  if ((ok.query_parameters_to_remove ?? []).length > 0) return 'query_not_removable';
  if ((ok.headers ?? []).some((h) => !mayCopy(h.header.key))) return 'header_not_forwardable';
  if ((ok.response_headers_to_add ?? []).some((h) => mayCopy(h.header.key))) return 'header_not_forwardable';
  return undefined;
}

async function checkOne(s: Scenario, n: number, counts: Map<string, number>): Promise<void> {
  const count = (what: string) => counts.set(what, (counts.get(what) ?? 0) + 1);
  const b = await build(s, n);
  const [grpc, http, extProc] = await Promise.all([viaCheck(b.c), viaHttpService(b.c), viaExtProc(b.c)]);
  const where = `${s.kind} ${JSON.stringify(b.c)}`;
  if (!grpc.allowed)
    throw new Error(`Check refused a request this test means to allow (${grpc.status} ${grpc.code}): ${where}`);
  count(s.kind);

  // ext_proc: the same request upstream as the Check allow.
  if (!extProc.allowed)
    throw new Error(`ext_proc refused (${extProc.status} ${extProc.code}) what Check allowed: ${where}`);
  assertSame(upstreamView(extProc.upstream), upstreamView(grpc.upstream), `ext_proc against Check: ${where}`);

  // The HTTP service: the same request, or refused exactly where it cannot express the allow.
  const refusal = httpRefusal(grpc.answer as CheckResponse['ok_response'] & {});
  if (refusal !== undefined) {
    count(`http refuses: ${refusal}`);
    if (http.allowed)
      throw new Error(
        `the HTTP service allowed what it cannot express (${refusal}): ${where}\nupstream: ${JSON.stringify(upstreamView(http.upstream))}`,
      );
    if (http.code !== refusal) throw new Error(`the HTTP service refused with ${http.code}, not ${refusal}: ${where}`);
  } else {
    count('http allows');
    if (!http.allowed)
      throw new Error(`the HTTP service refused (${http.status} ${http.code}) what it can express: ${where}`);
    assertSame(upstreamView(http.upstream), upstreamView(grpc.upstream), `HTTP service against Check: ${where}`);
  }

  // What the MCP server gets: no credential, the identity the service set, the other cookies.
  for (const d of [grpc, extProc, http]) {
    if (!d.allowed) continue;
    const up = upstreamView(d.upstream);
    const everything = up.path + JSON.stringify(up.headers);
    for (const secret of b.secrets)
      if (everything.includes(secret))
        throw new Error(`a credential reached the MCP server: ${where}\n${JSON.stringify(up)}`);
    if (everything.includes(`${SESSION}=`)) throw new Error(`the session cookie reached the MCP server: ${where}`);
    const get = (name: string) => up.headers.find(([k]) => k === name)?.[1];
    const policyHeaders = s.policy.headers ?? {};
    const removed = new Set(s.policy.remove ?? []);
    for (const name of ['x-mcp-user-id', 'x-mcp-principal', 'x-mcp-key-id', 'x-mcp-auth-method', 'x_mcp_user_id']) {
      if (get(name) === 'mallory') throw new Error(`a forged ${name} reached the MCP server: ${where}`);
      if (name in policyHeaders || removed.has(name)) continue;
      if (get(name) !== b.identity[name]) throw new Error(`${name} is ${get(name)}, not ${b.identity[name]}: ${where}`);
    }
    if (!('cookie' in policyHeaders) && !removed.has('cookie') && get('cookie') !== b.cookie)
      throw new Error(`the Cookie header is ${get('cookie')}, not ${b.cookie}: ${where}`);
  }
}

function assertSame(a: unknown, b: unknown, what: string): void {
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  if (x !== y) throw new Error(`${what}\n  ${x}\n≠ ${y}`);
}

test('property: Check, the HTTP service and ext_proc send the MCP server the same request, never a credential or a forged identity; the HTTP service refuses only what it cannot express', async (t) => {
  const counts = new Map<string, number>();
  let n = 0;
  await fc.assert(
    fc.asyncProperty(scenario, async (s) => checkOne(s, ++n, counts)),
    { numRuns: 240 },
  );
  t.log(Object.fromEntries([...counts].sort()));
  for (const kind of ['key-header', 'key-bearer', 'key-query', 'token', 'cookie', 'anonymous'])
    t.true((counts.get(kind) ?? 0) >= 15, `${kind}: ${counts.get(kind) ?? 0}`);
  t.true((counts.get('http allows') ?? 0) >= 60, 'the HTTP service allows a good share');
  t.true((counts.get('http refuses: header_not_forwardable') ?? 0) >= 20);
  t.true((counts.get('http refuses: query_not_removable') ?? 0) >= 15);
});

test('Cookie: theme=dark; mcp_session=<JWT>: every transport sends the MCP server theme=dark and never the session', async (t) => {
  const token = await idp.sign({ sub: 'alice', aud: `https://${HOST}/mcp/web`, scope: 'tools:search' });
  const c: Case = {
    path: '/mcp/web',
    headers: [
      ['content-type', 'application/json'],
      ['x-forwarded-for', '203.0.113.7'],
      ['origin', DASHBOARD],
      ['sec-fetch-site', 'same-site'],
      ['cookie', `theme=dark; ${SESSION}=${token}`],
    ],
    body: rpc('tools/call', { name: 'search', arguments: { q: 'x' } }),
  };
  for (const [name, d] of [
    ['Check', await viaCheck(c)],
    ['HTTP service', await viaHttpService(c)],
    ['ext_proc', await viaExtProc(c)],
  ] as const) {
    t.true(d.allowed, name);
    if (!d.allowed) continue;
    const cookies = d.upstream.headers.filter(([k]) => k === 'cookie').map(([, v]) => v);
    t.deepEqual(cookies, ['theme=dark'], name);
    t.false(JSON.stringify(d.upstream).includes(token), `${name}: the session JWT never goes upstream`);
  }
});

test('an API key under an encoded parameter name (?api%5Fkey=) is removed by Check as Envoy removes parameters, by the name as written', async (t) => {
  for (const spelling of ['api%5Fkey', 'api%5fkey', 'api_key']) {
    const c: Case = {
      path: `/mcp/keys?tenant=acme&${spelling}=${alice.key}&a=1`,
      headers: [
        ['content-type', 'application/json'],
        ['x-forwarded-for', '203.0.113.7'],
      ],
      body: rpc('tools/call', { name: 'search', arguments: { q: 'x' } }),
    };
    const check = await viaCheck(c);
    const extProc = await viaExtProc(c);
    t.true(check.allowed && extProc.allowed, spelling);
    if (!check.allowed || !extProc.allowed) continue;
    t.false(
      check.upstream.path.includes(alice.key),
      `${spelling}: the key must not reach the MCP server (${check.upstream.path})`,
    );
    t.deepEqual((check.answer as { query_parameters_to_remove?: string[] }).query_parameters_to_remove, [spelling]);
    t.is(check.upstream.path, '/mcp/keys?a=1&tenant=acme', `${spelling}: the query Envoy writes back, in name order`);
    t.is(extProc.upstream.path, check.upstream.path, `${spelling}: ext_proc rewrites :path to the same bytes`);
  }
});
