// The MCP authorization spec's Bearer challenge, pointing at the endpoint's RFC 9728
// metadata (src/endpoints/metadata-url.ts).
import type { Request } from '../contracts/request.js';
import { publicBase, resourceMetadataUrl } from '../endpoints/metadata-url.js';
import type { Endpoint } from '../endpoints/registry.js';

export interface ChallengeParts {
  realm: string;
  resourceMetadata: string;
  /** Space-separated scopes; omitted when empty. */
  scope?: string;
  /** RFC 6750 error code: invalid_token, insufficient_scope, invalid_request. */
  error?: string;
  errorDescription?: string;
}

/** `Bearer realm="…", error="…", resource_metadata="…", scope="…"` */
export function bearerChallenge(p: ChallengeParts): string {
  let out = `Bearer realm="${quote(p.realm)}"`;
  if (p.error) out += `, error="${quote(p.error)}"`;
  if (p.errorDescription) out += `, error_description="${quote(p.errorDescription)}"`;
  out += `, resource_metadata="${quote(p.resourceMetadata)}"`;
  if (p.scope) out += `, scope="${quote(p.scope)}"`;
  return out;
}

/** The challenge for one endpoint and request (base from publicBaseUrl or the request). */
export function endpointChallenge(
  settings: { realm: string; publicBaseUrl: string | undefined },
  endpoint: Pick<Endpoint, 'metadataPath' | 'scopes'>,
  request: Pick<Request, 'scheme' | 'host'> | undefined,
  extra: { error?: string; errorDescription?: string; scope?: string } = {},
): string {
  const scope = extra.scope ?? endpoint.scopes.join(' ');
  return bearerChallenge({
    realm: settings.realm,
    resourceMetadata: resourceMetadataUrl(publicBase(settings.publicBaseUrl, request), endpoint),
    ...(scope ? { scope } : {}),
    ...(extra.error ? { error: extra.error } : {}),
    ...(extra.errorDescription ? { errorDescription: extra.errorDescription } : {}),
  });
}

// quoted-string (RFC 9110): backslash-escape '"' and '\'.
function quote(s: string): string {
  return s.includes('"') || s.includes('\\') ? s.replace(/["\\]/g, '\\$&') : s;
}
