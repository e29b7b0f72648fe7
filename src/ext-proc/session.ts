// One ext_proc stream (envoy.service.ext_proc.v3.ExternalProcessor/Process), which is one
// HTTP request through Envoy, independent of the gRPC server that carries it: the transport
// hands each ProcessingRequest to onMessage and writes the answers it returns, in order.
//
//   request headers (+ the BUFFERED body) → runCheck, the Check pipeline with the ext_proc
//       decoder: a deny or a direct answer is an immediate_response, an allow the Check
//       allow's header mutation;
//   response headers → for a request with list calls, the body is asked for (mode_override:
//       BUFFERED for JSON, STREAMED for SSE), content-length dropped, cache-control private;
//       for a GET answered with an event stream, STREAMED too: no list may arrive on it, and
//       an `endpoint` event (the 2024-11-05 HTTP+SSE transport) ends it; for any other
//       request nothing more;
//   response body → filtered for the caller (src/ext-proc/list-response.ts).
//
// Fail closed: a message the request cannot be decided on is an immediate 500
// (invalid_processing_request); a failure once the response is under way ends the stream
// with a gRPC error, never with OK — Envoy would go on without the processor and pass the
// rest of a list unfiltered. docs/ext_proc.md describes the protocol.
import { randomUUID } from 'node:crypto';
import type { CheckTrace } from '../decision/context.js';
import {
  deny,
  internalErrorDeny,
  type Allow,
  type Deny,
  type HeaderToSet,
  type Outcome,
} from '../contracts/outcome.js';
import {
  EXT_PROC_ATTRIBUTES_KEY,
  readResponseHead,
  toRequestFromExtProc,
  type ExtProcRequestParts,
} from './request.js';
import { extProcDynamicMetadata, immediateResponse, requestHeaderMutation, responseHeaderMutation } from './answers.js';
import type {
  ProcessingRequest,
  ProcessingResponse,
  WireCommonResponse,
  WireHttpBody,
  WireHttpHeaders,
  WireProcessingMode,
} from './wire.js';
import type { ExtProcStreamResult } from '../metrics/hooks.js';
import { runCheck } from '../pipeline/pipeline.js';
import { Status } from '../grpc/wire.js';
import { inForce } from '../pipeline/live-runtime.js';
import type { Runtime } from '../pipeline/runtime.js';
import { privateCacheControl } from '../mcp-response/cache-control.js';
import type { ListCalls } from '../mcp-response/list-methods.js';
import { listCallsOf } from './list-calls.js';
import { ListResponse } from './list-response.js';

/** What the transport does after one message. */
export interface SessionStep {
  /** Answers to write, in order. */
  send: ProcessingResponse[];
  /** End the stream with this gRPC status (never OK) after writing `send`. */
  fail?: { code: number; details: string };
}

type State =
  /** Waiting for the request headers. */
  | 'start'
  /** Headers seen; waiting for the whole body. */
  | 'request_body'
  /** Allowed; waiting for the response headers. */
  | 'allowed'
  /** The response needs nothing more from the service. */
  | 'passthrough'
  /** A list response, its body awaited. */
  | 'list_body'
  /** Over: answered with an immediate response or failed. */
  | 'over';

// Asked for on every request headers answer with a body to come, so the body arrives whole
// and the response headers are sent, whatever the filter's static mode (where
// allow_mode_override lets Envoy take it).
const REQUEST_MODE: WireProcessingMode = Object.freeze({
  request_body_mode: 'BUFFERED',
  response_header_mode: 'SEND',
}) as WireProcessingMode;
const JSON_BODY_MODE: WireProcessingMode = Object.freeze({
  request_body_mode: 'BUFFERED',
  response_body_mode: 'BUFFERED',
}) as WireProcessingMode;
const SSE_BODY_MODE: WireProcessingMode = Object.freeze({
  request_body_mode: 'BUFFERED',
  response_body_mode: 'STREAMED',
}) as WireProcessingMode;
const NOTHING: SessionStep = Object.freeze({ send: [] }) as SessionStep;

/** Configuration mistakes seen on a stream are logged once per runtime, not once per request. */
const warned = new WeakMap<Runtime, Set<string>>();
function warnOnce(rt: Runtime, key: string, msg: string): void {
  let seen = warned.get(rt);
  if (!seen) warned.set(rt, (seen = new Set()));
  if (seen.has(key)) return;
  seen.add(key);
  rt.logger.error(msg);
}

export class ExtProcSession {
  private state: State = 'start';
  private headers: WireHttpHeaders | undefined;
  private attributes: ExtProcRequestParts['attributes'];
  private trace: CheckTrace | undefined;
  private allow: Allow | undefined;
  private list: ListResponse | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private ended = false;
  private result: ExtProcStreamResult | undefined;

  constructor(private rt: Runtime) {}

