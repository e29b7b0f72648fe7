// The contracts of the pipeline's phases. Each phase lives in its own folder; the
// pipeline (src/pipeline/) only knows these shapes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApprovalRequirement } from '../contracts/approval.js';
import type { AuthFailureDetail } from '../contracts/codes.js';
import type { Answer, Deny, HeaderToSet } from '../contracts/outcome.js';
import type { Principal } from '../contracts/principal.js';
import type { McpCall, Request } from '../contracts/request.js';
import type { Endpoint } from '../endpoints/registry.js';
import type { CheckContext, CheckTrace, ListTrace, PolicyRecord, VisibilityRecord } from './context.js';

export type AuthResult =
  | {
      ok: true;
      principal: Principal;
      credentialHeaders: string[];
      credentialQueryParams: string[];
      /** Headers rewritten to drop a credential and keep the rest (the Cookie header without the session cookie). */
      credentialHeaderRewrites?: HeaderToSet[];
      /** The verified OAuth token itself (bearer or cookie): the subject of a token exchange. Never logged. */
      subjectToken?: string;
    }
  | {
      ok: false;
      /** A deny whose code is an authentication code (docs/errors.md). */
      deny: Deny;
      detail: AuthFailureDetail;
      /** Human detail for logs and `mcp-authz check`; never contains a secret. */
      why: string;
    };

/** The headers that give an allowed request its upstream credential; each replaces the client's own. */
export interface UpstreamGrant {
  kind: 'grant';
  headers: readonly HeaderToSet[];
}

/**
 * The credential the MCP server receives on an allowed request (endpoints[].upstream). Runs
 * after the decision, so only an authenticated, allowed caller's token is ever exchanged.
 * Synchronous when the credential is at hand (a cached token, a static secret); a promise
 * only when a token must be fetched. A Deny when it cannot be had: never the caller's own.
 */
export interface UpstreamCredentials {
  /** An Answer: the user must act first (userConnections: the elicitation sending them to /connect/<provider>). */
  credentialFor(ctx: CheckContext): UpstreamGrant | Deny | Answer | undefined | Promise<UpstreamGrant | Deny | Answer>;
}

