// Per-tool quotas (rateLimit.perTool; docs/quotas.md) through the real
// gRPC server with real API keys and the shipped policy: counted per principal and rule, only
// for requests the policy allowed, a batch's calls together; 429 quota_exceeded with
// Retry-After; metrics by endpoint and rule. The rates are so low (one call per 1000 s) that no
// bucket refills during a test: what is counted is the only thing that decides.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { ConfigError, validateConfig } from '../src/config/load.js';
import { compileGrant } from '../src/limits/grant-match.js';
import { keysFile, makeKey } from './helpers/auth-fixtures.js';
import { sample } from './helpers/prometheus.js';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  headerValue,
  rpc,
  startTestService,
  type CheckResponse,
  type TestService,
} from './helpers/service.js';

const SLOW = 0.001; // one call per 1000 s: nothing refills while a test runs
const keys = {
  a: makeKey({ id: 'agent-a', permissions: ['tools:*'] }),
  b: makeKey({ id: 'agent-b', permissions: ['tools:*'] }),
  narrow: makeKey({ id: 'narrow', permissions: ['tools:delete_a', 'tools:search'] }),
  batcher: makeKey({ id: 'batcher', permissions: ['tools:*'] }),
  reader: makeKey({ id: 'reader', permissions: ['*'] }),
};
let svc: TestService;

test.before(async () => {
  svc = await startTestService(
    {
      apiKeys: { file: 'keys.yaml' },
      rateLimit: {
        perTool: [
          { name: 'deletes', match: 'tools:delete_*', rps: SLOW, burst: 3 },
          { name: 'tools', match: 'tools:*', rps: SLOW, burst: 6 },
        ],
      },
      endpoints: [
        { name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true } },
        {
          name: 'own',
          match: { pathPrefix: '/mcp/own' },
          auth: { apiKey: true },
          rateLimit: { perTool: [{ name: 'reads', match: 'resources:file:///docs/*', rps: SLOW, burst: 1 }] },
        },
        {
          name: 'unlimited',
          match: { pathPrefix: '/mcp/unlimited' },
          auth: { apiKey: true },
          rateLimit: { perTool: [] },
        },
        { name: 'metered', match: { pathPrefix: '/mcp/metered' }, auth: { apiKey: true } },
        {
          name: 'fresh',
          match: { pathPrefix: '/mcp/fresh' },
          auth: { apiKey: true },
          rateLimit: { perTool: [{ name: 'deletes', match: 'tools:delete_*', rps: 1, burst: 3 }] },
        },
      ],
    },
    { files: { 'keys.yaml': keysFile(Object.values(keys)) } },
  );
});
test.after.always(async () => svc?.stop());

const send = (key: keyof typeof keys, body: string, path = '/mcp/files') =>
  svc.check(checkRequest({ path, body, headers: { 'x-api-key': keys[key].key } }));
const tool = (name: string, id = 1) => rpc('tools/call', { name }, id);
const batch = (...names: string[]) => JSON.stringify(names.map((n, i) => JSON.parse(tool(n, i + 1))));

function overQuota(t: any, res: CheckResponse, rule: string) {
  t.falsy(res.ok_response, 'never an allow');
  t.is(deniedStatus(res), 429);
  t.is(res.status?.code, 8, 'RESOURCE_EXHAUSTED');
  const body = deniedBody(res);
  t.is(body.error, 'quota_exceeded');
  t.is(body.quota, rule);
  const after = Number(headerValue(res.denied_response?.headers, 'retry-after'));
  t.true(Number.isInteger(after) && after >= 1 && after <= 1000, `Retry-After ${after}`);
  t.is(body.retry_after, after);
}

test('a rule limits the calls it names per principal: burst 3, then 429 quota_exceeded naming the rule', async (t) => {
  for (let i = 0; i < 3; i++) t.truthy((await send('a', tool('delete_file'))).ok_response, `delete ${i + 1}`);
  overQuota(t, await send('a', tool('delete_dir')), 'deletes');
  t.truthy((await send('a', tool('search'))).ok_response, 'other tools are still within the "tools" rule');
  t.truthy((await send('b', tool('delete_file'))).ok_response, 'another principal has its own quota');
});

test('every rule that names a call counts it: "tools:*" caps deletes and searches together', async (t) => {
  // reader: 6 calls fill "tools" (3 of them deletes, which also fill "deletes").
  for (const name of ['search', 'delete_a', 'search', 'delete_b', 'read', 'delete_c'])
    t.truthy((await send('reader', tool(name))).ok_response, name);
  overQuota(t, await send('reader', tool('search')), 'tools');
  overQuota(t, await send('reader', tool('delete_d')), 'deletes');
});

