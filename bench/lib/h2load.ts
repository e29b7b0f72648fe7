// Drives h2load (nghttp2), a light C load generator, with one thread: the max throughput of
// a server without a load generator that takes a core of the two. Over HTTP/2 it sends the
// gRPC-framed CheckRequest as a unary gRPC call; with `h1` it sends the original HTTP request
// over HTTP/1.1 (Envoy's HTTP ext_authz shape). h2load reads no gRPC trailers: the caller
// checks decisions another way (a grpc-js prober, the service's own counters).
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { round } from './ghz.js';
import { parseCpuTimes, start, withCpuTimes } from './processes.js';

export const H2LOAD = 'h2load';
export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
// As Envoy's ext_authz filter sends them; grpc-timeout is its default 200 ms timeout.
export const GRPC_TIMEOUT_MS = 200;
export const GRPC_HEADERS = {
  'content-type': 'application/grpc',
  te: 'trailers',
  'grpc-timeout': `${GRPC_TIMEOUT_MS}m`,
};

export interface H2loadOptions {
  /** http://host:port/path */
  url: string;
  /** The request body sent with every request (POST). */
  bodyFile: string;
  headers: Record<string, string>;
  /** HTTP/1.1 instead of HTTP/2 (cleartext). */
  h1?: boolean;
  connections: number;
  /** Streams in flight per connection (HTTP/2); pipelined requests per connection with h1. */
  streams: number;
  durationSec: number;
  /** Open loop: requests per second of each connection (h2load --rps); default a closed loop. */
  rps?: number;
  /** Per-request latencies are written here, and read back for percentiles and late answers. */
  logFile?: string;
  /** With logFile: answers slower than this are counted as late (past the caller's grpc-timeout). */
  lateAfterMs?: number;
  onStart?: (pid: number) => void;
}

