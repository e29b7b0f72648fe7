// Renders the Grafana dashboard (helm/mcp-authz/dashboards/mcp-authz.json) with real data into
// docs/images/dashboard.png, for the docs. Grafana is not packaged where this runs, so the
// picture is honest about what it is: the dashboard's own panels, layout and PromQL, evaluated
// by a real Prometheus that scraped a real mcp-authz (Redis-backed limits, per-tool quotas,
// ext_proc list filtering) under scripted traffic — allows, denies of many codes, quota and rate
// limits, list responses, key and policy reloads good and bad, a Redis outage — drawn by the
// small SVG renderer below and screenshotted by Debian's chromium through playwright-core.
//
// Run: scripts/install-tools.sh prometheus redis chromium && npx tsx scripts/render-dashboard.ts
// (about three minutes; nothing listens beyond 127.0.0.1; everything it starts is stopped).
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { keysFile, mintKey } from '../test/e2e/api-keys.js';
import {
  processExchange,
  requestBody,
  requestHeaders,
  responseBody,
  responseHeaders,
} from '../test/helpers/ext-proc.js';
import { freePort, startRedis } from '../test/helpers/redis.js';
import { waitFor } from '../test/helpers/wait.js';
import { checkRequest, rpc, startTestService } from '../test/helpers/service.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'docs', 'images', 'dashboard.png');
const SCRAPE_SECONDS = 1;
const RUN_SECONDS = Number(process.env.RUN_SECONDS ?? 150);

interface Target {
  expr: string;
  legendFormat?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  fieldConfig?: { defaults?: { unit?: string } };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const dashboard = JSON.parse(
    readFileSync(join(ROOT, 'helm', 'mcp-authz', 'dashboards', 'mcp-authz.json'), 'utf8'),
  ) as { title: string; panels: Panel[] };
  const stops: (() => Promise<unknown> | unknown)[] = [];
  try {
    // --- the service: Redis-backed limits, quotas, an owned endpoint, the policy from a .rego folder (so it can reload).
    const redis = await startRedis();
    stops.push(() => redis.stop());
    const alice = mintKey({ id: 'alice-laptop', name: 'Alice', userId: 'alice', role: 'user', permissions: ['*'] });
    const bob = mintKey({
      id: 'bob-ci',
      name: 'Bob',
      userId: 'bob',
      role: 'user',
      permissions: ['tools:search', 'tools:read_*'],
    });
    const pub = mintKey({ id: 'public-bot', name: 'Public', role: 'user', permissions: ['tools:search'] });
    const extra = mintKey({ id: 'carol', name: 'Carol', userId: 'carol', role: 'user', permissions: ['tools:search'] });
    const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-dashboard-'));
    cpSync(join(ROOT, 'policies', 'mcp'), join(dir, 'rego'), {
      recursive: true,
      filter: (s) => !s.endsWith('_test.rego'),
    });
    const svc = await startTestService(
      {
        apiKeys: { file: 'keys.yaml', pollIntervalMs: 500 },
        policy: { rego: 'rego' },
        rateLimit: {
          perClient: { rps: 20, burst: 20 },
          perTool: [{ name: 'deletes', match: 'tools:delete_*', rps: 0.5, burst: 1 }],
          redis: { url: redis.url },
        },
        endpoints: [
          {
            name: 'files',
            match: { pathPrefix: '/mcp/files' },
            auth: { apiKey: true, oauth: false },
            tools: ['search', 'read_file', 'delete_file'],
          },
          { name: 'alice', match: { pathPrefix: '/mcp/alice' }, owner: 'alice', auth: { apiKey: true, oauth: false } },
          { name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } },
        ],
      },
      { dir, files: { 'keys.yaml': keysFile([alice, bob, pub]) } },
    );
    stops.push(() => svc.stop());

    // --- Prometheus scraping it every second.
    const promPort = await freePort();
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global: { scrape_interval: ${SCRAPE_SECONDS}s, evaluation_interval: ${SCRAPE_SECONDS}s }\nscrape_configs:\n  - job_name: mcp-authz\n    static_configs: [{ targets: ['127.0.0.1:${svc.httpPort}'], labels: { namespace: mcp, pod: mcp-authz-7c9f-abcde } }]\n`,
    );
    const prom: ChildProcess = spawn(
      join(ROOT, '.tools', 'bin', 'prometheus'),
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: 'ignore' },
    );
    stops.push(() => prom.kill('SIGTERM'));
    const api = `http://127.0.0.1:${promPort}/api/v1`;
    await waitFor(
      'prometheus',
      async () => (await fetch(`${api}/query?query=up`).catch(() => undefined))?.ok === true,
      60_000,
      200,
    );
    const started = Date.now() / 1000;

