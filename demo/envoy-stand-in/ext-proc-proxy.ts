// A stand-in for Envoy's External Processing HTTP filter — not Envoy
// (envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor, gRPC
// envoy.service.ext_proc.v3.ExternalProcessor/Process) in front of an HTTP upstream. The
// end-to-end tests and `npm run demo` use it where Envoy cannot run; examples/compose runs the
// real Envoy. It reproduces what the filter does as far as a processor or a client can tell.
// Sources: the API protos of Envoy's data-plane-api (proto/upstream.json; external_processor.proto,
// ext_proc.proto, processing_mode.proto, "proto" below) and Envoy's filter source
// (source/extensions/filters/http/ext_proc/ext_proc.cc, processor_state.cc, mutation_utils.cc,
// "source" below); docs/ext_proc.md lists them with each behaviour.
//
//   stream         one Process stream per HTTP request, opened at its first message; the proxy
//                  half-closes it when the exchange is over (proto: ExternalProcessor service).
//   request hdrs   sent unless request_header_mode is SKIP: pseudo-headers :authority :path
//                  :method :scheme first, then every header as its own entry, names lower-cased,
//                  x-forwarded-proto and a generated x-request-id added as the connection
//                  manager does; end_of_stream when the request has no body (proto: HttpHeaders).
//                  Values travel in `raw_value` (the send_header_raw_value runtime guard, on by
//                  default) and mutations are read from `raw_value` only: a `value`-only mutation
//                  sets an empty header; both set is an error (source: mutation_utils.cc).
//   request body   BUFFERED: the whole body in one message with end_of_stream, after the
//                  headers response; more than `bufferLimitBytes` is 413 (processing_mode.proto:
//                  "the downstream system will receive an error"). NONE: not sent. STREAMED and
//                  BUFFERED_PARTIAL request bodies are not reproduced (500 from the proxy).
//   response hdrs  sent unless response_header_mode is SKIP, with :status first
//                  (proto: HttpHeaders); end_of_stream for HEAD, 204, 304 and content-length: 0.
//   response body  NONE: streamed to the client untouched. BUFFERED: headers held until the
//                  body response, whose header mutation still applies; more than
//                  `bufferLimitBytes` is 500 (source: the filter manager's response-too-large
//                  reply). STREAMED: headers go on after the headers response; each upstream
//                  chunk is sent at once (pipelined, end_of_stream false), then an empty chunk with
//                  end_of_stream; each answer replaces or clears its chunk (no mutation keeps it),
//                  in order; header mutations in body answers are ignored (proto: CommonResponse).
//   content-length removed from the headers when, at the time they pass, the body mode is
//                  STREAMED or BUFFERED with headers SKIP, and content-length mutations are
//                  then skipped; in BUFFERED mode a body mutation whose length differs from a
//                  content-length still present is a 500 "mismatch between content length and the
//                  length of the mutated body" (processing_mode.proto; source:
//                  processor_state.cc). A content-length kept through a STREAMED mode chosen by
//                  mode_override and a rewritten body break the HTTP/1 framing: the proxy then
//                  resets the client connection.
//   mode_override  applied only with `allowModeOverride` and only in an answer to request or
//                  response headers (ext_proc.proto allow_mode_override; proto mode_override;
//                  source: inHeaderProcessState); DEFAULT header modes leave the current mode,
//                  body modes are always taken as given (source: effectiveModeOverride).
//   mutations      HeaderMutation: removals first, then sets; `append` (BoolValue) true adds a
//                  value, unset or false replaces all values; `append_action` is ignored
//                  (Envoy issue 36982). Setting :method :authority :scheme host x-envoy-* and
//                  removing :-prefixed, host or x-envoy-* headers is silently ignored (proto:
//                  HeaderMutation; ext_proc.proto mutation_rules default); an invalid name or
//                  value is a 500 (source: mutation_utils.cc). CONTINUE_AND_REPLACE in a
//                  headers answer replaces the whole body with body_mutation, drops the rest and
//                  ends processing of that direction (proto: CommonResponse).
//   immediate      status (below 200 or unknown: 200), body sent as text/plain, `headers`
//                  mutation applied to the reply, grpc_status used only for gRPC requests;
//                  processing stops. Once response headers have reached the client the stream is
//                  reset instead (proto: ImmediateResponse).
//   timeouts       `messageTimeoutMs` (Envoy's message_timeout, default 200 ms) runs while an
//                  answer is awaited, restarted on each message sent and answer received;
//                  expiry is 504 (source: onMessageTimeout, GatewayTimeout).
//                  override_message_timeout restarts it once per awaited answer when
//                  1 ms <= value <= `maxMessageTimeoutMs` (default 0: ignored) (proto).
//   failures       failure_mode_allow false (the default): a gRPC error, a failure to connect,
//                  a spurious answer or a rejected mutation is `statusOnError` (default 500),
//                  a timeout 504 (ext_proc.proto failure_mode_allow and status_on_error); after
//                  the response headers reached the client, the client stream is reset instead.
//                  `failureModeAllow`: processing continues without the processor.
//   clean close    the processor ending the stream with OK: processing continues without it,
//                  chunks awaiting an answer are forwarded unmodified (proto: "if the server
//                  closes the gRPC stream cleanly, then Envoy proceeds without consulting the
//                  server"; source: clearAsyncState injects the leftover chunks).
// Not reproduced: trailers, attributes, metadata, observability mode, BUFFERED_PARTIAL and
// FULL_DUPLEX_STREAMED, per-route configuration, clear_route_cache.
//
// Every exchange is recorded (what was sent to and received from the processor, the status the
// client got, whether the upstream was reached, whether the client stream was reset).
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { envoyIncludeDirs, loaderOptions } from '../../src/envoy/protos.js';
import { applyExtProcMutation } from './envoy-apply.js';

