// Workload identity from the mTLS peer (docs/workload-identity.md), through the real gRPC
// server with the shipped policy: the SPIFFE ID comes from the CheckRequest's
// attributes.source (what Envoy verified), never from a header; keys and tokens in the
// request take precedence; the policy admits only the workloads an endpoint lists.
//
// test/fixtures/mtls/*.pem are self-signed certificates made with
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
//     -subj "/O=mcp-authz test" -addext "subjectAltName=<SANs>"
// svid.pem: URI:spiffe://cluster.local/ns/agents/sa/planner; two-uris.pem: that and
// URI:spiffe://cluster.local/ns/other/sa/x; dns-only.pem: DNS:client.example.com.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { explain } from '../src/cli/check-command.js';
import { ConfigError, loadConfigFile, validateConfig } from '../src/config/load.js';
import { isSpiffePattern, parseSpiffeId } from '../src/contracts/spiffe-id.js';
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

const PLANNER = 'spiffe://cluster.local/ns/agents/sa/planner';
const HELPER = 'spiffe://cluster.local/ns/agents/sa/helper';
const GATEWAY = 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account';
const pem = (name: string) => readFileSync(join(import.meta.dirname, 'fixtures', 'mtls', `${name}.pem`), 'utf8');
// As Envoy sends it with include_peer_certificate: URL-encoded PEM.
const cert = (name: string) => encodeURIComponent(pem(name));
const workloads = { [PLANNER]: ['tools:search'], 'spiffe://cluster.local/ns/agents/*': ['tools:list_files'] };
const key = makeKey({ id: 'agent-key', permissions: ['tools:delete_file'] });

let svc: TestService;
let idp: JwksServer;

