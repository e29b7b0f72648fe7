// `npm run bench -- --in-process`: the cost of mcp-authz's own work per Check, without
// gRPC, HTTP/2 or a load generator: each scenario's CheckRequest decoded, run through the
// real runtime (the compiled dist/ modules, the benchmark's config, keys, tokens and the
// shipped policy, built exactly as `serve` builds it) and its answer encoded, many times in
// a row in this process. The figures guide optimization; the gRPC benchmark is what the
// targets are judged by. `--tracing unsampled|sampled` turns tracing on (OTLP/HTTP to a sink
// in another process) and gives every request a traceparent that is not / is sampled.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { getHeapSpaceStatistics } from 'node:v8';
import { Registry } from 'prom-client';
import type { Runtime } from '../../src/pipeline/runtime.js';
import { round } from './ghz.js';
import { root } from './paths.js';
import type { Prepared } from './mcp-authz.js';

export interface PhaseCosts {
  scenario: string;
  calls: number;
  /** Microseconds per call: decoding as the service's own gRPC server does (protobufjs, no toObject). */
  decodeUs: number;
  /** Decoding as the grpc-js server does (proto-loader's deserializer), for comparison. */
  decodeGrpcJsUs: number;
  pipelineUs: number;
  encodeUs: number;
  totalUs: number;
  /** The pipeline without the decision observers (metrics, decision log). */
  pipelineWithoutObserversUs: number;
  /** Bytes allocated per call on the JS heap (deterministic, unlike the times on a busy machine): decode, pipeline, encode. */
  decodeBytes: number;
  decodeGrpcJsBytes: number;
  pipelineBytes: number;
  encodeBytes: number;
  tracing: TracingMode;
  /** With tracing: spans the sink accepted, and spans whose export failed, over both pipeline runs (warm-up included). */
  spansExported?: number;
  spansFailed?: number;
}

const newSpaceUsed = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size;

/**
 * Bytes a call allocates: young-generation growth over a few hundred calls with no garbage
 * collection between them (a window in which it ran is thrown away and measured again),
 * less what reading the heap statistics itself allocates.
 */
async function allocatedPerCall(fn: (i: number) => unknown, calls = 300): Promise<number> {
  const window = async (f: (i: number) => unknown): Promise<number | undefined> => {
    let last = newSpaceUsed();
    const first = last;
    for (let i = 0; i < calls; i++) {
      await f(i);
      const used = newSpaceUsed();
      if (used < last) return undefined; // a scavenge ran
      last = used;
    }
    return (last - first) / calls;
  };
  const measure = async (f: (i: number) => unknown): Promise<number> => {
    for (let attempt = 0; attempt < 50; attempt++) {
      const v = await window(f);
      if (v !== undefined) return v;
    }
    return NaN;
  };
  const overhead = await measure(() => undefined);
  return Math.round((await measure(fn)) - overhead);
}

export type TracingMode = 'off' | 'unsampled' | 'sampled';
export const TRACING_MODES: readonly TracingMode[] = ['off', 'unsampled', 'sampled'];

/** An OTLP/HTTP endpoint that accepts everything, in its own process so its work is not counted here. */
export async function startSink(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `
    const s = require('node:http').createServer((q, r) => { q.resume(); q.on('end', () => r.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()); });
    s.listen(0, '127.0.0.1', () => process.stdout.write(String(s.address().port) + '\\n'));
  `,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  return { url: `http://127.0.0.1:${chunk.toString().trim()}`, child };
}

/** The scenario's requests with traceparents: every request (all distinct tokens stay distinct), at least 256 traces. */
export function tracedCopies(requests: Record<string, unknown>[], sampled: boolean): Record<string, unknown>[] {
  return Array.from({ length: Math.max(256, requests.length) }, (_, i) =>
    withTraceparent(requests[i % requests.length]!, i, sampled),
  );
}

/** A copy of a CheckRequest with a W3C traceparent header (a new trace per request). */
export function withTraceparent(req: Record<string, unknown>, i: number, sampled: boolean): Record<string, unknown> {
  const copy = structuredClone(req) as { attributes: { request: { http: { headers: Record<string, string> } } } };
  const traceId = (i + 1).toString(16).padStart(32, 'a');
  copy.attributes.request.http.headers.traceparent = `00-${traceId}-00f067aa0ba902b7-${sampled ? '01' : '00'}`;
  return copy;
}

