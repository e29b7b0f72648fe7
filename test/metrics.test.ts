import test from 'ava';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { CheckContext } from '../src/decision/context.js';
import type { Authorizer } from '../src/decision/phases.js';
import { deny } from '../src/contracts/outcome.js';
import { validateConfig } from '../src/config/load.js';
import { LogSink } from '../src/log/log-sink.js';
import { withPrimaryLogDrops } from '../src/metrics/primary-metrics.js';
import { knownTools, ServiceMetrics, ZERO_SERIES_MAX_ENDPOINTS } from '../src/metrics/service-metrics.js';
import { TestAuthenticator } from './fixtures/test-authenticator.js';
import { sample, sumOf } from './helpers/prometheus.js';
import { checkRequest, deniedStatus, rpc, startTestService } from './helpers/service.js';

/** Denies tools/call of "forbidden" with 403, allows the rest: a stand-in for the policy. */
const toolPolicy: Authorizer = {
  authorize: (ctx: CheckContext) => ({
    result: ctx.mcp.calls.some((c) => c.method === 'tools/call' && c.name === 'forbidden')
      ? { allow: false, deny: deny('access_denied', 'tool not granted') }
      : { allow: true, headers: [], headersToRemove: [], responseHeaders: [] },
  }),
};

test('a scripted sequence of Checks is counted exactly in /metrics', async (t) => {
  const svc = await startTestService(
    {
      rateLimit: { failedAuth: { maxAttempts: 3, windowSeconds: 60 } },
      endpoints: [
        {
          name: 'files',
          match: { pathPrefix: '/mcp/files' },
          auth: { apiKey: true },
          tools: ['read_file'],
          scopes: ['tools:search', 'tools:write_*'],
        },
        {
          name: 'open',
          match: { pathPrefix: '/mcp/open' },
          auth: { apiKey: false, oauth: false },
          rateLimit: { rps: 0.1, burst: 2 },
        },
      ],
    },
    {
      runtime: { overrides: { authenticator: new TestAuthenticator(), authorizer: toolPolicy } },
      unlistedCodes: ['something_new'],
    },
  );
  t.teardown(() => svc.stop());
  const ok = (tool: string, source = '10.0.0.1') =>
    checkRequest({
      path: '/mcp/files',
      source,
      body: rpc('tools/call', { name: tool }),
      headers: { 'x-test-auth': 'ok' },
    });
  const fail = (reason: string, source: string, path = '/mcp/files', detail = 'key_unknown') =>
    checkRequest({
      method: 'GET',
      path,
      source,
      headers: { 'x-test-auth': 'fail', 'x-test-reason': reason, 'x-test-detail': detail },
    });

  // 4 allowed tool calls: 2 known by `tools`, 1 known by a non-glob scope, 1 unknown.
  for (const tool of ['read_file', 'read_file', 'search', 'write_file'])
    t.truthy((await svc.check(ok(tool))).ok_response);
  // 1 tool deny by the policy.
  t.is(deniedStatus(await svc.check(ok('forbidden'))), 403);
  // Each failure reason once, from different clients; an unknown code counts as _other.
  const reasons = [
    ['invalid_api_key', 'key_unknown'],
    ['invalid_credentials', 'key_unknown'],
    ['invalid_token', 'token_expired'],
    ['invalid_api_key', 'keys_conflict'],
    ['something_new', 'key_unknown'],
  ];
  for (const [i, [r, d]] of reasons.entries())
    t.is(deniedStatus(await svc.check(fail(r!, `10.0.1.${i}`, '/mcp/files', d))), 401);
  // 2 requests without credentials.
  for (let i = 0; i < 2; i++)
    t.is(deniedStatus(await svc.check(checkRequest({ method: 'GET', path: '/mcp/files', source: '10.0.5.1' }))), 401);
  // A lockout: 3 failures, then 2 × 429.
  for (let i = 0; i < 3; i++) t.is(deniedStatus(await svc.check(fail('invalid_api_key', '10.0.2.1'))), 401);
  for (let i = 0; i < 2; i++) t.is(deniedStatus(await svc.check(fail('invalid_api_key', '10.0.2.1'))), 429);
  // A rate limit on the auth-off endpoint: 2 allowed, 1 × 429.
  const anon = () =>
    checkRequest({ path: '/mcp/open', source: '10.0.3.1', body: rpc('tools/call', { name: 'anything' }) });
  t.truthy((await svc.check(anon())).ok_response);
  t.truthy((await svc.check(anon())).ok_response);
  t.is(deniedStatus(await svc.check(anon())), 429);
  // A path on no endpoint, with a bad credential; and a request rejected before any endpoint.
  t.is(deniedStatus(await svc.check(fail('invalid_api_key', '10.0.4.1', '/elsewhere'))), 401);
  t.is(
    deniedStatus(await svc.check(checkRequest({ method: 'GET', path: '/mcp/files/../etc', source: '10.0.4.2' }))),
    400,
  );

  const res = await svc.http('/metrics');
  t.is(res.status, 200);
  const m = res.text;
  const c = (name: string, labels: Record<string, string>) => sample(m, `mcp_authz_${name}`, labels);

  t.is(c('check_total', { endpoint: 'files', decision: 'allow', status: '200' }), 4);
  t.is(c('check_total', { endpoint: 'files', decision: 'deny', status: '403' }), 1);
  t.is(c('check_total', { endpoint: 'files', decision: 'deny', status: '401' }), 5 + 2 + 3);
  t.is(c('check_total', { endpoint: 'files', decision: 'deny', status: '429' }), 2);
  t.is(c('check_total', { endpoint: 'open', decision: 'allow', status: '200' }), 2);
  t.is(c('check_total', { endpoint: 'open', decision: 'deny', status: '429' }), 1);
  t.is(c('check_total', { endpoint: '_unknown', decision: 'deny', status: '401' }), 1);
  t.is(c('check_total', { endpoint: '_unknown', decision: 'deny', status: '400' }), 1);
  t.is(sumOf(m, 'mcp_authz_check_total'), 4 + 1 + 5 + 2 + 3 + 2 + 3 + 2);

  t.is(
    c('auth_failures_total', {
      endpoint: 'files',
      method: 'api_key',
      reason: 'invalid_api_key',
      detail: 'key_unknown',
    }),
    1 + 3,
  );
  t.is(
    c('auth_failures_total', {
      endpoint: 'files',
      method: 'unknown',
      reason: 'invalid_credentials',
      detail: 'key_unknown',
    }),
    1,
  );
  t.is(
    c('auth_failures_total', { endpoint: 'files', method: 'oauth', reason: 'invalid_token', detail: 'token_expired' }),
    1,
  );
  t.is(
    c('auth_failures_total', {
      endpoint: 'files',
      method: 'api_key',
      reason: 'invalid_api_key',
      detail: 'keys_conflict',
    }),
    1,
  );
  t.is(c('auth_failures_total', { endpoint: 'files', method: 'unknown', reason: '_other', detail: 'key_unknown' }), 1);
  t.is(
    c('auth_failures_total', {
      endpoint: 'files',
      method: 'none',
      reason: 'authentication_required',
      detail: 'credential_missing',
    }),
    2,
  );
  t.is(
    c('auth_failures_total', {
      endpoint: '_unknown',
      method: 'api_key',
      reason: 'invalid_api_key',
      detail: 'key_unknown',
    }),
    1,
  );
  t.is(sumOf(m, 'mcp_authz_auth_failures_total'), 4 + 1 + 1 + 1 + 1 + 2 + 1);

  // Every deny by its code; a code outside the catalogue is one bounded label.
  t.is(c('denies_total', { endpoint: 'files', code: 'access_denied' }), 1);
  t.is(c('denies_total', { endpoint: 'files', code: 'invalid_api_key' }), 1 + 1 + 3);
  t.is(c('denies_total', { endpoint: 'files', code: 'authentication_required' }), 2);
  t.is(c('denies_total', { endpoint: 'files', code: 'too_many_requests' }), 2);
  t.is(c('denies_total', { endpoint: 'files', code: '_policy' }), 1, 'something_new');
  t.is(c('denies_total', { endpoint: 'open', code: 'rate_limited' }), 1);
  t.is(c('denies_total', { endpoint: '_unknown', code: 'invalid_path' }), 1);
  t.is(sumOf(m, 'mcp_authz_denies_total'), 1 + 5 + 2 + 3 + 2 + 1 + 2);

  t.is(c('rate_limited_total', { endpoint: 'files', limiter: 'failed_auth' }), 2);
  t.is(c('rate_limited_total', { endpoint: 'files', limiter: 'per_client' }), 0);
  t.is(c('rate_limited_total', { endpoint: 'open', limiter: 'per_client' }), 1);

  t.is(c('tool_decisions_total', { endpoint: 'files', tool: 'read_file', decision: 'allow' }), 2);
  t.is(c('tool_decisions_total', { endpoint: 'files', tool: 'search', decision: 'allow' }), 1);
  t.is(
    c('tool_decisions_total', { endpoint: 'files', tool: '_other', decision: 'allow' }),
    1,
    'write_file matches only a glob grant: not a known name',
  );
  t.is(c('tool_decisions_total', { endpoint: 'files', tool: '_other', decision: 'deny' }), 1);
  t.is(c('tool_decisions_total', { endpoint: 'open', tool: '_other', decision: 'allow' }), 2);
  t.false(m.includes('tool="forbidden"'), 'an unknown tool name never becomes a label');
  t.false(m.includes('tool="anything"'));

  t.is(c('check_duration_seconds_count', { decision: 'allow' }), 4 + 2);
  t.is(c('check_duration_seconds_count', { decision: 'deny' }), 1 + 5 + 2 + 3 + 2 + 1 + 2);
  t.is(
    c('check_duration_seconds_bucket', { decision: 'allow', le: '0.00005' }) !== undefined,
    true,
    'buckets start at 50 µs',
  );
  t.truthy(sample(m, 'process_cpu_user_seconds_total'), 'process defaults are exported');
});

