// The benchmark's result records, the ratios to the null servers and the peer, and the table on stdout.
import type { DecisionTally } from './decision-counts.js';
import type { LoadResult } from './ghz.js';
import { round } from './ghz.js';
import type { H2loadResult } from './h2load.js';
import type { Scenario } from './scenarios.js';
import type { Verdict } from './verify.js';

/** One closed loop of one server. */
export interface Round {
  loadGenerator: 'h2load' | 'ghz' | 'loadgen';
  rps: number;
  /** The server's CPU (all its processes) per answered call: steadier than rps on a shared machine. */
  serverCpuUsPerCall: number;
  load: H2loadResult | LoadResult;
  /** The machine's 1-minute load average when the round started. */
  loadAverage1: number;
  /** Cores used over the round: the server's process tree, the load generator, everything else. */
  cores: { server: number; loadGenerator: number; other: number };
  /** Answers sampled during the load with the server's own protocol (grpc-js client, or HTTP/1.1). */
  probes: { sent: number; wrong: number; samples: string[] };
  /** mcp-authz's own count of its decisions during the round (mcp_authz_check_total). */
  decisions?: DecisionTally;
}

export interface SystemRun {
  system: string;
  transport: 'grpc' | 'http1';
  scenario: string;
  what: string;
  expected: Scenario['expect'];
  /** measured; check-failed (a decision differed from the expected one); not-run; error. */
  state: 'measured' | 'check-failed' | 'not-run' | 'error';
  reason?: string;
  /** How the server runs (processes, build). */
  about?: string;
  /** Transport study: the null server of the same transport, and max rps over its max rps. */
  ownNull?: string;
  vsOwnNull?: number;
  checkBefore?: Verdict;
  checkAfter?: Verdict;
  /** Max throughput: the median of the interleaved closed-loop rounds. */
  maxRps?: number;
  closed?: H2loadResult | LoadResult;
  rounds?: Round[];
  /** Every round's throughput, in the order they ran. */
  roundsRps?: number[];
  /** One connection, one call at a time: the latency of a Check without queueing. */
  lone?: LoadResult | H2loadResult;
  /** The same with h2load (every transport): a floor without ghz's own per-call cost. */
  loneH2load?: H2loadResult;
  /** Open loop (ghz) at a fraction of the max: the latency figures under load. */
  open?: LoadResult;
  peakRssBytes?: number;
  /** The peak with the pages the processes share (the node binary, libraries) counted once (treeRss). */
  peakOwnBytes?: number;
  /** RSS of the server's process tree after its last run of the scenario. */
  rssAfterBytes?: number;
  processes?: number;
  /** Cores used during the median round. */
  cores?: Round['cores'];
  /** Server CPU per call, median over the rounds (µs). */
  cpuUsPerCall?: number;
  loadAverageAtStart?: [number, number, number];
  /** Load generator errors over all rounds, the open loop and the lone calls. */
  errors?: number;
  /** Sampled answers and counted decisions that were not the scenario's expected one. */
  wrongDecisions?: number;
  /** Closed-loop answers (h2load) slower than Envoy's 200 ms grpc-timeout: failures Envoy would see. */
  late?: number;
  /** Waiting for an idle machine before the load (--wait-idle). */
  idleBefore?: { waitedSec: number; idle: boolean; busyCores: number };
}

export interface Ratio {
  /** mcp-authz max rps / the grpc-js null server's (mcp-authz's transport) on the same requests. */
  vsNullGrpcJs: number | null;
  /** mcp-authz max rps / the bare node:http2 null server's. */
  vsNullHttp2: number | null;
  /** mcp-authz max rps / opa-envoy-plugin's, same scenario. */
  vsOpaEnvoyPlugin: number | null;
  /** p99 (ms) of mcp-authz's open-loop run. */
  p99Ms: number | null;
}

export function ratios(runs: SystemRun[]): Record<string, Ratio> {
  const ok = (r: SystemRun | undefined) => (r && r.state === 'measured' && r.maxRps ? r.maxRps : undefined);
  const of = (system: string, scenario: string) => ok(runs.find((x) => x.system === system && x.scenario === scenario));
  const ratio = (a: number | undefined, b: number | undefined) => (a && b ? round(a / b, 3) : null);
  const out: Record<string, Ratio> = {};
  for (const r of runs.filter((x) => x.system === 'mcp-authz')) {
    const mine = ok(r);
    out[r.scenario] = {
      vsNullGrpcJs: ratio(mine, of('null-grpc-js', r.scenario)),
      vsNullHttp2: ratio(mine, of('null-http2', r.scenario)),
      vsOpaEnvoyPlugin: ratio(mine, of('opa-envoy-plugin', r.scenario)),
      p99Ms: r.state === 'measured' ? (r.open?.latencyMs.p99 ?? null) : null,
    };
  }
  return out;
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const ms = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(n < 10 ? 2 : 1));
const mib = (n: number | undefined) => (n === undefined ? '-' : (n / 2 ** 20).toFixed(0));

