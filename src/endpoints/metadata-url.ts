// Where an endpoint's RFC 9728 protected resource metadata is published: the URL clients
// are sent to in challenges, the policy sees as endpoint.resource_metadata, and the service
// answers at.
import type { Request } from '../contracts/request.js';
import { trimSlash } from '../contracts/trim-slash.js';
import type { Endpoint } from './registry.js';

export const PROTECTED_RESOURCE_PATH = '/.well-known/oauth-protected-resource';

/** The base URL the service's public URLs start with: publicBaseUrl, else the request's scheme and host. */
export function publicBase(
  publicBaseUrl: string | undefined,
  request: Pick<Request, 'scheme' | 'host'> | undefined,
): string {
  if (publicBaseUrl !== undefined) return trimSlash(publicBaseUrl);
  return `${request?.scheme || 'https'}://${request?.host || 'localhost'}`;
}

/** Where the endpoint's RFC 9728 document is served: <base>/.well-known/oauth-protected-resource<endpoint path>. */
export function resourceMetadataUrl(base: string, endpoint: Pick<Endpoint, 'metadataPath'> | undefined): string {
  return base + PROTECTED_RESOURCE_PATH + (endpoint?.metadataPath ?? '');
}