  /**
   * One ProcessingRequest. Messages are handled one at a time in the order they arrive (the
   * returned promises resolve in that order); the answers must be written in that order.
   * Never rejects.
   */
  onMessage(msg: ProcessingRequest): Promise<SessionStep> {
    const step = this.queue.then(() => this.handle(msg)).catch((err: unknown) => this.internalFailure(err));
    this.queue = step;
    return step;
  }

  /**
   * Envoy half-closed the stream: the exchange is over. Resolves once every message before it
   * is answered, and tells whether the transport ends the stream with OK (true) or has
   * already ended it with an error (false).
   */
  onEnd(): Promise<boolean> {
    const done = this.queue.then(() => {
      const failed = this.result === 'failed';
      this.finish(this.result ?? 'completed');
      return !failed;
    });
    this.queue = done;
    return done;
  }

  /** The stream failed or was cancelled (the client or the upstream went away, Envoy gave up). */
  onError(): void {
    this.finish(this.result ?? 'cancelled');
  }

  private async handle(msg: ProcessingRequest): Promise<SessionStep> {
    if (this.ended) return NOTHING;
    if (msg.observability_mode === true) {
      warnOnce(
        this.rt,
        'observability',
        'ext_proc: the filter runs in observability_mode: Envoy ignores every answer, so no request is denied and no list filtered (docs/ext_proc.md)',
      );
    }
    if (this.result === 'denied') {
      // Envoy stops sending once it takes an immediate response.
      warnOnce(
        this.rt,
        'after_denial',
        'ext_proc: a message arrived after a denial was answered: is disable_immediate_response set on the filter? Denied requests then go upstream (docs/ext_proc.md)',
      );
      return NOTHING;
    }
    if (msg.request_headers) return this.requestHeaders(msg.request_headers, msg.attributes);
    if (msg.request_body) return this.requestBody(msg.request_body);
    if (msg.response_headers) return this.responseHeaders(msg.response_headers);
    if (msg.response_body) return this.responseBody(msg.response_body);
    if (msg.request_trailers) return this.trailers('request_trailers');
    if (msg.response_trailers) return this.trailers('response_trailers');
    return this.protocolError('a ProcessingRequest without a known message');
  }

  private async requestHeaders(
    headers: WireHttpHeaders,
    attributes: ProcessingRequest['attributes'],
  ): Promise<SessionStep> {
    if (this.state !== 'start') return this.protocolError('request headers arrived twice');
    this.headers = headers;
    this.attributes = attributes;
    if (
      this.rt.config.clientAddress.from === 'source' &&
      attributes?.[EXT_PROC_ATTRIBUTES_KEY]?.fields?.['source.address'] === undefined
    ) {
      warnOnce(
        this.rt,
        'source_address',
        'ext_proc: requests carry no source.address attribute, so every client counts as one address for rate limits and lockouts: add request_attributes: [source.address] to the filter (docs/ext_proc.md)',
      );
    }
    if (headers.end_of_stream !== true) {
      this.state = 'request_body';
      return { send: [{ request_headers: { response: {} }, mode_override: REQUEST_MODE }] };
    }
    return this.decide(undefined, 'request_headers');
  }

  private async requestBody(body: WireHttpBody): Promise<SessionStep> {
    if (this.state === 'passthrough' || this.state === 'allowed') return { send: [{ request_body: { response: {} } }] };
    if (this.state !== 'request_body') return this.protocolError('a request body arrived before the request headers');
    if (body.end_of_stream !== true) {
      return this.protocolError(
        'the request body arrived in pieces: the ext_proc filter must send it whole (request_body_mode: BUFFERED)',
      );
    }
    const bytes = body.body
      ? Buffer.from(body.body.buffer, body.body.byteOffset, body.body.byteLength)
      : Buffer.alloc(0);
    return this.decide(bytes, 'request_body');
  }

  /** Runs the Check pipeline on the whole request and answers the message that completed it. */
  private async decide(body: Buffer | undefined, phase: 'request_headers' | 'request_body'): Promise<SessionStep> {
    const parts: ExtProcRequestParts = { headers: this.headers! };
    if (body !== undefined) parts.body = body;
    if (this.attributes !== undefined) parts.attributes = this.attributes;
    // The request's decision and its response's filtering use one endpoint set.
    this.rt = inForce(this.rt);
    const trace = await runCheck(this.rt, toRequestFromExtProc, parts);
    this.trace = trace;
    const o = trace.outcome;
    if (!o.allow) return this.immediate(o);
    this.allow = o;
    this.state = 'allowed';
    const calls = listCallsOf(trace.ctx?.parsedBody);
    const request = trace.ctx!.request;
    const remove: string[] = [];
    // The upstream must answer a list uncompressed, or it could not be filtered.
    if (calls !== undefined && request.headers['accept-encoding'] !== undefined) remove.push('accept-encoding');
    // A resumed stream (Last-Event-ID) may replay a list result whose request the service
    // never saw, so it could not be filtered: the server opens a fresh stream instead.
    if (request.headers['last-event-id'] !== undefined) remove.push('last-event-id');
    const response: WireCommonResponse = { header_mutation: requestHeaderMutation(o, request, { remove }) };
    const answer: ProcessingResponse =
      phase === 'request_headers' ? { request_headers: { response } } : { request_body: { response } };
    const metadata = extProcDynamicMetadata(o, trace.decisionId);
    if (metadata) answer.dynamic_metadata = metadata;
    return { send: [answer] };
  }

