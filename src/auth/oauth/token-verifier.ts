// The contract between authentication and OAuth JWT verification.
import type { AuthFailureDetail } from '../../contracts/codes.js';
import type { Principal } from '../../contracts/principal.js';

export type TokenResult =
  | { ok: true; principal: Principal /** exp, epoch seconds */; expiresAt: number }
  | {
      ok: false;
      detail: AuthFailureDetail /** why, for logs and `mcp-authz check`; never contains the token */;
      why: string;
    };

export interface TokenVerifier {
  /** Verifies a bearer JWT for one of `audiences` (the endpoint's resource, or configured audiences). */
  verify(token: string, audiences: readonly string[]): Promise<TokenResult>;
  /** Stops background refreshes. */
  close(): Promise<void>;
}

// A compact JWS: three base64url parts (the signature may be empty only for alg "none", which the verifier refuses).
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Whether a bearer value is shaped like a JWT (header.payload.signature), before any parsing. */
export function looksLikeJwt(value: string): boolean {
  return COMPACT_JWS.test(value);
}
