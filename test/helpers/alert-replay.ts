// Evaluates the chart's alert rules, with the real promtool, on series a real service exported
// during a fault: each /metrics scrape the test took is placed at a minute of Prometheus time
// the test chooses (a scrape holds until the next one), labelled as the chart's ServiceMonitor
// would (job, namespace, pod), and `promtool test rules` checks which alerts fire when. So a
// fault test proves that the alert fires on what the service really exports — its metric
// names, label names and values — and not only on series written by hand
// (test/alerts/mcp-authz.promtool.yaml covers the rules' timing in detail).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CI_VALUES, renderChart, ROOT } from './helm.js';

const PROMTOOL = join(ROOT, '.tools', 'bin', 'promtool');
/** The chart's scrape labels for release "mcp" in namespace "mcp" (test/alerts.test.ts renders the same). */
const TARGET = { job: 'mcp-mcp-authz', namespace: 'mcp', pod: 'mcp-a' };

export interface Scrape {
  /** Minute of Prometheus time at which this scrape is placed. */
  minute: number;
  text: string;
}

export interface AlertExpectation {
  minute: number;
  alert: string;
  /** The label sets of the alerts firing then (empty: quiet). */
  firing: Record<string, string>[];
}

type Rule = { alert?: string; expr: string; annotations?: Record<string, string> };

function rules(): { groups: { name: string; rules: Rule[] }[] } {
  const rule = renderChart({ files: [CI_VALUES[0]!], setJson: { 'metrics.prometheusRule.enabled': true } }).get(
    'PrometheusRule',
  );
  if (!rule) throw new Error('no PrometheusRule rendered');
  // Without annotations, an expectation is the alert's labels alone.
  const groups = (rule.spec.groups as { name: string; rules: Rule[] }[]).map((g) => ({
    ...g,
    rules: g.rules.map(({ annotations: _a, ...r }) => r),
  }));
  return { groups };
}

/** name{labels} → value, for the families the rules read. */
function samples(text: string, families: Set<string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    if (!m || !families.has(m[1]!)) continue;
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map(
      (x) => [x[1]!, x[2]!] as const,
    );
    const all = [...labels, ...Object.entries(TARGET)].sort(([a], [b]) => a.localeCompare(b));
    out.set(`${m[1]}{${all.map(([k, v]) => `${k}="${v}"`).join(',')}}`, Number(m[3]));
  }
  return out;
}

/** Runs promtool on the scrapes; resolves with its verdict and output (which names the alerts that differ). */
export async function replayAlerts(
  scrapes: Scrape[],
  expectations: AlertExpectation[],
): Promise<{ ok: boolean; out: string }> {
  if (!existsSync(PROMTOOL))
    throw new Error('promtool is not installed: run `scripts/install-tools.sh promtool` (npm test does it in pretest)');
  const ruleDoc = rules();
  const families = new Set(
    ruleDoc.groups.flatMap((g) => g.rules.flatMap((r) => r.expr.match(/\bmcp_authz_[a-z0-9_]+/g) ?? [])),
  );
  const ordered = [...scrapes].sort((a, b) => a.minute - b.minute);
  const end = Math.max(...ordered.map((s) => s.minute), ...expectations.map((e) => e.minute));
  const parsed = ordered.map((s) => ({ minute: s.minute, values: samples(s.text, families) }));
  const series = new Set(parsed.flatMap((p) => [...p.values.keys()]));
  const input = [...series].map((key) => {
    const values: string[] = [];
    for (let minute = 0; minute <= end; minute++) {
      const last = parsed.filter((p) => p.minute <= minute && p.values.has(key)).at(-1);
      values.push(last ? String(last.values.get(key)) : '_');
    }
    return { series: key, values: values.join(' ') };
  });
  input.push({
    series: `up{job="${TARGET.job}",namespace="${TARGET.namespace}",pod="${TARGET.pod}"}`,
    values: `1x${end}`,
  });
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-alert-replay-'));
  writeFileSync(join(dir, 'rules.yaml'), stringify(ruleDoc));
  writeFileSync(
    join(dir, 'tests.yaml'),
    stringify({
      rule_files: ['rules.yaml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: input,
          alert_rule_test: expectations.map((e) => ({
            eval_time: `${e.minute}m`,
            alertname: e.alert,
            exp_alerts: e.firing.map((labels) => ({ exp_labels: labels })),
          })),
        },
      ],
    }),
  );
  return new Promise((resolve) => {
    execFile(PROMTOOL, ['test', 'rules', 'tests.yaml'], { cwd: dir }, (err, stdout, stderr) =>
      resolve({ ok: !err, out: `${stdout}${stderr}` }),
    );
  });
}
