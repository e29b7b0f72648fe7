// npm run bench:history [-- --prune]: the benchmark's history, one entry of headline figures per
// run, in bench/results/history.json (read by tests, e.g. the chart's memory sizing) and
// bench/results/history.md (for people). Entries already in history.json are kept, so a run's
// figures outlive its raw file; --prune then deletes every raw run but the latest of each kind
// (latest.json, the last throughput run, always stays). It also draws docs/images/performance.svg
// from latest.json.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const RESULTS = join(import.meta.dirname, '..', 'bench', 'results');
const OWN = new Set(['latest.json', 'history.json']);

/** One run's headline figures; `file` is its raw results file, which may since have been pruned. */
interface HistoryEntry {
  file: string;
  kind: string;
  startedAt: string;
  command: string;
  machine: { cpu: string; cores: number; node: string };
  /** Per scenario: what the kind measures (max rps, p99, µs per call, …). */
  scenarios?: Record<string, Record<string, number | string>>;
  /** Soaks: the run as a whole. */
  soak?: {
    passed: boolean;
    durationSec: number;
    workers: string;
    maxRps?: number;
    peakMiB: number;
    growthPct: number;
  };
}

type Json = Record<string, any>;

function throughputScenarios(r: Json): HistoryEntry['scenarios'] {
  const out: Record<string, Record<string, number | string>> = {};
  for (const run of r.runs ?? []) {
    const rps = run.maxRps ?? run.closed?.rps; // runs before interleaved rounds had one closed loop
    if (!rps) continue;
    const row = (out[run.scenario] ??= {});
    row[`${run.system} rps`] = rps;
    if (run.open?.latencyMs?.p99 !== undefined) row[`${run.system} p99 ms`] = run.open.latencyMs.p99;
    if (run.system === 'mcp-authz' && run.peakRssBytes)
      row['mcp-authz peak MiB'] = Math.round(run.peakRssBytes / 2 ** 20);
  }
  for (const [scenario, ratios] of Object.entries<Json>(r.ratios ?? {})) {
    if (out[scenario] && ratios.vsOpaEnvoyPlugin !== undefined) out[scenario]['×plugin'] = ratios.vsOpaEnvoyPlugin;
  }
  return out;
}

function perScenario(rows: Json[], key: (row: Json) => string, pick: (row: Json) => Record<string, number>) {
  const out: Record<string, Record<string, number | string>> = {};
  for (const row of rows ?? []) out[key(row)] = { ...out[key(row)], ...pick(row) };
  return out;
}

/** The headline figures of one raw results file. */
function entryOf(file: string, r: Json): HistoryEntry {
  const machine = { cpu: r.machine?.cpu ?? 'unknown', cores: r.machine?.cores ?? 0, node: r.machine?.node ?? '' };
  const base = { file, kind: r.kind, startedAt: r.startedAt, command: r.command, machine };
  switch (r.kind) {
    case 'throughput':
    case 'transports':
      return { ...base, scenarios: throughputScenarios(r) };
    case 'soak':
      return {
        ...base,
        soak: {
          passed: r.passed,
          durationSec: r.durationSec,
          // serve's default (one per core) unless --workers N: then N.
          workers: r.workers === undefined || typeof r.workers === 'string' ? 'default' : String(r.workers),
          ...(r.maxRps !== undefined ? { maxRps: r.maxRps } : {}),
          peakMiB: r.rss.peakMiB,
          growthPct: r.rss.growthPct,
        },
      };
    case 'in-process':
      return {
        ...base,
        scenarios: perScenario(
          r.scenarios,
          (x) => x.scenario,
          (x) => ({ 'µs per Check': x.totalUs }),
        ),
      };
    case 'in-process-interleaved':
      return {
        ...base,
        scenarios: perScenario(
          r.rows,
          (x) => x.scenario,
          (x) => ({ [`${x.variant} cpu µs`]: x.cpuUs }),
        ),
      };
    case 'ext-proc':
      return {
        ...base,
        scenarios: perScenario(
          r.runs,
          (x) => x.scenario,
          (x) => ({ 'per s': x.median.perSec }),
        ),
      };
    case 'fleet': {
      // One row per measurement: the revocation's latency, the quota's and the lockout's counts, the loss.
      const rows: Record<string, Record<string, number | string>> = {
        revocation: {
          'p50 ms': r.revocation.refusedAfterMs.p50,
          'p99 ms': r.revocation.refusedAfterMs.p99,
          'max ms': r.revocation.refusedAfterMs.max,
        },
        quota: { configured: r.quota.configured, allowed: r.quota.allowed },
        lockout: { configured: r.lockout.configured, allowed: r.lockout.tried },
      };
      if (r.loss)
        rows.loss = {
          'survivor errors': r.loss.survivorErrors,
          configured: r.loss.quota.configured,
          allowed: r.loss.quota.allowed,
        };
      return { ...base, scenarios: rows };
    }
    default:
      return base;
  }
}

function cell(v: number | string | undefined): string {
  return v === undefined ? '' : typeof v === 'number' ? String(v) : v;
}