  private async responseHeaders(headers: WireHttpHeaders): Promise<SessionStep> {
    if (this.state !== 'allowed') {
      return this.protocolError(
        this.state === 'request_body' || this.state === 'start'
          ? 'the response arrived before the request was decided: the ext_proc filter must send the request body (request_body_mode: BUFFERED)'
          : 'response headers arrived twice',
      );
    }
    const allow = this.allow!;
    const trace = this.trace!;
    const calls = listCallsOf(trace.ctx?.parsedBody);
    const policyHeaders = allow.responseHeaders;
    const head = readResponseHead(headers);
    if (
      calls === undefined &&
      headers.end_of_stream !== true &&
      trace.ctx?.request.method === 'GET' &&
      isEventStream(head.contentType)
    ) {
      return this.watchStream(trace, policyHeaders);
    }
    if (calls === undefined || headers.end_of_stream === true) {
      this.state = 'passthrough';
      const m = responseHeaderMutation(policyHeaders);
      return { send: [{ response_headers: { response: m ? { header_mutation: m } : {} } }] };
    }
    const form = responseForm(head.contentType, head.status);
    if (form === undefined) {
      // An error page the MCP client will not read a result from.
      this.state = 'passthrough';
      const m = responseHeaderMutation(policyHeaders);
      return { send: [{ response_headers: { response: m ? { header_mutation: m } : {} } }] };
    }
    const set: HeaderToSet[] = [
      ...policyHeaders,
      { name: 'cache-control', value: privateCacheControl(head.cacheControl), append: false },
    ];
    const pins = await this.rt.pins?.forList(trace.ctx?.endpoint?.name, trace.ctx?.request.id);
    const list = new ListResponse(this.rt, trace, calls, trace.ctx?.mcp.batch === true, form, pins ? { pins } : {});
    const encoding = head.contentEncoding.filter((v) => v.trim().toLowerCase() !== 'identity');
    if (encoding.length > 0) {
      // A compressed list cannot be read: it is replaced whole, at once.
      this.state = 'passthrough';
      const body = list.withheldNow(
        'encoded_response',
        `the response is compressed (content-encoding: ${encoding.join(', ')})`,
      );
      set.push({ name: 'content-type', value: 'application/json', append: false });
      return {
        send: [
          {
            response_headers: {
              response: {
                status: 'CONTINUE_AND_REPLACE',
                header_mutation: responseHeaderMutation(set, ['content-length', 'content-encoding'])!,
                body_mutation: { body },
              },
            },
          },
        ],
      };
    }
    this.list = list;
    this.state = 'list_body';
    return {
      send: [
        {
          response_headers: { response: { header_mutation: responseHeaderMutation(set, ['content-length'])! } },
          mode_override: form === 'sse' ? SSE_BODY_MODE : JSON_BODY_MODE,
        },
      ],
    };
  }

  /**
   * A GET event stream answers no request of its own, so no list may arrive on it: a list
   * result there is withheld (unmatched_response), and an `endpoint` event — the MCP
   * 2024-11-05 HTTP+SSE transport, whose results for POSTed requests all arrive here — ends
   * the stream before it reaches the client (legacy_sse_transport). Its events are read as
   * they stream; everything else passes byte for byte.
   */
  private watchStream(trace: CheckTrace, policyHeaders: readonly HeaderToSet[]): SessionStep {
    this.list = new ListResponse(this.rt, trace, NO_LIST_CALLS, false, 'sse', { quiet: true });
    this.state = 'list_body';
    return {
      send: [
        {
          response_headers: {
            response: { header_mutation: responseHeaderMutation(policyHeaders, ['content-length'])! },
          },
          mode_override: SSE_BODY_MODE,
        },
      ],
    };
  }

