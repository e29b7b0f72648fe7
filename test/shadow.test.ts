// Shadow policies against real opa-compiled bundles: the service decides with the policy in
// force, the shadow bundle is evaluated on the same input after the answer, and where the two
// disagree it is counted, logged and carried on the shipped decision-log event. A broken or
// missing shadow policy never changes an answer.
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { BundleServer, buildPolicyBundle } from './helpers/bundle-server.js';
import { sample } from './helpers/prometheus.js';
import { checkRequest, rpc, startTestService, type TestService } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

const ENDPOINTS = [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }];

function bundleFile(dir: string, name: string, allowedTool: string): string {
  const file = join(dir, `${name}.tar.gz`);
  writeFileSync(file, buildPolicyBundle({ revision: name, allowedTool }));
  return file;
}

function capturingLogger() {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

const call = (tool: string) =>
  checkRequest({ path: '/mcp/open', body: rpc('tools/call', { name: tool, arguments: {} }) });

const allowed = (r: { ok_response?: unknown }) => r.ok_response !== undefined;

async function settled(svc: TestService): Promise<void> {
  await svc.runtime.shadow!.settled();
}

test('a shadow policy that decides differently is counted, logged and shipped, and the answer is the enforced one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-shadow-'));
  const receiver = new BundleServer();
  await receiver.start();
  t.teardown(() => receiver.stop());
  const { logger, lines } = capturingLogger();
  const svc = await startTestService(
    {
      policy: { bundle: bundleFile(dir, 'enforced', 'search') },
      shadow: { bundle: bundleFile(dir, 'candidate', 'fetch') },
      services: { logs: { url: `http://127.0.0.1:${receiver.port}/mcp` } },
      decision_logs: { service: 'logs', reporting: { min_delay_seconds: 1, max_delay_seconds: 1 } },
      endpoints: ENDPOINTS,
    },
    { logger },
  );
  t.teardown(() => svc.stop());

  t.true(allowed(await svc.check(call('search'))), 'the enforced policy allows search');
  t.false(allowed(await svc.check(call('fetch'))), 'the enforced policy denies fetch, whatever the shadow says');
  t.false(allowed(await svc.check(call('other'))));
  await settled(svc);

  const m = (await svc.http('/metrics')).text;
  const n = (enforced: string, shadow: string) =>
    sample(m, 'mcp_authz_shadow_decisions_total', { endpoint: 'open', enforced, shadow });
  t.is(n('allow', 'deny'), 1);
  t.is(n('deny', 'allow'), 1);
  t.is(n('deny', 'deny'), 1);
  t.is(n('allow', 'allow'), 0);
  t.is(sample(m, 'mcp_authz_shadow_dropped_total'), 0);

  const differing = lines.filter((l) => l.msg === 'shadow decision differs');
  t.deepEqual(
    differing.map((l) => [l.tool, l.enforced.decision, l.shadow.decision]).sort(),
    [
      ['fetch', 'deny', 'allow'],
      ['search', 'allow', 'deny'],
    ],
    'one line per differing decision, none where they agree',
  );
  const search = differing.find((l) => l.tool === 'search')!;
  t.is(search.shadow.reason, 'access_denied');
  t.is(search.enforced.reason, null);
  t.is(search.log, 'decision');
  // The shadow line names the Check's decision line.
  const decision = lines.find((l) => l.msg === 'decision' && l.tool === 'search')!;
  t.is(search.decision_id, decision.decision_id);
  t.true(String(search.shadow.revision).length > 0);

  await waitFor('three events shipped', () => (receiver.logs.get('mcp') ?? []).length >= 3, 60_000);
  const events = receiver.logs.get('mcp')!;
  const byTool = (tool: string) => events.find((e) => e.mcp_authz.tool === tool)!;
  t.deepEqual(byTool('search').mcp_authz.shadow.enforced, { decision: 'allow', reason: null });
  t.is(byTool('search').mcp_authz.shadow.decision, 'deny');
  t.is(byTool('search').mcp_authz.shadow.reason, 'access_denied');
  t.is(byTool('fetch').mcp_authz.shadow.decision, 'allow');
  t.is(byTool('other').mcp_authz.shadow, undefined, 'agreeing decisions carry no shadow field');
  t.is(byTool('search').decision_id, search.decision_id);
});

