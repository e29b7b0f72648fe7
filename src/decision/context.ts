// What one Check call learns as it goes (the context phases read) and what it leaves behind
// for the observers (the trace).
import type { AuthFailure, WithheldReason } from '../contracts/codes.js';
import type { HeaderToSet, Outcome } from '../contracts/outcome.js';
import type { Principal } from '../contracts/principal.js';
import type { McpView, Request } from '../contracts/request.js';
import type { Endpoint } from '../endpoints/registry.js';
import type { ListMethod } from '../mcp-response/list-methods.js';
import type { TraceContext } from '../request/trace-context.js';
import type { ApprovalGrant, CheckSpan } from './phases.js';

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
  /** The verified OAuth token (bearer or cookie), for a token exchange; never logged. */
  subjectToken?: string;
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
  /**
   * Only when the policy evaluated the request's credential headers (policy.rawCredentials):
   * the input it evaluated, and the credential strings every output must replace. Functions,
   * so that nothing serializing the record writes them.
   */
  credentials?: { input(): string; strings(): readonly string[] };
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
  /** The shadow policy's verdict (docs/shadow.md): set when the Check is queued for it, filled in after the answer. */
  shadow?: ShadowVerdict;
  /** The approval a held call was let through with (docs/approvals.md). */
  approval?: ApprovalGrant;
}

/** A policy's verdict in the terms a shadow comparison counts: error is a failed evaluation or a malformed decision. */
export type VerdictKind = 'allow' | 'deny' | 'error';

/**
 * The shadow policy's verdict on one Check, filled in off the Check path: `pending` until the
 * shadow policy has run, `dropped` when the queue was full, `unavailable` when no shadow
 * policy was loaded.
 */
export interface ShadowVerdict {
  state: 'pending' | 'done' | 'dropped' | 'unavailable';
  enforced?: { decision: VerdictKind; code: string | null; revision: string };
  shadow?: { decision: VerdictKind; code: string | null; revision: string; result: unknown };
  /** The decisions or their codes differ. */
  differs?: boolean;
}

/** One evaluation of the list visibility rule. */
export interface VisibilityRecord {
  revision: string;
  durationNs: number;
  /** Items the rule was asked about. */
  items: number;
}

/** Items of one list method shown and hidden in one response. */
export interface ListTally {
  method: ListMethod;
  shown: number;
  hidden: number;
}

/**
 * One list response processed for the caller (ext_proc), as the observers see it.
 * `filtered`: its lists were filtered (or nothing in it needed filtering); `withheld`: it
 * could not be filtered and was replaced with a JSON-RPC error; `aborted`: the exchange ended
 * before the response did; `unfiltered`: Envoy never sent the body (the filter lacks
 * allow_mode_override), so it passed without the service seeing it.
 */
export interface ListTrace {
  /** The list request's context. */
  ctx: CheckContext;
  form: 'json' | 'sse';
  result: 'filtered' | 'withheld' | 'aborted' | 'unfiltered';
  reason?: WithheldReason;
  /** Why it was withheld, for logs; never sent to the client. */
  detail?: string;
  /** Per list method of the request. */
  methods: ListTally[];
  /** The visibility rule's evaluations (one per list response; an SSE stream has one per result event). */
  policy: VisibilityRecord[];
  /** Dry-run: nothing was hidden; `hidden` counts what would have been. */
  dryRun: boolean;
  /** Time the service spent on the response (filtering and policy), not waiting for it. */
  durationNs: bigint;
}
