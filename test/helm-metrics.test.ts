// Every metric the shipped dashboard and alerts query must exist in a real /metrics scrape
// of the service, else they show "no data" on day one.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHART, CI_VALUES, renderChart } from './helpers/helm.js';
import { startTestService, type TestService } from './helpers/service.js';

const dashboard = JSON.parse(readFileSync(join(CHART, 'dashboards', 'mcp-authz.json'), 'utf8'));
const rule = renderChart({ files: [CI_VALUES.find((f) => f.endsWith('ha-values.yaml'))!] }).get('PrometheusRule')!;

function exprs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => exprs(n, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if ((k === 'expr' || k === 'definition') && typeof v === 'string') out.push(v);
      else exprs(v, out);
    }
  }
  return out;
}

const queries = [...exprs(dashboard), ...exprs(rule.spec)];
// Names the service exports (its own and prom-client's process/Node defaults); `up` and
// label names are Prometheus's, not ours.
const names = [...new Set(queries.flatMap((q) => q.match(/\b(?:mcp_authz|process|nodejs)_[a-z0-9_]+/g) ?? []))].sort();

let svc: TestService;
let families: Map<string, string>;

test.before(async () => {
  svc = await startTestService({
    endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
  });
  const scrape = await svc.http('/metrics');
  if (scrape.status !== 200) throw new Error(`/metrics answered ${scrape.status}`);
  families = new Map([...scrape.text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
});
test.after.always(async () => svc?.stop());

test('the dashboard and alerts query every metric an SRE needs', (t) => {
  for (const family of [
    'mcp_authz_check_total',
    'mcp_authz_check_duration_seconds_bucket',
    'mcp_authz_auth_failures_total',
    'mcp_authz_rate_limited_total',
    'mcp_authz_policy_reloads_total',
    'mcp_authz_policy_info',
    'mcp_authz_jwks_refresh_total',
  ])
    t.true(names.includes(family), family);
});

for (const name of names) {
  const histogramPart = /_(bucket|sum|count)$/.exec(name);
  test(`${name}, queried by the dashboard or alerts, is in a real /metrics scrape`, (t) => {
    if (families.get(name) !== undefined) {
      t.not(families.get(name), 'histogram', `${name} is a histogram family; query ${name}_bucket`);
      return;
    }
    if (histogramPart) {
      const family = name.slice(0, -histogramPart[0].length);
      t.is(families.get(family), 'histogram', `${family} is not exported as a histogram`);
      return;
    }
    t.fail(`${name} is not exported by the service`);
  });
}
