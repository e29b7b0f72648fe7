// What a Check call decides, in the project's own terms: the request goes upstream (allow),
// is refused (deny), or is answered by the service itself (answer: an RFC 9728 document).
// src/envoy/ turns it into a CheckResponse; nothing before that knows about protobuf.
import { CODES, grpcCodeForStatus, type AnswerCode, type DenyCode, type GrpcCode, type PolicyCode } from './codes.js';

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
  contentType?: string;
  dynamicMetadata?: Record<string, unknown>;
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
}

export type Outcome = Allow | Deny | Answer;

type DenyExtra = Partial<Pick<Deny, 'headers' | 'extra' | 'rawBody' | 'contentType' | 'dynamicMetadata'>>;

/** A deny with the catalogue's status and gRPC code for `code`. */
export function deny(code: DenyCode, description: string, extra?: DenyExtra): Deny {
  const entry = CODES[code];
  return { kind: 'deny', allow: false, status: entry.status, grpc: entry.grpc, code, description, headers: [], ...extra };
}

/** A deny whose status (and so gRPC code) the policy chose. */
export function policyDeny(status: number, code: DenyCode | PolicyCode, description: string, extra?: DenyExtra): Deny {
  return { kind: 'deny', allow: false, status, grpc: grpcCodeForStatus(status), code, description, headers: [], ...extra };
}

export function answer(code: AnswerCode, body: string, contentType: string): Answer {
  return { kind: 'answer', allow: false, status: CODES[code].status, grpc: CODES[code].grpc, code, body, contentType, headers: [] };
}

/** The body Envoy sends for a deny (its JSON error, or the policy's raw body) or an answer. */
export function responseBody(o: Deny | Answer, now: Date = new Date()): string {
  if (o.kind === 'answer') return o.body;
  if (o.rawBody !== undefined) return o.rawBody;
  return JSON.stringify({ error: o.code, error_description: o.description, ...o.extra, timestamp: now.toISOString() });
}

export function responseContentType(o: Deny | Answer): string {
  return o.kind === 'answer' ? o.contentType : o.contentType ?? 'application/json';
}
