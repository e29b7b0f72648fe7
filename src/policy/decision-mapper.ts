// The policy's result → the pipeline's AuthzResult. Three shapes are accepted (see
// docs/policies.md "Decision"): the object {allow, status, error, ...}, a plain boolean,
// and opa-envoy-plugin's {allowed, http_status, body, headers, ...}. Anything else is a
// malformed decision and a deny — never an allow.
import type { AuthzAllow, AuthzResult } from '../decision/phases.js';
import type { ApprovalRequirement } from '../contracts/approval.js';
import { policyCode } from '../contracts/codes.js';
import { deny, policyDeny, type Deny, type HeaderToSet } from '../contracts/outcome.js';

/** Why the policy phase denied: its rules (a deny, or no decision: deny by default), or a failure. */
export type PolicyDenyReason =
  | 'policy_deny'
  | 'policy_undefined'
  | 'policy_error'
  | 'policy_malformed_decision'
  | 'policy_approval';

export type Mapped =
  | { allow: true; result: AuthzAllow }
  | { allow: false; deny: Deny; reason: PolicyDenyReason; approval?: ApprovalRequirement };

/** The deny is a failure of the policy, not its rules: dry-run never turns it into an allow. */
export function isFailure(reason: PolicyDenyReason): boolean {
  return reason === 'policy_error' || reason === 'policy_malformed_decision';
}

/** The mapped decision as the authorize phase answers it. */
export function toAuthzResult(m: Mapped): AuthzResult {
  if (m.allow) return m.result;
  return m.approval ? { allow: false, deny: m.deny, approval: m.approval } : { allow: false, deny: m.deny };
}

class Malformed extends Error {}

const DEFAULT_DENY_DESCRIPTION = 'Access denied by policy.';

/** Maps opa-wasm's result set (`[{result: <decision>}]`, or `[]` when undefined). */
export function mapResultSet(resultSet: unknown): Mapped {
  if (
    !Array.isArray(resultSet) ||
    resultSet.length === 0 ||
    !resultSet[0] ||
    typeof resultSet[0] !== 'object' ||
    !('result' in resultSet[0])
  ) {
    return {
      allow: false,
      reason: 'policy_undefined',
      deny: deny('access_denied', 'The policy made no decision for this request; denied by default.'),
    };
  }
  if (resultSet.length > 1) return malformed('the entrypoint produced more than one result');
  try {
    return mapDecision((resultSet[0] as { result: unknown }).result);
  } catch (err) {
    if (err instanceof Malformed) return malformed(err.message);
    throw err;
  }
}

export function policyError(detail: string): Mapped {
  return {
    allow: false,
    reason: 'policy_error',
    deny: deny('policy_error', `The authorization policy failed to evaluate (${detail}); the request is denied.`),
  };
}

/** A decision refused as malformed (503 policy_error), with why. */
export function malformedDecision(detail: string): Mapped {
  return malformed(detail);
}

function malformed(detail: string): Mapped {
  return {
    allow: false,
    reason: 'policy_malformed_decision',
    deny: deny(
      'policy_error',
      `The authorization policy returned a malformed decision (${detail}); the request is denied.`,
    ),
  };
}

function mapDecision(d: unknown): Mapped {
  if (typeof d === 'boolean') {
    return d
      ? allowed([], [], [], undefined)
      : { allow: false, reason: 'policy_deny', deny: deny('access_denied', DEFAULT_DENY_DESCRIPTION) };
  }
  if (d === null || typeof d !== 'object' || Array.isArray(d))
    throw new Malformed(`expected an object or a boolean, got ${typeName(d)}`);
  const o = d as Record<string, unknown>;
  if ('allow' in o) return mapOwn(o);
  if ('allowed' in o) return mapEnvoyPlugin(o);
  throw new Malformed('an object without "allow" (or opa-envoy-plugin\'s "allowed")');
}

function mapOwn(o: Record<string, unknown>): Mapped {
  if (typeof o.allow !== 'boolean') throw new Malformed(`"allow" must be a boolean, got ${typeName(o.allow)}`);
  const headers = headerList(o.headers, 'headers');
  const metadata = objectOrUndefined(o.dynamic_metadata, 'dynamic_metadata');
  if (o.allow) return allowed(headers, [], headerList(o.response_headers, 'response_headers'), metadata);
  if (o.approval !== undefined && o.approval !== null) return approvalRequired(o.approval);
  const status = statusOf(o.status, 403, 'status');
  const code = policyCode(optionalString(o.error, 'error') ?? 'access_denied');
  if (code === undefined) throw new Malformed('"error" must be a short code (letters, digits, "_", ".", "-")');
  const description = optionalString(o.error_description, 'error_description') ?? DEFAULT_DENY_DESCRIPTION;
  const out = policyDeny(status, code, description, { headers });
  if (metadata) out.dynamicMetadata = metadata;
  return { allow: false, reason: 'policy_deny', deny: out };
}

function mapEnvoyPlugin(o: Record<string, unknown>): Mapped {
  if (typeof o.allowed !== 'boolean') throw new Malformed(`"allowed" must be a boolean, got ${typeName(o.allowed)}`);
  const headers = headerList(o.headers, 'headers');
  const metadata = objectOrUndefined(o.dynamic_metadata, 'dynamic_metadata');
  if (o.allowed) {
    const remove = stringList(o.request_headers_to_remove, 'request_headers_to_remove');
    return allowed(headers, remove, headerList(o.response_headers_to_add, 'response_headers_to_add'), metadata);
  }
  const status = statusOf(o.http_status, 403, 'http_status');
  const body = o.body === undefined ? undefined : optionalString(o.body, 'body');
  const ct = headers.find((h) => h.name === 'content-type');
  const out = policyDeny(status, 'access_denied', DEFAULT_DENY_DESCRIPTION, {
    headers: headers.filter((h) => h !== ct),
  });
  if (body !== undefined) {
    out.rawBody = body;
    out.contentType = ct?.value ?? 'text/plain';
  } else if (ct) {
    out.contentType = ct.value;
  }
  if (metadata) out.dynamicMetadata = metadata;
  return { allow: false, reason: 'policy_deny', deny: out };
}