test('a call the policy denies costs no quota', async (t) => {
  for (let i = 0; i < 10; i++) t.is(deniedStatus(await send('narrow', tool('delete_b'))), 403, 'not granted');
  for (let i = 0; i < 3; i++)
    t.truthy(
      (await send('narrow', tool('delete_a'))).ok_response,
      `granted delete ${i + 1}: the ten denies counted nothing`,
    );
  overQuota(t, await send('narrow', tool('delete_a')), 'deletes');
});

test('a batch counts all its calls at once, and is refused whole when they do not fit; a refused batch spends nothing in any rule', async (t) => {
  t.truthy(
    (await send('batcher', batch('delete_a', 'delete_b'))).ok_response,
    'two deletes: 2 of 3 in "deletes", 2 of 6 in "tools"',
  );
  overQuota(t, await send('batcher', batch('search', 'delete_c', 'delete_d')), 'deletes');
  t.truthy(
    (await send('batcher', tool('delete_e'))).ok_response,
    'the refused batch took nothing from "deletes": its last call is still there',
  );
  overQuota(t, await send('batcher', tool('delete_f')), 'deletes');
  // "tools" fitted the refused batch's three calls but took none of them: 3 of 6 are used.
  for (let i = 0; i < 3; i++) t.truthy((await send('batcher', tool('search'))).ok_response, `search ${i + 1}`);
  overQuota(t, await send('batcher', tool('search')), 'tools');
});

test('a batch of exactly burst calls passes on a fresh bucket (rps 1, burst 3), a larger one is refused and spends nothing', async (t) => {
  // A fresh bucket is full whatever the time, so these hold however slowly the test runs.
  t.truthy(
    (await send('a', batch('delete_a', 'delete_b', 'delete_c'), '/mcp/fresh')).ok_response,
    'three calls at once: the burst',
  );
  overQuota(t, await send('b', batch('delete_a', 'delete_b', 'delete_c', 'delete_d'), '/mcp/fresh'), 'deletes');
  t.truthy(
    (await send('b', batch('delete_a', 'delete_b', 'delete_c'), '/mcp/fresh')).ok_response,
    'the refused batch of four took nothing',
  );
});

