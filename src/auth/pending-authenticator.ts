// Stands in for authentication until it exists: fail-closed. Only endpoints whose auth
// mode is "both off" (DESIGN's first row) pass, as the anonymous principal.
import { deny } from '../check/outcome.js';
import type { AuthResult, Authenticator } from '../check/phases.js';
import type { Endpoint } from '../endpoints/registry.js';
import { ANONYMOUS } from './principal.js';

export class PendingAuthenticator implements Authenticator {
  authenticate(_request: unknown, endpoint: Endpoint | undefined): AuthResult {
    if (endpoint && !endpoint.auth.apiKey && !endpoint.auth.oauth) {
      return { ok: true, principal: ANONYMOUS, credentialHeaders: [], credentialQueryParams: [] };
    }
    return {
      ok: false,
      reason: 'authentication_required',
      deny: deny(401, 'authentication_required', 'Authentication required.'),
    };
  }
}
