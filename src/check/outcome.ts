// What a Check call decides, in the project's own terms. src/envoy/to-response.ts turns
// it into a CheckResponse; nothing before that knows about protobuf.

export interface HeaderToSet {
  name: string;
  value: string;
  /** false: replace any value the request already has (identity headers are always false). */
  append: boolean;
}

export interface Allow {
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
  /** Stable reason for logs ("allowed", or "dry_run" when a deny was turned into an allow). */
  reason: string;
}

export interface Deny {
  allow: false;
  status: number;
  /** Stable code: the JSON `error`, the metric `reason` label and the log field. */
  code: string;
  description: string;
  headers: HeaderToSet[];
  /** Extra JSON body fields (e.g. supported_methods, request_id). */
  extra?: Record<string, unknown>;
  /** A full body to send instead of the JSON error (policy-supplied or a discovery document). */
  rawBody?: string;
  contentType?: string;
  dynamicMetadata?: Record<string, unknown>;
}

export type Outcome = Allow | Deny;

export function deny(status: number, code: string, description: string, extra?: Partial<Deny>): Deny {
  return { allow: false, status, code, description, headers: [], ...extra };
}

export function allow(): Allow {
  return { allow: true, status: 200, headers: [], headersToRemove: [], queryParamsToRemove: [], responseHeaders: [], reason: 'allowed' };
}

/** The JSON error body of a deny. */
export function denyBody(d: Deny, now: Date = new Date()): string {
  if (d.rawBody !== undefined) return d.rawBody;
  return JSON.stringify({ error: d.code, error_description: d.description, ...d.extra, timestamp: now.toISOString() });
}