function freshMetrics(extra: Record<string, unknown> = {}) {
  const config = validateConfig(
    {
      oauth: { issuers: [{ issuer: 'https://idp.example.com' }] },
      rateLimit: { redis: { url: 'redis://127.0.0.1:1' } },
      endpoints: [{ name: 'files', match: { pathPrefix: '/f' } }],
      ...extra,
    },
    'test',
    '/',
    {},
  );
  const registry = new Registry();
  return { registry, metrics: new ServiceMetrics(registry, config) };
}

test('phase events become the policy, JWKS, API key, dry-run and limiter store metrics', async (t) => {
  const { registry, metrics } = freshMetrics();
  const e = metrics.events;
  e.policyReload!('success', 'rev-1');
  e.policyReload!('failure', undefined);
  e.policyReload!('success', 'rev-2');
  e.policyEval!(0.00002);
  e.policyEval!(0.003);
  e.dryRunDeny!();
  e.dryRunDeny!();
  e.jwksRefresh!('https://idp.example.com', 'success');
  e.jwksRefresh!('https://idp.example.com', 'failure');
  e.jwksRefresh!('https://attacker.example', 'failure');
  e.keysReload!('success', 7);
  e.apiKeyUsed!('chatgpt-connector');
  e.apiKeyUsed!('chatgpt-connector');
  e.apiKeyUsed!('vscode');
  e.limiterStore!('shared');
  e.limiterStore!('local_fallback');
  e.limiterStore!('local_fallback');
  const m = await registry.metrics();
  const c = (name: string, labels: Record<string, string> = {}) => sample(m, `mcp_authz_${name}`, labels);
  t.is(c('policy_reloads_total', { result: 'success' }), 2);
  t.is(c('policy_reloads_total', { result: 'failure' }), 1);
  t.is(c('policy_info', { revision: 'rev-2' }), 1);
  t.is(c('policy_info', { revision: 'rev-1' }), undefined, 'only the revision in force is exported');
  t.is(c('policy_eval_duration_seconds_count'), 2);
  t.is(c('policy_eval_duration_seconds_bucket', { le: '0.00005' }), 1);
  t.is(c('dry_run_denies_total'), 2);
  t.is(c('jwks_refresh_total', { issuer: 'https://idp.example.com', result: 'success' }), 1);
  t.is(c('jwks_refresh_total', { issuer: 'https://idp.example.com', result: 'failure' }), 1);
  t.is(
    c('jwks_refresh_total', { issuer: '_other', result: 'failure' }),
    1,
    'an issuer not in the config is not a label',
  );
  t.is(c('api_keys_reloads_total', { result: 'success' }), 1);
  t.is(c('api_keys'), 7);
  t.is(c('api_key_requests_total', { key_id: 'chatgpt-connector' }), 2);
  t.is(c('api_key_requests_total', { key_id: 'vscode' }), 1);
  t.is(c('limiter_store_up', { store: 'redis' }), 0);
  t.is(c('limiter_store_fallbacks_total', { store: 'redis' }), 1, 'one outage is one fallback');
});

