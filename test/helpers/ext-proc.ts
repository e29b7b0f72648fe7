// Helpers of the ext_proc tests: ProcessingRequest messages as Envoy's ext_proc filter sends
// them (pseudo-headers first, values in raw_value), a real runtime (shipped policy, real API
// keys) for sessions driven without a transport, a Process stream over real gRPC, and
// readers of the answers.
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { validateConfig } from '../../src/config/load.js';
import type { ProcessingRequest, ProcessingResponse, WireHeaderMutation } from '../../src/ext-proc/wire.js';
import { clientConstructors, extProcPackageDefinition } from '../../src/envoy/protos.js';
import { silentLogger, type Logger } from '../../src/log/logger.js';
import { createMetricsRegistry } from '../../src/metrics/registry.js';
import { buildRuntime } from '../../src/pipeline/build-runtime.js';
import type { Runtime } from '../../src/pipeline/runtime.js';
import type { TestKey } from '../e2e/api-keys.js';

export type Pairs = [string, string][];

export function requestHeaders(opts: {
  method?: string;
  path: string;
  host?: string;
  headers?: Pairs;
  body?: string | Buffer;
  source?: string;
  peerUriSan?: string;
}): ProcessingRequest {
  const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
  const pairs: Pairs = [
    [':authority', opts.host ?? 'mcp.example.com'],
    [':path', opts.path],
    [':method', opts.method ?? (body ? 'POST' : 'GET')],
    [':scheme', 'https'],
    ...(body
      ? ([
          ['content-type', 'application/json'],
          ['content-length', String(body.length)],
        ] as Pairs)
      : []),
    ...(opts.headers ?? []),
    ['x-request-id', 'req-1'],
  ];
  const msg: ProcessingRequest = {
    request_headers: {
      headers: { headers: pairs.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) },
      end_of_stream: body === undefined,
    },
  };
  const fields: Record<string, { stringValue: string }> = {};
  if (opts.source !== undefined) fields['source.address'] = { stringValue: opts.source };
  if (opts.peerUriSan !== undefined) fields['connection.uri_san_peer_certificate'] = { stringValue: opts.peerUriSan };
  if (Object.keys(fields).length > 0) msg.attributes = { 'envoy.filters.http.ext_proc': { fields } };
  return msg;
}

export function requestBody(body: string | Buffer, eos = true): ProcessingRequest {
  return { request_body: { body: Buffer.from(body), end_of_stream: eos } };
}

export function responseHeaders(status: number, headers: Pairs, eos = false): ProcessingRequest {
  const pairs: Pairs = [[':status', String(status)], ...headers];
  return {
    response_headers: {
      headers: { headers: pairs.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) },
      end_of_stream: eos,
    },
  };
}

export function responseBody(body: string | Buffer, eos: boolean): ProcessingRequest {
  return { response_body: { body: Buffer.from(body), end_of_stream: eos } };
}

/** name → value of a mutation's set_headers (last one wins), values read from raw_value. */
export function setHeaders(m: Pick<WireHeaderMutation, 'set_headers'> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of m?.set_headers ?? []) out[o.header.key] = Buffer.from(o.header.raw_value ?? '').toString('utf8');
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
  return buildRuntime({ config: cfg, file: undefined, baseDir: process.cwd() }, logger, createMetricsRegistry(), {
    watch: false,
    sharedLimits: false,
  });
}

export interface ProcessResult {
  /** Answers as proto-loader decodes them (enums by name, bytes as Buffer). */
  answers: Record<string, any>[];
  status: grpc.StatusObject;
}

/**
 * One Process stream over real gRPC: each message is written once the previous one is
 * answered (as Envoy does outside STREAMED bodies); an immediate response ends the exchange.
 * The stream is half-closed at the end, as Envoy closes it, and its final status returned.
 */
export async function processExchange(address: string, messages: ProcessingRequest[]): Promise<ProcessResult> {
  const { ExternalProcessor } = clientConstructors();
  const client = new ExternalProcessor(address, grpc.credentials.createInsecure());
  try {
    const call = (client as any).Process() as grpc.ClientDuplexStream<ProcessingRequest, Record<string, any>>;
    const answers: Record<string, any>[] = [];
    const waiting: ((a: Record<string, any> | undefined) => void)[] = [];
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('data', (a: Record<string, any>) => {
      answers.push(a);
      waiting.shift()?.(a);
    });
    call.on('error', () => {
      for (const w of waiting.splice(0)) w(undefined);
    });
    for (const m of messages) {
      const answered = new Promise<Record<string, any> | undefined>((resolve) => waiting.push(resolve));
      call.write(m);
      const a = await answered;
      if (!a || a.immediate_response) break;
    }
    call.end();
    return { answers, status: await status };
  } finally {
    client.close();
  }
}

/** The status code of a decoded ImmediateResponse (proto-loader gives the enum's name). */
export function immediateStatus(im: Record<string, any>): number {
  const code = im.status?.code;
  return typeof code === 'number' ? code : (httpStatusCodes().get(code) ?? Number(code));
}

let statusNames: Map<string, number> | undefined;
function httpStatusCodes(): Map<string, number> {
  if (!statusNames) {
    const def = extProcPackageDefinition()['envoy.type.v3.StatusCode'] as unknown as {
      type: { value: { name: string; number: number }[] };
    };
    statusNames = new Map(def.type.value.map((v) => [v.name, v.number]));
  }
  return statusNames;
}