export type HeaderSendMode = 'DEFAULT' | 'SEND' | 'SKIP';
export type BodySendMode = 'NONE' | 'STREAMED' | 'BUFFERED' | 'BUFFERED_PARTIAL';

export interface ProcessingMode {
  request_header_mode?: HeaderSendMode;
  response_header_mode?: HeaderSendMode;
  request_body_mode?: BodySendMode;
  response_body_mode?: BodySendMode;
}

/** Timers the proxy's message timeout runs on; tests pass a manual clock. */
export interface ProxyTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export interface ExtProcProxyOptions {
  /** The filter's processing_mode. Envoy's default: headers SEND, bodies NONE. */
  processingMode?: ProcessingMode;
  allowModeOverride?: boolean;
  /** message_timeout; Envoy's default is 200 ms. */
  messageTimeoutMs?: number;
  /** max_message_timeout; 0 (the default) disables override_message_timeout. */
  maxMessageTimeoutMs?: number;
  failureModeAllow?: boolean;
  /** status_on_error; 500 when unset. */
  statusOnError?: number;
  /** The connection manager's buffer limit for a buffered body. Default 1 MiB. */
  bufferLimitBytes?: number;
  /** The send_header_raw_value runtime guard (on in current Envoy). */
  sendHeaderRawValue?: boolean;
  timers?: ProxyTimers;
  /** The port to listen on, on 127.0.0.1 (default 0: a free one). */
  port?: number;
}

export interface ExtProcExchange {
  method: string;
  path: string;
  /** Status the client received; undefined while in flight. */
  status?: number;
  /** Whether the request reached the upstream. */
  forwarded: boolean;
  /** ProcessingRequest kinds sent, in order (`response_body` once per chunk). */
  sent: string[];
  /** ProcessingResponse kinds received, in order (override_message_timeout counts too). */
  received: string[];
  /** A reply the proxy made itself (an immediate response or a failure), with Envoy's details. */
  localReply?: { status: number; details: string };
  /** Whether the client's stream was reset after its response had started. */
  reset: boolean;
  /** Resolves when the exchange is over. */
  done: Promise<void>;
}

export interface ExtProcProxy {
  url: string;
  attach(target: { processor: string; upstream: string }): void;
  exchanges: ExtProcExchange[];
  stop(): Promise<void>;
}

type HeaderList = [string, string][];

