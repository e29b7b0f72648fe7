// Turns a verification error into the short reason logged and shown by `mcp-authz check`.
// Reasons are fixed strings or come from configuration, never from the token's bytes.
import { errors } from 'jose';
import { JwksUnavailableError } from './jwks-cache.js';

export function failureReason(err: unknown): string {
  if (err instanceof JwksUnavailableError) return 'signing keys for the token issuer are unavailable';
  if (err instanceof errors.JWTExpired) return 'token expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return `token has no ${err.claim} claim`;
    switch (err.claim) {
      case 'nbf':
        return 'token not yet valid (nbf is in the future)';
      case 'aud':
        return 'token audience is not this endpoint';
      case 'iss':
        return 'token issuer does not match';
      default:
        return `token ${err.claim} claim is invalid`;
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'token algorithm is not allowed for this issuer';
  if (err instanceof errors.JWKSNoMatchingKey) return 'no signing key of the issuer matches the token kid';
  if (err instanceof errors.JWKSMultipleMatchingKeys) return 'several signing keys match a token without kid';
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) return 'token is not a well-formed JWT';
  if (err instanceof errors.JOSENotSupported) return 'token uses an unsupported algorithm or key';
  if (err instanceof errors.JOSEError) return `token verification failed (${err.code})`;
  return 'token verification failed';
}
