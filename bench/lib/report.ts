// The benchmark's result records, the ratios to the null server and the peer, and the table on stdout.
import type { LoadResult } from './ghz.js';
import { round } from './ghz.js';
import type { Scenario } from './scenarios.js';
import type { Verdict } from './verify.js';

export interface SystemRun {
  system: string;
  scenario: string;
  what: string;
  expected: Scenario['expect'];
  /** measured; check-failed (a decision differed from the expected one); not-run; error. */
  state: 'measured' | 'check-failed' | 'not-run' | 'error';
  reason?: string;
  checkBefore?: Verdict;
  checkAfter?: Verdict;
  /** Closed loop: max throughput (the median of the interleaved rounds). */
  closed?: LoadResult;
  /** Every round's closed-loop throughput, in the order they ran. */
  roundsRps?: number[];
  /** One connection, one call at a time: the latency of a Check without queueing. */
  lone?: LoadResult;
  /** Open loop at a fraction of the closed loop's throughput: the latency figures. */
  open?: LoadResult;
  peakRssBytes?: number;
  processes?: number;
  /** Cores used during the closed loop: the server, ghz, and everything else on the machine. */
  cpu?: { serverCores: number; loadGeneratorCores: number; otherCores: number };
  /** Waiting for an idle machine before the load (--wait-idle). */
  idleBefore?: { waitedSec: number; idle: boolean; busyCores: number };
}

export interface Ratio {
  /** mcp-authz max rps / null server max rps on the same scenario's requests. */
  vsNull: number | null;
  /** mcp-authz max rps / opa-envoy-plugin max rps, same scenario. */
  vsOpaEnvoyPlugin: number | null;
  /** p99 (ms) of mcp-authz's open-loop run. */
  p99Ms: number | null;
}

export function ratios(runs: SystemRun[]): Record<string, Ratio> {
  const ok = (r: SystemRun | undefined) => (r && r.state === 'measured' && r.closed ? r.closed.rps : undefined);
  const out: Record<string, Ratio> = {};
  for (const r of runs.filter((x) => x.system === 'mcp-authz')) {
    const mine = ok(r);
    const nullRps = ok(runs.find((x) => x.system === 'null' && x.scenario === r.scenario));
    const oep = ok(runs.find((x) => (x.system === 'opa-envoy-plugin' || x.system === 'opa-peer') && x.scenario === r.scenario));
    out[r.scenario] = {
      vsNull: mine && nullRps ? round(mine / nullRps, 3) : null,
      vsOpaEnvoyPlugin: mine && oep ? round(mine / oep, 3) : null,
      p99Ms: r.state === 'measured' ? (r.open?.latencyMs.p99 ?? null) : null,
    };
  }
  return out;
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const spread = (xs: number[] | undefined) => {
  if (!xs || xs.length < 2) return '-';
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return `${Math.round(((sorted[sorted.length - 1]! - sorted[0]!) / mid) * 100)}%`;
};
const ms = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(n < 10 ? 3 : 1));

export function printTable(result: { machine: { cpu: string; cores: number; memoryGiB: number; node: string }; command: string; runs: SystemRun[]; ratios: Record<string, Ratio> }): void {
  const w = (line: string) => process.stdout.write(line + '\n');
  const m = result.machine;
  w('');
  w(`${result.command}   on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}; ghz on the same machine`);
  w('');
  const head = [
    pad('system', 17), pad('scenario', 18), lpad('max rps', 8), lpad('open rps', 9),
    lpad('p50 ms', 8), lpad('p90 ms', 8), lpad('p99 ms', 8), lpad('p99.9 ms', 9), lpad('errors', 7), lpad('RSS MiB', 8),
    lpad('spread', 7), lpad('lone p50', 9), lpad('lone p99', 9),
    lpad('cpu s/g/o', 14), lpad('/null', 6), lpad('/opa-env', 9),
  ].join(' ');
  w(head);
  w('-'.repeat(head.length));
  const reasons: string[] = [];
  for (const r of result.runs) {
    const ratio = r.system === 'mcp-authz' ? result.ratios[r.scenario] : undefined;
    if (r.state !== 'measured') {
      const why = r.reason ?? '';
      if (!reasons.includes(why)) reasons.push(why);
      w(`${pad(r.system, 17)} ${pad(r.scenario, 18)} ${r.state.toUpperCase()} [${reasons.indexOf(why) + 1}]`);
      continue;
    }
    const c = r.closed!;
    const o = r.open!;
    w(
      [
        pad(r.system, 17), pad(r.scenario, 18), lpad(String(c.rps), 8), lpad(String(o.rps), 9),
        lpad(ms(o.latencyMs.p50), 8), lpad(ms(o.latencyMs.p90), 8), lpad(ms(o.latencyMs.p99), 8), lpad(ms(o.latencyMs.p999), 9),
        lpad(String(c.errors + o.errors + (r.lone?.errors ?? 0)), 7), lpad(((r.peakRssBytes ?? 0) / 2 ** 20).toFixed(0), 8),
        lpad(spread(r.roundsRps), 7), lpad(ms(r.lone?.latencyMs.p50), 9), lpad(ms(r.lone?.latencyMs.p99), 9),
        lpad(r.cpu ? `${r.cpu.serverCores}/${r.cpu.loadGeneratorCores}/${r.cpu.otherCores}` : '-', 14),
        lpad(ratio?.vsNull != null ? ratio.vsNull.toFixed(2) : '-', 6), lpad(ratio?.vsOpaEnvoyPlugin != null ? ratio.vsOpaEnvoyPlugin.toFixed(2) : '-', 9),
      ].join(' '),
    );
  }
  w('');
  w('max rps: closed loop, median of the interleaved rounds; spread: (highest - lowest round) / median;');
  w('open rps and p50-p99.9: open loop at 50% of that system\'s max; lone: one connection, one call at a time (no queueing);');
  w('errors: calls not ending in gRPC OK; /null and /opa-env: max rps ratios on the same scenario\'s requests;');
  w('cpu s/g/o: cores used by the server / by ghz / by other processes on the machine during the closed loop.');
  reasons.forEach((why, i) => w(`[${i + 1}] ${why}`));
  const busiest = Math.max(0, ...result.runs.map((r) => r.cpu?.otherCores ?? 0));
  if (busiest > 0.25) {
    w('');
    w(`WARNING: other processes took up to ${busiest} cores during these runs: the machine was not idle, the figures understate every system.`);
  }
}
