// CheckRequest (as decoded by proto-loader) → the project's Request. Protobuf stops here.
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { RequestRejected } from '../contracts/request-rejected.js';
import type { HeaderMap, QueryMap, Request } from '../contracts/request.js';
import { normalizePath } from '../request/normalize-path.js';
import { parseQuery } from '../request/parse-query.js';
import { protojsonAttributes } from './attributes.js';

export interface RequestLimits {
  maxBodyBytes: number;
  maxHeaderBytes: number;
  maxHeaders: number;
}

/** The subset of envoy.service.auth.v3.CheckRequest the service reads (proto field names). */
export interface WireCheckRequest {
  attributes?: {
    source?: { address?: { socket_address?: { address?: string; port_value?: number } }; principal?: string; certificate?: string };
    request?: {
      http?: {
        id?: string;
        method?: string;
        headers?: Record<string, string>;
        header_map?: { headers?: { key?: string; value?: string; raw_value?: Buffer }[] };
        path?: string;
        host?: string;
        scheme?: string;
        body?: string;
        raw_body?: Buffer;
        size?: string | number;
        protocol?: string;
      };
    };
    [k: string]: unknown;
  };
}

export function toRequest(msg: WireCheckRequest, limits: RequestLimits): Request {
  const attrs = msg.attributes;
  const http = attrs?.request?.http;
  if (!http) {
    throw new RequestRejected('invalid_check_request', 'The CheckRequest has no attributes.request.http; mcp-authz authorizes HTTP requests from Envoy\'s ext_authz HTTP filter.');
  }
  const headers = readHeaders(http, limits);

  let body = '';
  let bodyBytes = 0;
  if (http.raw_body && http.raw_body.length > 0) {
    bodyBytes = http.raw_body.length;
    if (bodyBytes > limits.maxBodyBytes) throw tooLarge(bodyBytes, limits.maxBodyBytes);
    // toString would put U+FFFD in place of bad bytes, as Go does; Python refuses the body.
    if (!isUtf8(http.raw_body)) throw new RequestRejected('invalid_utf8', 'The request body is not valid UTF-8; JSON-RPC bodies must be UTF-8 (RFC 8259), and readers disagree on what invalid bytes mean.');
    body = http.raw_body.toString('utf8');
  } else if (http.body) {
    bodyBytes = Buffer.byteLength(http.body, 'utf8');
    if (bodyBytes > limits.maxBodyBytes) throw tooLarge(bodyBytes, limits.maxBodyBytes);
    body = http.body;
  }

  const rawPath = http.path ?? headers[':path']?.[0] ?? '';
  const { path, rawQuery } = normalizePath(rawPath);
  const host = (http.host ?? headers[':authority']?.[0] ?? headers.host?.[0] ?? '').toLowerCase();

  return new CheckRequestView(
    headers['x-request-id']?.[0] ?? (http.id || randomUUID()),
    (http.method ?? headers[':method']?.[0] ?? '').toUpperCase(),
    http.scheme ?? headers[':scheme']?.[0] ?? 'http',
    host,
    rawPath,
    path,
    rawQuery,
    parseQuery(rawQuery),
    headers,
    body,
    bodyBytes,
    attrs?.source?.address?.socket_address?.address ?? '',
    attrs,
  );
}

/** The Request of one CheckRequest; its protojson attributes are built only if a policy reads them. */
class CheckRequestView implements Request {
  readonly hasBody: boolean;
  readonly receivedAt = process.hrtime.bigint();
  private view: Record<string, unknown> | undefined;

  constructor(
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
    readonly sourceAddress: string,
    private readonly wire: WireCheckRequest['attributes'],
  ) {
    this.hasBody = bodyBytes > 0;
  }

  get peerPrincipal(): string {
    return this.wire?.source?.principal ?? '';
  }

  get peerCertificate(): string {
    return this.wire?.source?.certificate ?? '';
  }

  get attributes(): Readonly<Record<string, unknown>> {
    this.view ??= protojsonAttributes(this.wire);
    return this.view;
  }
}

function readHeaders(http: NonNullable<NonNullable<NonNullable<WireCheckRequest['attributes']>['request']>['http']>, limits: RequestLimits): HeaderMap {
  const out: HeaderMap = Object.create(null);
  let count = 0;
  let bytes = 0;
  const add = (rawName: string, value: string) => {
    count++;
    bytes += rawName.length + value.length;
    if (count > limits.maxHeaders || bytes > limits.maxHeaderBytes) {
      throw new RequestRejected('headers_too_large', `The request headers exceed the service's limit (${limits.maxHeaders} headers, ${limits.maxHeaderBytes} bytes).`);
    }
    const name = rawName.toLowerCase();
    (out[name] ??= []).push(value);
  };
  const entries = http.header_map?.headers;
  if (entries && entries.length > 0) {
    // encode_raw_headers: raw values, one entry per occurrence.
    for (const h of entries) {
      if (!h.key) continue;
      add(h.key, h.raw_value && h.raw_value.length > 0 ? h.raw_value.toString('utf8') : (h.value ?? ''));
    }
  } else if (http.headers) {
    for (const name in http.headers) add(name, http.headers[name]!);
  }
  return out;
}

function tooLarge(size: number, max: number): RequestRejected {
  return new RequestRejected('body_too_large', `The request body (${size} bytes) exceeds the service's limit of ${max} bytes (limits.maxBodyBytes).`);
}