export function printTable(result: {
  machine: { cpu: string; cores: number; memoryGiB: number; node: string };
  command: string;
  runs: SystemRun[];
  ratios: Record<string, Ratio>;
}): void {
  const w = (line: string) => process.stdout.write(line + '\n');
  const m = result.machine;
  w('');
  w(
    `${result.command}   on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}; load generators on the same machine`,
  );
  w('');
  const head = [
    pad('scenario', 18),
    pad('system', 17),
    pad('lg', 7),
    lpad('max rps', 8),
    pad(' rounds', 22),
    lpad('srv/lg/oth cores', 17),
    lpad('µs/call', 8),
    lpad('p50 ms', 7),
    lpad('p99 ms', 7),
    lpad('lone p50', 9),
    lpad('lone h2l', 9),
    lpad('RSS pk/aft', 11),
    lpad('err/wrong/late', 15),
    lpad('×null-gj', 9),
    lpad('×null-h2', 9),
    lpad('×plugin', 8),
    lpad('×own null', 10),
    lpad('load1', 6),
  ].join(' ');
  w(head);
  w('-'.repeat(head.length));
  const reasons: string[] = [];
  for (const r of result.runs) {
    const ratio = r.system === 'mcp-authz' ? result.ratios[r.scenario] : undefined;
    if (r.state !== 'measured' && !r.maxRps) {
      const why = r.reason ?? '';
      if (!reasons.includes(why)) reasons.push(why);
      w(`${pad(r.scenario, 18)} ${pad(r.system, 17)} ${r.state.toUpperCase()} [${reasons.indexOf(why) + 1}]`);
      continue;
    }
    const lat = r.open?.latencyMs;
    const c = r.cores;
    const f = (x: number | null | undefined) => (x == null ? '-' : x.toFixed(2));
    w(
      [
        pad(r.scenario, 18),
        pad(r.system, 17),
        pad(r.closed?.loadGenerator ?? '-', 7),
        lpad(String(r.maxRps), 8),
        pad(' ' + (r.roundsRps ?? []).join('/'), 22),
        lpad(c ? `${c.server}/${c.loadGenerator}/${c.other}` : '-', 17),
        lpad(r.cpuUsPerCall === undefined ? '-' : r.cpuUsPerCall.toFixed(0), 8),
        lpad(ms(lat?.p50), 7),
        lpad(ms(lat?.p99), 7),
        lpad(ms(r.lone?.loadGenerator === 'ghz' ? r.lone.latencyMs.p50 : undefined), 9),
        lpad(ms(r.loneH2load?.latencyMs?.p50), 9),
        lpad(`${mib(r.peakRssBytes)}/${mib(r.rssAfterBytes)}`, 11),
        lpad(`${r.errors ?? 0}/${r.wrongDecisions ?? 0}/${r.late ?? '-'}`, 15),
        lpad(f(ratio?.vsNullGrpcJs), 9),
        lpad(f(ratio?.vsNullHttp2), 9),
        lpad(f(ratio?.vsOpaEnvoyPlugin), 8),
        lpad(f(r.vsOwnNull), 10),
        lpad(r.loadAverageAtStart ? r.loadAverageAtStart[0].toFixed(2) : '-', 6),
      ].join(' ') + (r.state !== 'measured' ? `  ${r.state.toUpperCase()}: ${r.reason}` : ''),
    );
  }
  w('');
  w('lg: load generator of the closed loop; max rps: median of the interleaved rounds (all shown);');
  w(
    'cores: server / load generator / other processes during the median round; µs/call: server CPU per answered call (median round);',
  );
  w(
    "p50/p99: ghz open loop at 50% of that system's max (gRPC only); lone p50: one call at a time with ghz; lone h2l: with h2load;",
  );
  w('RSS: peak / after the scenario (MiB, whole process tree); err: load generator errors; wrong: answers under load');
  w("(sampled, and mcp-authz's own decision counter) that were not the expected decision; late: closed-loop answers");
  w("slower than Envoy's 200 ms grpc-timeout (h2load); load1: 1-minute load average;");
  w('×own null: max rps over the null server of the same transport (transport study).');
  const own = result.runs.filter((r) => r.system === 'mcp-authz' && r.peakOwnBytes !== undefined);
  if (own.length > 0)
    w(
      `mcp-authz peak with the pages its processes share (node binary, libraries) counted once, as a container is charged: ${own.map((r) => `${r.scenario} ${mib(r.peakOwnBytes)}`).join(', ')} MiB`,
    );
  reasons.forEach((why, i) => w(`[${i + 1}] ${why}`));
  const busiest = Math.max(0, ...result.runs.map((r) => r.cores?.other ?? 0));
  if (busiest > 0.25) {
    w('');
    w(
      `WARNING: other processes took up to ${busiest} cores during these runs: the machine was not idle, the figures understate every system.`,
    );
  }
}