test('series for every endpoint exist at zero before the first Check', async (t) => {
  const { registry } = freshMetrics();
  const m = await registry.metrics();
  for (const endpoint of ['files', '_unknown']) {
    t.is(sample(m, 'mcp_authz_check_total', { endpoint, decision: 'allow', status: '200' }), 0);
    t.is(sample(m, 'mcp_authz_rate_limited_total', { endpoint, limiter: 'failed_auth' }), 0);
    t.is(
      sample(m, 'mcp_authz_auth_failures_total', {
        endpoint,
        method: endpoint === 'files' ? 'api_key' : 'unknown',
        reason: endpoint === 'files' ? 'invalid_api_key' : 'invalid_credentials',
        detail: 'key_expired',
      }),
      0,
    );
    t.is(
      sample(m, 'mcp_authz_auth_failures_total', {
        endpoint,
        method: 'none',
        reason: 'authentication_required',
        detail: 'credential_missing',
      }),
      0,
    );
    t.is(sample(m, 'mcp_authz_denies_total', { endpoint, code: 'access_denied' }), 0);
  }
  t.is(sample(m, 'mcp_authz_dry_run_denies_total'), 0);
  t.is(sample(m, 'mcp_authz_check_duration_seconds_count', { decision: 'allow' }), 0);
});

