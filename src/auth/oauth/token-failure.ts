// Turns a verification error into the stable detail and the short reason logged and shown by
// `mcp-authz check`. Reasons are fixed strings or come from configuration, never from the
// token's bytes.
import { errors } from 'jose';
import type { AuthFailureDetail } from '../../contracts/codes.js';
import { JwksUnavailableError } from './jwks-cache.js';

export interface TokenFailure {
  detail: AuthFailureDetail;
  why: string;
}

function tokenFailure(detail: AuthFailureDetail, why: string): TokenFailure {
  return { detail, why };
}

export function failureOf(err: unknown): TokenFailure {
  if (err instanceof JwksUnavailableError)
    return tokenFailure('jwks_unavailable', 'signing keys for the token issuer are unavailable');
  if (err instanceof errors.JWTExpired) return tokenFailure('token_expired', 'token expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return tokenFailure('token_claim_missing', `token has no ${err.claim} claim`);
    switch (err.claim) {
      case 'nbf':
        return tokenFailure('token_not_yet_valid', 'token not yet valid (nbf is in the future)');
      case 'aud':
        return tokenFailure('token_audience', 'token audience is not this endpoint');
      case 'iss':
        return tokenFailure('token_issuer_mismatch', 'token issuer does not match');
      default:
        return tokenFailure('token_claim_invalid', `token ${err.claim} claim is invalid`);
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return tokenFailure('token_signature', 'token signature is invalid');
  if (err instanceof errors.JOSEAlgNotAllowed)
    return tokenFailure('token_algorithm', 'token algorithm is not allowed for this issuer');
  if (err instanceof errors.JWKSNoMatchingKey)
    return tokenFailure('token_kid_unknown', 'no signing key of the issuer matches the token kid');
  if (err instanceof errors.JWKSMultipleMatchingKeys)
    return tokenFailure('token_kid_ambiguous', 'several signing keys match a token without kid');
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid)
    return tokenFailure('token_malformed', 'token is not a well-formed JWT');
  if (err instanceof errors.JOSENotSupported)
    return tokenFailure('token_unsupported', 'token uses an unsupported algorithm or key');
  if (err instanceof errors.JOSEError)
    return tokenFailure('token_verification_failed', `token verification failed (${err.code})`);
  return tokenFailure('token_verification_failed', 'token verification failed');
}
