// Stands in for the policy until one is loaded: fail-closed. Only the anonymous
// principal of an auth-off endpoint passes; everything else is 403.
import type { CheckContext } from '../check/context.js';
import { deny } from '../check/outcome.js';
import type { AuthzResult, Authorizer } from '../check/phases.js';

export class PendingAuthorizer implements Authorizer {
  authorize(ctx: CheckContext): AuthzResult {
    const e = ctx.endpoint;
    if (e && !e.auth.apiKey && !e.auth.oauth && ctx.principal.method === 'anonymous') {
      return { allow: true, headers: [], headersToRemove: [], responseHeaders: [] };
    }
    return { allow: false, deny: deny(403, 'access_denied', 'No authorization policy is loaded.') };
  }
}
