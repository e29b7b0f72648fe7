// `npm run bench -- --in-process --interleave [--baseline DIR]`: the tracing modes (and,
// with --baseline, another checkout's built dist/ with tracing off) measured side by side in
// one process, in short blocks taken in turn, so a machine whose speed swings from minute
// to minute (a shared VM) slows every variant alike. Each block runs a scenario's requests
// through decode → runCheck → encode; a variant's figure is the median of its blocks, in
// this process's CPU time per Check (user + system: what other jobs' load inflates least;
// the span exporter's work on this event loop included) and in wall time.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import { round } from './ghz.js';
import { startSink, tracedCopies, type TracingMode } from './in-process.js';
import type { Prepared } from './mcp-authz.js';
import { root } from './paths.js';

interface Variant {
  name: string;
  tracing: TracingMode;
  /** One Check, decoded from its wire bytes to the encoded answer. */
  once(): Promise<unknown>;
  close(): Promise<void>;
  exported: () => number;
}

export interface InterleavedRow {
  scenario: string;
  variant: string;
  /** Median over the blocks of this process's CPU µs per Check (decode + pipeline + encode). */
  cpuUs: number;
  cpuP25Us: number;
  cpuP75Us: number;
  /** The same in wall-clock µs. */
  medianUs: number;
  p25Us: number;
  p75Us: number;
  blocks: number;
  callsPerBlock: number;
  spansExported?: number;
  /** With `comparesWith`: the median over rounds of this round's CPU per Check over the same round's without the step. */
  pairedCpuRatio?: number;
}

/** Where a module was before the source was arranged by protocol (a baseline may predate it). */
const FORMERLY: Record<string, string> = { 'ext-authz/encode-answer.js': 'envoy/encode-response.js' };

/** The product's modules from a checkout's dist/ (this one, or the baseline's). */
async function modulesOf(dir: string) {
  const load = <T>(path: string): Promise<T> =>
    import(
      pathToFileURL(join(dir, 'dist', existsSync(join(dir, 'dist', path)) ? path : (FORMERLY[path] ?? path))).href
    ) as Promise<T>;
  return {
    ...(await load<typeof import('../../src/pipeline/pipeline.js')>('pipeline/pipeline.js')),
    ...(await load<typeof import('../../src/config/load.js')>('config/load.js')),
    ...(await load<typeof import('../../src/ext-authz/encode-answer.js')>('ext-authz/encode-answer.js')),
    ...(await load<typeof import('../../src/envoy/protos.js')>('envoy/protos.js')),
    ...(await load<typeof import('../../src/envoy/to-request.js')>('envoy/to-request.js')),
    ...(await load<typeof import('../../src/log/logger.js')>('log/logger.js')),
    ...(await load<typeof import('../../src/pipeline/build-runtime.js')>('pipeline/build-runtime.js')),
  };
}

async function variant(
  dir: string,
  name: string,
  tracing: TracingMode,
  configFile: string,
  requests: Record<string, unknown>[],
  sinkUrl: string | undefined,
): Promise<Variant> {
  const m = await modulesOf(dir);
  const check = m.authorizationService().Check!;
  let exported = 0;
  const rt = await m.buildRuntime(m.loadConfigFile(configFile), m.createLogger(), new Registry(), {
    watch: false,
    sharedLimits: false,
    env: tracing !== 'off' && sinkUrl ? { OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl } : {},
    events: { traceExport: (result, n) => (result === 'success' ? (exported += n) : undefined) },
  });
  const wires = (tracing === 'off' ? requests : tracedCopies(requests, tracing === 'sampled')).map((r) =>
    check.requestSerialize(r),
  );
  let n = 0; // round-robin over the whole set across blocks, so distinct tokens stay cache misses
  // A baseline without decision ids ignores the second argument.
  const encode = m.encodeCheckResponse as (o: unknown, id?: string) => unknown;
  return {
    name,
    tracing,
    once: async () => {
      const trace = await m.runCheck(rt, m.toRequest, check.requestDeserialize(wires[n++ % wires.length]!));
      return encode(trace.outcome, trace.decisionId);
    },
    close: () => rt.close(),
    exported: () => exported,
  };
}

/** The variant of a scenario with `comparesWith`: the same requests to the endpoint without the extra step. */
const WITHOUT = 'without the step';

const median = (xs: number[], q = 0.5) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

