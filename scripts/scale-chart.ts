// npm run bench:chart [-- --results FILE --out FILE]: docs/images/scale.svg, the cost curves of
// the latest `npm run bench -- --scale` run (the newest bench/results/*.json of kind "scale").
// Small multiples, one panel per curve in the file, the size on a log scale, each series a
// line, the target drawn as a dashed line: for a curve whose top must stay within 1.3× its
// bottom, at 1.3× the bottom point of each series; for list filtering, at 2 µs per item.
// Hand-written SVG: no charting dependency.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

type Json = Record<string, any>;

export interface Point {
  x: number;
  y: number;
  /** Shown beside the point: the figure and the memory it held. */
  label: string;
}

export interface Panel {
  name: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: { label: string; points: Point[] }[];
  /** ratio: y of the top point ≤ max × y of the bottom one; value: every y ≤ max. */
  target?: { kind: 'ratio' | 'value'; max: number };
}

const COLOURS = ['#2f6fb3', '#e0892f', '#3a9a5b', '#8e5bb5'];
const esc = (s: string | number) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
const fmt = (v: number) =>
  v >= 1_000_000 && v % 1_000_000 === 0
    ? `${v / 1_000_000}M`
    : v >= 1000 && v % 1000 === 0
      ? `${v / 1000}k`
      : String(v);