  private async responseBody(body: WireHttpBody): Promise<SessionStep> {
    if (this.state === 'passthrough') return { send: [{ response_body: { response: {} } }] };
    if (this.state !== 'list_body') return this.protocolError('a response body arrived before the response headers');
    const list = this.list!;
    const bytes = body.body
      ? Buffer.from(body.body.buffer, body.body.byteOffset, body.body.byteLength)
      : Buffer.alloc(0);
    const last = body.end_of_stream === true;
    if (list.form === 'json') {
      if (!last)
        return this.streamFailure('a JSON list response arrived in pieces: the ext_proc filter did not buffer it');
      const out = list.json(bytes);
      await list.recordPins();
      this.state = 'passthrough';
      const response: WireCommonResponse = {};
      if (out.body) response.body_mutation = { body: out.body };
      if (out.withheld)
        response.header_mutation = responseHeaderMutation(
          [{ name: 'content-type', value: 'application/json', append: false }],
          ['content-encoding'],
        );
      return { send: [{ response_body: { response } }] };
    }
    const out = list.sse(bytes, last);
    await list.recordPins();
    const answer: ProcessingResponse = { response_body: { response: { body_mutation: { body: out.out } } } };
    if (last) this.state = 'passthrough';
    if (out.failed) {
      this.state = 'over';
      this.result = 'failed';
      if (out.failed.code === 'legacy_sse_transport') {
        warnOnce(
          this.rt,
          'legacy_sse',
          'ext_proc: an MCP server answered with the 2024-11-05 HTTP+SSE transport (an endpoint event on a GET stream); its list results arrive on that stream for requests POSTed elsewhere and cannot be filtered, so such streams are ended: serve Streamable HTTP (docs/ext_proc.md)',
        );
      }
      return {
        send: [answer],
        fail: { code: Status.INTERNAL, details: `mcp-authz: list response withheld (${out.failed.code})` },
      };
    }
    return { send: [answer] };
  }

  private trailers(kind: 'request_trailers' | 'response_trailers'): SessionStep {
    if (kind === 'request_trailers' && (this.state === 'start' || this.state === 'request_body')) {
      return this.protocolError(
        'request trailers arrived before the request was decided: the ext_proc filter must send the request body (request_body_mode: BUFFERED)',
      );
    }
    return { send: [{ [kind]: {} }] };
  }

  private immediate(o: Deny | Exclude<Outcome, Allow | Deny>): SessionStep {
    this.state = 'over';
    this.result = 'denied';
    const answer: ProcessingResponse = { immediate_response: immediateResponse(o) };
    const metadata = extProcDynamicMetadata(o, this.trace?.decisionId);
    if (metadata) answer.dynamic_metadata = metadata;
    return { send: [answer] };
  }

  /** A message the session cannot use: before the decision, an immediate 500; after, a gRPC error. */
  private protocolError(why: string): SessionStep {
    if (this.state === 'over') return NOTHING;
    this.rt.logger.error(
      { request_id: this.trace?.ctx?.request.id, why },
      'ext_proc: unexpected message; the request is refused',
    );
    if (this.trace === undefined)
      return this.immediate(
        deny(
          'invalid_processing_request',
          `The request could not be decided: ${why}. It is refused (docs/ext_proc.md).`,
        ),
      );
    return this.streamFailure(why);
  }

  private streamFailure(why: string): SessionStep {
    this.list?.ended();
    this.state = 'over';
    this.result = 'failed';
    return { send: [], fail: { code: Status.INTERNAL, details: `mcp-authz: ${why}` } };
  }

  /** The last line of defence: before the decision a 503 deny, after it a gRPC error. */
  private internalFailure(err: unknown): SessionStep {
    const requestId = this.trace?.ctx?.request.id ?? randomUUID();
    this.rt.logger.error({ err, request_id: requestId }, 'ext_proc: internal error; the request is refused');
    if (this.trace === undefined && this.state !== 'over') {
      return this.immediate(internalErrorDeny(requestId));
    }
    return this.streamFailure('internal error');
  }

  private finish(result: ExtProcStreamResult): void {
    if (this.ended) return;
    this.ended = true;
    this.list?.ended();
    this.rt.events.extProcStream?.(result);
  }
}

const NO_LIST_CALLS: ListCalls = new Map();

/** Whether a response is an event stream as a lenient client would take it (EventSource only checks the type's start). */
function isEventStream(contentTypes: string[]): boolean {
  return contentTypes.some((v) => v.trim().toLowerCase().startsWith('text/event-stream'));
}

/** How a list response's body is read: SSE, JSON, or not at all (an error page no client reads a result from). */
function responseForm(contentTypes: string[], status: number): 'json' | 'sse' | undefined {
  const types = contentTypes.map((v) => v.split(';', 1)[0]!.trim().toLowerCase());
  if (types.length === 1 && types[0] === 'text/event-stream') return 'sse';
  if (types.length === 1 && types[0] === 'application/json') return 'json';
  // Anything else is read as JSON and withheld when it is not: only an error status with a
  // type that is neither passes as it is.
  return status >= 200 && status < 300 ? 'json' : types.length === 0 ? 'json' : undefined;
}
