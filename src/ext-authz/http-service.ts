// Envoy's HTTP authorization service (ext_authz `http_service`; Istio's envoyExtAuthzHttp):
// Envoy forwards the client's request — its method, `path_prefix` + path and query, the
// headers the filter allows (Host, Method, Path, Content-Length and Authorization always),
// and the body with `with_request_body` — and reads the answer: 200 allows, setting on the
// upstream request the response headers its `allowed_upstream_headers` names (replacing the
// client's values; any other answer header is not copied) and then removing the request
// headers listed in `x-envoy-auth-headers-to-remove`; any other status is a deny, sent to the
// client with its headers and body. Nothing here can remove a query parameter, set a header
// the filter does not copy, or answer with a 200 of the service's own (answerLimits): the
// pipeline refuses such allows. The pipeline is the one Check runs; this file is its decoder
// and its answer for this shape. Header values are UTF-8 text on every transport: read from
// the HTTP/1.1 bytes as UTF-8, and written back as UTF-8 bytes, as the gRPC services do.
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { deny, responseBody, responseContentType, type Outcome } from '../contracts/outcome.js';
import { RequestRejected } from '../contracts/request-rejected.js';
import type { AnswerLimits, HeaderMap, QueryMap, Request } from '../contracts/request.js';
import { headerNamesMatcher } from '../contracts/upstream-headers.js';
import { normalizePath } from '../request/normalize-path.js';
import { parseQuery } from '../request/parse-query.js';
import type { RequestLimits } from '../envoy/to-request.js';

/** Envoy's response header naming request headers to remove before the request goes upstream. */
export const HEADERS_TO_REMOVE = 'x-envoy-auth-headers-to-remove';


/** The authorization request as it arrived (node:http's view of it). */
export interface HttpAuthzRequest {
  method: string;
  /** The request target: path_prefix + the client's path and query. */
  url: string;
  /** Names and values in arrival order (node:http's rawHeaders). */
  rawHeaders: string[];
  body: Buffer;
  /** The body's real size, when more arrived than was kept (larger than limits.maxBodyBytes). */
  bodyBytes: number;
  httpVersion: string;
}

/** The filter's settings the service must know: `path_prefix`, and what `allowed_upstream_headers` copies (extAuthzHttp). */
export interface HttpServiceSettings {
  pathPrefix: string;
  upstreamHeaders: readonly string[];
}

/** Turns the forwarded request into the request model. */
export function httpAuthzDecoder(settings: HttpServiceSettings): (req: HttpAuthzRequest, limits: RequestLimits) => Request {
  const answerLimits: AnswerLimits = Object.freeze({ removesQueryParams: false, answersDirectly: false, setsRequestHeader: headerNamesMatcher(settings.upstreamHeaders) });
  return (req, limits) => readHttpAuthzRequest(req, limits, settings.pathPrefix, answerLimits);
}

const ANY_HEADER_LIMITS: AnswerLimits = Object.freeze({ removesQueryParams: false, answersDirectly: false });

export function readHttpAuthzRequest(req: HttpAuthzRequest, limits: RequestLimits, pathPrefix: string, answerLimits: AnswerLimits = ANY_HEADER_LIMITS): Request {
  if (!req.url.startsWith(pathPrefix) || (pathPrefix !== '' && req.url.length > pathPrefix.length && req.url[pathPrefix.length] !== '/')) {
    throw new RequestRejected('invalid_check_request', `The authorization request's path does not start with the configured http_service path_prefix ${JSON.stringify(pathPrefix)} (extAuthzHttp.pathPrefix).`);
  }
  const rawPath = req.url.slice(pathPrefix.length) || '/';
  const headers = readHeaders(req.rawHeaders, limits);
  // The body is checked in the body phase, in the documented order (src/request/body-integrity.ts).
  let body = '';
  let invalidUtf8 = false;
  if (req.body.length > 0 && req.bodyBytes <= limits.maxBodyBytes) {
    invalidUtf8 = !isUtf8(req.body);
    body = req.body.toString('utf8');
  }
  const { path, rawQuery } = normalizePath(rawPath);
  // Endpoints are chosen by host: with two Host headers the upstream may route by the other one.
  if ((headers.host?.length ?? 0) > 1) {
    throw new RequestRejected('invalid_check_request', 'The authorization request carries several Host headers; the request cannot be matched to one endpoint.');
  }
  const host = (headers.host?.[0] ?? '').toLowerCase();
  const method = req.method.toUpperCase();
  const scheme = headers['x-forwarded-proto']?.[0] ?? 'http';
  // The pseudo-headers Envoy puts in a CheckRequest's headers, so a policy reads the same names on both services.
  headers[':authority'] = [headers.host?.[0] ?? ''];
  headers[':method'] = [method];
  headers[':path'] = [rawPath];
  headers[':scheme'] = [scheme];
  return new HttpAuthzRequestView(
    answerLimits,
    headers['x-request-id']?.[0] ?? randomUUID(),
    method,
    scheme,
    host,
    rawPath,
    path,
    rawQuery,
    parseQuery(rawQuery),
    headers,
    body,
    req.bodyBytes,
    `HTTP/${req.httpVersion}`,
    invalidUtf8,
  );
}

