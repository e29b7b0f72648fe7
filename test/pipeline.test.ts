// The pipeline's own decisions: direct answers are a third kind of outcome, not denies; and
// dry-run is applied once, at the edge, to the policy's own denies only.
import test from 'ava';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { PolicyRecord } from '../src/decision/context.js';
import type { Authorizer } from '../src/decision/phases.js';
import { validateConfig } from '../src/config/load.js';
import { deny } from '../src/contracts/outcome.js';
import { toRequest, type WireCheckRequest } from '../src/envoy/to-request.js';
import { createMetricsRegistry } from '../src/metrics/registry.js';
import { buildRuntime } from '../src/pipeline/build-runtime.js';
import { runCheck } from '../src/pipeline/pipeline.js';
import { TestAuthenticator } from './fixtures/test-authenticator.js';
import { keyPrincipal } from './helpers/policy.js';
import { sample, sumOf } from './helpers/prometheus.js';
import { checkRequest, deniedStatus, rpc, startTestService } from './helpers/service.js';

function capture(lines: string[]) {
  return pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
}

const decisionLines = (lines: string[]) => lines.map((l) => JSON.parse(l)).filter((l) => l.log === 'decision');

test('a discovery document is an answer: a 200 Envoy sends itself, counted and logged as "answer", not as a deny', async (t) => {
  const lines: string[] = [];
  const svc = await startTestService(
    {
      oauth: { issuers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/certs' }] },
      endpoints: [
        {
          name: 'files',
          match: { pathPrefix: '/mcp/files' },
          auth: { apiKey: false, oauth: true },
          resource: 'https://mcp.example.com/mcp/files',
        },
      ],
    },
    { logger: capture(lines) },
  );
  t.teardown(() => svc.stop());
  const res = await svc.check(checkRequest({ method: 'GET', path: '/.well-known/oauth-protected-resource/mcp/files' }));
  t.is(deniedStatus(res), 200);
  t.is(JSON.parse(res.denied_response!.body!).resource, 'https://mcp.example.com/mcp/files');
  t.not(res.status?.code ?? 0, 0, 'a gRPC OK would make Envoy forward the request instead of answering it');
  t.is(res.status?.message, 'protected_resource_metadata');

  const m = (await svc.http('/metrics')).text;
  t.is(sample(m, 'mcp_authz_check_total', { endpoint: '_unknown', decision: 'answer', status: '200' }), 1);
  t.is(sumOf(m, 'mcp_authz_check_total', { decision: 'deny' }), 0, 'not counted as a deny');
  t.is(sumOf(m, 'mcp_authz_denies_total'), 0);
  t.is(sample(m, 'mcp_authz_check_duration_seconds_count', { decision: 'answer' }), 1);

  const [line] = decisionLines(lines);
  t.like(line, { decision: 'answer', allow: false, status: 200, reason: 'protected_resource_metadata' });
});

/** An authorizer that denies with a record, as the policy phase does (failed: an evaluation error). */
function denyingPolicy(failed: boolean, calls: { n: number }): Authorizer {
  return {
    authorize: () => {
      calls.n++;
      const record: PolicyRecord = {
        input: '{}',
        result: { allow: false },
        revision: 'rev-1',
        durationNs: 1000,
        decision: 'deny',
        failed,
      };
      return {
        result: { allow: false, deny: failed ? deny('policy_error', 'failed') : deny('access_denied', 'not granted') },
        record,
      };
    },
  };
}

async function dryRunRuntime(authorizer: Authorizer, lines: string[], dryRunDenies: { n: number }) {
  const config = validateConfig(
    { policy: { dryRun: true }, endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' } }] },
    'test',
    process.cwd(),
    {},
  );
  const rt = await buildRuntime(
    { config, file: undefined, baseDir: process.cwd() },
    capture(lines),
    createMetricsRegistry(),
    {
      watch: false,
      events: { dryRunDeny: () => void dryRunDenies.n++ },
    },
  );
  rt.authenticator = new TestAuthenticator({ alice: keyPrincipal('alice-key', 'alice', []) });
  rt.authorizer = authorizer;
  return rt;
}

const call = () =>
  checkRequest({
    path: '/mcp/files',
    body: rpc('tools/call', { name: 'delete_file' }),
    headers: { 'x-test-principal': 'alice', 'x-mcp-user-id': 'forged' },
  }) as WireCheckRequest;

test("dry-run turns the policy's own deny into an allow once, at the edge: counted, logged with the real decision, identity headers still set", async (t) => {
  const lines: string[] = [];
  const dryRunDenies = { n: 0 };
  const calls = { n: 0 };
  const rt = await dryRunRuntime(denyingPolicy(false, calls), lines, dryRunDenies);
  t.teardown(() => rt.close());
  const trace = await runCheck(rt, toRequest, call());
  t.is(calls.n, 1);
  t.is(trace.outcome.kind, 'allow');
  if (trace.outcome.kind !== 'allow') return;
  t.is(trace.outcome.reason, 'dry_run');
  t.deepEqual(
    trace.outcome.headers.find((h) => h.name === 'x-mcp-user-id'),
    { name: 'x-mcp-user-id', value: 'alice', append: false },
  );
  t.true(trace.outcome.headersToRemove.includes('x-test-principal'), 'credentials are removed as on any allow');
  t.is(trace.policy?.decision, 'deny', 'the record keeps the real decision');
  t.is(dryRunDenies.n, 1);
  const parsed = lines.map((l) => JSON.parse(l));
  const info = parsed.filter((l) => l.msg === 'dry-run: the policy denied this request; allowed');
  t.is(info.length, 1);
  t.like(info[0], {
    endpoint: 'files',
    principal: 'alice-key',
    status: 403,
    reason: 'access_denied',
    policy_revision: 'rev-1',
  });
  t.like(decisionLines(lines)[0], { decision: 'allow', allow: true, reason: 'dry_run', policy_decision: 'deny' });
});

test('dry-run never allows a policy that failed, nor a deny made before the policy was asked', async (t) => {
  const lines: string[] = [];
  const dryRunDenies = { n: 0 };
  const rt = await dryRunRuntime(denyingPolicy(true, { n: 0 }), lines, dryRunDenies);
  t.teardown(() => rt.close());
  const failed = await runCheck(rt, toRequest, call());
  t.is(failed.outcome.kind, 'deny');
  t.is(failed.outcome.status, 503);
  const unauthenticated = await runCheck(
    rt,
    toRequest,
    checkRequest({
      path: '/mcp/elsewhere',
      body: rpc('ping'),
      headers: { 'x-test-principal': 'alice' },
    }) as WireCheckRequest,
  );
  t.is(unauthenticated.outcome.kind, 'deny', 'a 404 stays a 404');
  t.is(unauthenticated.policy, undefined);
  t.is(dryRunDenies.n, 0);
});
