// A discovery request that arrived on the service's own HTTP port (not through Envoy): the
// few fields a direct answer reads, with the path normalized as a Check would normalize it.
import type { Request } from '../contracts/request.js';
import { normalizePath } from './normalize-path.js';

/** Throws RequestRejected for a path a Check would refuse. */
export function requestForDiscovery(
  method: string,
  url: string,
  host: string,
): Pick<Request, 'method' | 'path' | 'host' | 'scheme'> {
  return { method: method.toUpperCase(), path: normalizePath(url).path, host: host.toLowerCase(), scheme: 'http' };
}