export interface H2loadResult {
  /** h2load, or bench/loadgen (the same shape, plus what a gRPC reader sees). */
  loadGenerator: 'h2load' | 'loadgen';
  protocol: 'h2c' | 'http/1.1';
  connections: number;
  streams: number;
  durationSec: number;
  /** Responses completed per second (every status: a deny over HTTP/1.1 is a 4xx). */
  rps: number;
  done: number;
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  statusCodes: { '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  /** CPU seconds h2load itself used, and the cores that is over the run. */
  loadGeneratorCpuSec: number | undefined;
  loadGeneratorCores: number | undefined;
  latencyMs?: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  /** Answers that took longer than lateAfterMs: past Envoy's timeout, a failure whatever their status. */
  late?: number;
  /** loadgen only: answers by grpc-status, by the CheckResponse's status.code, and calls per message. */
  grpcStatus?: Record<string, number>;
  checkCodes?: Record<string, number>;
  sentPerMessage?: number[];
  errorSamples?: string[];
  /**
   * loadgen only: calls the server did not process and that were sent again (above a GOAWAY's
   * last stream id, or REFUSED_STREAM); GOAWAYs the server sent before the generator ended the
   * connection, by error code; connections opened (more than `connections` when the server
   * closed some).
   */
  resent?: number;
  goAways?: Record<string, number>;
  connectionsOpened?: number;
}

/** A unary gRPC request body: the 5-byte frame header (uncompressed, length) and the message. */
export function grpcFrame(msg: Buffer): Buffer {
  const f = Buffer.alloc(5 + msg.length);
  f.writeUInt32BE(msg.length, 1);
  msg.copy(f, 5);
  return f;
}

export function h2loadVersion(): string {
  const r = spawnSync(H2LOAD, ['--version'], { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout.trim().split('\n')[0]! : 'unknown';
}

export async function runH2load(o: H2loadOptions): Promise<H2loadResult> {
  const args = [
    '-t',
    '1',
    '-c',
    String(o.connections),
    '-m',
    String(o.streams),
    '-D',
    String(o.durationSec),
    '-d',
    o.bodyFile,
  ];
  if (o.h1) args.push('--h1');
  if (o.rps !== undefined) args.push('--rps', String(o.rps));
  for (const [k, v] of Object.entries(o.headers)) args.push('-H', `${k}: ${v}`);
  if (o.logFile) {
    rmSync(o.logFile, { force: true });
    args.push('--log-file', o.logFile);
  }
  args.push(o.url);
  const [cmd, wrapped] = withCpuTimes(H2LOAD, args);
  const p = start(cmd, wrapped, { onStdout: () => undefined, captureStderr: true });
  o.onStart?.(p.pid);
  const out: string[] = [];
  const err: string[] = [];
  p.child.stdout!.on('data', (d: Buffer) => out.push(d.toString()));
  p.child.stderr!.on('data', (d: Buffer) => err.push(d.toString()));
  const code = await p.exited;
  const stdout = out.join('');
  const { cpuSec, stderr } = parseCpuTimes(err.join(''));
  const finished = /finished in ([\d.]+)(s|ms),/.exec(stdout);
  const reqs =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      stdout,
    );
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
  if (code !== 0 || !finished || !reqs || !codes) {
    throw new Error(`h2load failed (exit ${code}): ${(stderr + stdout).trim().slice(-1500)}`);
  }
  const durationSec = Number(finished[1]) / (finished[2] === 'ms' ? 1000 : 1);
  const done = Number(reqs[3]);
  const result: H2loadResult = {
    loadGenerator: 'h2load',
    protocol: o.h1 ? 'http/1.1' : 'h2c',
    connections: o.connections,
    streams: o.streams,
    durationSec: round(durationSec, 3),
    rps: round(done / durationSec, 0),
    done,
    succeeded: Number(reqs[4]),
    failed: Number(reqs[5]),
    errored: Number(reqs[6]),
    timeout: Number(reqs[7]),
    statusCodes: { '2xx': Number(codes[1]), '3xx': Number(codes[2]), '4xx': Number(codes[3]), '5xx': Number(codes[4]) },
    loadGeneratorCpuSec: cpuSec === undefined ? undefined : round(cpuSec, 2),
    loadGeneratorCores: cpuSec === undefined ? undefined : round(cpuSec / durationSec, 2),
  };
  if (o.logFile) {
    const lat = latencies(o.logFile);
    result.latencyMs = lat.summary;
    if (o.lateAfterMs !== undefined) result.late = lat.sorted.length - lowerBound(lat.sorted, o.lateAfterMs);
    rmSync(o.logFile, { force: true });
  }
  return result;
}

/** h2load's --log-file: start time (µs since epoch), status, µs until the response ended. */
function latencies(file: string): { sorted: Float64Array; summary: NonNullable<H2loadResult['latencyMs']> } {
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const lat = new Float64Array(lines.length);
  lines.forEach((l, i) => (lat[i] = Number(l.split('\t')[2]) / 1000));
  lat.sort();
  const at = (p: number) =>
    round(lat[Math.min(lat.length - 1, Math.max(0, Math.ceil((p / 100) * lat.length) - 1))] ?? NaN, 3);
  return {
    sorted: lat,
    summary: {
      mean: round(lat.reduce((a, b) => a + b, 0) / (lat.length || 1), 3),
      p50: at(50),
      p90: at(90),
      p99: at(99),
      p999: at(99.9),
      max: at(100),
    },
  };
}

/** Index of the first value above `x` in a sorted array. */
function lowerBound(sorted: Float64Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Writes a body file for h2load and returns its path. */
export function writeBody(file: string, body: Buffer | string): string {
  writeFileSync(file, body);
  return file;
}

export interface LoadgenOptions {
  /** bench/loadgen's binary (scripts/install-tools.sh loadgen). */
  bin: string;
  /** host:port */
  target: string;
  /** Serialized CheckRequests, each prefixed by its varint length; sent round-robin. */
  dataFile: string;
  connections: number;
  streams: number;
  /** How long to send; or `requests`, an exact count. */
  durationSec?: number;
  requests?: number;
  lateAfterMs?: number;
  /** The grpc-timeout each call carries (default Envoy's 200 ms); 0: none, the server waits as long as it takes. */
  grpcTimeoutMs?: number;
  onStart?: (pid: number) => void;
}

/**
 * Drives bench/loadgen: gRPC Check calls over cleartext HTTP/2 like h2load's (one thread,
 * a closed loop of connections × streams), each request's message taken round-robin from a
 * list, so a scenario of distinct tokens needs no protobuf work per call in the generator.
 */
export async function runLoadgen(o: LoadgenOptions): Promise<H2loadResult> {
  const args = ['-target', o.target, '-data', o.dataFile, '-c', String(o.connections), '-m', String(o.streams)];
  const timeout = o.grpcTimeoutMs ?? GRPC_TIMEOUT_MS;
  args.push('-grpc-timeout', timeout > 0 ? `${timeout}m` : '', '-late-after', `${o.lateAfterMs ?? GRPC_TIMEOUT_MS}ms`);
  if (o.requests !== undefined) args.push('-n', String(o.requests));
  else args.push('-d', `${o.durationSec ?? 5}s`);
  const p = start(o.bin, args, { onStdout: () => undefined, captureStderr: true });
  o.onStart?.(p.pid);
  const out: string[] = [];
  const err: string[] = [];
  p.child.stdout!.on('data', (d: Buffer) => out.push(d.toString()));
  p.child.stderr!.on('data', (d: Buffer) => err.push(d.toString()));
  const code = await p.exited;
  let r: H2loadResult & { messages: number };
  try {
    r = JSON.parse(out.join('')) as H2loadResult & { messages: number };
  } catch {
    throw new Error(`loadgen failed (exit ${code}): ${(err.join('') + out.join('')).trim().slice(-1500)}`);
  }
  if (code !== 0) throw new Error(`loadgen failed (exit ${code}): ${err.join('').trim().slice(-1500)}`);
  return r;
}

/** Length-prefixed messages (protobuf varint lengths): loadgen's and ghz's data file for several requests. */
export function delimited(msgs: Buffer[]): Buffer {
  return Buffer.concat(msgs.flatMap((m) => [varint(m.length), m]));
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}
