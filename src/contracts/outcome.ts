// What a Check call decides, in the project's own terms: the request goes upstream (allow),
// is refused (deny), or is answered by the service itself (answer: an RFC 9728 document).
// src/envoy/ turns it into a CheckResponse; nothing before that knows about protobuf.
import {
  CODES,
  grpcCodeForStatus,
  jsonRpcErrorCode,
  type AnswerCode,
  type DenyCode,
  type GrpcCode,
  type PolicyCode,
} from './codes.js';

export interface HeaderToSet {
  name: string;
  value: string;
  /** false: replace any value the request already has (identity headers are always false). */
  append: boolean;
}

export interface Allow {
  kind: 'allow';
  /** The request goes upstream. */
  allow: true;
  status: 200;
  /** Headers added to the request before it goes upstream. */
  headers: HeaderToSet[];
  /** Request headers removed before it goes upstream. */
  headersToRemove: string[];
  /** Query parameters removed before it goes upstream. */
  queryParamsToRemove: string[];
  /** Headers added to the upstream's response to the client. */
  responseHeaders: HeaderToSet[];
  dynamicMetadata?: Record<string, unknown>;
  /** Stable reason for logs: "allowed", or "dry_run" when a policy deny was turned into an allow. */
  reason: 'allowed' | 'dry_run';
}

export interface Deny {
  kind: 'deny';
  allow: false;
  status: number;
  /** The catalogue's gRPC code for `code`, or the one for a policy-chosen status. */
  grpc: GrpcCode;
  /** Stable code: the JSON `error`, the log's `reason` and the metric `code` label (docs/errors.md). */
  code: DenyCode | PolicyCode;
  description: string;
  headers: HeaderToSet[];
  /** Extra JSON body fields (e.g. supported_methods, request_id). */
  extra?: Record<string, unknown>;
  /** A policy-supplied body to send instead of the JSON error. */
  rawBody?: string;
  /**
   * Sent as a JSON-RPC error response instead of the JSON error (codes the catalogue marks
   * `jsonRpc`): MCP clients read these. `message` is the description.
   */
  jsonRpc?: JsonRpcError;
  contentType?: string;
  dynamicMetadata?: Record<string, unknown>;
  /** The JSON body up to its timestamp, built once for a deny that never changes (fixedDeny). */
  bodyPrefix?: string;
}

/** A direct answer: the service's own 200 document, which Envoy sends as its denied response. */
export interface Answer {
  kind: 'answer';
  /** Nothing goes upstream. */
  allow: false;
  status: 200;
  grpc: GrpcCode;
  code: AnswerCode;
  body: string;
  contentType: string;
  headers: HeaderToSet[];
  /** What a transport that cannot answer in place (Envoy's HTTP authorization service) sends instead. */
  orDeny?: Deny;
}

export type Outcome = Allow | Deny | Answer;

/** A JSON-RPC request id: the request's, echoed in its error response. */
export type JsonRpcId = string | number;

export interface JsonRpcError {
  code: number;
  /** The request's id; absent for notifications, batches and requests without a body. */
  id?: JsonRpcId;
  data?: unknown;
}

type DenyExtra = Partial<Pick<Deny, 'headers' | 'extra' | 'rawBody' | 'contentType' | 'dynamicMetadata'>>;

/** A deny with the catalogue's status and gRPC code for `code` (and its JSON-RPC error code, where it has one). */
export function deny(
  code: DenyCode,
  description: string,
  extra?: DenyExtra & { jsonRpc?: Omit<JsonRpcError, 'code'> },
): Deny {
  const entry = CODES[code];
  const { jsonRpc, ...rest } = extra ?? {};
  const d: Deny = {
    kind: 'deny',
    allow: false,
    status: entry.status,
    grpc: entry.grpc,
    code,
    description,
    headers: [],
    ...rest,
  };
  const rpcCode = jsonRpcErrorCode(code);
  if (rpcCode !== undefined) d.jsonRpc = { ...jsonRpc, code: rpcCode };
  return d;
}

/**
 * A deny built once and answered many times (an endpoint's bad-credential 401): frozen, with
 * its JSON body serialized up to the timestamp, so a refused request allocates next to nothing.
 */
export function fixedDeny(code: DenyCode, description: string, extra?: Pick<DenyExtra, 'headers' | 'extra'>): Deny {
  const d = deny(code, description, extra);
  const json = JSON.stringify({ error: d.code, error_description: d.description, ...d.extra });
  d.bodyPrefix = json.length > 2 ? json.slice(0, -1) : undefined;
  Object.freeze(d.headers);
  if (d.extra) Object.freeze(d.extra);
  return Object.freeze(d);
}

/**
 * The one deny for an internal error, wherever it is caught (the pipeline, a transport's last
 * line of defence, an ext_proc session): 503 internal_error, never an allow, with the request
 * id to report.
 */
export function internalErrorDeny(requestId: string): Deny {
  return deny(
    'internal_error',
    'The authorization service failed to decide; the request is denied. Retry, and report the request_id if it persists.',
    { extra: { request_id: requestId } },
  );
}

/** A deny whose status (and so gRPC code) the policy chose. */
export function policyDeny(status: number, code: DenyCode | PolicyCode, description: string, extra?: DenyExtra): Deny {
  return {
    kind: 'deny',
    allow: false,
    status,
    grpc: grpcCodeForStatus(status),
    code,
    description,
    headers: [],
    ...extra,
  };
}

export function answer(code: AnswerCode, body: string, contentType: string): Answer {
  return {
    kind: 'answer',
    allow: false,
    status: CODES[code].status,
    grpc: CODES[code].grpc,
    code,
    body,
    contentType,
    headers: [],
  };
}

let lastMs = -1;
let lastIso = '';

/** Now, in ISO 8601, built at most once per millisecond (every deny body carries it). */
export function isoTimestamp(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/** The body Envoy sends for a deny (its JSON error, or the policy's raw body) or an answer. */
export function responseBody(o: Deny | Answer, now?: Date): string {
  if (o.kind === 'answer') return o.body;
  if (o.rawBody !== undefined) return o.rawBody;
  if (o.jsonRpc !== undefined) return jsonRpcErrorBody(o.jsonRpc, o.description);
  const timestamp = now === undefined ? isoTimestamp() : now.toISOString();
  if (o.bodyPrefix !== undefined) return `${o.bodyPrefix},"timestamp":"${timestamp}"}`;
  return JSON.stringify({ error: o.code, error_description: o.description, ...o.extra, timestamp });
}

export function responseContentType(o: Deny | Answer): string {
  return o.kind === 'answer' ? o.contentType : (o.contentType ?? 'application/json');
}

/** `{"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…,"data":…}}`; id and data only when known. */
function jsonRpcErrorBody(e: JsonRpcError, message: string): string {
  const error: Record<string, unknown> = { code: e.code, message };
  if (e.data !== undefined) error.data = e.data;
  return JSON.stringify(e.id === undefined ? { jsonrpc: '2.0', error } : { jsonrpc: '2.0', id: e.id, error });
}