test('a shadow policy that fails to load or to evaluate never changes an answer', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-shadow-'));
  const broken = join(dir, 'broken.tar.gz');
  writeFileSync(broken, 'not a bundle');
  const svc = await startTestService({
    policy: { bundle: bundleFile(dir, 'enforced', 'search') },
    shadow: { bundle: broken },
    endpoints: ENDPOINTS,
  });
  t.teardown(() => svc.stop());
  t.deepEqual(svc.runtime.notReady(), [], 'a shadow policy that does not load leaves the service ready');
  t.true(allowed(await svc.check(call('search'))));
  t.false(allowed(await svc.check(call('fetch'))));
  await settled(svc);
  const m = (await svc.http('/metrics')).text;
  t.is(
    sample(m, 'mcp_authz_shadow_decisions_total', { endpoint: 'open', enforced: 'allow', shadow: 'unavailable' }),
    1,
  );
  t.is(sample(m, 'mcp_authz_shadow_decisions_total', { endpoint: 'open', enforced: 'deny', shadow: 'unavailable' }), 1);
  t.is(sample(m, 'mcp_authz_shadow_policy_reloads_total', { result: 'failure' }), 1);
  t.is(
    sample(m, 'mcp_authz_policy_reloads_total', { result: 'failure' }),
    0,
    "the enforced policy's series stay its own",
  );
});

test('a shadow policy whose evaluation errors is counted as error; the answer is the enforced one', async (t) => {
  const rego = join(mkdtempSync(join(tmpdir(), 'mcp-authz-shadow-rego-')), 'p.rego');
  // Two values for one complete rule: an evaluation error in OPA's WASM.
  writeFileSync(
    rego,
    [
      'package mcp.authz',
      'import rego.v1',
      'decision := {"allow": true} if input.mcp.calls[0].name == "search"',
      'decision := {"allow": false} if input.mcp.calls[0].name == "search"',
      '',
    ].join('\n'),
  );
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-shadow-'));
  const svc = await startTestService({
    policy: { bundle: bundleFile(dir, 'enforced', 'search') },
    shadow: { rego: join(rego, '..') },
    endpoints: ENDPOINTS,
  });
  t.teardown(() => svc.stop());
  t.true(allowed(await svc.check(call('search'))));
  await settled(svc);
  const m = (await svc.http('/metrics')).text;
  t.is(sample(m, 'mcp_authz_shadow_decisions_total', { endpoint: 'open', enforced: 'allow', shadow: 'error' }), 1);
});

test('a full shadow queue drops and counts; every Check is still answered by the enforced policy', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-shadow-'));
  const svc = await startTestService({
    policy: { bundle: bundleFile(dir, 'enforced', 'search') },
    shadow: { bundle: bundleFile(dir, 'candidate', 'fetch'), queueSize: 1 },
    endpoints: ENDPOINTS,
  });
  t.teardown(() => svc.stop());
  // The queue is drained only after the current turn of the event loop: Checks decided in one turn overflow it.
  const rt = svc.runtime;
  const { runCheck } = await import('../src/pipeline/pipeline.js');
  const { toRequest } = await import('../src/envoy/to-request.js');
  const { sampleToWire } = await import('../src/cli/wire-request.js');
  const wire = sampleToWire({
    method: 'POST',
    path: '/mcp/open',
    headers: [['content-type', 'application/json']],
    body: rpc('tools/call', { name: 'search' }),
  });
  const traces = await Promise.all([1, 2, 3, 4].map(() => runCheck(rt, toRequest, wire)));
  t.true(traces.every((tr) => tr.outcome.allow));
  await settled(svc);
  t.deepEqual(
    traces.map((tr) => tr.shadow?.state),
    ['done', 'dropped', 'dropped', 'dropped'],
  );
  const m = (await svc.http('/metrics')).text;
  t.is(sample(m, 'mcp_authz_shadow_dropped_total'), 3);
});

test('a shadow policy that reads every grant is given every grant when the policy in force reads only the applicable ones', async (t) => {
  const { createHash } = await import('node:crypto');
  const { regoDir } = await import('./helpers/policy.js');
  const key = 'mcp_shadow_grants_0123456789abcdefghijklmnopqrstuvwxyz';
  const grants = ['tools:search', ...Array.from({ length: 20 }, (_, i) => `tools:t${i}`)];
  // Denies unless it sees all 21 grants: the shipped policy in force is given one for tools/call search.
  const rego = regoDir({
    'p.rego': `package mcp.authz\n\ndecision := {"allow": count(input.principal.permissions) == ${grants.length}}\n`,
  });
  const { logger, lines } = capturingLogger();
  const svc = await startTestService(
    {
      shadow: { rego },
      apiKeys: { keys: [{ id: 'k', sha256: createHash('sha256').update(key).digest('hex'), permissions: grants }] },
      endpoints: [{ name: 'keyed', match: { pathPrefix: '/mcp/keyed' }, auth: { apiKey: true, oauth: false } }],
    },
    { logger },
  );
  t.teardown(() => svc.stop());
  const r = await svc.check(
    checkRequest({ path: '/mcp/keyed', body: rpc('tools/call', { name: 'search' }), headers: { 'x-api-key': key } }),
  );
  t.true(allowed(r));
  await settled(svc);
  const m = (await svc.http('/metrics')).text;
  t.is(sample(m, 'mcp_authz_shadow_decisions_total', { endpoint: 'keyed', enforced: 'allow', shadow: 'allow' }), 1);
  t.is(lines.filter((l) => l.msg === 'shadow decision differs').length, 0);
});
