// docs/images/scale.svg is drawn by scripts/scale-chart.ts from a `npm run bench -- --scale`
// results file: one panel per curve the file holds, every point of every series plotted, the
// target drawn, and the verdict the target gives.
import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { latestScaleResults, meetsTarget, panelsOf, scaleChart } from '../scripts/scale-chart.js';
import { run } from '../bench/lib/processes.js';
import { root } from '../bench/lib/paths.js';

const pt = (x: number, us: number, extra: Record<string, number> = {}) => ({
  x,
  us,
  heapMiB: 0.5,
  rssMiB: 300,
  calls: 1000,
  ...extra,
});

/** A results file as `npm run bench -- --scale` writes it (bench/lib/scale.ts, bench/lib/scale-check.ts). */
const results = {
  kind: 'scale',
  startedAt: '2026-12-07T23:00:00.000Z',
  machine: { cpu: 'Test CPU', cores: 2, node: 'v24.0.0' },
  loadAverageAtEnd: [3.1, 2.9, 2.5],
  endpoints: [
    { shape: 'path-only', endpoints: 10, us: 0.2 },
    { shape: 'path-only', endpoints: 100000, us: 1.0 },
    { shape: 'host-based', endpoints: 10, us: 0.15 },
    { shape: 'host-based', endpoints: 100000, us: 1.5 },
  ],
  keyLookup: [
    { keys: 10000, us: 3.3 },
    { keys: 1000000, us: 3.1 },
  ],
  keysLoad: [
    { keys: 0, fileMiB: 0, wallSec: 1, cpuSec: 0.8, peakRssMiB: 89, ok: true },
    { keys: 10000, fileMiB: 2.3, wallSec: 2, cpuSec: 1.2, peakRssMiB: 102, ok: true },
    { keys: 1000000, fileMiB: 234, wallSec: 40, cpuSec: 32, peakRssMiB: 1146, ok: true },
  ],
  pgKeys: [],
  checkCurves: [
    {
      name: 'grants',
      title: 'Grants per key',
      xLabel: 'grants on the key',
      target: { kind: 'ratio', max: 1.3 },
      series: [{ label: 'tools/call of the last grant', points: [pt(1, 60), pt(10, 62), pt(100, 140), pt(1000, 620)] }],
      met: [false],
    },
    {
      name: 'list',
      title: 'Tools per list (ext_proc filtering)',
      xLabel: 'tools in the list',
      target: { kind: 'perItem', max: 2 },
      series: [
        {
          label: 'µs per item',
          points: [
            pt(10, 200, { usPerItem: 1.5 }),
            pt(500, 900, { usPerItem: 1.4 }),
            pt(5000, 8000, { usPerItem: 1.6 }),
          ],
        },
      ],
      met: [true],
    },
    {
      name: 'issuers',
      title: 'OAuth issuers',
      xLabel: 'configured issuers',
      target: { kind: 'ratio', max: 1.3 },
      series: [
        { label: 'cached token', points: [pt(1, 60), pt(10, 61), pt(50, 63)] },
        { label: 'fresh token', points: [pt(1, 240), pt(10, 245), pt(50, 250)] },
      ],
      met: [true, true],
    },
  ],
};

/** The panels of a chart: name → the circles (points) and target lines inside each. */
function panels(svg: string): Map<string, { points: number; targets: number; verdict: string }> {
  const out = new Map<string, { points: number; targets: number; verdict: string }>();
  for (const m of svg.matchAll(/<g class="panel" data-curve="([^"]+)">([\s\S]*?)<\/g>/g)) {
    const body = m[2]!;
    out.set(m[1]!, {
      points: body.match(/<circle class="point"/g)?.length ?? 0,
      targets: body.match(/<line class="target"/g)?.length ?? 0,
      verdict: /target (met|missed)/.exec(body)?.[0] ?? '',
    });
  }
  return out;
}

