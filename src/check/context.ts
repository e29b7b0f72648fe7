import type { Principal } from '../auth/principal.js';
import type { Endpoint } from '../endpoints/registry.js';
import type { McpView, Request } from '../request/types.js';

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
  mcp: McpView;
  /** The parsed JSON body (opa-envoy-plugin's parsed_body). */
  parsedBody: unknown;
  /** Why authentication failed, when it did (a stable code). */
  authFailure?: string;
  /** Why authentication failed, in words (never a secret). */
  authWhy?: string;
  /** The policy input and raw result, kept for `mcp-authz check` and the decision log. */
  policy?: { input?: unknown; result?: unknown; revision?: string; durationNs?: number; realDecision?: 'allow' | 'deny' };
}