function markdown(entries: HistoryEntry[]): string {
  const lines = [
    '# Benchmark history',
    '',
    'Generated by `npm run bench:history` from the runs in this folder, including runs whose raw',
    'files were since pruned (the latest run of each kind stays in full). How the figures are',
    'measured: [docs/performance.md](../../docs/performance.md).',
  ];
  for (const e of entries) {
    lines.push(
      '',
      `## ${e.startedAt} ${e.kind}`,
      '',
      `\`${e.command}\` — ${e.machine.cores} × ${e.machine.cpu}, Node ${e.machine.node} (\`${e.file}\`)`,
    );
    if (e.soak) {
      const s = e.soak;
      lines.push(
        '',
        `${s.passed ? 'passed' : 'FAILED'}: ${s.durationSec} s, workers ${s.workers}${s.maxRps ? `, max ${s.maxRps} rps` : ''}, peak RSS ${s.peakMiB} MiB, growth ${s.growthPct}%`,
      );
    }
    if (e.scenarios && Object.keys(e.scenarios).length) {
      const cols = [...new Set(Object.values(e.scenarios).flatMap((r) => Object.keys(r)))];
      lines.push('', `| scenario | ${cols.join(' | ')} |`, `| --- |${cols.map(() => ' ---: |').join('')}`);
      for (const [name, row] of Object.entries(e.scenarios))
        lines.push(`| ${name} | ${cols.map((c) => cell(row[c])).join(' | ')} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

const CHART_SYSTEMS: [system: string, label: string, colour: string][] = [
  ['null-http2', 'null server, bare node:http2 (ceiling)', '#c7c7c7'],
  ['mcp-authz', 'mcp-authz (2 workers)', '#2f6fb3'],
  ['opa-envoy-plugin', 'opa-envoy-plugin', '#e0892f'],
];

const esc = (s: string | number) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** docs/images/performance.svg: max calls/s per scenario and server of the latest throughput run. */
function chart(latest: Json): string {
  const scenarios = [...new Set<string>(latest.runs.map((r: Json) => r.scenario))];
  const rps = (system: string, scenario: string): number =>
    latest.runs.find((r: Json) => r.system === system && r.scenario === scenario)?.maxRps ?? 0;
  const max = Math.max(...scenarios.flatMap((s) => CHART_SYSTEMS.map(([sys]) => rps(sys, s))));
  const step = 10_000;
  const top = Math.ceil(max / step) * step;
  const [left, barH, gap, width] = [150, 14, 18, 520];
  const groupH = CHART_SYSTEMS.length * barH + gap;
  const height = 70 + scenarios.length * groupH + 40;
  const x = (v: number) => left + (v / top) * width;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + width + 80}" height="${height}" font-family="sans-serif" font-size="12">`,
    '<rect width="100%" height="100%" fill="#fff"/>',
    `<text x="10" y="20" font-size="14" font-weight="bold">Max Checks per second, ${esc(latest.machine.cores)} vCPUs (${esc(latest.startedAt.slice(0, 10))}, bench/results/latest.json)</text>`,
  ];
  CHART_SYSTEMS.forEach(([, label, colour], i) => {
    out.push(`<rect x="${10 + i * 250}" y="32" width="12" height="12" fill="${colour}"/>`);
    out.push(`<text x="${26 + i * 250}" y="42">${esc(label)}</text>`);
  });
  for (let v = 0; v <= top; v += step) {
    out.push(`<line x1="${x(v)}" y1="58" x2="${x(v)}" y2="${height - 30}" stroke="#eee"/>`);
    out.push(`<text x="${x(v)}" y="${height - 14}" text-anchor="middle" fill="#555">${v / 1000}k</text>`);
  }
  scenarios.forEach((s, i) => {
    const y0 = 64 + i * groupH;
    out.push(
      `<text x="${left - 8}" y="${y0 + (CHART_SYSTEMS.length * barH) / 2 + 4}" text-anchor="end">${esc(s)}</text>`,
    );
    CHART_SYSTEMS.forEach(([sys, , colour], j) => {
      const v = rps(sys, s);
      const y = y0 + j * barH;
      out.push(`<rect x="${left}" y="${y}" width="${x(v) - left}" height="${barH - 2}" fill="${colour}"/>`);
      out.push(`<text x="${x(v) + 4}" y="${y + barH - 4}" font-size="10" fill="#333">${v}</text>`);
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function rawRuns(): string[] {
  return readdirSync(RESULTS)
    .filter((f) => f.endsWith('.json') && !OWN.has(f))
    .sort();
}

function main(): void {
  const historyFile = join(RESULTS, 'history.json');
  const known: HistoryEntry[] = existsSync(historyFile) ? JSON.parse(readFileSync(historyFile, 'utf8')) : [];
  const byFile = new Map(known.map((e) => [e.file, e]));
  for (const f of rawRuns()) byFile.set(f, entryOf(f, JSON.parse(readFileSync(join(RESULTS, f), 'utf8'))));
  const entries = [...byFile.values()].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  writeFileSync(historyFile, `${JSON.stringify(entries, null, 2)}\n`);
  writeFileSync(join(RESULTS, 'history.md'), markdown(entries));
  const latest = JSON.parse(readFileSync(join(RESULTS, 'latest.json'), 'utf8'));
  writeFileSync(join(RESULTS, '..', '..', 'docs', 'images', 'performance.svg'), chart(latest));
  if (process.argv.includes('--prune')) {
    const latestOfKind = new Map<string, string>();
    for (const f of rawRuns()) latestOfKind.set(byFile.get(f)!.kind, f); // sorted by timestamp: the last wins
    const keep = new Set(latestOfKind.values());
    const latestText = readFileSync(join(RESULTS, 'latest.json'), 'utf8');
    for (const f of rawRuns()) {
      // latest.json is the last throughput run: its timestamped twin is the same bytes.
      const twin = readFileSync(join(RESULTS, f), 'utf8') === latestText;
      if (!keep.has(f) || twin) rmSync(join(RESULTS, f));
    }
  }
  process.stdout.write(`${entries.length} runs in bench/results/history.json and history.md\n`);
}

main();
