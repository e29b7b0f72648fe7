// Soak: `mcp-authz serve` (the real CLI, default workers) for a long time at a fraction (80%)
// of its measured max rate, driven by h2load (one thread: a load generator light enough to
// leave the server its cores), with the policy bundle and the keys file replaced every
// `reloadEverySec` (two revisions of each, swapped in by rename) and a stream of distinct
// OAuth tokens, more of them than the verified-token cache holds, so the cache evicts all
// along. Resident memory of the process tree is sampled throughout; the result says whether
// it stayed flat (< 10% growth from the warm-up window to the end), whether anything failed,
// and whether every decision that was checked was right: a prober checks one call of each
// kind (allow, deny 403, deny 401) in turn, every call of the token stream is checked, and
// the service's own decision counts must hold no decision none of the streams asked for.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { readDecisionCounts, type DecisionCounts } from './decision-counts.js';
import { round } from './ghz.js';
import { CHECK_PATH, GRPC_HEADERS, runH2load, type H2loadResult } from './h2load.js';
import { startMcpAuthz, writeMcpAuthzConfig, type Prepared } from './mcp-authz.js';
import { out } from './paths.js';
import {
  freePort,
  loadAverage,
  machineBusySeconds,
  run,
  sampleRss,
  treeCpuSeconds,
  type RssSample,
} from './processes.js';
import type { Scenario } from './scenarios.js';
import { CheckClient, describe } from './verify.js';

export interface SoakOptions {
  p: Prepared;
  bundle: string | undefined;
  durationSec: number;
  settings: { warmupSec: number; connections: number; concurrency: number; loadFraction: number };
  /** Seconds between reloads: each one replaces the policy bundle and the keys file. */
  reloadEverySec: number;
  /** Calls per second of the distinct-token stream. */
  tokenRps: number;
  log: (msg: string) => void;
  logFile?: string;
  /** `serve --workers N`; default: serve's own default (one worker per core). */
  workers?: number;
}

interface StreamTally {
  sent: number;
  right: number;
  wrong: number;
  failed: number;
  samples: string[];
}

const tallyOf = (): StreamTally => ({ sent: 0, right: 0, wrong: 0, failed: 0, samples: [] });

/** Bulk load (h2load), the probe kinds and the token stream, by name (see scenarios.ts). */
const BULK = 'apikey_tool_allow';
const PROBES = ['apikey_tool_allow', 'apikey_tool_deny', 'invalid_key'];
const TOKENS = 'oauth_distinct';
export const SOAK_SCENARIOS = [...new Set([BULK, ...PROBES, TOKENS])];