    // --- traffic, in phases.
    const grpcAddress = `127.0.0.1:${svc.grpcPort}`;
    const call = (path: string, key: string | undefined, body: string, source = '10.1.2.3') =>
      svc
        .check(
          checkRequest({
            path,
            body,
            source,
            headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) },
          }),
        )
        .catch(() => undefined);
    const list = (key: string) => {
      const body = rpc('tools/list', undefined, 7);
      return processExchange(grpcAddress, [
        requestHeaders({ path: '/mcp/files', headers: [['x-api-key', key]], body, source: '10.1.2.9:40000' }),
        requestBody(body),
        responseHeaders(200, [['content-type', 'application/json']]),
        responseBody(
          JSON.stringify({
            jsonrpc: '2.0',
            id: 7,
            result: { tools: [{ name: 'search' }, { name: 'read_file' }, { name: 'delete_file' }, { name: 'admin' }] },
          }),
          true,
        ),
      ]).catch(() => undefined);
    };
    const tool = (name: string) => rpc('tools/call', { name, arguments: {} });
    const end = Date.now() + RUN_SECONDS * 1000;
    let tick = 0;
    const events: [number, () => Promise<void> | void][] = [
      [0.25, () => writeFileSync(join(dir, 'keys.yaml'), keysFile([alice, bob, pub, extra]))], // a key added
      [0.35, () => writeFileSync(join(dir, 'keys.yaml'), 'keys: [ {id: broken')], // a bad reload, kept the previous keys
      [0.4, () => writeFileSync(join(dir, 'keys.yaml'), keysFile([alice, bob, pub, extra]))],
      [0.45, () => redis.stop()], // Redis goes away: limits fall back to local counters
      [0.6, () => redis.start()],
      [
        0.7,
        () =>
          writeFileSync(
            join(dir, 'rego', 'zz_reload.rego'),
            'package mcp.authz\n\n# a new revision\nrevision_note := "reloaded"\n',
          ),
      ], // a policy reload
      [0.8, () => writeFileSync(join(dir, 'rego', 'zz_reload.rego'), 'package mcp.authz\n\nthis is not rego\n')], // a failed one
      [
        0.85,
        () => writeFileSync(join(dir, 'rego', 'zz_reload.rego'), 'package mcp.authz\n\nrevision_note := "fixed"\n'),
      ],
    ];
    while (Date.now() < end) {
      const phase = 1 - (end - Date.now()) / (RUN_SECONDS * 1000);
      while (events.length > 0 && events[0]![0] <= phase) await events.shift()![1]();
      const burst = 6 + Math.round(4 * Math.sin(tick / 5));
      const work: Promise<unknown>[] = [];
      for (let i = 0; i < burst; i++) {
        work.push(call('/mcp/files', bob.key, tool(i % 3 === 0 ? 'read_file' : 'search')));
        work.push(call('/mcp/open', undefined, rpc('ping')));
        if (i % 2 === 0) work.push(call('/mcp/alice', alice.key, tool('search')));
      }
      if (tick % 2 === 0) work.push(call('/mcp/files', bob.key, tool('delete_file'))); // access_denied
      if (tick % 3 === 0) work.push(call('/mcp/alice', pub.key, rpc('tools/list'))); // a public key on a private endpoint
      if (tick % 2 === 1) work.push(call('/mcp/files', undefined, rpc('tools/list'))); // authentication_required
      if (tick % 4 === 0) work.push(call('/mcp/files', `mcp_${'x'.repeat(47)}`, rpc('tools/list'), '198.51.100.7')); // invalid_api_key
      if (tick % 5 === 0) work.push(call('/mcp/files', bob.key, '{"jsonrpc":')); // invalid_json
      work.push(call('/mcp/alice', alice.key, tool('delete_file')), call('/mcp/alice', alice.key, tool('delete_file'))); // the quota
      if (tick % 10 < 2)
        for (let i = 0; i < 30; i++) work.push(call('/mcp/open', undefined, rpc('ping'), '203.0.113.50')); // one client over its rate
      for (let i = 0; i < 2; i++) work.push(list(i === 0 ? bob.key : pub.key));
      await Promise.all(work);
      tick++;
      await sleep(250);
    }
    await sleep(3 * SCRAPE_SECONDS * 1000);
    const finished = Date.now() / 1000;

    // --- every panel's queries over the run, as Grafana would send them.
    const rateInterval = `${4 * SCRAPE_SECONDS}s`;
    const step = 2;
    const results = new Map<number, { name: string; points: [number, number][] }[]>();
    for (const p of dashboard.panels) {
      if (p.type === 'row') continue;
      const series: { name: string; points: [number, number][] }[] = [];
      for (const t of p.targets ?? []) {
        const expr = t.expr
          .replaceAll('$namespace', '.*')
          .replaceAll('$job', '.*')
          .replaceAll('$__rate_interval', rateInterval);
        const url =
          p.type === 'table'
            ? `${api}/query?query=${encodeURIComponent(expr)}&time=${finished}`
            : `${api}/query_range?query=${encodeURIComponent(expr)}&start=${started}&end=${finished}&step=${step}`;
        const res = (await (await fetch(url)).json()) as {
          status: string;
          error?: string;
          data: { result: { metric: Record<string, string>; values?: [number, string][]; value?: [number, string] }[] };
        };
        if (res.status !== 'success') throw new Error(`${p.title}: ${expr}: ${res.error}`);
        for (const r of res.data.result) {
          const name =
            (t.legendFormat ?? '').replace(/\{\{\s*(\w+)\s*\}\}/g, (_, l: string) => r.metric[l] ?? '') ||
            JSON.stringify(r.metric);
          const values = r.values ?? (r.value ? [r.value] : []);
          series.push({
            name,
            points: values
              .map(([ts, v]) => [ts - started, Number(v)] as [number, number])
              .filter(([, v]) => Number.isFinite(v)),
          });
        }
      }
      results.set(p.id, series);
    }

    // --- the page, and its picture.
    const html = renderPage(dashboard.title, dashboard.panels, results, finished - started);
    writeFileSync(join(dir, 'dashboard.html'), html);
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: ['--no-sandbox'],
    });
    stops.push(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1 });
    await page.goto(`file://${join(dir, 'dashboard.html')}`);
    mkdirSync(dirname(OUT), { recursive: true });
    await page.screenshot({ path: `${OUT}.tmp.png`, fullPage: true });
    renameSync(`${OUT}.tmp.png`, OUT);
    process.stdout.write(
      `wrote ${OUT} (${results.size} panels, ${Math.round(finished - started)} s of data; page: ${join(dir, 'dashboard.html')})\n`,
    );
  } finally {
    for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => undefined);
  }
}