interface WireHeaderValue {
  key?: string;
  value?: string;
  raw_value?: Buffer;
}
interface WireHeaderValueOption {
  header?: WireHeaderValue;
  append?: { value?: boolean } | null;
  append_action?: string;
}
interface WireHeaderMutation {
  set_headers?: WireHeaderValueOption[];
  remove_headers?: string[];
}
interface WireCommonResponse {
  status?: 'CONTINUE' | 'CONTINUE_AND_REPLACE';
  header_mutation?: WireHeaderMutation;
  body_mutation?: { mutation?: 'body' | 'clear_body'; body?: Buffer; clear_body?: boolean };
}
interface WireImmediateResponse {
  status?: { code?: string | number };
  headers?: WireHeaderMutation;
  body?: Buffer;
  grpc_status?: { status?: number };
  details?: string;
}
interface WireProcessingResponse {
  response?: string;
  request_headers?: { response?: WireCommonResponse };
  response_headers?: { response?: WireCommonResponse };
  request_body?: { response?: WireCommonResponse };
  response_body?: { response?: WireCommonResponse };
  immediate_response?: WireImmediateResponse;
  mode_override?: ProcessingMode;
  override_message_timeout?: { seconds?: string | number; nanos?: number };
}

type Phase = 'request_headers' | 'request_body' | 'response_headers' | 'response_body';

type Answer =
  | { kind: 'response'; common: WireCommonResponse; override?: ProcessingMode }
  | { kind: 'immediate'; immediate: WireImmediateResponse }
  /** Processing is over without the processor: a clean close, or a failure with failure_mode_allow. */
  | { kind: 'skip' }
  | { kind: 'error'; status: number; details: string };

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);
const REAL_TIMERS: ProxyTimers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

let loaded:
  | { Client: grpc.ServiceClientConstructor; definition: grpc.ServiceDefinition; statusCodes: Map<string, number> }
  | undefined;