test('the chart has one panel per curve of the results file, every point plotted and the target drawn', (t) => {
  const svg = scaleChart(results);
  t.true(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  t.true(svg.trimEnd().endsWith('</svg>'));
  const got = panels(svg);
  t.deepEqual(
    [...got.keys()],
    ['grants', 'list', 'issuers', 'endpoint-choice', 'key-lookup', 'keys-load'],
    'the whole-Check curves, then the match, the key lookup and the keys-file load (no PostgreSQL points: no panel)',
  );
  t.is(got.get('grants')!.points, 4);
  t.is(got.get('list')!.points, 3);
  t.is(got.get('issuers')!.points, 6);
  t.is(got.get('endpoint-choice')!.points, 4);
  t.is(got.get('key-lookup')!.points, 2);
  t.is(got.get('keys-load')!.points, 2, 'the 0-key load is the start-up floor, not a point of the curve');
  // A ratio target per series (each from its own bottom), a fixed one once.
  t.is(got.get('issuers')!.targets, 2);
  t.is(got.get('list')!.targets, 1);
  t.is(got.get('grants')!.verdict, 'target missed');
  t.is(got.get('list')!.verdict, 'target met');
  t.is(got.get('issuers')!.verdict, 'target met');
  t.regex(svg, /load average at the end 3\.1 2\.9 2\.5/);
});

test("list filtering is plotted per item, against 2 µs; the other curves' points are CPU µs per Check", (t) => {
  const [grants, list] = panelsOf(results);
  t.deepEqual(
    list!.series[0]!.points.map((p) => p.y),
    [1.5, 1.4, 1.6],
  );
  t.deepEqual(list!.target, { kind: 'value', max: 2 });
  t.deepEqual(
    grants!.series[0]!.points.map((p) => p.y),
    [60, 62, 140, 620],
  );
});

test('a curve meets a ratio target when its top is within the ratio of its bottom, whatever lies between', (t) => {
  const p = (x: number, y: number) => ({ x, y, label: '' });
  t.true(meetsTarget({ kind: 'ratio', max: 1.3 }, [p(1, 100), p(10, 500), p(100, 130)]));
  t.false(meetsTarget({ kind: 'ratio', max: 1.3 }, [p(1, 100), p(100, 131)]));
  t.false(meetsTarget({ kind: 'value', max: 2 }, [p(10, 1), p(100, 2.1)]));
  t.is(meetsTarget({ kind: 'value', max: 2 }, []), undefined);
});

test('a results file without curves is refused with the command that makes them', (t) => {
  t.throws(() => scaleChart({ kind: 'scale', endpoints: [], checkCurves: [] }), {
    message: /npm run bench -- --scale/,
  });
});

test('the script draws the newest scale results of a folder with the most whole-Check curves, skipping runs of other kinds', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'scale-chart-'));
  writeFileSync(join(dir, '2026-12-07T10-00-00-000Z.json'), JSON.stringify({ ...results, checkCurves: [] }));
  t.is(
    latestScaleResults(dir),
    join(dir, '2026-12-07T10-00-00-000Z.json'),
    'a run without curves when it is the only one',
  );
  writeFileSync(join(dir, '2026-12-07T11-00-00-000Z.json'), JSON.stringify(results));
  writeFileSync(join(dir, '2026-12-07T11-30-00-000Z.json'), JSON.stringify({ ...results, checkCurves: undefined }));
  writeFileSync(join(dir, '2026-12-07T12-00-00-000Z.json'), JSON.stringify({ kind: 'throughput', runs: [] }));
  writeFileSync(join(dir, 'latest.json'), JSON.stringify({ kind: 'throughput', runs: [] }));
  t.is(latestScaleResults(dir), join(dir, '2026-12-07T11-00-00-000Z.json'));
  // A later run of one curve stays in the history; the chart keeps the run with every curve.
  writeFileSync(
    join(dir, '2026-12-07T13-00-00-000Z.json'),
    JSON.stringify({ ...results, checkCurves: results.checkCurves.slice(0, 1) }),
  );
  t.is(latestScaleResults(dir), join(dir, '2026-12-07T11-00-00-000Z.json'));
  writeFileSync(join(dir, '2026-12-07T14-00-00-000Z.json'), JSON.stringify(results));
  t.is(latestScaleResults(dir), join(dir, '2026-12-07T14-00-00-000Z.json'), 'the newest of the fullest runs');
  const out = join(dir, 'scale.svg');
  const r = await run(process.execPath, [
    '--import',
    'tsx',
    join(root, 'scripts', 'scale-chart.ts'),
    '--results',
    latestScaleResults(dir),
    '--out',
    out,
  ]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual([...panels(readFileSync(out, 'utf8')).keys()].slice(0, 3), ['grants', 'list', 'issuers']);
});
