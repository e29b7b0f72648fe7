// The chart's alerts, checked and unit-tested by the real promtool (scripts/install-tools.sh
// promtool): the rendered PrometheusRule must load, every alert must fire and stay quiet
// where test/alerts/mcp-authz.promtool.yaml says, and every alert must point at its own
// section of docs/runbook.md.
import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { CI_VALUES, ROOT, renderChart } from './helpers/helm.js';

const PROMTOOL = join(ROOT, '.tools', 'bin', 'promtool');
const UNIT_TESTS = join(ROOT, 'test', 'alerts', 'mcp-authz.promtool.yaml');
const RUNBOOK = join(ROOT, 'docs', 'runbook.md');
const defaults = CI_VALUES[0]!;

function promtool(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  if (!existsSync(PROMTOOL))
    throw new Error('promtool is not installed: run `scripts/install-tools.sh promtool` (npm test does it in pretest)');
  return new Promise((resolve) => {
    execFile(PROMTOOL, args, { cwd }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}

function renderRules(setJson: Record<string, unknown> = {}): { groups: any[] } {
  const rule = renderChart({ files: [defaults], setJson: { 'metrics.prometheusRule.enabled': true, ...setJson } }).get(
    'PrometheusRule',
  );
  if (!rule) throw new Error('no PrometheusRule rendered');
  return { groups: rule.spec.groups };
}

/** A folder with the rendered rules (release "mcp", namespace "mcp", default thresholds) and the unit tests. */
function workdir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-alerts-'));
  writeFileSync(join(dir, 'rules.yaml'), stringify(renderRules()));
  copyFileSync(UNIT_TESTS, join(dir, 'tests.yaml'));
  return dir;
}

const alerts = renderRules().groups.flatMap((g) => g.rules as { alert: string; annotations: Record<string, string> }[]);

/** GitHub's anchor for a Markdown heading. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

test('promtool accepts the rendered alert rules', async (t) => {
  const dir = workdir();
  const r = await promtool(['check', 'rules', 'rules.yaml'], dir);
  t.is(r.code, 0, r.out);
  t.regex(r.out, new RegExp(`SUCCESS: ${alerts.length} rules found`));
});

test('every alert fires and stays quiet where its promtool unit tests say', async (t) => {
  const dir = workdir();
  const r = await promtool(['test', 'rules', 'tests.yaml'], dir);
  t.is(r.code, 0, r.out);
  t.regex(r.out, /SUCCESS/);
});

test('every alert has a unit test where it fires and one where it does not', (t) => {
  const doc = parseYaml(readFileSync(UNIT_TESTS, 'utf8')) as {
    tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
  };
  const cases = doc.tests.flatMap((g) => g.alert_rule_test ?? []);
  for (const { alert } of alerts) {
    t.true(
      cases.some((c) => c.alertname === alert && c.exp_alerts.length > 0),
      `${alert} never fires in the unit tests`,
    );
    t.true(
      cases.some((c) => c.alertname === alert && c.exp_alerts.length === 0),
      `${alert} is never shown quiet in the unit tests`,
    );
  }
});

test('the shipped alerts cover target down, policy and keys reloads, refused bundles, an unreachable bundle service, dropped decision logs, Redis fallback, the key store down or refusing, a refused endpoint store change, JWKS refresh, dropped log lines, denies, auth failures, lockouts, latency, lists not filtered, upstream credentials failing and user connections failing or unreadable, tool-definition drift and refused pins files', (t) => {
  t.deepEqual(alerts.map((a) => a.alert).sort(), [
    'McpAuthzAbsent',
    'McpAuthzAuthFailureSpike',
    'McpAuthzBundleRefused',
    'McpAuthzBundleServiceUnreachable',
    'McpAuthzDecisionLogsDropped',
    'McpAuthzDenyRateSpike',
    'McpAuthzEndpointUpdateRejected',
    'McpAuthzJwksRefreshFailing',
    'McpAuthzKeyStoreDown',
    'McpAuthzKeyStoreRefusing',
    'McpAuthzKeysReloadFailures',
    'McpAuthzLatencyP99High',
    'McpAuthzLimiterFallback',
    'McpAuthzListsUnfiltered',
    'McpAuthzListsWithheld',
    'McpAuthzLogLinesDropped',
    'McpAuthzNoPolicyLoaded',
    'McpAuthzPinsReloadFailures',
    'McpAuthzPolicyReloadFailures',
    'McpAuthzSustainedLockouts',
    'McpAuthzTargetDown',
    'McpAuthzToolDefinitionDrift',
    'McpAuthzUpstreamTokenFailing',
    'McpAuthzUserConnectionsFailing',
    'McpAuthzUserConnectionsUnreadable',
  ]);
});

test('every alert links its own section of docs/runbook.md', (t) => {
  const anchors = new Set([...readFileSync(RUNBOOK, 'utf8').matchAll(/^#{2,3} (.+)$/gm)].map((m) => slug(m[1]!)));
  const base = 'https://github.com/mcp-authz/mcp-authz/blob/main/docs/runbook.md';
  const seen = new Set<string>();
  for (const { alert, annotations } of alerts) {
    const url = annotations.runbook_url ?? '';
    t.true(url.startsWith(`${base}#`), `${alert}: ${url}`);
    const anchor = url.slice(base.length + 1);
    t.is(anchor, slug(alert), `${alert} links a section named after it`);
    t.true(anchors.has(anchor), `docs/runbook.md has no section "## ${alert}"`);
    t.false(seen.has(anchor), `${alert} shares its runbook section`);
    seen.add(anchor);
  }
  const custom = renderRules({ 'metrics.prometheusRule.runbookBaseUrl': 'https://wiki.example.com/mcp-authz' });
  t.is(
    custom.groups[0].rules[0].annotations.runbook_url,
    `https://wiki.example.com/mcp-authz#${slug(custom.groups[0].rules[0].alert)}`,
  );
});

test('the deny-ratio alert states its configured threshold as a percentage', (t) => {
  const summary = (ratio: number) =>
    renderRules({ 'metrics.prometheusRule.denyRatio': ratio }).groups[0].rules.find(
      (r: any) => r.alert === 'McpAuthzDenyRateSpike',
    ).annotations.summary as string;
  t.regex(summary(0.5), /alert above 50%\)$/);
  t.regex(summary(0.25), /alert above 25%\)$/);
  t.notRegex(summary(0.25), /\b0%/);
});
