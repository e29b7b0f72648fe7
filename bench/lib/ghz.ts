// Drives ghz against one Check server and reduces its JSON report to what the benchmark
// publishes: throughput, latency percentiles (from every call's latency), gRPC errors.
import { readFileSync, rmSync } from 'node:fs';
import { envoyIncludeDirs } from '../../src/envoy/protos.js';
import { parseCpuTimes, start, withCpuTimes } from './processes.js';

export interface LoadOptions {
  ghz: string;
  target: string;
  /** Serialized CheckRequest(s): one message, or several varint-length-prefixed. */
  dataFile: string;
  connections: number;
  concurrency: number;
  /** How long the load lasts. */
  durationSec: number;
  /** Open loop: this many calls per second (else closed loop: as fast as answers come). */
  rps?: number;
  outFile: string;
  /** Called with the PID of the process group running ghz. */
  onStart?: (pid: number) => void;
}

export interface LoadResult {
  loadGenerator: 'ghz';
  mode: 'closed' | 'open';
  requestedRps?: number;
  connections: number;
  concurrency: number;
  count: number;
  durationSec: number;
  rps: number;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  latencySamples: number;
  /** Calls that did not end with gRPC OK (the service's own denies are OK at the gRPC level). */
  errors: number;
  /** Calls cut by ghz itself when a timed run ends (its connections close under them). */
  cutAtEnd: number;
  statusCodes: Record<string, number>;
  errorSamples: string[];
  endReason: string;
  /** CPU seconds ghz itself used, and the cores that is over the run. */
  loadGeneratorCpuSec: number | undefined;
  loadGeneratorCores: number | undefined;
}

interface GhzReport {
  count: number;
  total: number;
  rps: number;
  average: number;
  endReason: string;
  statusCodeDistribution?: Record<string, number>;
  errorDistribution?: Record<string, number>;
  details?: { latency: number; status: string; error: string }[];
}

const END_CUT =
  /use of closed network connection|transport is closing|context canceled|grpc: the client connection is closing/;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const args = [
    '--insecure',
    '--proto',
    'envoy/service/auth/v3/external_auth.proto',
    '--import-paths',
    envoyIncludeDirs.join(','),
    '--call',
    'envoy.service.auth.v3.Authorization.Check',
    '--binary-file',
    o.dataFile,
    '--connections',
    String(o.connections),
    '--concurrency',
    String(o.concurrency),
    '--timeout',
    '10s',
    '--format',
    'json',
    '--output',
    o.outFile,
  ];
  // A timed run; calls in flight at the end are waited for, not cancelled and counted as errors.
  args.push('--duration', `${o.durationSec}s`, '--duration-stop', 'wait');
  if (o.rps) args.push('--rps', String(o.rps));
  args.push(o.target);
  rmSync(o.outFile, { force: true });
  const p = start(...withCpuTimes(o.ghz, args), { captureStderr: true });
  o.onStart?.(p.pid);
  const chunks: string[] = [];
  p.child.stderr!.on('data', (d: Buffer) => chunks.push(d.toString()));
  const code = await p.exited;
  const { cpuSec, stderr } = parseCpuTimes(chunks.join(''));
  let report: GhzReport;
  try {
    report = JSON.parse(readFileSync(o.outFile, 'utf8')) as GhzReport;
  } catch {
    throw new Error(`ghz failed (exit ${code}): ${stderr.trim().slice(0, 2000)}`);
  }
  const details = report.details ?? [];
  const lat = new Float64Array(details.length);
  let errors = 0;
  let cutAtEnd = 0;
  const samples = new Set<string>();
  details.forEach((d, i) => {
    lat[i] = d.latency / 1e6;
    if (d.status !== 'OK') {
      if (END_CUT.test(d.error)) cutAtEnd++;
      else {
        errors++;
        if (samples.size < 5) samples.add(`${d.status}: ${d.error}`.slice(0, 300));
      }
    }
  });
  // A timed run cuts at most one call per worker; more than that are real errors.
  if (cutAtEnd > o.concurrency) {
    errors += cutAtEnd;
    cutAtEnd = 0;
  }
  lat.sort();
  const durationSec = report.total / 1e9;
  // ghz keeps at most 1,000,000 call details: counts come from its totals, latencies from the kept calls.
  const completed = report.count - errors - cutAtEnd;
  const sum = lat.reduce((a, b) => a + b, 0);
  rmSync(o.outFile, { force: true });
  return {
    loadGenerator: 'ghz',
    mode: o.rps ? 'open' : 'closed',
    ...(o.rps ? { requestedRps: o.rps } : {}),
    connections: o.connections,
    concurrency: o.concurrency,
    count: report.count,
    durationSec: round(durationSec, 3),
    rps: round(completed / durationSec, 0),
    latencyMs: {
      mean: round(sum / (lat.length || 1), 3),
      p50: round(percentile(lat, 50), 3),
      p90: round(percentile(lat, 90), 3),
      p99: round(percentile(lat, 99), 3),
      p999: round(percentile(lat, 99.9), 3),
      max: round(lat[lat.length - 1] ?? NaN, 3),
    },
    /** How many calls the latency percentiles are computed from (all of them up to ghz's 1M cap). */
    latencySamples: details.length,
    errors,
    cutAtEnd,
    statusCodes: report.statusCodeDistribution ?? {},
    errorSamples: [...samples],
    endReason: report.endReason,
    loadGeneratorCpuSec: cpuSec === undefined ? undefined : round(cpuSec, 2),
    loadGeneratorCores: cpuSec === undefined ? undefined : round(cpuSec / durationSec, 2),
  };
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function ghzVersion(ghz: string): string {
  try {
    return readFileSync(`${ghz.replace(/\/ghz$/, '')}/.ghz.version`, 'utf8').trim();
  } catch {
    return 'unknown';
  }
}
