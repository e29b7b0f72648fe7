// An ext_proc request (the request headers message, its BUFFERED body and the attributes
// Envoy sent) → the project's Request. It is turned into the CheckRequest attributes Envoy's
// ext_authz filter would have sent for the same request and read by the Check decoder, so
// both transports apply one set of limits, header and body rules, and show a policy the same
// `attributes`. Protobuf stops here.
import { portNumber, splitHostPort } from '../contracts/host-port.js';
import type { Request } from '../contracts/request.js';
import type { WireHeaderValue, WireHttpHeaders, WireStruct } from './wire.js';
import { toRequest, type RequestLimits, type WireCheckRequest } from '../envoy/to-request.js';

/** The key of the ext_proc filter's attributes in ProcessingRequest.attributes. */
export const EXT_PROC_ATTRIBUTES_KEY = 'envoy.filters.http.ext_proc';

export interface ExtProcRequestParts {
  headers: WireHttpHeaders;
  /** The whole request body (BUFFERED), when there is one. */
  body?: Buffer;
  /** ProcessingRequest.attributes of the first message (request_attributes: [source.address] gives the client address). */
  attributes?: Record<string, WireStruct>;
}

export function toRequestFromExtProc(parts: ExtProcRequestParts, limits: RequestLimits): Request {
  return toRequest(toCheckAttributes(parts), limits);
}

/** The CheckRequest (attributes.request.http with header_map and raw_body, the source address) of the same request. */
export function toCheckAttributes(parts: ExtProcRequestParts): WireCheckRequest {
  const entries = parts.headers.headers?.headers ?? [];
  const header_map = { headers: entries.map(rawEntry) };
  const http: NonNullable<NonNullable<WireCheckRequest['attributes']>['request']>['http'] = { header_map };
  for (const e of header_map.headers) {
    if (e.key === ':method') http.method ??= e.raw_value.toString('utf8');
    else if (e.key === ':path') http.path ??= e.raw_value.toString('utf8');
    else if (e.key === ':authority') http.host ??= e.raw_value.toString('utf8');
    else if (e.key === ':scheme') http.scheme ??= e.raw_value.toString('utf8');
  }
  if (parts.body !== undefined && parts.body.length > 0) {
    http.raw_body = parts.body;
    http.size = String(parts.body.length);
  }
  const attributes: NonNullable<WireCheckRequest['attributes']> = { request: { http } };
  const source = sourceAddress(parts.attributes);
  const principal = peerUriSan(parts.attributes);
  if (source !== undefined || principal !== undefined) {
    attributes.source = {};
    if (source !== undefined) attributes.source.address = { socket_address: socketAddress(source) };
    if (principal !== undefined) attributes.source.principal = principal;
  }
  return { attributes };
}

/** One header as ext_authz's encode_raw_headers sends it: the key lower-cased, the value as bytes. */
function rawEntry(h: WireHeaderValue): { key: string; raw_value: Buffer } {
  const raw =
    h.raw_value && h.raw_value.length > 0
      ? Buffer.from(h.raw_value.buffer, h.raw_value.byteOffset, h.raw_value.byteLength)
      : Buffer.from(h.value ?? '', 'utf8');
  return { key: (h.key ?? '').toLowerCase(), raw_value: raw };
}

/** "10.1.2.3:40000" or "[::1]:40000" → address and port, as a CheckRequest carries them. */
function socketAddress(s: string): { address: string; port_value?: number } {
  const hp = splitHostPort(s);
  if (hp === undefined) return { address: s };
  const port = portNumber(hp.port);
  return port !== undefined && port > 0 ? { address: hp.host, port_value: port } : { address: hp.host };
}

/**
 * `source.address` ("ip:port") from the filter's attributes, when Envoy was asked to send it.
 * Struct and Value are protobufjs's bundled types: their fields decode camelCase whatever keepCase says.
 */
function sourceAddress(attributes: Record<string, WireStruct> | undefined): string | undefined {
  const v = attributes?.[EXT_PROC_ATTRIBUTES_KEY]?.fields?.['source.address']?.stringValue;
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * The mTLS peer's identity from `connection.uri_san_peer_certificate` (the first URI SAN of
 * the certificate Envoy verified), as ext_authz puts it in `source.principal`: the SPIFFE ID
 * Istio issues. Absent without mTLS or when Envoy was not asked for the attribute.
 */
function peerUriSan(attributes: Record<string, WireStruct> | undefined): string | undefined {
  const v = attributes?.[EXT_PROC_ATTRIBUTES_KEY]?.fields?.['connection.uri_san_peer_certificate']?.stringValue;
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The upstream MCP server's response headers the session reads, decoded once from the headers message. */
export interface ResponseHead {
  /** :status (200 when absent). */
  status: number;
  /** Every value of each header, in order. */
  contentType: string[];
  cacheControl: string[];
  contentEncoding: string[];
}

export function readResponseHead(h: WireHttpHeaders): ResponseHead {
  const head: ResponseHead = { status: 200, contentType: [], cacheControl: [], contentEncoding: [] };
  let status: string | undefined;
  for (const e of h.headers?.headers ?? []) {
    const key = (e.key ?? '').toLowerCase();
    if (key === ':status') status ??= rawEntry(e).raw_value.toString('utf8');
    else if (key === 'content-type') head.contentType.push(rawEntry(e).raw_value.toString('utf8'));
    else if (key === 'cache-control') head.cacheControl.push(rawEntry(e).raw_value.toString('utf8'));
    else if (key === 'content-encoding') head.contentEncoding.push(rawEntry(e).raw_value.toString('utf8'));
  }
  head.status = Number(status ?? 200);
  return head;
}
