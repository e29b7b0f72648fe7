// The Grafana dashboard: every panel's PromQL parses (the real promtool), and names only
// metrics and labels the service exports, so no panel shows "no data" for a typo; and the
// panels an operator asked for are there.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { validateConfig } from '../src/config/load.js';
import { createMetricsRegistry } from '../src/metrics/registry.js';
import { ServiceMetrics } from '../src/metrics/service-metrics.js';
import { CHART, ROOT } from './helpers/helm.js';

const PROMTOOL = join(ROOT, '.tools', 'bin', 'promtool');
const dashboard = JSON.parse(readFileSync(join(CHART, 'dashboards', 'mcp-authz.json'), 'utf8'));
interface Panel {
  id: number;
  title: string;
  type: string;
  targets?: { expr: string }[];
}
const panels = (dashboard.panels as Panel[]).filter((p) => p.type !== 'row');

/** Grafana's variables as Prometheus sees them once Grafana has substituted them. */
const substituted = (expr: string) =>
  expr.replaceAll('$namespace', '.*').replaceAll('$job', '.*').replaceAll('$__rate_interval', '1m');

function promtool(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  if (!existsSync(PROMTOOL)) throw new Error('promtool is not installed: run `scripts/install-tools.sh promtool`');
  return new Promise((resolve) =>
    execFile(PROMTOOL, args, { cwd }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    ),
  );
}

/** Each expression as a recording rule, so `promtool check rules` parses them all. */
function rulesFile(exprs: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-dashboard-'));
  writeFileSync(
    join(dir, 'rules.yaml'),
    stringify({
      groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:panel_${i}`, expr })) }],
    }),
  );
  return dir;
}

const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

test("every panel's PromQL parses with the real promtool; a broken one does not", async (t) => {
  t.true(exprs.length >= 20);
  const ok = await promtool(['check', 'rules', 'rules.yaml'], rulesFile(exprs.map((e) => substituted(e.expr))));
  t.is(ok.code, 0, ok.out);
  t.regex(ok.out, new RegExp(`SUCCESS: ${exprs.length} rules found`));
  const bad = await promtool(
    ['check', 'rules', 'rules.yaml'],
    rulesFile([substituted(exprs[0]!.expr).replace('sum by (', 'sum by ((')]),
  );
  t.is(bad.code, 1);
});

// The service's metric families and their labels, from its own registry as serve builds it.
const registry = createMetricsRegistry();
new ServiceMetrics(
  registry,
  validateConfig(
    { endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }] },
    'test',
    '/',
    {},
  ),
);
const families = new Map<string, string[]>(
  (registry.getMetricsAsArray() as unknown as { name: string; labelNames?: string[] }[]).map((m) => [
    m.name,
    m.labelNames ?? [],
  ]),
);
/** Labels Prometheus adds to every scraped series (the chart's ServiceMonitor relabels namespace and pod). */
const TARGET_LABELS = ['namespace', 'job', 'pod', 'instance', 'service', 'container', 'endpoint'];

function labelsOf(metric: string): string[] | undefined {
  const histogram = /^(.*)_(bucket|sum|count)$/.exec(metric);
  if (families.has(metric)) return families.get(metric);
  if (histogram && families.has(histogram[1]!))
    return [...families.get(histogram[1]!)!, ...(histogram[2] === 'bucket' ? ['le'] : [])];
  return undefined;
}

test("every metric a panel queries is one the service exports, and every label it groups or matches by is one of that metric's", (t) => {
  for (const { panel, expr } of exprs) {
    const metrics = [...new Set(expr.match(/\b(?:mcp_authz|process|nodejs)_[a-z0-9_]+/g) ?? [])];
    t.true(metrics.length > 0, panel);
    const known = metrics.map((m) => [m, labelsOf(m)] as const);
    for (const [m, labels] of known) t.truthy(labels, `${panel}: ${m} is not exported by the service`);
    const allowed = new Set([...TARGET_LABELS, ...known.flatMap(([, l]) => l ?? [])]);
    const used = [
      ...[...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim())),
      ...[...expr.matchAll(/[{,]\s*([a-z_]+)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]!),
    ];
    for (const label of used) t.true(allowed.has(label), `${panel}: label ${label} is not on ${metrics.join(', ')}`);
  }
});

test('the dashboard has panels for deny codes, per-tool quotas, list filtering, the Redis fallback and both reloads', (t) => {
  const query = (title: RegExp) =>
    panels
      .find((p) => title.test(p.title))
      ?.targets?.map((x) => x.expr)
      .join('\n') ?? '';
  t.regex(query(/^Denies by code$/), /sum by \(code\) \(rate\(mcp_authz_denies_total/);
  t.regex(query(/^Per-tool quotas$/), /mcp_authz_quota_requests_total/);
  const lists = query(/^List filtering/);
  for (const m of [
    'mcp_authz_list_items_hidden_total',
    'mcp_authz_list_items_shown_total',
    'mcp_authz_list_responses_total',
  ])
    t.true(lists.includes(m), m);
  const redis = query(/^Redis limiter store$/);
  t.regex(redis, /mcp_authz_limiter_store_up/);
  t.regex(redis, /mcp_authz_limiter_store_fallbacks_total/);
  const reloads = query(/^Reloads: policy and API keys$/);
  t.regex(reloads, /mcp_authz_policy_reloads_total/);
  t.regex(reloads, /mcp_authz_api_keys_reloads_total/);
  // Panels never overlap on Grafana's 24-column grid.
  const cells = new Set<string>();
  for (const p of dashboard.panels as { title: string; gridPos: { x: number; y: number; w: number; h: number } }[]) {
    const { x, y, w, h } = p.gridPos;
    t.true(x + w <= 24, p.title);
    for (let i = x; i < x + w; i++)
      for (let j = y; j < y + h; j++) {
        t.false(cells.has(`${i},${j}`), `${p.title} overlaps another panel at ${i},${j}`);
        cells.add(`${i},${j}`);
      }
  }
});