/** The compiled modules (dist/, as `serve` runs them; the benchmark builds them first), typed as their sources. */
export async function product() {
  const load = <T>(path: string): Promise<T> => import(pathToFileURL(join(root, 'dist', path)).href) as Promise<T>;
  return {
    ...(await load<typeof import('../../src/contracts/outcome.js')>('contracts/outcome.js')),
    ...(await load<typeof import('../../src/pipeline/pipeline.js')>('pipeline/pipeline.js')),
    ...(await load<typeof import('../../src/config/load.js')>('config/load.js')),
    ...(await load<typeof import('../../src/ext-authz/encode-answer.js')>('ext-authz/encode-answer.js')),
    ...(await load<typeof import('../../src/envoy/protos.js')>('envoy/protos.js')),
    ...(await load<typeof import('../../src/envoy/to-request.js')>('envoy/to-request.js')),
    ...(await load<typeof import('../../src/ext-authz/answer.js')>('ext-authz/answer.js')),
    ...(await load<typeof import('../../src/log/logger.js')>('log/logger.js')),
    ...(await load<typeof import('../../src/pipeline/build-runtime.js')>('pipeline/build-runtime.js')),
    ...(await load<typeof import('../../src/server/grpc-server.js')>('server/grpc-server.js')),
    ...(await load<typeof import('../../src/grpc/grpc-js-server.js')>('grpc/grpc-js-server.js')),
    ...(await load<typeof import('../../src/ext-authz/check-codec.js')>('ext-authz/check-codec.js')),
    ...(await load<typeof import('../../src/server/health.js')>('server/health.js')),
  };
}

export async function measureInProcess(
  p: Prepared,
  configFile: string,
  calls: number,
  log: (m: string) => void,
  tracing: TracingMode = 'off',
): Promise<PhaseCosts[]> {
  const {
    authorizationService,
    buildRuntime,
    checkResponseBytes,
    createLogger,
    decodeCheckRequest,
    loadConfigFile,
    runCheck,
    toRequest,
  } = await product();
  const check = authorizationService().Check!;
  const sink = tracing === 'off' ? undefined : await startSink();
  let exported = 0;
  let failed = 0;
  const rt = await buildRuntime(loadConfigFile(configFile), createLogger(), new Registry(), {
    watch: false,
    sharedLimits: false,
    env: sink ? { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url } : {},
    events: { traceExport: (result, n) => (result === 'success' ? (exported += n) : (failed += n)) },
  });
  const quiet: Runtime = { ...rt, observer: { decided: () => undefined } };
  const results: PhaseCosts[] = [];
  try {
    for (const s of p.list) {
      // Distinct traces, a few hundred of them round-robin, as traffic from many callers.
      const requests = tracing === 'off' ? s.requests : tracedCopies(s.requests, tracing === 'sampled');
      const wires = requests.map((r) => check.requestSerialize(r));
      const first = await runCheck(rt, toRequest, decodeCheckRequest(wires[0]!));
      if (first.outcome.allow !== s.expect.allow)
        throw new Error(
          `${s.name}: decided ${first.outcome.allow ? 'allow' : 'deny'}, expected ${s.expect.allow ? 'allow' : 'deny'}`,
        );
      log(`in-process ${s.name}: ${calls} calls`);
      const decoded = wires.map((w) => decodeCheckRequest(w));
      // The event loop turns every 64 calls, as in a server, so the log stream can write.
      const loop = async (n: number, fn: (i: number) => unknown) => {
        for (let i = 0; i < n; i++) {
          await fn(i);
          if (i % 64 === 63) await new Promise((r) => setImmediate(r));
        }
      };
      const time = async (fn: (i: number) => unknown): Promise<number> => {
        await loop(Math.min(calls, 5000), fn);
        const t0 = process.hrtime.bigint();
        await loop(calls, fn);
        return Number(process.hrtime.bigint() - t0) / calls / 1000;
      };
      const decodeUs = await time((i) => decodeCheckRequest(wires[i % wires.length]!));
      const decodeGrpcJsUs = await time((i) => check.requestDeserialize(wires[i % wires.length]!));
      const [exportedBefore, failedBefore] = [exported, failed];
      const pipelineUs = await time((i) => runCheck(rt, toRequest, decoded[i % decoded.length]!));
      const pipelineWithoutObserversUs = await time((i) => runCheck(quiet, toRequest, decoded[i % decoded.length]!));
      const outcome = first.outcome;
      const encodeUs = await time(() => checkResponseBytes(outcome, first.decisionId));
      if (rt.tracing) {
        await (rt.tracing as unknown as { flush(): Promise<void> }).flush().catch(() => undefined);
      }
      const decodeBytes = await allocatedPerCall((i) => decodeCheckRequest(wires[i % wires.length]!));
      const decodeGrpcJsBytes = await allocatedPerCall((i) => check.requestDeserialize(wires[i % wires.length]!));
      const pipelineBytes = await allocatedPerCall((i) => runCheck(rt, toRequest, decoded[i % decoded.length]!));
      const encodeBytes = await allocatedPerCall(() => checkResponseBytes(outcome, first.decisionId));
      results.push({
        tracing,
        ...(sink ? { spansExported: exported - exportedBefore, spansFailed: failed - failedBefore } : {}),
        scenario: s.name,
        calls,
        decodeUs: round(decodeUs, 2),
        decodeGrpcJsUs: round(decodeGrpcJsUs, 2),
        pipelineUs: round(pipelineUs, 2),
        encodeUs: round(encodeUs, 2),
        totalUs: round(decodeUs + pipelineUs + encodeUs, 2),
        pipelineWithoutObserversUs: round(pipelineWithoutObserversUs, 2),
        decodeBytes,
        decodeGrpcJsBytes,
        pipelineBytes,
        encodeBytes,
      });
    }
  } finally {
    await rt.close();
    sink?.child.kill();
  }
  return results;
}

