// The contract between authentication and OAuth JWT verification.
import type { Principal } from '../principal.js';

export type TokenResult =
  | { ok: true; principal: Principal; /** exp, epoch seconds */ expiresAt: number }
  | { ok: false; code: 'invalid_token'; /** why, for logs and `mcp-authz check`; never contains the token */ why: string };

export interface TokenVerifier {
  /** Verifies a bearer JWT for one of `audiences` (the endpoint's resource, or configured audiences). */
  verify(token: string, audiences: readonly string[]): Promise<TokenResult>;
  /** Stops background refreshes. */
  close(): Promise<void>;
}