export async function measureInterleaved(
  p: Prepared,
  configFile: string,
  opts: { rounds: number; callsPerBlock: number; baseline?: string },
  log: (m: string) => void,
): Promise<InterleavedRow[]> {
  const sink = await startSink();
  const rows: InterleavedRow[] = [];
  try {
    for (const s of p.list) {
      const variants: Variant[] = [];
      if (s.comparesWith) {
        // A scenario with an extra step against the same requests without it, tracing off.
        variants.push(await variant(root, 'this build, off', 'off', configFile, s.requests, undefined));
        variants.push(await variant(root, WITHOUT, 'off', configFile, s.comparesWith.requests, undefined));
      } else {
        if (opts.baseline)
          variants.push(await variant(opts.baseline, 'baseline, off', 'off', configFile, s.requests, undefined));
        for (const mode of ['off', 'unsampled', 'sampled'] as const)
          variants.push(await variant(root, `this build, ${mode}`, mode, configFile, s.requests, sink.url));
      }
      log(`interleaved ${s.name}: ${variants.length} variants × ${opts.rounds} blocks of ${opts.callsPerBlock} calls`);
      const times = new Map<string, number[]>(variants.map((v) => [v.name, []]));
      const cpu = new Map<string, number[]>(variants.map((v) => [v.name, []]));
      const block = async (v: Variant) => {
        const c0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < opts.callsPerBlock; i++) {
          await v.once();
          if (i % 64 === 63) await new Promise((r) => setImmediate(r));
        }
        const c = process.cpuUsage(c0);
        return {
          wall: Number(process.hrtime.bigint() - t0) / opts.callsPerBlock / 1000,
          cpu: (c.user + c.system) / opts.callsPerBlock,
        };
      };
      for (const v of variants) await block(v); // warm-up
      const before = variants.map((v) => v.exported());
      for (let r = 0; r < opts.rounds; r++) {
        // Each round starts with the next variant, so none always follows the same one.
        for (let k = 0; k < variants.length; k++) {
          const v = variants[(r + k) % variants.length]!;
          const b = await block(v);
          times.get(v.name)!.push(b.wall);
          cpu.get(v.name)!.push(b.cpu);
        }
      }
      const paired = s.comparesWith ? cpu.get(variants[0]!.name)!.map((c, r) => c / cpu.get(WITHOUT)![r]!) : undefined;
      for (const [i, v] of variants.entries()) {
        const ts = times.get(v.name)!;
        const cs = cpu.get(v.name)!;
        await v.close(); // flushes the spans still queued
        rows.push({
          scenario: s.name,
          variant: v.name,
          cpuUs: round(median(cs), 2),
          cpuP25Us: round(median(cs, 0.25), 2),
          cpuP75Us: round(median(cs, 0.75), 2),
          medianUs: round(median(ts), 2),
          p25Us: round(median(ts, 0.25), 2),
          p75Us: round(median(ts, 0.75), 2),
          blocks: ts.length,
          callsPerBlock: opts.callsPerBlock,
          ...(v.tracing !== 'off' ? { spansExported: v.exported() - before[i]! } : {}),
          ...(paired && i === 0 ? { pairedCpuRatio: round(median(paired), 3) } : {}),
        });
      }
    }
  } finally {
    sink.child.kill();
  }
  return rows;
}

export function printInterleaved(command: string, rows: InterleavedRow[]): void {
  const w = (line: string) => process.stdout.write(line + '\n');
  w('');
  const variants = [...new Set(rows.map((r) => r.variant))];
  for (const [what, pick] of [
    ['CPU µs', (r: InterleavedRow): [number, number, number] => [r.cpuUs, r.cpuP25Us, r.cpuP75Us]],
    ['wall-clock µs', (r: InterleavedRow): [number, number, number] => [r.medianUs, r.p25Us, r.p75Us]],
  ] as const) {
    w(`${command}: ${what} per Check (decode + pipeline + encode), median of interleaved blocks [p25–p75]`);
    w('');
    w(`${'scenario'.padEnd(18)} ${variants.map((v) => v.padStart(24)).join(' ')}`);
    for (const scenario of [...new Set(rows.map((r) => r.scenario))]) {
      const cells = variants.map((v) => {
        const row = rows.find((x) => x.scenario === scenario && x.variant === v);
        if (!row) return '—'.padStart(24);
        const [m, lo, hi] = pick(row);
        return `${m.toFixed(1)} [${lo.toFixed(1)}–${hi.toFixed(1)}]`.padStart(24);
      });
      const ratio = rows.find((x) => x.scenario === scenario && x.pairedCpuRatio !== undefined)?.pairedCpuRatio;
      w(
        `${scenario.padEnd(18)} ${cells.join(' ')}${ratio !== undefined && what === 'CPU µs' ? `   paired ratio ${ratio.toFixed(3)}` : ''}`,
      );
    }
    w('');
  }
  const spans = rows.filter(
    (r) => r.spansExported !== undefined && r.variant.endsWith('sampled') && !r.variant.endsWith('unsampled'),
  );
  if (spans.length)
    w(
      `\nspans exported by the sampled variant (all blocks, warm-up included): ${spans.map((r) => `${r.scenario} ${r.spansExported}`).join(', ')}`,
    );
}