/** The ExternalProcessor service from the official protos, for the proxy and for test processors. */
export function extProcService(): {
  Client: grpc.ServiceClientConstructor;
  definition: grpc.ServiceDefinition;
  statusCodes: Map<string, number>;
} {
  if (!loaded) {
    const def = protoLoader.loadSync('envoy/service/ext_proc/v3/external_processor.proto', {
      ...loaderOptions,
      includeDirs: envoyIncludeDirs,
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const Client = (grpc.loadPackageDefinition(def) as any).envoy.service.ext_proc.v3
      .ExternalProcessor as grpc.ServiceClientConstructor;
    const codes = def['envoy.type.v3.StatusCode'] as unknown as { type: { value: { name: string; number: number }[] } };
    loaded = {
      Client,
      definition: Client.service,
      statusCodes: new Map(codes.type.value.map((v) => [v.name, v.number])),
    };
  }
  return loaded;
}

export async function startExtProcProxy(opts: ExtProcProxyOptions = {}): Promise<ExtProcProxy> {
  const config = {
    mode: resolveMode({
      request_header_mode: 'SEND',
      response_header_mode: 'SEND',
      request_body_mode: 'NONE',
      response_body_mode: 'NONE',
      ...opts.processingMode,
    }),
    allowModeOverride: opts.allowModeOverride ?? false,
    messageTimeoutMs: opts.messageTimeoutMs ?? 200,
    maxMessageTimeoutMs: opts.maxMessageTimeoutMs ?? 0,
    failureModeAllow: opts.failureModeAllow ?? false,
    statusOnError: opts.statusOnError ?? 500,
    bufferLimitBytes: opts.bufferLimitBytes ?? 1024 * 1024,
    rawValues: opts.sendHeaderRawValue ?? true,
    timers: opts.timers ?? REAL_TIMERS,
  };
  const { Client, statusCodes } = extProcService();
  let client: grpc.Client | undefined;
  let upstream: URL | undefined;
  const exchanges: ExtProcExchange[] = [];
  const upstreamAgent = new http.Agent({ keepAlive: true });

  const server = http.createServer((req, res) => {
    let finish!: () => void;
    const record: ExtProcExchange = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      forwarded: false,
      sent: [],
      received: [],
      reset: false,
      done: new Promise((r) => (finish = r)),
    };
    exchanges.push(record);
    res.on('close', finish);
    if (!client || !upstream) {
      res.writeHead(500).end('ext-proc proxy used before attach()');
      return;
    }
    const stream = new ProcessorStream(client, config, record);
    new Exchange(req, res, record, stream, upstream, upstreamAgent, config, statusCodes)
      .run()
      .catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end(`proxy error: ${err.message}`);
        else res.destroy();
      })
      .finally(() => stream.close());
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    exchanges,
    attach(target) {
      client = new Client(target.processor, grpc.credentials.createInsecure());
      upstream = new URL(target.upstream);
    },
    stop: async () => {
      client?.close();
      upstreamAgent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

type Config = {
  mode: Required<ProcessingMode>;
  allowModeOverride: boolean;
  messageTimeoutMs: number;
  maxMessageTimeoutMs: number;
  failureModeAllow: boolean;
  statusOnError: number;
  bufferLimitBytes: number;
  rawValues: boolean;
  timers: ProxyTimers;
};

interface Waiter {
  phase: Phase;
  resolve(a: Answer): void;
  timeoutOverridden: boolean;
}

/** The Process stream of one HTTP exchange: sends messages, matches answers in order, runs the timer. */
class ProcessorStream {
  private call: grpc.ClientDuplexStream<unknown, WireProcessingResponse> | undefined;
  private readonly waiting: Waiter[] = [];
  private timer: unknown;
  /** Set once processing is over: every later question gets this answer. */
  private over: Answer | undefined;
  /** Called when the stream fails, even with no answer awaited (a streamed response is then reset at once). */
  onFailure: ((a: Answer) => void) | undefined;

  constructor(
    private readonly client: grpc.Client,
    private readonly config: Config,
    private readonly record: ExtProcExchange,
  ) {}

  ask(phase: Phase, message: Record<string, unknown>): Promise<Answer> {
    if (this.over) return Promise.resolve(this.over);
    const call = this.open();
    return new Promise<Answer>((resolve) => {
      this.waiting.push({ phase, resolve, timeoutOverridden: false });
      this.record.sent.push(phase);
      call.write(message);
      this.arm(this.config.messageTimeoutMs);
    });
  }

  /** Half-closes the stream at the end of the exchange. */
  close(): void {
    this.disarm();
    if (this.call && !this.call.writableEnded) this.call.end();
  }

  private open(): grpc.ClientDuplexStream<unknown, WireProcessingResponse> {
    if (this.call) return this.call;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const call = (this.client as any).Process() as grpc.ClientDuplexStream<unknown, WireProcessingResponse>;
    call.on('data', (msg: WireProcessingResponse) => this.onMessage(msg));
    call.on('error', (err: grpc.ServiceError) =>
      this.fail(this.config.statusOnError, `ext_proc_error_gRPC_error_${err.code}`),
    );
    call.on('status', (s: grpc.StatusObject) => {
      // A clean close: Envoy goes on without the processor.
      if (s.code === grpc.status.OK) this.finish({ kind: 'skip' });
    });
    this.call = call;
    return call;
  }

  private onMessage(msg: WireProcessingResponse): void {
    if (this.over) return;
    if (msg.override_message_timeout) {
      this.record.received.push('override_message_timeout');
      const d = msg.override_message_timeout;
      const ms = Number(d.seconds ?? 0) * 1000 + Math.floor((d.nanos ?? 0) / 1e6);
      const head = this.waiting[0];
      if (head && !head.timeoutOverridden && ms >= 1 && ms <= this.config.maxMessageTimeoutMs) {
        head.timeoutOverridden = true;
        this.arm(ms);
      }
      return;
    }
    const kind = msg.response ?? 'none';
    this.record.received.push(kind);
    const head = this.waiting.shift();
    if (!head) return this.fail(this.config.statusOnError, 'spurious message');
    if (kind === 'immediate_response') {
      this.disarm();
      this.over = { kind: 'skip' };
      for (const w of this.waiting.splice(0)) w.resolve({ kind: 'skip' });
      this.call?.end();
      head.resolve({ kind: 'immediate', immediate: msg.immediate_response ?? {} });
      return;
    }
    if (kind !== head.phase) {
      head.resolve({ kind: 'error', status: this.config.statusOnError, details: 'spurious message' });
      return this.fail(this.config.statusOnError, 'spurious message');
    }
    const answer: Answer = {
      kind: 'response',
      common: (msg[head.phase] as { response?: WireCommonResponse } | undefined)?.response ?? {},
    };
    const headerPhase = head.phase === 'request_headers' || head.phase === 'response_headers';
    if (msg.mode_override && this.config.allowModeOverride && headerPhase) answer.override = msg.mode_override;
    if (this.waiting.length > 0) this.arm(this.config.messageTimeoutMs);
    else this.disarm();
    head.resolve(answer);
  }

  private arm(ms: number): void {
    this.disarm();
    this.timer = this.config.timers.set(() => {
      this.timer = undefined;
      this.fail(504, 'ext_proc_error_per-message_timeout_exceeded', true);
    }, ms);
  }

  private disarm(): void {
    if (this.timer !== undefined) this.config.timers.clear(this.timer);
    this.timer = undefined;
  }

  private fail(status: number, details: string, timeout = false): void {
    if (this.over) return;
    this.finish(
      this.config.failureModeAllow ? { kind: 'skip' } : { kind: 'error', status: timeout ? 504 : status, details },
    );
    // Envoy closes a stream it stopped listening to.
    this.call?.cancel();
  }

  private finish(answer: Answer): void {
    if (this.over) return;
    this.over = answer;
    this.disarm();
    for (const w of this.waiting.splice(0)) w.resolve(answer);
    if (answer.kind === 'error') this.onFailure?.(answer);
  }
}

/** One HTTP exchange through the filter. */
class Exchange {
  private mode: Required<ProcessingMode>;
  /** Processing is over: the rest of the exchange passes untouched. */
  private complete = false;
  private readonly isGrpc: boolean;

  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    private readonly record: ExtProcExchange,
    private readonly stream: ProcessorStream,
    private readonly upstream: URL,
    private readonly agent: http.Agent,
    private readonly config: Config,
    private readonly statusCodes: Map<string, number>,
  ) {
    this.mode = { ...config.mode };
    this.isGrpc = (req.headers['content-type'] ?? '').startsWith('application/grpc');
  }

  async run(): Promise<void> {
    const { req } = this;
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    const headers = requestHeaders(req);
    let body = (await readAll(req)) ?? Buffer.alloc(0);
    let bodyReplaced = false;

    if (this.mode.request_header_mode !== 'SKIP') {
      const a = await this.stream.ask('request_headers', {
        request_headers: { headers: this.headerMap(headers), end_of_stream: !hasBody },
      });
      if (!this.proceed(a)) return;
      if (a.kind === 'response') {
        if (a.override) this.applyOverride(a.override);
        const err = this.mutate(headers, a.common.header_mutation, false);
        if (err) return this.failure(this.config.statusOnError, err);
        if (a.common.status === 'CONTINUE_AND_REPLACE') {
          // The whole body is replaced (or dropped) and this direction is done.
          body = mutatedBody(a.common, Buffer.alloc(0)) ?? Buffer.alloc(0);
          removeHeader(headers, 'content-length');
          bodyReplaced = true;
        }
      }
    }

    if (!this.complete && hasBody && !bodyReplaced) {
      const mode = this.mode.request_body_mode;
      if (mode === 'STREAMED' || mode === 'BUFFERED_PARTIAL')
        return this.failure(500, `request_body_mode ${mode} is not reproduced by the test proxy`);
      if (mode === 'BUFFERED') {
        if (body.length > this.config.bufferLimitBytes)
          return this.localReply(
            413,
            Buffer.from('Payload Too Large'),
            undefined,
            undefined,
            'request_payload_too_large',
          );
        const a = await this.stream.ask('request_body', { request_body: { body, end_of_stream: true } });
        if (!this.proceed(a)) return;
        if (a.kind === 'response') {
          const err = this.mutate(headers, a.common.header_mutation, false) ?? contentLengthMismatch(headers, a.common);
          if (err) return this.failure(this.config.statusOnError, err);
          body = mutatedBody(a.common, body) ?? body;
        }
      }
    }
    await this.forward(headers, body);
  }

  private async forward(headers: HeaderList, body: Buffer): Promise<void> {
    const url = new URL(getHeader(headers, ':path') ?? '/', this.upstream);
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of headers)
      if (!k.startsWith(':') && !HOP_BY_HOP.has(k)) out[k] = k in out ? [...[out[k]!].flat(), v] : v;
    out.host = getHeader(headers, ':authority') ?? url.host;
    this.record.forwarded = true;
    const upRes = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const up = http.request(
        url,
        { method: getHeader(headers, ':method') ?? 'GET', headers: out, agent: this.agent },
        resolve,
      );
      up.on('error', reject);
      this.res.on('close', () => up.destroy());
      up.end(body);
    }).catch(() => undefined);
    if (!upRes)
      return this.localReply(
        503,
        Buffer.from('upstream connect error'),
        undefined,
        undefined,
        'upstream_reset_before_response_started',
      );
    await this.respond(upRes);
  }

  private async respond(upRes: http.IncomingMessage): Promise<void> {
    const status = upRes.statusCode ?? 502;
    const headers: HeaderList = [[':status', String(status)]];
    for (let i = 0; i < upRes.rawHeaders.length; i += 2) {
      const k = upRes.rawHeaders[i]!.toLowerCase();
      if (!HOP_BY_HOP.has(k)) headers.push([k, upRes.rawHeaders[i + 1]!]);
    }
    const noBody =
      this.req.method === 'HEAD' || status === 204 || status === 304 || getHeader(headers, 'content-length') === '0';
    if (!this.complete && this.removesContentLength()) removeHeader(headers, 'content-length');
    let replaced: Buffer | undefined;

    if (!this.complete && this.mode.response_header_mode !== 'SKIP') {
      const a = await this.stream.ask('response_headers', {
        response_headers: { headers: this.headerMap(headers), end_of_stream: noBody },
      });
      if (!this.proceed(a, upRes)) return;
      if (a.kind === 'response') {
        if (a.override) this.applyOverride(a.override);
        const err = this.mutate(headers, a.common.header_mutation, this.removesContentLength());
        if (err) return this.failure(this.config.statusOnError, err, upRes);
        if (a.common.status === 'CONTINUE_AND_REPLACE') {
          replaced = mutatedBody(a.common, Buffer.alloc(0)) ?? Buffer.alloc(0);
          removeHeader(headers, 'content-length');
        }
      }
    }

    if (replaced !== undefined) {
      upRes.resume();
      return this.send(headers, replaced);
    }
    const mode = this.complete || noBody ? 'NONE' : this.mode.response_body_mode;
    if (mode === 'BUFFERED') return this.bufferedBody(headers, upRes);
    if (mode === 'STREAMED') return this.streamedBody(headers, upRes);
    if (mode === 'BUFFERED_PARTIAL')
      return this.failure(500, 'response_body_mode BUFFERED_PARTIAL is not reproduced by the test proxy', upRes);
    this.writeHead(headers);
    upRes.pipe(this.res);
    await new Promise<void>((resolve) => upRes.on('end', resolve).on('error', () => resolve()));
  }

  private async bufferedBody(headers: HeaderList, upRes: http.IncomingMessage): Promise<void> {
    const body = await readAll(upRes, this.config.bufferLimitBytes);
    if (body === undefined)
      return this.localReply(500, Buffer.alloc(0), undefined, undefined, 'response_payload_too_large');
    const a = await this.stream.ask('response_body', { response_body: { body, end_of_stream: true } });
    if (!this.proceed(a)) return;
    if (a.kind === 'skip') return this.send(headers, body);
    const err =
      this.mutate(headers, a.common.header_mutation, this.removesContentLength()) ??
      contentLengthMismatch(headers, a.common);
    if (err) return this.failure(this.config.statusOnError, err);
    this.send(headers, mutatedBody(a.common, body) ?? body);
  }

  private async streamedBody(headers: HeaderList, upRes: http.IncomingMessage): Promise<void> {
    this.writeHead(headers);
    // Envoy resets a started response as soon as the stream fails, not at the next chunk.
    this.stream.onFailure = (a) => {
      if (a.kind === 'error') this.record.localReply = { status: a.status, details: a.details };
      this.reset();
    };
    const declared = getHeader(headers, 'content-length');
    let written = 0;
    const answers: { chunk: Buffer; answer: Promise<Answer>; last: boolean }[] = [];
    let wake: (() => void) | undefined;
    const push = (chunk: Buffer, last: boolean) => {
      answers.push({
        chunk,
        last,
        answer: this.stream.ask('response_body', { response_body: { body: chunk, end_of_stream: last } }),
      });
      wake?.();
    };
    upRes.on('data', (c: Buffer) => push(c, false));
    upRes.on('end', () => push(Buffer.alloc(0), true));
    upRes.on('error', () => this.reset());
    let closed = false;
    this.res.on('close', () => {
      closed = true;
      wake?.();
    });
    for (;;) {
      if (answers.length === 0 && !closed) await new Promise<void>((r) => (wake = r));
      wake = undefined;
      if (closed && !this.res.writableEnded) return;
      const { chunk, answer, last } = answers.shift()!;
      const a = await answer;
      let out = chunk;
      if (a.kind === 'immediate' || a.kind === 'error') {
        this.record.localReply =
          a.kind === 'error'
            ? { status: a.status, details: a.details }
            : { status: statusOf(a.immediate, this.statusCodes), details: a.immediate.details ?? '' };
        return this.reset();
      }
      if (a.kind === 'response') out = mutatedBody(a.common, chunk) ?? chunk;
      written += out.length;
      if (declared !== undefined && written > Number(declared)) return this.reset();
      if (out.length > 0) this.res.write(out);
      if (last) {
        if (declared !== undefined && written !== Number(declared)) return this.reset();
        this.res.end();
        return;
      }
    }
  }

  /** Whether processing goes on after an answer; replies or resets when it does not. */
  private proceed(a: Answer, upRes?: http.IncomingMessage): a is Extract<Answer, { kind: 'response' | 'skip' }> {
    if (a.kind === 'skip') this.complete = true;
    if (a.kind === 'response' || a.kind === 'skip') return true;
    upRes?.resume();
    if (a.kind === 'immediate') {
      const im = a.immediate;
      this.localReply(
        statusOf(im, this.statusCodes),
        im.body ?? Buffer.alloc(0),
        im.headers,
        im.grpc_status?.status,
        im.details ?? '',
      );
    } else {
      this.failure(a.status, a.details);
    }
    return false;
  }

  private failure(status: number, details: string, upRes?: http.IncomingMessage): void {
    upRes?.resume();
    this.complete = true;
    this.localReply(status, Buffer.alloc(0), undefined, undefined, details);
  }

  /** Envoy's sendLocalReply: a reply of its own, or a reset once the response has started. */
  private localReply(
    status: number,
    body: Buffer,
    mutation: WireHeaderMutation | undefined,
    grpcStatus: number | undefined,
    details: string,
  ): void {
    this.record.localReply = { status, details };
    if (this.res.headersSent) return this.reset();
    let headers: HeaderList;
    let payload = body;
    if (this.isGrpc) {
      headers = [
        [':status', '200'],
        ['content-type', 'application/grpc'],
        ['grpc-status', String(grpcStatus ?? httpToGrpc(status))],
      ];
      if (body.length) headers.push(['grpc-message', encodeURIComponent(body.toString('utf8'))]);
      payload = Buffer.alloc(0);
    } else {
      headers = [[':status', String(status)]];
      if (body.length) headers.push(['content-type', 'text/plain']);
    }
    if (mutation) this.mutate(headers, mutation, false);
    removeHeader(headers, 'content-length');
    this.send(headers, payload);
  }

  private send(headers: HeaderList, body: Buffer): void {
    if (getHeader(headers, 'content-length') === undefined) headers.push(['content-length', String(body.length)]);
    this.writeHead(headers);
    this.res.end(body);
  }

  private writeHead(headers: HeaderList): void {
    const status = Number(getHeader(headers, ':status') ?? 200);
    const out: Record<string, string[]> = {};
    for (const [k, v] of headers) if (!k.startsWith(':')) (out[k] ??= []).push(v);
    this.record.status = status;
    this.res.writeHead(status, out);
    this.res.flushHeaders();
  }

  private reset(): void {
    this.record.reset = true;
    this.res.destroy();
  }

  private applyOverride(o: ProcessingMode): void {
    // DEFAULT header modes leave the current mode; body modes are always as given.
    if (o.request_header_mode && o.request_header_mode !== 'DEFAULT')
      this.mode.request_header_mode = o.request_header_mode;
    if (o.response_header_mode && o.response_header_mode !== 'DEFAULT')
      this.mode.response_header_mode = o.response_header_mode;
    this.mode.request_body_mode = o.request_body_mode ?? 'NONE';
    this.mode.response_body_mode = o.response_body_mode ?? 'NONE';
  }

  private removesContentLength(): boolean {
    const m = this.mode;
    return (
      m.response_body_mode === 'STREAMED' ||
      m.response_body_mode === 'BUFFERED_PARTIAL' ||
      (m.response_body_mode === 'BUFFERED' && m.response_header_mode === 'SKIP')
    );
  }

  private headerMap(headers: HeaderList) {
    // Values are bytes (Latin-1 text, as node:http hands them over): raw_value carries them as they are.
    return {
      headers: headers.map(([key, v]) =>
        this.config.rawValues
          ? { key, raw_value: Buffer.from(v, 'latin1') }
          : { key, value: Buffer.from(v, 'latin1').toString('utf8') },
      ),
    };
  }

  /** Applies a HeaderMutation as Envoy's ext_proc filter does (envoy-apply.ts); returns an error text when Envoy would fail. */
  private mutate(
    headers: HeaderList,
    m: WireHeaderMutation | undefined,
    skipContentLength: boolean,
  ): string | undefined {
    return applyExtProcMutation(headers, m, { rawValues: this.config.rawValues, skipContentLength });
  }
}

