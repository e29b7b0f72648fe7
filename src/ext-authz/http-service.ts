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
import { deny, responseBody, responseContentType, type Outcome } from '../contracts/outcome.js';
import { RequestRejected } from '../contracts/request-rejected.js';
import type { AnswerLimits, Request } from '../contracts/request.js';
import { headerNamesMatcher } from '../contracts/upstream-headers.js';
import { toRequest, type RequestLimits, type WireCheckRequest } from '../envoy/to-request.js';

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
export function httpAuthzDecoder(
  settings: HttpServiceSettings,
): (req: HttpAuthzRequest, limits: RequestLimits) => Request {
  const answerLimits: AnswerLimits = Object.freeze({
    removesQueryParams: false,
    answersDirectly: false,
    setsRequestHeader: headerNamesMatcher(settings.upstreamHeaders),
  });
  return (req, limits) => readHttpAuthzRequest(req, limits, settings.pathPrefix, answerLimits);
}

const ANY_HEADER_LIMITS: AnswerLimits = Object.freeze({ removesQueryParams: false, answersDirectly: false });

/**
 * The forwarded request → the request model, the way ext_proc does it: built into the
 * CheckRequest attributes Envoy's gRPC ext_authz filter would have sent for the same request
 * (header_map with the raw header bytes, the pseudo-headers first, raw_body) and read by the
 * Check decoder, so every request rule — header limits, Host, UTF-8, sizes — is the Check
 * path's, and a policy reads the same `attributes` on every transport.
 */
export function readHttpAuthzRequest(
  req: HttpAuthzRequest,
  limits: RequestLimits,
  pathPrefix: string,
  answerLimits: AnswerLimits = ANY_HEADER_LIMITS,
): Request {
  if (
    !req.url.startsWith(pathPrefix) ||
    (pathPrefix !== '' && req.url.length > pathPrefix.length && req.url[pathPrefix.length] !== '/')
  ) {
    throw new RequestRejected(
      'invalid_check_request',
      `The authorization request's path does not start with the configured http_service path_prefix ${JSON.stringify(pathPrefix)} (extAuthzHttp.pathPrefix).`,
    );
  }
  return toRequest(toCheckAttributes(req, req.url.slice(pathPrefix.length) || '/'), limits, {
    answerLimits,
    bodyBytes: req.bodyBytes,
  });
}

/** The CheckRequest (attributes.request.http) Envoy's gRPC ext_authz filter would send for this request. */
export function toCheckAttributes(req: HttpAuthzRequest, rawPath: string): WireCheckRequest {
  const raw = req.rawHeaders;
  let host: string | undefined;
  let scheme: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'host') host ??= raw[i + 1]!;
    else if (name === 'x-forwarded-proto') scheme ??= raw[i + 1]!;
  }
  const method = req.method.toUpperCase();
  scheme ??= 'http';
  // node:http hands header bytes over as Latin-1 text: those bytes are the raw values.
  const headers = [
    { key: ':authority', raw_value: Buffer.from(host ?? '', 'latin1') },
    { key: ':method', raw_value: Buffer.from(method, 'latin1') },
    { key: ':path', raw_value: Buffer.from(rawPath, 'utf8') },
    { key: ':scheme', raw_value: Buffer.from(scheme, 'latin1') },
  ];
  for (let i = 0; i + 1 < raw.length; i += 2)
    headers.push({ key: raw[i]!.toLowerCase(), raw_value: Buffer.from(raw[i + 1]!, 'latin1') });
  const http: NonNullable<NonNullable<NonNullable<WireCheckRequest['attributes']>['request']>['http']> = {
    method,
    path: rawPath,
    host: Buffer.from(host ?? '', 'latin1').toString('utf8'),
    scheme: Buffer.from(scheme, 'latin1').toString('utf8'),
    protocol: `HTTP/${req.httpVersion}`,
    header_map: { headers },
  };
  if (req.body.length > 0) {
    http.raw_body = req.body;
    http.size = String(req.bodyBytes);
  }
  return { attributes: { request: { http } } };
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
  if (o.kind === 'answer')
    return httpAuthzAnswer(
      deny('internal_error', 'A direct answer cannot be sent through the HTTP authorization service.'),
      now,
    );
  const headers: [string, string][] = [['content-type', responseContentType(o)]];
  for (const h of o.headers) headers.push([h.name, utf8Wire(h.value)]);
  return { status: o.status, headers, body: responseBody(o, now) };
}