export function printInProcess(command: string, rows: PhaseCosts[]): void {
  const w = (line: string) => process.stdout.write(line + '\n');
  w('');
  w(`${command}: mcp-authz's own work per Check, in one process (µs per call), tracing ${rows[0]?.tracing ?? 'off'}`);
  w('');
  w(
    `${'scenario'.padEnd(18)} ${'decode'.padStart(7)} ${'pipeline'.padStart(9)} ${'encode'.padStart(7)} ${'total'.padStart(7)}   ${'pipeline without observers'.padStart(26)}   ${'decode (grpc-js)'.padStart(16)}`,
  );
  for (const r of rows) {
    const spans = r.spansExported !== undefined ? `   spans exported ${r.spansExported}, failed ${r.spansFailed}` : '';
    w(
      `${r.scenario.padEnd(18)} ${r.decodeUs.toFixed(1).padStart(7)} ${r.pipelineUs.toFixed(1).padStart(9)} ${r.encodeUs.toFixed(1).padStart(7)} ${r.totalUs.toFixed(1).padStart(7)}   ${r.pipelineWithoutObserversUs.toFixed(1).padStart(26)}   ${r.decodeGrpcJsUs.toFixed(1).padStart(16)}${spans}`,
    );
  }
  w('');
  w('bytes allocated per call (JS heap; deterministic where the times are not):');
  w(
    `${'scenario'.padEnd(18)} ${'decode'.padStart(7)} ${'pipeline'.padStart(9)} ${'encode'.padStart(7)}   ${'decode (grpc-js)'.padStart(16)}`,
  );
  for (const r of rows)
    w(
      `${r.scenario.padEnd(18)} ${String(r.decodeBytes).padStart(7)} ${String(r.pipelineBytes).padStart(9)} ${String(r.encodeBytes).padStart(7)}   ${String(r.decodeGrpcJsBytes).padStart(16)}`,
    );
  w('');
  w(
    "decode: the CheckRequest as the service's own gRPC server reads it (protobufjs, official protos, no toObject copy); decode (grpc-js): proto-loader's deserializer, as grpcServer: grpc-js reads it.",
  );
  w(
    'pipeline: runCheck from the decoded request to the outcome (endpoint, limits, authentication, MCP body, policy, metrics, decision log).',
  );
}