test("past 1,000 endpoints, an endpoint's series appear with its first event rather than at zero from start-up", async (t) => {
  const endpoints = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ name: `e${i}`, match: { pathPrefix: `/t/${i}/mcp` } }));
  const zeroes = async (n: number) => {
    const { registry } = freshMetrics({ endpoints: endpoints(n) });
    const m = await registry.metrics();
    const at = (endpoint: string) => sample(m, 'mcp_authz_check_total', { endpoint, decision: 'allow', status: '200' });
    return { first: at('e0'), last: at(`e${n - 1}`), unknown: at('_unknown') };
  };
  t.deepEqual(await zeroes(ZERO_SERIES_MAX_ENDPOINTS), { first: 0, last: 0, unknown: 0 });
  t.deepEqual(await zeroes(ZERO_SERIES_MAX_ENDPOINTS + 1), { first: undefined, last: undefined, unknown: 0 });
});

test('past 1,000 endpoints, a Check is still counted under its endpoint', async (t) => {
  const svc = await startTestService(
    {
      endpoints: Array.from({ length: ZERO_SERIES_MAX_ENDPOINTS + 1 }, (_, i) => ({
        name: `e${i}`,
        match: { pathPrefix: `/t/${i}/mcp` },
        auth: { apiKey: false, oauth: false },
      })),
    },
    { runtime: { overrides: { authorizer: toolPolicy } } },
  );
  t.teardown(() => svc.stop());
  const r = await svc.check(checkRequest({ path: '/t/1000/mcp', body: rpc('tools/call', { name: 'search' }) }));
  t.truthy(r.ok_response, JSON.stringify(r));
  const m = (await svc.http('/metrics')).text;
  t.is(sample(m, 'mcp_authz_check_total', { endpoint: 'e1000', decision: 'allow', status: '200' }), 1);
  t.is(sample(m, 'mcp_authz_check_total', { endpoint: 'e0', decision: 'allow', status: '200' }), undefined);
});

test('known tools are the endpoint tools list and non-glob tools: scopes', (t) => {
  t.deepEqual(
    [...knownTools({ tools: ['a'], scopes: ['tools:b', 'tools:c*', 'prompts:d', 'tools:', '*', 'tools:e?'] })].sort(),
    ['a', 'b'],
  );
});

test('build_info names the running version and Node.js, with value 1', async (t) => {
  const registry = new Registry();
  new ServiceMetrics(registry, validateConfig({ endpoints: [] }, 'test', '/', {}));
  const text = await registry.metrics();
  const version = (
    JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string }
  ).version;
  t.true(
    text.includes(`mcp_authz_build_info{version="${version}",node="${process.version}"} 1`),
    text
      .split('\n')
      .filter((l) => l.includes('build_info'))
      .join('\n'),
  );
});

test("dropped log lines are counted by log, from the sink the service logs to; the cluster primary adds its own to the workers' sums", async (t) => {
  const fd = openSync('/dev/null', 'w');
  t.teardown(() => closeSync(fd));
  // A sink whose buffer holds one line: the lines after it in the same turn are dropped.
  const sink = new LogSink({ fd, maxBufferedBytes: 4096, mode: 'sync' });
  const line = `${'x'.repeat(3000)}\n`;
  for (let i = 0; i < 3; i++) sink.writeDecision(line);
  for (let i = 0; i < 2; i++) sink.write(line);
  t.deepEqual(sink.dropped, { decision: 2, service: 2 });

  const registry = new Registry();
  new ServiceMetrics(registry, validateConfig({}, 'test', process.cwd(), {}), sink);
  const text = await registry.metrics();
  t.is(sample(text, 'mcp_authz_log_lines_dropped_total', { log: 'decision' }), 2);
  t.is(sample(text, 'mcp_authz_log_lines_dropped_total', { log: 'service' }), 2);
  sink.writeDecision(line); // still in the same turn: dropped too
  t.is(
    sample(await registry.metrics(), 'mcp_authz_log_lines_dropped_total', { log: 'decision' }),
    3,
    'a counter: each scrape adds what was dropped since the last',
  );

  const workers =
    '# HELP mcp_authz_log_lines_dropped_total x\n# TYPE mcp_authz_log_lines_dropped_total counter\nmcp_authz_log_lines_dropped_total{log="decision"} 10\nmcp_authz_log_lines_dropped_total{log="service"} 0\n';
  const merged = withPrimaryLogDrops(workers, sink);
  t.is(sample(merged, 'mcp_authz_log_lines_dropped_total', { log: 'decision' }), 13);
  t.is(sample(merged, 'mcp_authz_log_lines_dropped_total', { log: 'service' }), 2);
  t.is(withPrimaryLogDrops(workers, undefined), workers);
});