/** Pages the service serves on its HTTP port for people (userConnections' /connect/<provider>). */
export interface HttpPages {
  /** Serves the request when its path is one of these pages; false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
}

export interface Authenticator {
  authenticate(request: Request, endpoint: Endpoint | undefined): AuthResult | Promise<AuthResult>;
}

/** What a direct answer depends on: the HTTP port's discovery requests carry only these. */
export type DirectRequest = Pick<Request, 'method' | 'path' | 'host' | 'scheme'>;

/** Answers requests that are not for an endpoint but for the service itself (RFC 9728 discovery). */
export interface DirectResponder {
  answer(request: DirectRequest): Answer | Deny | undefined;
}

export interface AuthzAllow {
  allow: true;
  headers: HeaderToSet[];
  headersToRemove: string[];
  responseHeaders: HeaderToSet[];
  queryParamsToRemove?: string[];
  dynamicMetadata?: Record<string, unknown>;
}

/** A deny; with `approval`, the policy holds the call for a person's approval (docs/approvals.md). */
export type AuthzResult = AuthzAllow | { allow: false; deny: Deny; approval?: ApprovalRequirement };

/** A held call whose approval was found: what the allow carries as evidence. */
export interface ApprovalGrant {
  kind: 'approved';
  approvalId: string;
  /** The signed receipt (compact JWS): digest, approver, time, rule. */
  receipt: string;
  approver: string;
  digest: string;
  /** What Envoy's dynamic metadata carries under `approval` (id, digest, approver, receipt); frozen. */
  metadata: Readonly<Record<string, string>>;
  /** The decision log's `approval` value (id, approver, receipt) as JSON, written once per grant. */
  logJson: string;
}

/**
 * Approvals (src/approvals/): a call the policy holds is looked up by its digest; a grant lets
 * it through (counted), anything else is a deny that tells the caller where to get one. Runs
 * only when the policy asked for approval: a plain allow or deny never reaches it.
 */
export interface Approvals {
  check(
    ctx: CheckContext,
    requirement: ApprovalRequirement,
    policyRevision: string,
    decisionId: string,
  ): ApprovalGrant | Deny | Promise<ApprovalGrant | Deny>;
}

/** The authorize phase's answer and, when a policy was evaluated, its record. */
export interface Authorization {
  result: AuthzResult;
  record?: PolicyRecord;
}

/** Which of a list's items the caller may see: one boolean per call, in order, from one policy evaluation. */
export type VisibilityResult =
  | { ok: true; visible: boolean[]; record: VisibilityRecord }
  | { ok: false; reason: 'visibility_unavailable' | 'visibility_error'; detail: string; record?: VisibilityRecord };

export interface Authorizer {
  authorize(ctx: CheckContext): Authorization;
  /**
   * The list visibility rule (docs/ext_proc.md) on the calls a list's items stand for, in the
   * context of the list request; `requestInput` is the input the request was decided on.
   * An authorizer without it withholds every list.
   */
  visible?(ctx: CheckContext, calls: readonly McpCall[], requestInput: string | undefined): VisibilityResult;
  /**
   * The policy on an input that is not a Check's (an AuthZEN question about something other
   * than an MCP request, docs/authzen.md): its decision mapped as a Check's is.
   */
  evaluateDocument?(input: string): Authorization;
}

export interface Limiter {
  /** Before credentials are tried: a locked-out client gets its 429 here. */
  beforeAuth(ctx: CheckContext): Promise<Deny | undefined> | Deny | undefined;
  /** Counts one failed authentication; returns the 429 when this failure is beyond the limit (it arrived while the lockout was landing). */
  authFailed(ctx: CheckContext): Promise<Deny | undefined> | Deny | undefined;
  /** After authentication: the per-client request rate. */
  afterAuth(ctx: CheckContext): Promise<Deny | undefined> | Deny | undefined;
  /** After the policy allowed (or dry-run did): per-tool quotas, so a denied call costs none. */
  afterPolicy?(ctx: CheckContext): Promise<Deny | undefined> | Deny | undefined;
}

export interface Observer {
  decided(trace: CheckTrace): void;
  /** A list response was filtered (or withheld) for the caller (ext_proc). */
  listed?(trace: ListTrace): void;
  /** A listed definition is not its pin (docs/pinning.md): seen in a list, or found by a call. */
  drifted?(drift: DriftRecord): void;
}

/** A definition that is not its pin: what the decision log's `drift` line and the drift metric say. */
export interface DriftRecord {
  endpoint: string;
  kind: 'tools' | 'prompts' | 'resourceTemplates';
  /** The tool's or prompt's name, the template's uriTemplate. */
  name: string;
  mode: 'enforce' | 'trust-on-first-use' | 'report';
  /** `changed`: pinned, listed otherwise; `unpinned`: listed, with no pin. */
  change: 'changed' | 'unpinned';
  /** The pin (SHA-256 hex); undefined when there is none. */
  pinned: string | undefined;
  /** The digest last listed; undefined when never listed. */
  listed: string | undefined;
  /** Seen in a list response (ext_proc) or by a call's check (ext_authz). */
  where: 'list' | 'call';
  requestId: string | undefined;
}

/** Tool-definition pinning on the Check path (src/pins/). */
export interface Pinning {
  /**
   * A request's tools/call (and prompts/get, where prompts are pinned) against the pins and
   * what the endpoint last listed: a deny for a changed, unpinned or never-listed definition;
   * undefined when the endpoint pins nothing (no promise to wait for).
   */
  checkCalls(ctx: CheckContext): Promise<Deny | undefined> | undefined;
}

/** The Check's phases as its spans name them (docs/tracing.md). */
export type CheckPhase =
  | 'direct_answer'
  | 'endpoint'
  | 'limits'
  | 'authenticate'
  | 'body'
  | 'pins'
  | 'authorize'
  | 'upstream_credentials'
  | 'respond';

/** Traces Checks: off unless configured, and then only sampled Checks cost spans. */
export interface CheckTracing {
  /**
   * Opens the Check's span (and its decode span, from `startedNs` to now) under the trace
   * context the Check arrived with; undefined when the sampler does not record this Check.
   */
  start(trace: CheckTrace, startedNs: bigint): CheckSpan | undefined;
  /** Exports what is left and stops. */
  close(): Promise<void>;
}

/** One recorded Check: a span with a child span per phase. */
export interface CheckSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** Ends the phase in progress and starts `phase` (nothing when it is already in progress). */
  phase(phase: CheckPhase): void;
  /** Ends the phase in progress and the Check's span, with the decision's attributes. */
  end(): void;
}