const num = (v: number) => (v >= 100 ? Math.round(v).toString() : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const mem = (p: Json) => (p.heapMiB !== undefined ? `, +${num(p.heapMiB)} MiB heap` : '');

/** The panels of a scale results file: the whole-Check curves, then the endpoint, key and store curves. */
export function panelsOf(r: Json): Panel[] {
  const panels: Panel[] = [];
  for (const c of (r.checkCurves ?? []) as Json[]) {
    const perItem = c.target?.kind === 'perItem';
    panels.push({
      name: c.name,
      title: c.title,
      xLabel: c.xLabel,
      yLabel: perItem ? 'CPU µs per item' : 'CPU µs per Check',
      series: (c.series as Json[]).map((s) => ({
        label: s.label,
        points: (s.points as Json[])
          .filter((p) => !perItem || p.usPerItem !== undefined)
          .map((p) => {
            const y = perItem ? p.usPerItem : p.us;
            return { x: p.x, y, label: `${num(y)} µs${perItem ? ` (${num(p.us)} per list)` : ''}${mem(p)}` };
          }),
      })),
      target: { kind: perItem ? 'value' : 'ratio', max: c.target?.max ?? 1.3 },
    });
  }
  if (r.endpoints?.length) {
    panels.push({
      name: 'endpoint-choice',
      title: 'Endpoint choice alone (the match)',
      xLabel: 'endpoints',
      yLabel: 'CPU µs per Check',
      series: ['path-only', 'host-based'].map((shape) => ({
        label: shape,
        points: (r.endpoints as Json[])
          .filter((p) => p.shape === shape)
          .map((p) => ({ x: p.endpoints, y: p.us, label: `${num(p.us)} µs` })),
      })),
      target: { kind: 'ratio', max: 1.3 },
    });
  }
  if (r.keyLookup?.length) {
    panels.push({
      name: 'key-lookup',
      title: 'API key lookup (keys file)',
      xLabel: 'keys',
      yLabel: 'CPU µs per key',
      series: [
        {
          label: 'SHA-256 and lookup',
          points: (r.keyLookup as Json[]).map((p) => ({ x: p.keys, y: p.us, label: `${num(p.us)} µs` })),
        },
      ],
      target: { kind: 'ratio', max: 1.3 },
    });
  }
  if (r.pgKeys?.length) {
    panels.push({
      name: 'pg-keys',
      title: 'API keys in PostgreSQL',
      xLabel: 'keys',
      yLabel: 'CPU µs per lookup',
      series: [
        {
          label: 'warm (cached)',
          points: (r.pgKeys as Json[]).map((p) => ({ x: p.keys, y: p.warmUs, label: `${num(p.warmUs)} µs` })),
        },
        {
          label: 'cold (a query each)',
          points: (r.pgKeys as Json[]).map((p) => ({
            x: p.keys,
            y: p.coldCpuUs,
            label: `${num(p.coldCpuUs)} µs, ${num(p.coldWallUs)} µs wall`,
          })),
        },
      ],
      target: { kind: 'ratio', max: 1.3 },
    });
  }
  const loads = ((r.keysLoad ?? []) as Json[]).filter((p) => p.keys > 0 && p.ok !== false);
  if (loads.length) {
    panels.push({
      name: 'keys-load',
      title: 'Keys file load (serve --check-config)',
      xLabel: 'keys',
      yLabel: 'CPU s',
      series: [
        {
          label: 'CPU seconds',
          points: loads.map((p) => ({ x: p.keys, y: p.cpuSec, label: `${num(p.cpuSec)} s, peak ${p.peakRssMiB} MiB` })),
        },
      ],
      target: { kind: 'value', max: 10 },
    });
  }
  return panels.filter((p) => p.series.some((s) => s.points.length > 0));
}

/** Whether a series meets its panel's target. */
export function meetsTarget(target: Panel['target'], points: Point[]): boolean | undefined {
  if (!target || points.length === 0) return undefined;
  if (target.kind === 'value') return points.every((p) => p.y <= target.max);
  return points[points.length - 1]!.y <= target.max * points[0]!.y;
}

const [PW, PH] = [400, 250];
const PAD = { left: 52, right: 14, top: 44, bottom: 62 };
const COLUMNS = 3;

function panelSvg(p: Panel, ox: number, oy: number): string {
  const out: string[] = [];
  const xs = p.series.flatMap((s) => s.points.map((pt) => pt.x));
  const lo = Math.floor(Math.log10(Math.min(...xs)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...xs))));
  const targetYs =
    p.target?.kind === 'value'
      ? [p.target.max]
      : p.target
        ? p.series.filter((s) => s.points.length).map((s) => s.points[0]!.y * p.target!.max)
        : [];
  const top = Math.max(...p.series.flatMap((s) => s.points.map((pt) => pt.y)), ...targetYs) * 1.12 || 1;
  const [x0, x1] = [ox + PAD.left, ox + PW - PAD.right];
  const [y0, y1] = [oy + PH - PAD.bottom, oy + PAD.top];
  const X = (v: number) => x0 + ((Math.log10(v) - lo) / (hi - lo)) * (x1 - x0);
  const Y = (v: number) => y0 - (v / top) * (y0 - y1);
  out.push(`<g class="panel" data-curve="${esc(p.name)}">`);
  out.push(`<rect x="${ox + 4}" y="${oy + 4}" width="${PW - 8}" height="${PH - 8}" fill="#fff" stroke="#ddd"/>`);
  const verdicts = p.series.map((s) => meetsTarget(p.target, s.points));
  const verdict = verdicts.every((v) => v === true)
    ? 'target met'
    : verdicts.some((v) => v === false)
      ? 'target missed'
      : '';
  out.push(
    `<text x="${ox + 12}" y="${oy + 22}" font-weight="bold">${esc(p.title)}</text>` +
      `<text x="${ox + PW - 12}" y="${oy + 36}" font-size="11" text-anchor="end" fill="${verdict === 'target met' ? '#3a9a5b' : '#c0392b'}">${verdict}</text>`,
  );
  // Axes: decades on x, five steps on y.
  for (let d = lo; d <= hi; d++) {
    const x = X(10 ** d);
    out.push(`<line x1="${x}" y1="${y1}" x2="${x}" y2="${y0}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${y0 + 14}" text-anchor="middle" fill="#555" font-size="10">${fmt(10 ** d)}</text>`);
  }
  for (let i = 0; i <= 5; i++) {
    const v = (top / 1.12) * (i / 5);
    out.push(`<line x1="${x0}" y1="${Y(v)}" x2="${x1}" y2="${Y(v)}" stroke="#f2f2f2"/>`);
    out.push(`<text x="${x0 - 4}" y="${Y(v) + 3}" text-anchor="end" fill="#555" font-size="10">${num(v)}</text>`);
  }
  out.push(`<line x1="${x0}" y1="${y0}" x2="${x1}" y2="${y0}" stroke="#999"/>`);
  out.push(`<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y1}" stroke="#999"/>`);
  out.push(
    `<text x="${(x0 + x1) / 2}" y="${y0 + 28}" text-anchor="middle" fill="#333" font-size="10">${esc(p.xLabel)} (log scale)</text>`,
  );
  out.push(`<text x="${ox + 12}" y="${oy + 36}" fill="#333" font-size="10">${esc(p.yLabel)}</text>`);
  p.series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    // A ratio target per series (its own bottom); a value target once.
    if (p.target && s.points.length && (p.target.kind === 'ratio' || i === 0)) {
      const ty = p.target.kind === 'value' ? p.target.max : s.points[0]!.y * p.target.max;
      const label = p.target.kind === 'value' ? `target ≤ ${num(p.target.max)}` : `target ≤ ${p.target.max}× bottom`;
      out.push(
        `<line class="target" x1="${x0}" y1="${Y(ty)}" x2="${x1}" y2="${Y(ty)}" stroke="${p.target.kind === 'value' ? '#c0392b' : colour}" stroke-dasharray="5 4"/>` +
          `<text x="${x1 - 2}" y="${Y(ty) - 3}" text-anchor="end" font-size="9" fill="#c0392b">${esc(label)}</text>`,
      );
    }
    const pts = s.points.map((pt) => `${X(pt.x).toFixed(1)},${Y(pt.y).toFixed(1)}`).join(' ');
    out.push(`<polyline class="series" points="${pts}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    for (const pt of s.points)
      out.push(
        `<circle class="point" cx="${X(pt.x).toFixed(1)}" cy="${Y(pt.y).toFixed(1)}" r="3" fill="${colour}"><title>${esc(`${s.label}, ${fmt(pt.x)}: ${pt.label}`)}</title></circle>` +
          `<text x="${X(pt.x) + 4}" y="${Y(pt.y) - 5}" font-size="9" fill="${colour}">${esc(num(pt.y))}</text>`,
      );
    out.push(
      `<rect x="${x0 + i * 120}" y="${y0 + 36}" width="10" height="10" fill="${colour}"/><text x="${x0 + 14 + i * 120}" y="${y0 + 45}" font-size="10">${esc(s.label)}</text>`,
    );
  });
  out.push('</g>');
  return out.join('\n');
}

/** The chart of a scale results file. */
export function scaleChart(r: Json): string {
  const panels = panelsOf(r);
  if (panels.length === 0) throw new Error('no curves in these results: run npm run bench -- --scale');
  const rows = Math.ceil(panels.length / COLUMNS);
  const width = COLUMNS * PW;
  const height = 46 + rows * PH;
  const load = Array.isArray(r.loadAverageAtEnd) ? `, load average at the end ${r.loadAverageAtEnd.join(' ')}` : '';
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    '<rect width="100%" height="100%" fill="#fafafa"/>',
    `<text x="10" y="20" font-size="14" font-weight="bold">How the cost of a Check grows (npm run bench -- --scale, ${esc(String(r.startedAt ?? '').slice(0, 10))})</text>`,
    `<text x="10" y="36" font-size="11" fill="#555">${esc(`${r.machine?.cores ?? '?'} × ${r.machine?.cpu ?? 'unknown CPU'}, Node ${r.machine?.node ?? '?'}${load}; dashed: the target`)}</text>`,
  ];
  panels.forEach((p, i) => out.push(panelSvg(p, (i % COLUMNS) * PW, 42 + Math.floor(i / COLUMNS) * PH)));
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/**
 * The scale results file a folder's chart is drawn from: the newest of those with the most
 * whole-Check curves. A run of some curves at some sizes (`--scale-curves "endpoints=10,100000"`)
 * stays in the history without taking the other curves off the chart; a run with
 * `--scale-curves none` (the match, the keys and the stores only) is drawn when there is no other.
 */
export function latestScaleResults(dir: string): string {
  const files = readdirSync(dir)
    .filter((f) => /^\d{4}-.*\.json$/.test(f))
    .sort()
    .reverse();
  let best: { file: string; curves: number } | undefined;
  for (const f of files) {
    const r = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Json;
    if (r.kind !== 'scale') continue;
    const curves = Array.isArray(r.checkCurves) ? r.checkCurves.length : 0;
    if (best === undefined || curves > best.curves) best = { file: join(dir, f), curves };
  }
  if (best) return best.file;
  throw new Error(`no scale results in ${dir}: run npm run bench -- --scale`);
}

function main(): void {
  const root = join(import.meta.dirname, '..');
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const results = arg('--results') ?? latestScaleResults(join(root, 'bench', 'results'));
  const out = arg('--out') ?? join(root, 'docs', 'images', 'scale.svg');
  writeFileSync(out, scaleChart(JSON.parse(readFileSync(results, 'utf8'))));
  process.stdout.write(`${out} from ${results}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