function resolveMode(m: ProcessingMode): Required<ProcessingMode> {
  return {
    request_header_mode: m.request_header_mode === 'SKIP' ? 'SKIP' : 'SEND',
    response_header_mode: m.response_header_mode === 'SKIP' ? 'SKIP' : 'SEND',
    request_body_mode: m.request_body_mode ?? 'NONE',
    response_body_mode: m.response_body_mode ?? 'NONE',
  };
}

function requestHeaders(req: http.IncomingMessage): HeaderList {
  const headers: HeaderList = [
    [':authority', req.headers.host ?? ''],
    [':path', req.url ?? '/'],
    [':method', req.method ?? 'GET'],
    [':scheme', 'http'],
  ];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const k = req.rawHeaders[i]!.toLowerCase();
    if (k !== 'host' && !HOP_BY_HOP.has(k)) headers.push([k, req.rawHeaders[i + 1]!]);
  }
  if (getHeader(headers, 'x-forwarded-proto') === undefined) headers.push(['x-forwarded-proto', 'http']);
  if (getHeader(headers, 'x-request-id') === undefined) headers.push(['x-request-id', randomUUID()]);
  return headers;
}

function getHeader(headers: HeaderList, name: string): string | undefined {
  return headers.find(([k]) => k === name)?.[1];
}

