// Soak: mcp-authz at a steady fraction of its measured max for a long time, with a policy
// reload and a key reload in the middle. Reports RSS over time and growth, gRPC errors,
// and calls whose decision was wrong (a side prober checks one call every 100 ms).
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { round, runLoad, type LoadResult } from './ghz.js';
import { startMcpAuthz, writeMcpAuthzConfig, type Prepared } from './mcp-authz.js';
import { out, tools } from './paths.js';
import { freePort, run, sampleRss, type RssSample } from './processes.js';
import { CheckClient, describe } from './verify.js';

interface SoakOptions {
  p: Prepared;
  bundle: string | undefined;
  durationSec: number;
  scenario: string;
  settings: { warmupSec: number; connections: number; concurrency: number; openConcurrency: number; loadFraction: number };
  log: (msg: string) => void;
  logFile?: string;
  /** `serve --workers N`; default: serve's own default (one worker per core). */
  workers?: number;
}

interface Event {
  atSec: number;
  what: string;
  detail: string;
}

export async function runSoak(o: SoakOptions) {
  const s = o.p.list.find((x) => x.name === o.scenario);
  if (!s) throw new Error(`unknown scenario "${o.scenario}"`);
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const configFile = writeMcpAuthzConfig(o.p, grpcPort, httpPort, o.bundle);
  const server = await startMcpAuthz(configFile, grpcPort, s.requests[0]!, o.logFile, o.workers);
  const target = `127.0.0.1:${grpcPort}`;
  const client = new CheckClient(target);
  const events: Event[] = [];
  const common = { ghz: tools.ghz, target, dataFile: o.p.data.get(s.name)!.ghz, connections: o.settings.connections, concurrency: o.settings.concurrency };
  try {
    const before = await client.verify(s.requests[0]!, s.expect);
    if (!before.ok) return { scenario: s.name, passed: false, reason: `check before the soak: ${describe(before)}` };

    o.log(`soak: measuring max throughput of ${s.name} (${o.settings.warmupSec}s warm-up, 5s closed loop)`);
    await runLoad({ ...common, durationSec: o.settings.warmupSec, outFile: join(out, 'ghz-soak-warmup.json') });
    const max = await runLoad({ ...common, durationSec: 5, outFile: join(out, 'ghz-soak-max.json') });
    const rps = Math.max(1, Math.floor(max.rps * o.settings.loadFraction));
    o.log(`soak: ${o.durationSec}s at ${rps} rps (${o.settings.loadFraction * 100}% of ${max.rps}); reloads at 40% and 60%`);

    const durationBefore = await scrapeText(httpPort);
    const rss = sampleRss(server.pid, 1000);
    const probe = { sent: 0, wrong: 0, failed: 0, samples: [] as string[] };
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const v = await client.verify(s.requests[0]!, s.expect);
        probe.sent++;
        if (!v.ok) {
          if (v.failure) probe.failed++;
          else probe.wrong++;
          if (probe.samples.length < 5) probe.samples.push(describe(v));
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const t0 = Date.now();
    const at = (frac: number, what: string, fn: () => Promise<string> | string) =>
      new Promise<void>((resolve) => {
        setTimeout(async () => {
          try {
            const detail = await fn();
            events.push({ atSec: round((Date.now() - t0) / 1000, 1), what, detail });
            o.log(`soak: ${what}: ${detail}`);
          } catch (err) {
            events.push({ atSec: round((Date.now() - t0) / 1000, 1), what, detail: `failed: ${(err as Error).message}` });
          }
          resolve();
        }, o.durationSec * 1000 * frac);
      });
    const reloads = Promise.all([at(0.4, 'policy reload', () => rewriteBundle()), at(0.6, 'key reload', () => rewriteKeys(o.p))]);
    let load: LoadResult;
    try {
      load = await runLoad({ ...common, concurrency: o.settings.openConcurrency, durationSec: o.durationSec, rps, outFile: join(out, 'ghz-soak.json') });
    } finally {
      await reloads;
      probing = false;
      await prober;
    }
    const samples = rss.stop();
    const after = await client.verify(s.requests[0]!, s.expect);
    const metrics = await scrape(httpPort);
    const serverLatency = decisionQuantiles(durationBefore, await scrapeText(httpPort));
    const growth = rssGrowth(samples, o.durationSec);
    const failedCalls = probe.wrong + probe.failed + (after.ok ? 0 : 1);
    const passed = load.errors === 0 && failedCalls === 0 && growth.growthPct < 10;
    return {
      scenario: s.name,
      workers: o.workers ?? 'default (serve without --workers)',
      passed,
      targets: { rssGrowthPctBelow: 10, errors: 0, failedCalls: 0 },
      durationSec: o.durationSec,
      maxRps: max.rps,
      load,
      errors: load.errors,
      failedCalls,
      prober: probe,
      checkAfter: after,
      serverLatency,
      rss: { ...growth, samples: samples.map((x) => ({ t: round(x.t / 1000, 1), mib: round(x.bytes / 2 ** 20, 1), processes: x.processes })) },
      events,
      reloadMetrics: metrics,
    };
  } finally {
    client.close();
    await server.stop(10_000);
  }
}

/** Median RSS in the 10–20% window (after warm-up) against the last 10% of the run. */
function rssGrowth(samples: RssSample[], durationSec: number) {
  const med = (xs: number[]) => {
    const a = [...xs].sort((x, y) => x - y);
    return a.length ? a[Math.floor(a.length / 2)]! : NaN;
  };
  const ms = durationSec * 1000;
  const early = samples.filter((x) => x.t >= 0.1 * ms && x.t <= 0.2 * ms).map((x) => x.bytes);
  const late = samples.filter((x) => x.t >= 0.9 * ms).map((x) => x.bytes);
  const base = med(early);
  const end = med(late);
  // The lowest RSS of a window is the heap after collection: its growth is the leak signal,
  // less sensitive to where the GC sawtooth happens to be than the median.
  const floorBase = Math.min(...early);
  const floorEnd = Math.min(...late);
  const peak = Math.max(...samples.map((x) => x.bytes));
  return {
    baselineMiB: round(base / 2 ** 20, 1),
    endMiB: round(end / 2 ** 20, 1),
    peakMiB: round(peak / 2 ** 20, 1),
    growthPct: round(((end - base) / base) * 100, 2),
    floorGrowthPct: round(((floorEnd - floorBase) / floorBase) * 100, 2),
  };
}

/** A new revision of the same policy: the bundle repacked with its .manifest revision changed, swapped in by rename. */
async function rewriteBundle(): Promise<string> {
  const file = join(out, 'bundle.tar.gz');
  if (!existsSync(file)) return 'skipped: no policy bundle is configured (the policy has not landed)';
  const dir = mkdtempSync(join(out, 'bundle-'));
  try {
    const x = await run('tar', ['-xzf', file, '-C', dir]);
    if (x.code !== 0) throw new Error(`tar -x: ${x.stderr}`);
    const manifest = join(dir, '.manifest');
    const revision = `bench-reload-${Date.now()}`;
    const m = existsSync(manifest) ? (JSON.parse(readFileSync(manifest, 'utf8')) as Record<string, unknown>) : undefined;
    if (m) writeFileSync(manifest, JSON.stringify({ ...m, revision }));
    const tmp = join(out, 'bundle.tar.gz.tmp');
    const c = await run('tar', ['-czf', tmp, '-C', dir, '.']);
    if (c.code !== 0) throw new Error(`tar -c: ${c.stderr}`);
    renameSync(tmp, file);
    return m ? `bundle rewritten with revision ${revision}` : 'bundle rewritten (no .manifest: same content, new file)';
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The keys file rewritten with one more key, swapped in by rename. */
function rewriteKeys(p: Prepared): string {
  const tmp = `${p.keysFile}.tmp`;
  writeFileSync(tmp, stringify(p.keysDocument(`mcp_${randomBytes(32).toString('base64url')}`)), { mode: 0o600 });
  renameSync(tmp, p.keysFile);
  return 'keys file rewritten with one more key';
}

async function scrapeText(httpPort: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
}

/**
 * mcp-authz's own decision time over the soak window (mcp_authz_check_duration_seconds, the
 * series the p99 alert reads): the bucket counts after minus before, and quantiles computed
 * as Prometheus's histogram_quantile does (linear within the bucket).
 */
export function decisionQuantiles(before: string, after: string) {
  const buckets = (text: string) => {
    const out = new Map<number, number>();
    for (const m of text.matchAll(/^mcp_authz_check_duration_seconds_bucket\{(.*)\} (\S+)$/gm)) {
      const le = /le="([^"]+)"/.exec(m[1]!)?.[1];
      if (le === undefined) continue;
      const bound = le === '+Inf' ? Infinity : Number(le);
      out.set(bound, (out.get(bound) ?? 0) + Number(m[2]));
    }
    return out;
  };
  const a = buckets(before);
  const b = buckets(after);
  const bounds = [...b.keys()].sort((x, y) => x - y);
  const cum = bounds.map((le) => (b.get(le) ?? 0) - (a.get(le) ?? 0));
  const total = cum.at(-1) ?? 0;
  const q = (phi: number) => {
    if (total === 0) return NaN;
    const rank = phi * total;
    const i = cum.findIndex((c) => c >= rank);
    const upper = bounds[i]!;
    const lower = i === 0 ? 0 : bounds[i - 1]!;
    if (upper === Infinity) return lower * 1000;
    const below = i === 0 ? 0 : cum[i - 1]!;
    return round((lower + ((upper - lower) * (rank - below)) / (cum[i]! - below)) * 1000, 3);
  };
  return { series: 'mcp_authz_check_duration_seconds', decisions: total, p50Ms: q(0.5), p90Ms: q(0.9), p99Ms: q(0.99), p999Ms: q(0.999) };
}

/** The reload-related lines of /metrics, as evidence the reloads happened. */
async function scrape(httpPort: number): Promise<string[]> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    return text.split('\n').filter((l) => /^mcp_authz_(policy_reloads_total|policy_info|key)/.test(l));
  } catch (err) {
    return [`/metrics unavailable: ${(err as Error).message}`];
  }
}