// ---- the renderer: Grafana's 24-column grid (30 px per row unit), dark theme, SVG lines.

const COLORS = [
  '#73bf69',
  '#f2cc0c',
  '#8ab8ff',
  '#ff780a',
  '#f2495c',
  '#5794f2',
  '#b877d9',
  '#fade2a',
  '#37872d',
  '#c4162a',
  '#1f60c4',
  '#8f3bb8',
];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function format(v: number, unit: string | undefined): string {
  if (unit === 's')
    return v >= 1 ? `${v.toFixed(2)} s` : v >= 1e-3 ? `${(v * 1e3).toFixed(2)} ms` : `${(v * 1e6).toFixed(0)} µs`;
  if (unit === 'bytes') return `${(v / 1048576).toFixed(1)} MiB`;
  const suffix = unit === 'reqps' ? ' req/s' : unit === 'ops' ? ' /s' : '';
  if (unit === 'percentunit') return `${(v * 100).toFixed(1)}%`;
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(2)} G${suffix}`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)} M${suffix}`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)} k${suffix}`;
  return `${a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2)}${suffix}`;
}

function chart(
  all: { name: string; points: [number, number][] }[],
  w: number,
  h: number,
  span: number,
  unit: string | undefined,
): string {
  // Like Grafana's "hide series with only zeros": label children the service creates up front stay 0.
  const mean = (s: { points: [number, number][] }) =>
    s.points.reduce((a, [, v]) => a + v, 0) / Math.max(1, s.points.length);
  const nonZero = all.filter((s) => s.points.some(([, v]) => v !== 0));
  const series = (nonZero.length > 0 ? nonZero : all).sort((a, b) => mean(b) - mean(a));
  const legendW = Math.min(260, Math.round(w * 0.38));
  const pw = w - legendW - 72;
  const ph = h - 26;
  const max = Math.max(1e-9, ...series.flatMap((s) => s.points.map(([, v]) => v)));
  const x = (t: number) => 68 + (t / span) * pw;
  const y = (v: number) => 6 + ph - (v / max) * ph;
  const grid = [0, 0.5, 1]
    .map(
      (f) =>
        `<line x1="68" x2="${68 + pw}" y1="${y(max * f)}" y2="${y(max * f)}" stroke="#2c3235"/><text x="64" y="${y(max * f) + 4}" fill="#8e8e8e" font-size="10" text-anchor="end">${esc(format(max * f, unit))}</text>`,
    )
    .join('');
  const lines = series
    .map((s, i) => {
      const d = s.points.map(([t, v], j) => `${j ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('');
      return `<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5"/>`;
    })
    .join('');
  const legend = series
    .slice(0, 9)
    .map((s, i) => {
      const vals = s.points.map(([, v]) => v);
      return `<div class="lg"><span style="background:${COLORS[i % COLORS.length]}"></span><b>${esc(s.name)}</b><i>${esc(format(mean(s), unit))}</i><i>${esc(format(Math.max(0, ...vals), unit))}</i></div>`;
    })
    .join('');
  const hidden = all.length - series.length;
  const more =
    series.length > 9 || hidden > 0
      ? `<div class="lg more">${series.length > 9 ? `+ ${series.length - 9} more` : ''}${hidden > 0 ? ` (${hidden} series at 0 not shown)` : ''}</div>`
      : '';
  const empty =
    series.length === 0
      ? `<text x="${68 + pw / 2}" y="${h / 2}" fill="#8e8e8e" text-anchor="middle">No data</text>`
      : '';
  return `<div class="chart"><svg width="${pw + 72}" height="${h}">${grid}${lines}${empty}</svg><div class="legend" style="width:${legendW}px"><div class="lg head"><b></b><i>mean</i><i>max</i></div>${legend}${more}</div></div>`;
}