function removeHeader(headers: HeaderList, name: string): void {
  for (let i = headers.length - 1; i >= 0; i--) if (headers[i]![0] === name) headers.splice(i, 1);
}

/** The body after a BodyMutation, or undefined when the answer leaves it alone. */
function mutatedBody(common: WireCommonResponse, _body: Buffer): Buffer | undefined {
  const m = common.body_mutation;
  if (!m) return undefined;
  if (m.mutation === 'clear_body') return m.clear_body ? Buffer.alloc(0) : undefined;
  if (m.mutation === 'body') return m.body ?? Buffer.alloc(0);
  return undefined;
}

function contentLengthMismatch(headers: HeaderList, common: WireCommonResponse): string | undefined {
  const declared = getHeader(headers, 'content-length');
  if (declared === undefined || !common.body_mutation) return undefined;
  const length = common.body_mutation.mutation === 'body' ? (common.body_mutation.body?.length ?? 0) : 0;
  return Number(declared) === length ? undefined : 'mismatch between content length and the length of the mutated body';
}

function statusOf(im: WireImmediateResponse, names: Map<string, number>): number {
  const code = im.status?.code;
  const n = typeof code === 'number' ? code : code === undefined ? 200 : (names.get(code) ?? Number(code));
  return Number.isInteger(n) && n >= 200 && n <= 599 ? n : 200;
}

/** Envoy's HTTP → gRPC status mapping for local replies to gRPC requests. */
function httpToGrpc(status: number): number {
  const map: Record<number, number> = { 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14 };
  return map[status] ?? 2;
}

/** The whole body; with a limit, undefined once it is exceeded. */
function readAll(stream: http.IncomingMessage, limit = Infinity): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    stream.on('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    stream.on('error', reject);
  }) as Promise<Buffer | undefined>;
}

/**
 * The ext_proc filter's settings recommended in docs/ext_proc.md (request body buffered,
 * response headers sent, bodies on request through mode_override), with a message timeout
 * long enough that a loaded machine cannot fail a test by being slow.
 */
export const RECOMMENDED_EXT_PROC: ExtProcProxyOptions = {
  processingMode: {
    request_header_mode: 'SEND',
    response_header_mode: 'SEND',
    request_body_mode: 'BUFFERED',
    response_body_mode: 'NONE',
  },
  allowModeOverride: true,
  failureModeAllow: false,
  messageTimeoutMs: 30_000,
};
