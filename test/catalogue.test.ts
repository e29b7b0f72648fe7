// The decision-code catalogue is the one list of codes: what the service answers with, what
// docs/errors.md and docs/metrics.md say, and what the metrics label, all agree with it.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Registry } from 'prom-client';
import { ERRORS_DOC, renderErrorsDoc } from '../scripts/gen-docs.js';
import { validateConfig } from '../src/config/load.js';
import {
  AUTH_FAILURE_DETAILS,
  CODES,
  grpcCodeForStatus,
  isDenyCode,
  policyCode,
  type DecisionCode,
} from '../src/contracts/codes.js';
import { AUTH_FAILURE_REASONS, DECISIONS, ServiceMetrics } from '../src/metrics/service-metrics.js';
import { PrimaryMetrics } from '../src/metrics/primary-metrics.js';
import { TestAuthenticator } from './fixtures/test-authenticator.js';
import { checkRequest, deniedStatus, startTestService } from './helpers/service.js';

const METRICS_DOC = resolve(import.meta.dirname, '..', 'docs', 'metrics.md');

test('docs/errors.md is generated from the catalogue (npm run gen:docs)', (t) => {
  const doc = readFileSync(ERRORS_DOC, 'utf8');
  t.is(doc, renderErrorsDoc(doc), 'run npm run gen:docs');
  for (const code of Object.keys(CODES)) t.true(doc.includes(`| \`${code}\` |`), code);
  for (const detail of Object.keys(AUTH_FAILURE_DETAILS)) t.true(doc.includes(`| \`${detail}\` |`), detail);
});

test('every deny code has a 4xx or 5xx status and a non-OK gRPC code that matches it; an answer is never gRPC OK', (t) => {
  for (const code of Object.keys(CODES) as DecisionCode[]) {
    const e = CODES[code];
    t.not(e.grpc, 0, `${code}: gRPC OK would be an allow to Envoy`);
    if (e.kind === 'answer') continue;
    // A deny the MCP client must read as JSON-RPC (a URL elicitation) is a 200 with PERMISSION_DENIED.
    if ((e as { mcpAnswer?: true }).mcpAnswer) {
      t.is(e.status, 200, code);
      t.is(e.grpc, 7, code);
      continue;
    }
    t.true(e.status >= 400 && e.status <= 599, code);
    t.is(e.grpc, grpcCodeForStatus(e.status), `${code}: the gRPC code Envoy logs agrees with the HTTP status`);
  }
});

test('a policy may choose a short code of its own; anything else is not a code', (t) => {
  t.is(policyCode('access_denied'), 'access_denied');
  t.true(isDenyCode(policyCode('access_denied')!));
  t.is(policyCode('legal.hold-1'), 'legal.hold-1');
  t.false(isDenyCode('legal.hold-1'));
  t.false(isDenyCode('protected_resource_metadata'), 'an answer is not a deny');
  t.false(isDenyCode('constructor'), 'no inherited property is a code');
  for (const bad of ['', 'a b', 'x'.repeat(65), 'é', 'a"b']) t.is(policyCode(bad), undefined, JSON.stringify(bad));
});

/** The cells of the row of a markdown table whose first cell is `first`. */
function row(doc: string, first: string): string[] {
  const line = doc.split('\n').find((l) => l.startsWith(`| ${first} |`));
  if (!line) throw new Error(`docs/metrics.md has no row ${first}`);
  return line
    .split('|')
    .slice(1, -1)
    .map((c) => c.trim());
}

const ticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

test("docs/metrics.md lists the catalogue's label values and every metric with its labels", async (t) => {
  const doc = readFileSync(METRICS_DOC, 'utf8');
  t.deepEqual(ticked(row(doc, '`decision`')[1]!).sort(), [...DECISIONS].sort());
  t.deepEqual(ticked(row(doc, '`reason`')[1]!).sort(), [...AUTH_FAILURE_REASONS, '_other'].sort());
  t.regex(row(doc, '`code`')[1]!, /errors\.md/);
  t.true(ticked(row(doc, '`code`')[1]!).includes('_policy'));
  t.regex(row(doc, '`detail`')[1]!, /errors\.md/);

  // Every metric the service registers is documented with exactly its labels.
  const config = validateConfig(
    {
      rateLimit: { redis: { url: 'redis://127.0.0.1:1' } },
      endpoints: [{ name: 'files', match: { pathPrefix: '/f' } }],
    },
    'test',
    '/',
    {},
  );
  const registry = new Registry();
  new ServiceMetrics(registry, config);
  const metrics = [
    ...registry.getMetricsAsArray(),
    ...new PrimaryMetrics().registry.getMetricsAsArray(),
  ] as unknown as { name: string; labelNames: string[] }[];
  t.true(metrics.length > 10);
  for (const metric of metrics) {
    const cells = row(doc, `\`${metric.name}\``);
    const documented = cells[2] === '—' || cells[2] === '' ? [] : cells[2]!.split(',').map((s) => s.trim());
    t.deepEqual(documented.sort(), [...metric.labelNames].sort(), metric.name);
  }
});

test('every deny of a real service is counted by its code, with series for every code from start-up', async (t) => {
  const svc = await startTestService({ endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' } }] });
  t.teardown(() => svc.stop());
  t.is(deniedStatus(await svc.check(checkRequest({ method: 'GET', path: '/mcp/files' }))), 401);
  t.is(deniedStatus(await svc.check(checkRequest({ method: 'GET', path: '/mcp/files/../x' }))), 400);
  const m = (await svc.http('/metrics')).text;
  for (const code of Object.keys(CODES).filter(isDenyCode)) {
    for (const endpoint of ['files', '_unknown']) {
      const line = m
        .split('\n')
        .find((l) => l.startsWith(`mcp_authz_denies_total{endpoint="${endpoint}",code="${code}"}`));
      t.truthy(line, `${endpoint} ${code}`);
    }
  }
  t.true(m.includes('mcp_authz_denies_total{endpoint="files",code="authentication_required"} 1'));
  t.true(m.includes('mcp_authz_denies_total{endpoint="_unknown",code="invalid_path"} 1'));
  t.true(m.includes('mcp_authz_denies_total{endpoint="files",code="_policy"} 0'));
});

test('a code outside the catalogue, not chosen by the policy, fails the test service that produced it', async (t) => {
  const svc = await startTestService(
    { endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' } }] },
    { runtime: { overrides: { authenticator: new TestAuthenticator() } } },
  );
  await svc.check(
    checkRequest({
      method: 'GET',
      path: '/mcp/files',
      headers: { 'x-test-auth': 'fail', 'x-test-reason': 'made_up_code' },
    }),
  );
  t.deepEqual(svc.codes.unlisted, ['made_up_code (401, files)']);
  await t.throwsAsync(() => svc.stop(), { message: /made_up_code/ });
});
