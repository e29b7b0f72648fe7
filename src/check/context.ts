// What one Check call learns as it goes (the context phases read) and what it leaves behind
// for the observers (the trace).
import type { AuthFailure } from '../contracts/codes.js';
import type { HeaderToSet, Outcome } from '../contracts/outcome.js';
import type { Principal } from '../contracts/principal.js';
import type { McpView, Request } from '../contracts/request.js';
import type { Endpoint } from '../endpoints/registry.js';
import type { TraceContext } from '../request/trace-context.js';
import type { CheckSpan } from './phases.js';

/** Everything one Check call has learned so far, passed from phase to phase. */
export interface CheckContext {
  request: Request;
  endpoint: Endpoint | undefined;
  /** Client address used for limits (see clientAddress config). */
  clientAddress: string;
  principal: Principal;
  /** Request headers carrying the credential, removed before the request goes upstream. */
  credentialHeaders: string[];
  /** Query parameters carrying the credential, removed likewise. */
  credentialQueryParams: string[];
  /** Headers rewritten without their credential part (the Cookie header without the session cookie). */
  credentialHeaderRewrites?: HeaderToSet[];
  mcp: McpView;
  /** The parsed JSON body (opa-envoy-plugin's parsed_body). */
  parsedBody: unknown;
  /** Why authentication failed, when it did. */
  authFailure?: AuthFailure;
}

/** What the policy phase saw and decided, for the decision log and `mcp-authz check`. */
export interface PolicyRecord {
  /** The input document as the policy saw it (JSON text, credentials redacted). */
  input: string;
  /** The policy's raw result (or `{error}` when evaluation failed). */
  result: unknown;
  revision: string;
  durationNs: number;
  /** The policy's real decision, whatever dry-run made of it. */
  decision: 'allow' | 'deny';
  /** The deny is a failure (evaluation error, malformed decision), not the policy's rules: dry-run never allows it. */
  failed: boolean;
}

/** One decided Check, as the observers (metrics, decision log) and `mcp-authz check` see it. */
export interface CheckTrace {
  /** Names this decision in the decision log, in Envoy's dynamic metadata and on its span. */
  decisionId: string;
  outcome: Outcome;
  /** Undefined when the request could not be decoded. */
  ctx: CheckContext | undefined;
  /** Undefined when the policy was not evaluated. */
  policy: PolicyRecord | undefined;
  /** The W3C trace context the call or the request carried, when valid. */
  incoming: TraceContext | undefined;
  /** This Check's span, when tracing is on and the Check is sampled. */
  span: CheckSpan | undefined;
  durationNs: bigint;
}