class HttpAuthzRequestView implements Request {
  readonly hasBody: boolean;
  readonly receivedAt = process.hrtime.bigint();
  /** The client's address is not the peer's (Envoy's): it comes from a header (clientAddress.from). */
  readonly sourceAddress = '';
  private view: Record<string, unknown> | undefined;

  constructor(
    readonly answerLimits: AnswerLimits,
    readonly id: string,
    readonly method: string,
    readonly scheme: string,
    readonly host: string,
    readonly rawPath: string,
    readonly path: string,
    readonly rawQuery: string,
    readonly query: QueryMap,
    readonly headers: HeaderMap,
    readonly body: string,
    readonly bodyBytes: number,
    private readonly protocol: string,
    readonly bodyInvalidUtf8: boolean,
  ) {
    this.hasBody = bodyBytes > 0;
  }

  /** The AttributeContext a CheckRequest would carry for this request, as far as it is known here (protojson names). */
  get attributes(): Readonly<Record<string, unknown>> {
    if (this.view === undefined) {
      const joined: Record<string, string> = {};
      for (const name in this.headers) joined[name] = this.headers[name]!.join(',');
      const http: Record<string, unknown> = { id: this.id, method: this.method, headers: joined, path: this.rawPath, host: this.host, scheme: this.scheme, protocol: this.protocol };
      if (this.bodyBytes > 0) {
        http.size = String(this.bodyBytes);
        http.body = this.body;
      }
      this.view = { request: { http } };
    }
    return this.view;
  }
}

function readHeaders(raw: string[], limits: RequestLimits): HeaderMap {
  const out: HeaderMap = Object.create(null);
  let count = 0;
  let bytes = 0;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const rawName = raw[i]!;
    const value = raw[i + 1]!;
    count++;
    bytes += rawName.length + value.length;
    if (count > limits.maxHeaders || bytes > limits.maxHeaderBytes) {
      throw new RequestRejected('headers_too_large', `The request headers exceed the service's limit (${limits.maxHeaders} headers, ${limits.maxHeaderBytes} bytes).`);
    }
    (out[rawName.toLowerCase()] ??= []).push(utf8Text(value));
  }
  return out;
}

/** node:http hands header bytes over as Latin-1 text: the UTF-8 reading of those bytes, as a CheckRequest carries it. */
function utf8Text(value: string): string {
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) >= 0x80) return Buffer.from(value, 'latin1').toString('utf8');
  }
  return value;
}

/** UTF-8 bytes of a value, as the Latin-1 text node:http writes byte for byte. */
function utf8Wire(value: string): string {
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) >= 0x80) return Buffer.from(value, 'utf8').toString('latin1');
  }
  return value;
}

/** The HTTP answer to Envoy for an outcome: status, headers (name, value pairs), body. */
export interface HttpAuthzAnswer {
  status: number;
  headers: [string, string][];
  body: string;
}

export function httpAuthzAnswer(o: Outcome, now?: Date): HttpAuthzAnswer {
  if (o.allow) {
    // The request headers to set (Envoy copies those its allowed_upstream_headers names, each
    // replacing the client's values: so one answer header per name, holding the value the
    // Check answer's set-then-append leaves, values joined with "," as Envoy appends), the
    // policy's response headers (allowed_client_headers_on_success), and the request headers
    // to remove, which Envoy removes after setting the others.
    const headers: [string, string][] = [];
    if (!o.headers.some((h) => h.append)) {
      // Sets only: Envoy sets them in order, the last of a name winning, as the Check answer does.
      for (const h of o.headers) headers.push([h.name, utf8Wire(h.value)]);
    } else {
      const values = new Map<string, string>();
      for (const h of o.headers) {
        const before = values.get(h.name);
        values.set(h.name, h.append && before !== undefined ? `${before},${h.value}` : h.value);
      }
      for (const [name, value] of values) headers.push([name, utf8Wire(value)]);
    }
    for (const h of o.responseHeaders) headers.push([h.name, utf8Wire(h.value)]);
    if (o.headersToRemove.length > 0) headers.push([HEADERS_TO_REMOVE, o.headersToRemove.join(',')]);
    return { status: 200, headers, body: '' };
  }
  // A deny: Envoy sends this status, these headers and this body to the client. A 200 here
  // would be an allow, so an answer (which the pipeline turns into a deny on this service
  // before it gets here) is never sent as one.
  if (o.kind === 'answer') return httpAuthzAnswer(deny('internal_error', 'A direct answer cannot be sent through the HTTP authorization service.'), now);
  const headers: [string, string][] = [['content-type', responseContentType(o)]];
  for (const h of o.headers) headers.push([h.name, utf8Wire(h.value)]);
  return { status: o.status, headers, body: responseBody(o, now) };
}
