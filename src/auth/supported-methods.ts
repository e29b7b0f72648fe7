// How an endpoint authenticates, in the words clients see: the `supported_methods` of a 401
// and of the discovery 404s (src/auth/oauth-discovery.ts).
import type { Config } from '../config/schema.js';
import type { Endpoint } from '../endpoints/registry.js';

export const SUPPORTED_BEARER = 'Authorization header (Bearer token)';
export const SUPPORTED_MTLS = 'mTLS client certificate (SPIFFE ID)';

export interface MethodLabels {
  /** "X-API-Key header" (the configured apiKeys.header). */
  key: string;
  /** "query parameter (api_key or apikey)". */
  query: string;
  /** Whether any key query parameter is configured. */
  queryConfigured: boolean;
}

export function methodLabels(config: Config): MethodLabels {
  return {
    key: `${headerLabel(config.apiKeys.header)} header`,
    query: `query parameter (${config.apiKeys.queryParams.join(' or ')})`,
    queryConfigured: config.apiKeys.queryParams.length > 0,
  };
}

/** The credentials an endpoint reads, bearer token first, then keys, the session cookie, the mTLS peer; empty for an endpoint without authentication. */
export function supportedMethods(auth: Endpoint['auth'], labels: MethodLabels): string[] {
  const keys = !auth.apiKey
    ? []
    : auth.queryParamKeys && labels.queryConfigured
      ? [labels.key, labels.query]
      : [labels.key];
  return [
    ...(auth.oauth ? [SUPPORTED_BEARER] : []),
    ...keys,
    ...(auth.jwtCookie !== undefined ? [`Cookie ${auth.jwtCookie} (JWT, from a page on an allowed origin)`] : []),
    ...(auth.mtls ? [SUPPORTED_MTLS] : []),
  ];
}

/** "x-api-key" → "X-API-Key" (the spelling clients see in supported_methods). */
export function headerLabel(name: string): string {
  if (name === 'x-api-key') return 'X-API-Key';
  return name
    .split('-')
    .map((w) => (w.length ? w[0]!.toUpperCase() + w.slice(1) : w))
    .join('-');
}
