// Helpers of the ext_proc tests: ProcessingRequest messages as Envoy's ext_proc filter sends
// them (pseudo-headers first, values in raw_value), a real runtime (shipped policy, real API
// keys) for sessions driven without a transport, and readers of the answers.
import { createHash } from 'node:crypto';
import { validateConfig } from '../../src/config/load.js';
import type { ProcessingRequest, ProcessingResponse, WireHeaderMutation } from '../../src/envoy/ext-proc-wire.js';
import { silentLogger, type Logger } from '../../src/log/logger.js';
import { createMetricsRegistry } from '../../src/metrics/registry.js';
import { buildRuntime } from '../../src/pipeline/build-runtime.js';
import type { Runtime } from '../../src/pipeline/runtime.js';
import type { TestKey } from '../e2e/api-keys.js';

export type Pairs = [string, string][];

export function requestHeaders(opts: { method?: string; path: string; host?: string; headers?: Pairs; body?: string | Buffer; source?: string }): ProcessingRequest {
  const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
  const pairs: Pairs = [
    [':authority', opts.host ?? 'mcp.example.com'],
    [':path', opts.path],
    [':method', opts.method ?? (body ? 'POST' : 'GET')],
    [':scheme', 'https'],
    ...(body ? ([['content-type', 'application/json'], ['content-length', String(body.length)]] as Pairs) : []),
    ...(opts.headers ?? []),
    ['x-request-id', 'req-1'],
  ];
  const msg: ProcessingRequest = { request_headers: { headers: { headers: pairs.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) }, end_of_stream: body === undefined } };
  if (opts.source !== undefined) msg.attributes = { 'envoy.filters.http.ext_proc': { fields: { 'source.address': { string_value: opts.source } } } };
  return msg;
}

export function requestBody(body: string | Buffer, eos = true): ProcessingRequest {
  return { request_body: { body: Buffer.from(body), end_of_stream: eos } };
}

export function responseHeaders(status: number, headers: Pairs, eos = false): ProcessingRequest {
  const pairs: Pairs = [[':status', String(status)], ...headers];
  return { response_headers: { headers: { headers: pairs.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) }, end_of_stream: eos } };
}

export function responseBody(body: string | Buffer, eos: boolean): ProcessingRequest {
  return { response_body: { body: Buffer.from(body), end_of_stream: eos } };
}

/** name → value of a mutation's set_headers (last one wins), values read from raw_value. */
export function setHeaders(m: WireHeaderMutation | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of m?.set_headers ?? []) out[o.header.key] = Buffer.from(o.header.raw_value).toString('utf8');
  return out;
}

/** The one answer's CommonResponse, whatever phase it answers. */
export function common(r: ProcessingResponse | undefined) {
  return (r?.request_headers ?? r?.request_body ?? r?.response_headers ?? r?.response_body)?.response;
}

/** The body a body mutation sets (undefined when the answer keeps the body). */
export function mutatedBody(r: ProcessingResponse | undefined): string | undefined {
  const m = common(r)?.body_mutation;
  return m && 'body' in m ? Buffer.from(m.body).toString('utf8') : undefined;
}

export function keyEntries(keys: TestKey[]) {
  return keys.map(({ key, ...entry }) => ({ ...entry, sha256: createHash('sha256').update(key).digest('hex') }));
}

/** A runtime built from `config` as the server builds it (the shipped policy, real API keys), not watching files. */
export async function testRuntime(config: Record<string, unknown>, logger: Logger = silentLogger()): Promise<Runtime> {
  const cfg = validateConfig(config, 'test', process.cwd(), {});
  return buildRuntime({ config: cfg, file: undefined, baseDir: process.cwd() }, logger, createMetricsRegistry(), { watch: false, sharedLimits: false });
}
