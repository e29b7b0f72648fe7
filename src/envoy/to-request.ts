// CheckRequest → the project's Request. Protobuf stops here. The message is either
// proto-loader's plain object (grpc-js) or protobufjs's decoded message (src/ext-authz/check-codec.ts):
// both carry the .proto field names; the decoded message reads "" for an unset string and
// null for an unset message, which proto3 cannot tell from an empty one, so both read the same.
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import type protobuf from 'protobufjs';
import { RequestRejected } from '../contracts/request-rejected.js';
import type { AnswerLimits, HeaderMap, QueryMap, Request } from '../contracts/request.js';
import { normalizePath } from '../request/normalize-path.js';
import { parseQuery } from '../request/parse-query.js';
import { protojsonAttributes } from './attributes.js';
import { plainObject } from './proto-root.js';

export interface RequestLimits {
  maxBodyBytes: number;
  maxHeaderBytes: number;
  maxHeaders: number;
}

/** The subset of envoy.service.auth.v3.CheckRequest the service reads (proto field names). */
export interface WireCheckRequest {
  attributes?: {
    source?: {
      address?: { socket_address?: { address?: string; port_value?: number } | null } | null;
      principal?: string;
      certificate?: string;
    } | null;
    request?: {
      http?: {
        id?: string;
        method?: string;
        headers?: Record<string, string>;
        header_map?: { headers?: { key?: string; value?: string; raw_value?: Buffer }[] } | null;
        path?: string;
        host?: string;
        scheme?: string;
        body?: string;
        raw_body?: Buffer;
        size?: string | number;
        protocol?: string;
      } | null;
    } | null;
    [k: string]: unknown;
  } | null;
}

/** What a transport knows beyond the CheckRequest it built (the HTTP authorization service). */
export interface DecodeExtras {
  /** What the transport's answer can express (Request.answerLimits). */
  answerLimits?: AnswerLimits;
  /** The body's real size when more arrived than was kept: over limits.maxBodyBytes, so never decoded. */
  bodyBytes?: number;
}

export function toRequest(msg: WireCheckRequest, limits: RequestLimits, extras?: DecodeExtras): Request {
  const attrs = msg.attributes;
  const http = attrs?.request?.http;
  if (!http) {
    throw new RequestRejected(
      'invalid_check_request',
      "The CheckRequest has no attributes.request.http; mcp-authz authorizes HTTP requests from Envoy's ext_authz HTTP filter.",
    );
  }
  const headers = readHeaders(http, limits);

  // The body is checked in the body phase, in the documented order (src/request/body-integrity.ts):
  // here it is only measured, and decoded when within the limit.
  let body = '';
  let bodyBytes = 0;
  let invalidUtf8 = false;
  if (http.raw_body && http.raw_body.length > 0) {
    bodyBytes = http.raw_body.length;
    if (bodyBytes <= limits.maxBodyBytes) {
      invalidUtf8 = !isUtf8(http.raw_body);
      body = http.raw_body.toString('utf8');
    }
  } else if (http.body) {
    bodyBytes = Buffer.byteLength(http.body, 'utf8');
    if (bodyBytes <= limits.maxBodyBytes) body = http.body;
  }
  if (extras?.bodyBytes !== undefined && extras.bodyBytes > bodyBytes) {
    bodyBytes = extras.bodyBytes;
    body = '';
    invalidUtf8 = false;
  }

  // Endpoints are chosen by host: with two Host headers the upstream may route by the other one.
  if ((headers.host?.length ?? 0) > 1 || (headers[':authority']?.length ?? 0) > 1) {
    throw new RequestRejected(
      'invalid_check_request',
      'The authorization request carries several Host headers; the request cannot be matched to one endpoint.',
    );
  }
  const rawPath = http.path || (headers[':path']?.[0] ?? '');
  const { path, rawQuery } = normalizePath(rawPath);
  const host = (http.host || (headers[':authority']?.[0] ?? headers.host?.[0] ?? '')).toLowerCase();

  return new CheckRequestView(
    headers['x-request-id']?.[0] ?? (http.id || randomUUID()),
    (http.method || (headers[':method']?.[0] ?? '')).toUpperCase(),
    http.scheme || (headers[':scheme']?.[0] ?? 'http'),
    host,
    rawPath,
    path,
    rawQuery,
    parseQuery(rawQuery),
    headers,
    body,
    bodyBytes,
    attrs.source?.address?.socket_address?.address || '',
    attrs,
    invalidUtf8,
    extras?.answerLimits,
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
    readonly bodyInvalidUtf8: boolean,
    readonly answerLimits: AnswerLimits | undefined,
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
    this.view ??= protojsonAttributes(isDecodedMessage(this.wire) ? plainObject(this.wire) : this.wire);
    return this.view;
  }
}

/** protobufjs's decoded messages carry their type; proto-loader's plain objects do not. */
function isDecodedMessage(v: unknown): v is protobuf.Message {
  return typeof v === 'object' && v !== null && typeof (v as { $type?: unknown }).$type === 'object';
}

function readHeaders(
  http: NonNullable<NonNullable<NonNullable<WireCheckRequest['attributes']>['request']>['http']>,
  limits: RequestLimits,
): HeaderMap {
  const out: HeaderMap = Object.create(null);
  const sizes = { count: 0, bytes: 0 };
  const entries = http.header_map?.headers;
  if (entries && entries.length > 0) {
    // encode_raw_headers: raw values, one entry per occurrence.
    for (const h of entries) {
      if (!h.key) continue;
      addHeader(
        out,
        sizes,
        limits,
        h.key,
        h.raw_value && h.raw_value.length > 0 ? h.raw_value.toString('utf8') : (h.value ?? ''),
      );
    }
  } else if (http.headers) {
    for (const name in http.headers) addHeader(out, sizes, limits, name, http.headers[name]!);
  }
  return out;
}

function addHeader(
  out: HeaderMap,
  sizes: { count: number; bytes: number },
  limits: RequestLimits,
  rawName: string,
  value: string,
): void {
  sizes.count++;
  sizes.bytes += rawName.length + value.length;
  if (sizes.count > limits.maxHeaders || sizes.bytes > limits.maxHeaderBytes) {
    throw new RequestRejected(
      'headers_too_large',
      `The request headers exceed the service's limit (${limits.maxHeaders} headers, ${limits.maxHeaderBytes} bytes).`,
    );
  }
  const name = rawName.toLowerCase();
  const values = out[name];
  // A one-element literal: push on an empty array would reserve room for 17.
  if (values === undefined) out[name] = [value];
  else values.push(value);
}