test('methods that name no tool are never counted', async (t) => {
  for (let i = 0; i < 20; i++) {
    for (const body of [
      rpc('tools/list', undefined, i),
      rpc(
        'initialize',
        { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
        i,
      ),
      JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    ]) {
      t.truthy((await send('b', body, '/mcp/unlimited')).ok_response);
      t.truthy((await send('b', body)).ok_response);
    }
  }
});

test("an endpoint's own rules replace the service's; [] turns quotas off", async (t) => {
  const read = (uri: string) => send('reader', rpc('resources/read', { uri }), '/mcp/own');
  t.truthy((await read('file:///docs/a.md')).ok_response);
  overQuota(t, await read('file:///docs/b.md'), 'reads');
  t.truthy((await read('file:///notes/a.md')).ok_response, 'a resource the rule does not name');
  for (let i = 0; i < 8; i++)
    t.truthy((await send('reader', tool('delete_x'), '/mcp/own')).ok_response, 'no "deletes" rule here');
  for (let i = 0; i < 8; i++) t.truthy((await send('reader', tool('delete_x'), '/mcp/unlimited')).ok_response);
});

test('metrics: quota_requests_total by endpoint and rule, rate_limited_total{limiter="per_tool"}, denies_total{code="quota_exceeded"}', async (t) => {
  const m = async () => (await svc.http('/metrics')).text;
  const q = (text: string, rule: string, result: string) =>
    sample(text, 'mcp_authz_quota_requests_total', { endpoint: 'metered', rule, result });
  const before = await m();
  t.is(q(before, 'deletes', 'allowed'), 0, 'series exist from start-up');
  t.is(
    sample(before, 'mcp_authz_quota_requests_total', { endpoint: 'unlimited', rule: 'deletes', result: 'allowed' }),
    undefined,
    'no series for a rule the endpoint does not have',
  );
  // Four deletes: three counted by both rules, the fourth refused by "deletes" and so never counted by "tools".
  for (let i = 0; i < 4; i++) await send('a', tool('delete_m'), '/mcp/metered');
  const after = await m();
  t.is(q(after, 'deletes', 'allowed'), 3);
  t.is(q(after, 'deletes', 'exceeded'), 1);
  t.is(q(after, 'tools', 'allowed'), 3);
  t.is(q(after, 'tools', 'exceeded'), 0);
  t.is(sample(after, 'mcp_authz_rate_limited_total', { endpoint: 'metered', limiter: 'per_tool' }), 1);
  t.is(sample(after, 'mcp_authz_denies_total', { endpoint: 'metered', code: 'quota_exceeded' }), 1);
});

test('config: rule names are unique labels, patterns are grants, burst needs rps', (t) => {
  const v = (raw: Record<string, unknown>) => validateConfig(raw, 'test.yaml', '/', {});
  const ep = (rateLimit: unknown) => ({ endpoints: [{ name: 'a', match: { pathPrefix: '/a' }, rateLimit }] });
  t.deepEqual(v({ rateLimit: { perTool: [{ name: 'w', match: 'tools:write_*', rps: 2 }] } }).rateLimit.perTool, [
    { name: 'w', match: 'tools:write_*', rps: 2, burst: 0 },
  ]);
  const fails = (raw: Record<string, unknown>, msg: RegExp) =>
    t.regex(t.throws(() => v(raw), { instanceOf: ConfigError })!.message, msg);
  fails(
    {
      rateLimit: {
        perTool: [
          { name: 'x', match: 'tools:*', rps: 1 },
          { name: 'x', match: 'tools:a', rps: 1 },
        ],
      },
    },
    /duplicate quota rule name "x"/,
  );
  fails({ rateLimit: { perTool: [{ name: 'bad name', match: 'tools:*', rps: 1 }] } }, /metric label/);
  fails({ rateLimit: { perTool: [{ name: 'x', match: 'delete_*', rps: 1 }] } }, /a grant is/);
  fails({ rateLimit: { perTool: [{ name: 'x', match: 'tools:*', rps: 0 }] } }, /perTool\.0\.rps/);
  fails(ep({ burst: 5 }), /burst needs rps/);
  t.deepEqual(v(ep({ rps: 1 })).endpoints[0]!.rateLimit, { rps: 1 });
});

// The quota patterns are grants: they must name exactly the calls the shipped policy's grants name.
test("quota patterns match calls exactly as the shipped policy's grants do (the shared decision cases)", (t) => {
  const dir = join(import.meta.dirname, '..', 'policies', 'cases');
  const cases = ['globs.json', 'tools.json'].flatMap((f) =>
    Object.values(JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, any[]>).flat(),
  );
  let compared = 0;
  for (const c of cases) {
    const grants =
      c.principal.method === 'api_key'
        ? c.principal.permissions
        : c.principal.method === 'oauth'
          ? c.principal.scopes
          : undefined;
    if (c.endpoint.owner !== undefined || !c.principal.authenticated || grants === undefined || c.calls.length !== 1)
      continue;
    const call = c.calls[0];
    const kind = (
      { 'tools/call': 'tools', 'prompts/get': 'prompts', 'resources/read': 'resources' } as Record<
        string,
        'tools' | 'prompts' | 'resources'
      >
    )[call.method];
    const target = call.name ?? call.uri;
    if (kind === undefined || typeof target !== 'string') continue;
    t.is(
      (grants as string[]).some((g) => compileGrant(g)(kind, target)),
      c.expect.allow,
      c.name,
    );
    compared++;
  }
  t.true(compared >= 30, `${compared} cases compared`);
});

test("property: a quota pattern matches exactly what the policy's anchored glob regex matches", (t) => {
  // The policy's form (grants.rego): literal runs quoted, joined by "(?s:.*)", anchored.
  const reference = (pattern: string, target: string) =>
    new RegExp(
      `^${pattern
        .split('*')
        .map((p) => p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
        .join('[\\s\\S]*')}$`,
      'u',
    ).test(target);
  const alphabet = fc.constantFrom('a', 'b', 'ab', '*', '.', '/', '\n', 'é');
  fc.assert(
    fc.property(
      fc.array(alphabet, { maxLength: 7 }).map((a) => a.join('')),
      fc.array(fc.constantFrom('a', 'b', '.', '/', '\n', 'é', 'ba'), { maxLength: 8 }).map((a) => a.join('')),
      (pattern, target) => {
        t.is(
          compileGrant(`tools:${pattern}`)('tools', target),
          reference(pattern, target),
          `${JSON.stringify(pattern)} ~ ${JSON.stringify(target)}`,
        );
        t.false(compileGrant(`tools:${pattern}`)('prompts', target), 'another kind never matches');
      },
    ),
    { numRuns: 5000 },
  );
});

test('dry-run: a policy deny turned into an allow goes upstream, so it is counted', async (t) => {
  const denied = makeKey({ id: 'dry', permissions: [] });
  const dry = await startTestService(
    {
      apiKeys: { file: 'keys.yaml' },
      policy: { dryRun: true },
      rateLimit: { perTool: [{ name: 'deletes', match: 'tools:delete_*', rps: SLOW, burst: 2 }] },
      endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true } }],
    },
    { files: { 'keys.yaml': keysFile([denied]) } },
  );
  t.teardown(() => dry.stop());
  const del = () =>
    dry.check(checkRequest({ path: '/mcp/files', body: tool('delete_file'), headers: { 'x-api-key': denied.key } }));
  t.truthy((await del()).ok_response);
  t.truthy((await del()).ok_response);
  overQuota(t, await del(), 'deletes');
});