function table(series: { name: string; points: [number, number][] }[]): string {
  const rows = series.map((s) => {
    let labels: Record<string, string> = {};
    try {
      labels = JSON.parse(s.name) as Record<string, string>;
    } catch {
      labels = { series: s.name };
    }
    return labels;
  });
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return `<table><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>${rows.map((r) => `<tr>${cols.map((c) => `<td>${esc(r[c] ?? '')}</td>`).join('')}</tr>`).join('')}</table>`;
}

function renderPage(
  title: string,
  panels: Panel[],
  results: Map<number, { name: string; points: [number, number][] }[]>,
  span: number,
): string {
  const U = 30;
  const colW = 1580 / 24;
  const height = Math.max(...panels.map((p) => (p.gridPos.y + p.gridPos.h) * U)) + 20;
  const boxes = panels
    .map((p) => {
      const { x, y, w, h } = p.gridPos;
      const style = `left:${x * colW + 10}px;top:${y * U + 50}px;width:${w * colW - 8}px;height:${h * U - 8}px`;
      if (p.type === 'row') return `<div class="row" style="${style}">${esc(p.title)}</div>`;
      const data = results.get(p.id) ?? [];
      const body =
        p.type === 'table' ? table(data) : chart(data, w * colW - 24, h * U - 44, span, p.fieldConfig?.defaults?.unit);
      return `<div class="panel" style="${style}"><div class="title">${esc(p.title)}</div>${body}</div>`;
    })
    .join('\n');
  return `<!doctype html><meta charset="utf-8"><title>${esc(title)}</title><style>
body{margin:0;background:#111217;color:#ccccdc;font:12px "DejaVu Sans",sans-serif;position:relative;height:${height + 50}px;width:1600px}
h1{font-size:16px;font-weight:500;margin:0;padding:14px 12px}
h1 small{color:#8e8e8e;font-weight:400;margin-left:12px}
.panel{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:2px;overflow:hidden;padding:6px 8px;box-sizing:border-box}
.row{position:absolute;font-size:14px;font-weight:500;padding-top:6px}
.title{font-weight:500;margin-bottom:4px}
.chart{display:flex}
.legend{font-size:10px;overflow:hidden}
.lg{display:flex;gap:4px;align-items:center;white-space:nowrap;line-height:15px}
.lg span{display:inline-block;width:10px;height:3px;flex:none}
.lg b{font-weight:400;flex:1;overflow:hidden;text-overflow:ellipsis}
.lg i{font-style:normal;width:58px;text-align:right;color:#ccccdc;flex:none}
.lg.head i{color:#8ab8ff}.lg.more{color:#8e8e8e}
table{border-collapse:collapse;width:100%;font-size:11px}td,th{border-bottom:1px solid #2c3235;text-align:left;padding:3px}
</style>
<h1>${esc(title)}<small>rendered by scripts/render-dashboard.ts from a real Prometheus scraping a real mcp-authz (${Math.round(span)} s of scripted traffic); not Grafana</small></h1>
${boxes}`;
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`render-dashboard: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
