// The contracts of the pipeline's phases. Each phase lives in its own folder; the
// pipeline only knows these shapes.
import type { Principal } from '../auth/principal.js';
import type { Endpoint } from '../endpoints/registry.js';
import type { Request } from '../request/types.js';
import type { CheckContext } from './context.js';
import type { Deny, HeaderToSet, Outcome } from './outcome.js';

export type AuthResult =
  | { ok: true; principal: Principal; credentialHeaders: string[]; credentialQueryParams: string[] }
  | { ok: false; deny: Deny; reason: string; principal?: Principal; /** Human detail for logs and `mcp-authz check`; never contains a secret. */ why?: string };

export interface Authenticator {
  authenticate(request: Request, endpoint: Endpoint | undefined): AuthResult | Promise<AuthResult>;
}

/** Answers requests that are not for an endpoint but for the service itself (RFC 9728 discovery). */
export interface DirectResponder {
  answer(request: Request): Outcome | undefined;
}

export type AuthzResult =
  | { allow: true; headers: HeaderToSet[]; headersToRemove: string[]; responseHeaders: HeaderToSet[]; queryParamsToRemove?: string[]; dynamicMetadata?: Record<string, unknown> }
  | { allow: false; deny: Deny };

export interface Authorizer {
  authorize(ctx: CheckContext): AuthzResult;
}

export interface Limiter {
  /** Before credentials are tried: a locked-out client gets its 429 here. */
  beforeAuth(ctx: CheckContext): Promise<Deny | undefined> | Deny | undefined;
  /** Counts one failed authentication; returns the 429 when this failure is beyond the limit (it arrived while the lockout was landing). */
  authFailed(ctx: CheckContext, reason: string): Promise<Deny | undefined> | Deny | undefined;
  /** After authentication: the per-client request rate. */
  afterAuth(ctx: CheckContext): Promise<Deny | undefined> | Deny | undefined;
}

export interface Observer {
  decided(ctx: CheckContext | undefined, outcome: Outcome, durationNs: bigint): void;
}