export async function runSoak(o: SoakOptions) {
  const find = (name: string): Scenario => {
    const s = o.p.list.find((x) => x.name === name);
    if (!s) throw new Error(`the soak needs scenario "${name}"`);
    return s;
  };
  const bulk = find(BULK);
  const probes = PROBES.map(find);
  const tokens = find(TOKENS);
  const cacheSize = tokenCacheSize();
  if (tokens.requests.length <= cacheSize)
    throw new Error(
      `${tokens.requests.length} distinct tokens do not outnumber the verified-token cache (${cacheSize}): raise --distinct-tokens`,
    );

  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const configFile = writeMcpAuthzConfig(o.p, grpcPort, httpPort, o.bundle);
  const revisions = o.bundle ? await bundleRevisions() : undefined;
  const server = await startMcpAuthz(configFile, grpcPort, bulk.requests[0]!, o.logFile, o.workers);
  const target = `127.0.0.1:${grpcPort}`;
  const metricsUrl = `http://127.0.0.1:${httpPort}/metrics`;
  const prober = new CheckClient(target);
  const tokenClient = new CheckClient(target);
  const h2 = {
    url: `http://${target}${CHECK_PATH}`,
    bodyFile: o.p.data.get(BULK)!.grpc,
    headers: GRPC_HEADERS,
    connections: o.settings.connections,
    streams: Math.max(1, Math.round(o.settings.concurrency / o.settings.connections)),
  };
  try {
    for (const s of [...probes, tokens]) {
      const v = await prober.verify(s.requests[0]!, s.expect);
      if (!v.ok) return { passed: false, reason: `${s.name} before the soak: ${describe(v)}` };
    }

    o.log(`soak: measuring the max rate of ${BULK} with h2load (${o.settings.warmupSec}s warm-up, 10s closed loop)`);
    await runH2load({ ...h2, durationSec: o.settings.warmupSec });
    const max = await runH2load({ ...h2, durationSec: 10 });
    const rps = Math.max(o.settings.connections, Math.floor(max.rps * o.settings.loadFraction));
    const perConnection = Math.max(1, Math.round(rps / o.settings.connections));
    o.log(
      `soak: ${o.durationSec}s at ${perConnection * o.settings.connections} rps (${o.settings.loadFraction * 100}% of ${max.rps}) with h2load, ${o.tokenRps} rps of ${tokens.requests.length} distinct tokens (cache ${cacheSize}), reloads every ${o.reloadEverySec}s`,
    );

    const countsBefore = await readDecisionCounts(metricsUrl);
    const metricsBefore = await scrapeText(metricsUrl);
    const cpu0 = treeCpuSeconds(server.pid);
    const busy0 = machineBusySeconds();
    const t0 = Date.now();
    const rss = sampleRss(server.pid, 2000);
    const loads: { t: number; load1: number }[] = [{ t: 0, load1: loadAverage()[0] }];
    const loadTimer = setInterval(
      () => loads.push({ t: round((Date.now() - t0) / 1000, 0), load1: loadAverage()[0] }),
      10_000,
    );
    let running = true;

    // One checked call of each kind in turn, every 100 ms.
    const probe = tallyOf();
    const probing = (async () => {
      for (let i = 0; running; i++) {
        const s = probes[i % probes.length]!;
        record(probe, await prober.verify(s.requests[0]!, s.expect));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    // Distinct tokens round-robin at a steady rate, every call checked.
    const stream = tallyOf();
    const streaming = (async () => {
      const inFlight = new Set<Promise<void>>();
      const perTick = Math.max(1, Math.round(o.tokenRps / 10));
      for (let n = 0; running; ) {
        for (let k = 0; k < perTick && inFlight.size < 256; k++, n++) {
          const p = tokenClient.verify(tokens.requests[n % tokens.requests.length]!, tokens.expect).then((v) => {
            record(stream, v);
            inFlight.delete(p);
          });
          inFlight.add(p);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      await Promise.all(inFlight);
    })();
    // Both files replaced every reloadEverySec, each by the other revision.
    const reloads = { ticks: 0, failedToWrite: [] as string[] };
    const reloadTimer = setInterval(() => {
      const i = ++reloads.ticks;
      try {
        if (revisions) swapIn(revisions[i % 2]!, join(out, 'bundle.tar.gz'));
        rewriteKeys(o.p, i % 2 === 1);
      } catch (err) {
        if (reloads.failedToWrite.length < 5) reloads.failedToWrite.push((err as Error).message);
      }
    }, o.reloadEverySec * 1000);

    let load: H2loadResult;
    try {
      load = await runH2load({ ...h2, durationSec: o.durationSec, rps: perConnection });
    } finally {
      clearInterval(reloadTimer);
      clearInterval(loadTimer);
      running = false;
      await Promise.all([probing, streaming]);
    }
    const elapsedSec = (Date.now() - t0) / 1000;
    const samples = rss.stop();
    const serverCores = (treeCpuSeconds(server.pid) - cpu0) / elapsedSec;
    const machineCores = (machineBusySeconds() - busy0) / elapsedSec;
    const metricsAfter = await scrapeText(metricsUrl);
    const decisions = decisionsDuring(countsBefore, await readDecisionCounts(metricsUrl));
    const reloadCounts = counterDeltas(metricsBefore, metricsAfter, [
      'mcp_authz_policy_reloads_total',
      'mcp_authz_api_keys_reloads_total',
      'mcp_authz_log_lines_dropped_total',
    ]);
    const growth = rssGrowth(samples, elapsedSec);
    const h2loadErrors = load.failed + load.errored + load.timeout;
    const reloadFailures =
      (reloadCounts['mcp_authz_policy_reloads_total{result="failure"}'] ?? 0) +
      (reloadCounts['mcp_authz_api_keys_reloads_total{result="failure"}'] ?? 0);
    const checks = {
      rssGrowthBelow10Pct: growth.growthPct < 10,
      noLoadGeneratorError:
        h2loadErrors === 0 && load.succeeded === load.done && load.statusCodes['4xx'] + load.statusCodes['5xx'] === 0,
      everyProbeRight: probe.wrong === 0 && probe.failed === 0 && probe.sent > 0,
      everyTokenCallRight: stream.wrong === 0 && stream.failed === 0 && stream.sent > 0,
      noUnexpectedDecision: Object.keys(decisions.other).length === 0,
      reloadsHappenedAndNoneFailed:
        reloadFailures === 0 &&
        reloads.failedToWrite.length === 0 &&
        (reloadCounts['mcp_authz_policy_reloads_total{result="success"}'] ?? 0) > 0 &&
        (reloadCounts['mcp_authz_api_keys_reloads_total{result="success"}'] ?? 0) > 0,
    };
    return {
      passed: Object.values(checks).every(Boolean),
      checks,
      workers: o.workers ?? 'default (serve without --workers: one per core)',
      durationSec: round(elapsedSec, 1),
      maxRps: max.rps,
      maxRun: max,
      load,
      tokenStream: { rps: o.tokenRps, distinctTokens: tokens.requests.length, tokenCacheSize: cacheSize, ...stream },
      prober: { kinds: PROBES, ...probe },
      decisions,
      reloads: {
        everySec: o.reloadEverySec,
        ticks: reloads.ticks,
        bundleRevisions: revisions?.map((r) => r.revision) ?? [],
        failedToWrite: reloads.failedToWrite,
        counters: reloadCounts,
      },
      cpu: {
        serverCores: round(serverCores, 2),
        machineCores: round(machineCores, 2),
        note: "cores busy on average over the soak: the server's process tree, and the whole machine (the server, h2load, this process and anything else running)",
      },
      loadAverage1m: {
        min: Math.min(...loads.map((l) => l.load1)),
        median: median(loads.map((l) => l.load1)),
        max: Math.max(...loads.map((l) => l.load1)),
        samples: loads,
      },
      rss: {
        ...growth,
        samples: samples.map((x) => ({
          t: round(x.t / 1000, 0),
          mib: round(x.bytes / 2 ** 20, 1),
          processes: x.processes,
        })),
      },
    };
  } finally {
    prober.close();
    tokenClient.close();
    await server.stop(10_000);
  }
}

function record(t: StreamTally, v: Awaited<ReturnType<CheckClient['verify']>>): void {
  t.sent++;
  if (v.ok) t.right++;
  else if (v.failure) t.failed++;
  else t.wrong++;
  if (!v.ok && t.samples.length < 5) t.samples.push(describe(v));
}

/** The bench config's oauth.tokenCacheSize (the default when it sets none). */
function tokenCacheSize(): number {
  const text = readFileSync(join(out, 'mcp-authz.yaml'), 'utf8');
  const m = /tokenCacheSize: (\d+)/.exec(text);
  return m ? Number(m[1]) : 10_000;
}

const median = (xs: number[]) => {
  const a = [...xs].sort((x, y) => x - y);
  return a.length ? a[Math.floor(a.length / 2)]! : NaN;
};

/**
 * RSS of the process tree: the median of the 10–20% window (after warm-up) against the median
 * of the last 10%; and the first sample, the peak and the last.
 */
export function rssGrowth(samples: RssSample[], durationSec: number) {
  const ms = durationSec * 1000;
  const early = samples.filter((x) => x.t >= 0.1 * ms && x.t <= 0.2 * ms).map((x) => x.bytes);
  const late = samples.filter((x) => x.t >= 0.9 * ms).map((x) => x.bytes);
  const base = median(early);
  const end = median(late);
  // The lowest RSS of a window is the heap after collection: its growth is the leak signal,
  // less sensitive to where the GC sawtooth happens to be than the median.
  const floorBase = Math.min(...early);
  const floorEnd = Math.min(...late);
  const mib = (b: number) => round(b / 2 ** 20, 1);
  return {
    startMiB: mib(samples[0]?.bytes ?? NaN),
    baselineMiB: mib(base),
    endMiB: mib(end),
    lastMiB: mib(samples.at(-1)?.bytes ?? NaN),
    peakMiB: mib(Math.max(...samples.map((x) => x.bytes))),
    growthPct: round(((end - base) / base) * 100, 2),
    floorGrowthPct: round(((floorEnd - floorBase) / floorBase) * 100, 2),
    window: 'baseline: median of 10-20% of the run; end: median of the last 10%',
  };
}

/** Two revisions of the shipped bundle (its .manifest revision changed), swapped in turn. */
async function bundleRevisions(): Promise<{ revision: string; file: string }[]> {
  const file = join(out, 'bundle.tar.gz');
  if (!existsSync(file)) throw new Error('no policy bundle to reload');
  const made: { revision: string; file: string }[] = [];
  for (const revision of ['soak-a', 'soak-b']) {
    const dir = mkdtempSync(join(out, 'bundle-'));
    try {
      const x = await run('tar', ['-xzf', file, '-C', dir]);
      if (x.code !== 0) throw new Error(`tar -x: ${x.stderr}`);
      const manifest = JSON.parse(readFileSync(join(dir, '.manifest'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(dir, '.manifest'), JSON.stringify({ ...manifest, revision }));
      const target = join(out, `bundle-${revision}.tar.gz`);
      const c = await run('tar', ['-czf', target, '-C', dir, '.']);
      if (c.code !== 0) throw new Error(`tar -c: ${c.stderr}`);
      made.push({ revision, file: target });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return made;
}

/** A copy of `from` renamed over `to`: what a deployment tool does. */
function swapIn(from: { file: string }, to: string): void {
  copyFileSync(from.file, `${to}.tmp`);
  renameSync(`${to}.tmp`, to);
}

/** The keys file rewritten with or without one more key, swapped in by rename. */
function rewriteKeys(p: Prepared, extra: boolean): void {
  const tmp = `${p.keysFile}.tmp`;
  writeFileSync(tmp, stringify(p.keysDocument(extra ? `mcp_${randomBytes(32).toString('base64url')}` : undefined)), {
    mode: 0o600,
  });
  renameSync(tmp, p.keysFile);
}

async function scrapeText(url: string): Promise<string> {
  return (await fetch(url, { signal: AbortSignal.timeout(10_000) })).text();
}

/** Decisions the service counted during the soak, by "allow 200" / "deny 403" …; `other`: any the streams never ask for. */
function decisionsDuring(before: DecisionCounts, after: DecisionCounts) {
  const expected = new Set(['allow 200', 'deny 403', 'deny 401']);
  const counted: DecisionCounts = {};
  const other: DecisionCounts = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d <= 0) continue;
    counted[k] = d;
    if (!expected.has(k)) other[k] = d;
  }
  return { counted, other };
}

/** How much each series of the named counters rose between two scrapes. */
function counterDeltas(before: string, after: string, names: string[]): Record<string, number> {
  const read = (text: string) => {
    const m = new Map<string, number>();
    for (const line of text.split('\n')) {
      const x = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
      if (x && names.includes(x[1]!)) m.set(`${x[1]}${x[2] ?? ''}`, Number(x[3]));
    }
    return m;
  };
  const a = read(before);
  const out: Record<string, number> = {};
  for (const [k, v] of read(after)) out[k] = v - (a.get(k) ?? 0);
  return out;
}