const RULE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const MAX_USES = 1000;
const MAX_WINDOW_SECONDS = 7 * 24 * 3600;

/**
 * `approval: {reason, group, rule?, uses?, window_seconds?}` beside `allow: false`: the call is
 * held for a person of `group` (docs/approvals.md). The deny stands until an approval is found.
 */
function approvalRequired(v: unknown): Mapped {
  if (typeof v !== 'object' || Array.isArray(v)) throw new Malformed('"approval" must be an object');
  const a = v as Record<string, unknown>;
  const reason = optionalString(a.reason, 'approval.reason');
  if (reason === undefined || reason.length === 0 || reason.length > 500)
    throw new Malformed('"approval.reason" must be a string of 1 to 500 characters');
  const group = optionalString(a.group, 'approval.group');
  if (group === undefined || group.length === 0 || group.length > 256)
    throw new Malformed('"approval.group" must name the approvers\' group (1 to 256 characters)');
  const rule = optionalString(a.rule, 'approval.rule') ?? 'approval';
  if (!RULE_NAME.test(rule)) throw new Malformed('"approval.rule" must be a short name (letters, digits, "_.:-")');
  const uses = a.uses ?? 1;
  if (typeof uses !== 'number' || !Number.isInteger(uses) || uses < 1 || uses > MAX_USES)
    throw new Malformed(`"approval.uses" must be an integer 1-${MAX_USES}`);
  const window = a.window_seconds;
  if (
    window !== undefined &&
    window !== null &&
    (typeof window !== 'number' || !Number.isInteger(window) || window < 1 || window > MAX_WINDOW_SECONDS)
  )
    throw new Malformed(`"approval.window_seconds" must be an integer 1-${MAX_WINDOW_SECONDS}`);
  const approval: ApprovalRequirement = {
    reason,
    group,
    rule,
    uses,
    windowSeconds: typeof window === 'number' ? window : undefined,
  };
  return {
    allow: false,
    reason: 'policy_approval',
    deny: deny('approval_required', `Approval required: ${reason}`),
    approval,
  };
}

function allowed(
  headers: HeaderToSet[],
  remove: string[],
  response: HeaderToSet[],
  metadata: Record<string, unknown> | undefined,
): Mapped {
  const result: AuthzAllow = { allow: true, headers, headersToRemove: remove, responseHeaders: response };
  if (metadata) result.dynamicMetadata = metadata;
  return { allow: true, result };
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// A field value (RFC 9110 §5.5): no control character but tab, no DEL. A policy value can never
// split a header, and Envoy, node:http and every transport carry it alike.
const SAFE_VALUE = /^[^\0-\x08\x0a-\x1f\x7f]*$/;
// Headers whose change means something different on each transport, or breaks the request:
// Envoy's ext_proc ignores host and x-envoy-* changes that its ext_authz applies; the framing
// and hop-by-hop headers belong to the connection, not the request.
const RESERVED = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
]);
const reserved = (name: string) => RESERVED.has(name) || name.startsWith('x-envoy-');

/** `{name: value}` or `{name: [values]}` → headers to set (replace, not append). */
function headerList(v: unknown, field: string): HeaderToSet[] {
  if (v === undefined || v === null) return [];
  if (typeof v !== 'object' || Array.isArray(v))
    throw new Malformed(`"${field}" must be an object of header name → value`);
  const out: HeaderToSet[] = [];
  for (const [rawName, value] of Object.entries(v as Record<string, unknown>)) {
    if (!TOKEN.test(rawName)) throw new Malformed(`"${field}" has an invalid header name ${JSON.stringify(rawName)}`);
    if (reserved(rawName.toLowerCase()))
      throw new Malformed(
        `"${field}" names ${JSON.stringify(rawName)}, which a policy may not set (host, framing, hop-by-hop and x-envoy-* headers)`,
      );
    const values = Array.isArray(value) ? value : [value];
    values.forEach((val, i) => {
      const text =
        typeof val === 'string' ? val : typeof val === 'number' || typeof val === 'boolean' ? String(val) : undefined;
      if (text === undefined || !SAFE_VALUE.test(text))
        throw new Malformed(`"${field}.${rawName}" must be a string without control characters (tab aside)`);
      out.push({ name: rawName.toLowerCase(), value: text, append: i > 0 });
    });
  }
  return out;
}

function stringList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && TOKEN.test(x)))
    throw new Malformed(`"${field}" must be an array of header names`);
  const names = (v as string[]).map((x) => x.toLowerCase());
  const bad = names.find(reserved);
  if (bad !== undefined)
    throw new Malformed(
      `"${field}" names ${JSON.stringify(bad)}, which a policy may not remove (host, framing, hop-by-hop and x-envoy-* headers)`,
    );
  return names;
}

function statusOf(v: unknown, fallback: number, field: string): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 400 || v > 599)
    throw new Malformed(`"${field}" of a deny must be an integer HTTP status 400-599, got ${JSON.stringify(v)}`);
  return v;
}

function optionalString(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new Malformed(`"${field}" must be a string, got ${typeName(v)}`);
  return v;
}

function objectOrUndefined(v: unknown, field: string): Record<string, unknown> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new Malformed(`"${field}" must be an object`);
  return v as Record<string, unknown>;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}