test.before(async () => {
  idp = await startJwksServer({ discovery: 'none' });
  svc = await startTestService(
    {
      apiKeys: { file: 'keys.yaml' },
      oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
      rateLimit: { failedAuth: { maxAttempts: 0, windowSeconds: 60 } },
      endpoints: [
        { name: 'mesh', match: { pathPrefix: '/mcp/mesh' }, auth: { apiKey: false, mtls: true }, workloads },
        { name: 'mixed', match: { pathPrefix: '/mcp/mixed' }, auth: { apiKey: true, mtls: true }, workloads },
        {
          name: 'tokens',
          match: { pathPrefix: '/mcp/tokens' },
          auth: { apiKey: false, oauth: true, mtls: true },
          resource: 'https://mcp.example.com/mcp/tokens',
          workloads,
        },
        { name: 'keys', match: { pathPrefix: '/mcp/keys' }, auth: { apiKey: true } },
        {
          name: 'private',
          match: { pathPrefix: '/mcp/private' },
          owner: 'alice',
          auth: { apiKey: false, mtls: true },
          workloads,
        },
        {
          name: 'rated',
          match: { pathPrefix: '/mcp/rated' },
          auth: { apiKey: false, mtls: true },
          workloads,
          rateLimit: { rps: 0.01, burst: 2 },
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

const tool = (name: string) => rpc('tools/call', { name });
const check = (s: Partial<HttpSample> & { path: string }) => svc.check(checkRequest({ body: tool('search'), ...s }));
const allowedHeader = (res: CheckResponse, name: string) => headerValue(res.ok_response?.headers, name);
const authDetail = async (endpoint: string, detail: string) =>
  sample((await svc.http('/metrics')).text, 'mcp_authz_auth_failures_total', {
    endpoint,
    method: 'unknown',
    reason: 'invalid_credentials',
    detail,
  }) ?? 0;

test("the mTLS peer's SPIFFE ID authenticates a listed workload: identity headers name it, forged ones are removed", async (t) => {
  const res = await check({
    path: '/mcp/mesh',
    peer: { principal: PLANNER },
    headers: { 'x-mcp-user-id': 'alice', 'x-mcp-key-id': 'admin' },
  });
  t.truthy(res.ok_response, res.denied_response?.body);
  t.is(allowedHeader(res, 'x-mcp-auth-method'), 'mtls');
  t.is(allowedHeader(res, 'x-mcp-principal'), PLANNER);
  t.is(allowedHeader(res, 'x-mcp-user-id'), undefined);
  t.true(res.ok_response!.headers_to_remove!.includes('x-mcp-user-id'));
  t.true(res.ok_response!.headers_to_remove!.includes('x-mcp-key-id'));
});

test("a listed workload gets its entries' grants: another tool is 403 naming the grant", async (t) => {
  t.truthy(
    (await check({ path: '/mcp/mesh', peer: { principal: HELPER }, body: tool('list_files') })).ok_response,
    'granted by the prefix entry',
  );
  const res = await check({ path: '/mcp/mesh', peer: { principal: HELPER }, body: tool('search') });
  t.is(deniedStatus(res), 403);
  t.is(deniedBody(res).error_description, 'This workload is not granted tools:search');
});

test('a workload the endpoint does not list — an ingress gateway relaying outside callers — has no access at all', async (t) => {
  const res = await check({ path: '/mcp/mesh', peer: { principal: GATEWAY }, body: rpc('tools/list') });
  t.is(deniedStatus(res), 403);
  t.is(deniedBody(res).error_description, `The workload ${GATEWAY} is not listed in this endpoint's workloads`);
});

test('no mTLS peer on an mTLS-only endpoint: 401 naming the method, without a Bearer challenge', async (t) => {
  const res = await check({ path: '/mcp/mesh' });
  t.is(deniedStatus(res), 401);
  const body = deniedBody(res);
  t.is(body.error, 'authentication_required');
  t.is(body.error_description, 'Authentication required via mTLS workload identity');
  t.deepEqual(body.supported_methods, ['mTLS client certificate (SPIFFE ID)']);
  t.is(headerValue(res.denied_response?.headers, 'www-authenticate'), undefined);
});

test('a client-supplied header never becomes a workload identity', async (t) => {
  const forged = {
    'x-forwarded-client-cert': `By=spiffe://cluster.local/ns/mcp/sa/server;URI=${PLANNER}`,
    'x-mcp-principal': PLANNER,
    'x-mcp-auth-method': 'mtls',
    'x-spiffe-id': PLANNER,
    'x-envoy-peer-metadata-id': PLANNER,
  };
  const none = await check({ path: '/mcp/mesh', headers: forged });
  t.is(deniedStatus(none), 401, 'no peer: the headers are not an identity');
  const other = await check({ path: '/mcp/mesh', peer: { principal: GATEWAY }, headers: forged });
  t.is(deniedStatus(other), 403);
  t.regex(
    deniedBody(other).error_description,
    /istio-ingressgateway/,
    'the peer Envoy verified, not the header, is the workload',
  );
  const allowed = await check({
    path: '/mcp/mesh',
    peer: { principal: HELPER },
    headers: forged,
    body: tool('list_files'),
  });
  t.is(allowedHeader(allowed, 'x-mcp-principal'), HELPER, 'the forged x-mcp-principal is replaced');
});

test("a peer whose identity is not a workload's SPIFFE ID is 401 invalid_credentials (peer_not_spiffe)", async (t) => {
  const before = await authDetail('mesh', 'peer_not_spiffe');
  const bad = [
    'client.example.com',
    'O=acme,CN=agent',
    'spiffe://cluster.local',
    'spiffe://Cluster.Local/ns/a/sa/b',
    'SPIFFE://cluster.local/ns/a/sa/b',
    'spiffe://cluster.local/ns/../sa/b',
    'spiffe://cluster.local/ns/a/',
    'spiffe://cluster.local//a',
    'spiffe://cluster.local:8443/ns/a',
    'spiffe://user@cluster.local/ns/a',
    'spiffe://cluster.local/ns/a%2Fb',
    'spiffe://cluster.local/ns/a?x',
    `spiffe://cluster.local/${'a'.repeat(2048)}`,
  ];
  for (const principal of bad) {
    const res = await check({ path: '/mcp/mesh', peer: { principal } });
    t.is(deniedStatus(res), 401, principal);
    t.is(deniedBody(res).error, 'invalid_credentials');
  }
  t.is(await authDetail('mesh', 'peer_not_spiffe'), before + bad.length);
});

test('with the peer certificate: its one URI SAN must be the peer principal; alone, it names the workload', async (t) => {
  t.truthy(
    (await check({ path: '/mcp/mesh', peer: { principal: PLANNER, certificate: cert('svid') } })).ok_response,
    'agreeing',
  );
  t.truthy((await check({ path: '/mcp/mesh', peer: { certificate: cert('svid') } })).ok_response, 'certificate only');
  const before = await authDetail('mesh', 'peer_certificate_invalid');
  for (const [principal, certificate] of [
    [HELPER, cert('svid')],
    [PLANNER, cert('two-uris')],
    ['client.example.com', cert('dns-only')],
    [PLANNER, 'not a certificate'],
    [PLANNER, '%E0%A4%A'],
  ] as const) {
    const res = await check({ path: '/mcp/mesh', peer: { principal, certificate } });
    t.is(deniedStatus(res), 401, `${principal} ${certificate.slice(0, 20)}`);
    t.is(deniedBody(res).error, 'invalid_credentials');
  }
  t.is(await authDetail('mesh', 'peer_certificate_invalid'), before + 5);
});

test('precedence: an API key in the request decides; the peer is used only without one', async (t) => {
  const withKey = await check({
    path: '/mcp/mixed',
    peer: { principal: PLANNER },
    headers: { 'x-api-key': key.key },
    body: tool('delete_file'),
  });
  t.is(allowedHeader(withKey, 'x-mcp-auth-method'), 'api_key');
  t.is(allowedHeader(withKey, 'x-mcp-key-id'), 'agent-key');
  const peerOnly = await check({ path: '/mcp/mixed', peer: { principal: PLANNER } });
  t.is(allowedHeader(peerOnly, 'x-mcp-auth-method'), 'mtls');
  // A bad key never falls back to the peer's identity.
  const badKey = await check({
    path: '/mcp/mixed',
    peer: { principal: PLANNER },
    headers: { 'x-api-key': 'mcp_not-a-key' },
  });
  t.is(deniedStatus(badKey), 401);
  t.is(deniedBody(badKey).error, 'invalid_credentials');
  const neither = await check({ path: '/mcp/mixed' });
  t.is(deniedBody(neither).error_description, 'Authentication required via API key or mTLS workload identity');
  t.deepEqual(deniedBody(neither).supported_methods, ['X-API-Key header', 'mTLS client certificate (SPIFFE ID)']);
});

test('precedence: a bearer token decides over the peer; a bad token never falls back to it', async (t) => {
  const token = await idp.sign({ sub: 'user-1', aud: 'https://mcp.example.com/mcp/tokens', scope: 'tools:search' });
  const res = await check({
    path: '/mcp/tokens',
    peer: { principal: GATEWAY },
    headers: { authorization: `Bearer ${token}` },
  });
  t.is(allowedHeader(res, 'x-mcp-auth-method'), 'oauth');
  const bad = await check({
    path: '/mcp/tokens',
    peer: { principal: PLANNER },
    headers: { authorization: `Bearer ${token}x` },
  });
  t.is(deniedStatus(bad), 401);
  t.regex(headerValue(bad.denied_response?.headers, 'www-authenticate') ?? '', /invalid_token/);
  const peer = await check({ path: '/mcp/tokens', peer: { principal: PLANNER } });
  t.is(allowedHeader(peer, 'x-mcp-auth-method'), 'mtls');
});

test('endpoints without auth.mtls ignore the peer', async (t) => {
  const res = await check({ path: '/mcp/keys', peer: { principal: PLANNER } });
  t.is(deniedStatus(res), 401);
  t.is(deniedBody(res).error_description, 'Authentication required via API key');
});

test('a workload cannot reach a private endpoint', async (t) => {
  const res = await check({ path: '/mcp/private', peer: { principal: PLANNER } });
  t.is(deniedStatus(res), 403);
  t.is(deniedBody(res).error_description, 'Workload identities cannot access private endpoints');
});

test('per-client rate: counted per workload, whatever address it calls from', async (t) => {
  const from = (principal: string, source: string) =>
    check({ path: '/mcp/rated', peer: { principal }, source, body: tool('list_files') });
  t.truthy((await from(HELPER, '10.7.0.1')).ok_response);
  t.truthy((await from(HELPER, '10.7.0.2')).ok_response);
  t.is(
    deniedBody(await from(HELPER, '10.7.0.3')).error,
    'rate_limited',
    'one bucket for the workload across addresses',
  );
  t.truthy(
    (await from('spiffe://cluster.local/ns/agents/sa/other', '10.7.0.1')).ok_response,
    'another workload on the same address has its own',
  );
});

test('mcp-authz check shows the workload in the policy input, as the server decides', async (t) => {
  const cli = (await explain(loadConfigFile(svc.configFile, {}), {
    method: 'POST',
    path: '/mcp/mesh',
    host: 'mcp.example.com',
    body: tool('search'),
    peerPrincipal: PLANNER,
    peerCertificatePem: pem('svid'),
  })) as Record<string, any>;
  t.is(cli.decision, 'allow');
  const input = cli.policy.input;
  t.like(input.principal, {
    authenticated: true,
    method: 'mtls',
    id: PLANNER,
    spiffeId: PLANNER,
    trustDomain: 'cluster.local',
  });
  const denied = (await explain(loadConfigFile(svc.configFile, {}), {
    method: 'POST',
    path: '/mcp/mesh',
    body: tool('search'),
    peerPrincipal: 'client.example.com',
  })) as Record<string, any>;
  t.is(denied.authDetail, 'peer_not_spiffe');
});

test('config: workloads need auth.mtls, and each entry is a SPIFFE ID or a "<prefix>/*"', (t) => {
  const v = (e: Record<string, unknown>) =>
    validateConfig({ endpoints: [{ name: 'a', match: { pathPrefix: '/a' }, ...e }] }, 'test.yaml', '/', {});
  t.notThrows(() => v({ auth: { mtls: true }, workloads: { [PLANNER]: ['tools:*'], 'spiffe://cluster.local/*': [] } }));
  t.regex(
    t.throws(() => v({ workloads: { [PLANNER]: [] } }), { instanceOf: ConfigError })!.message,
    /turn on auth\.mtls/,
  );
  for (const bad of [
    'spiffe://*',
    'spiffe://*/ns/a/sa/b',
    'spiffe://cluster.local/ns/*/sa/b',
    '*',
    'spiffe://cluster.local',
    'spiffe://cluster.local/ns/a*',
  ]) {
    t.throws(
      () => v({ auth: { mtls: true }, workloads: { [bad]: [] } }),
      { instanceOf: ConfigError, message: /SPIFFE ID/ },
      bad,
    );
  }
  t.throws(() => v({ auth: { mtls: true }, workloads: { [PLANNER]: ['delete everything'] } }), {
    instanceOf: ConfigError,
    message: /grant/,
  });
});

// Readers of SPIFFE IDs (go-spiffe, Envoy's matchers, Rego's string compare) agree only on the
// strict form: anything accepted is its own canonical spelling and has no "." segment, escape,
// port, user or empty segment a looser reader could resolve differently.
test('property: an accepted SPIFFE ID reads one way only; a "/*" pattern names only IDs below it', (t) => {
  // Mostly near-valid IDs, with every character a looser reader might treat specially mixed in.
  const often = <T>(good: fc.Arbitrary<T>, odd: fc.Arbitrary<T>) =>
    fc.oneof({ weight: 4, arbitrary: good }, { weight: 1, arbitrary: odd });
  const seg = often(fc.stringMatching(/^[A-Za-z0-9._-]{1,6}$/), fc.stringMatching(/^[A-Za-z0-9._%:@/?#-]{0,6}$/));
  const td = often(fc.stringMatching(/^[a-z0-9._-]{1,8}$/), fc.stringMatching(/^[a-zA-Z0-9._:@%-]{0,8}$/));
  const scheme = often(fc.constant('spiffe'), fc.constantFrom('SPIFFE', 'https', 'spiffe:'));
  const id = fc
    .tuple(scheme, td, fc.array(seg, { maxLength: 4 }))
    .map(([s, d, path]) => `${s}://${d}${path.map((p) => `/${p}`).join('')}`);
  let accepted = 0;
  fc.assert(
    fc.property(id, (s) => {
      const p = parseSpiffeId(s);
      if (p === undefined) return;
      accepted++;
      const url = new URL(s);
      t.is(url.href, s, 'a URL reader sees the same string');
      t.is(p.trustDomain, url.host);
      t.is(p.path, url.pathname);
      t.false(/\/\.\.?(\/|$)|\/\/|%|[?#@:]/.test(s.slice('spiffe://'.length)));
      t.true(isSpiffePattern(`${s}/*`));
    }),
    { numRuns: 3000 },
  );
  t.true(accepted > 500, `only ${accepted} accepted IDs were tried`);
});
