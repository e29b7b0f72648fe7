// The endpoint registry: compiled once at load, asked once per Check. Endpoints are chosen
// the way Envoy routes (docs/endpoints.md): the request's host picks a virtual host first —
// an exact host, else the longest `*.suffix` wildcard, else the longest `prefix.*`
// wildcard, else the hosts no endpoint names — and only then does the path pick an endpoint
// inside it, longest segment-aware prefix first. A host an endpoint names never falls back
// to the path-only endpoints: Envoy would send such a request to that host's server.
import type { EndpointConfig } from '../config/schema.js';
import { trimSlash } from '../contracts/trim-slash.js';

export interface Endpoint extends EndpointConfig {
  /** Path used for the path-suffixed RFC 9728 document: the pathPrefix, or "" for host-only endpoints. */
  metadataPath: string;
}

/** The endpoints one host pattern groups, longest path prefix first ("" = the whole host). */
export interface VirtualHost {
  /** The host pattern ("files.example.com", "*.example.com", "mcp.*"), or undefined for the hosts no endpoint names. */
  host: string | undefined;
  endpoints: readonly Endpoint[];
}

interface Wildcard {
  /** The fixed part: ".example.com" for "*.example.com", "mcp." for "mcp.*". */
  part: string;
  vhost: VirtualHost;
}

export class EndpointRegistry {
  readonly all: readonly Endpoint[];
  private readonly exact = new Map<string, VirtualHost>();
  /** `*<suffix>` hosts, longest suffix first. */
  private readonly suffixes: Wildcard[] = [];
  /** `<prefix>*` hosts, longest prefix first. */
  private readonly prefixes: Wildcard[] = [];
  /** Path-only endpoints: they serve every host no endpoint names. */
  private readonly anyHost: VirtualHost;

  constructor(configs: readonly EndpointConfig[]) {
    this.all = configs.map((c) => ({ ...c, metadataPath: c.match.pathPrefix !== undefined ? trimSlash(c.match.pathPrefix) : '' }));
    const groups = new Map<string | undefined, Endpoint[]>();
    for (const e of this.all) {
      const host = e.match.host?.toLowerCase();
      let list = groups.get(host);
      if (!list) groups.set(host, (list = []));
      list.push(e);
    }
    const byLongestPrefix = (a: Endpoint, b: Endpoint) => b.metadataPath.length - a.metadataPath.length;
    this.anyHost = { host: undefined, endpoints: (groups.get(undefined) ?? []).sort(byLongestPrefix) };
    for (const [host, list] of groups) {
      if (host === undefined) continue;
      const vhost: VirtualHost = { host, endpoints: list.sort(byLongestPrefix) };
      if (host.startsWith('*')) this.suffixes.push({ part: host.slice(1), vhost });
      else if (host.endsWith('*')) this.prefixes.push({ part: host.slice(0, -1), vhost });
      else this.exact.set(host, vhost);
    }
    this.suffixes.sort((a, b) => b.part.length - a.part.length);
    this.prefixes.sort((a, b) => b.part.length - a.part.length);
  }

  /** The endpoint for a normalized path and a request host (`:authority`, any case, port allowed). */
  match(path: string, host: string): Endpoint | undefined {
    for (const e of this.virtualHost(host).endpoints) {
      if (prefixMatches(e.metadataPath, path)) return e;
    }
    return undefined;
  }

  /** The virtual host a request host selects, as Envoy selects it. */
  virtualHost(host: string): VirtualHost {
    const h = bareHost(host);
    const exact = this.exact.get(h);
    if (exact) return exact;
    // A wildcard never matches the empty string: "*.example.com" is not "example.com" or ".example.com".
    for (const w of this.suffixes) if (h.length > w.part.length && h.endsWith(w.part)) return w.vhost;
    for (const w of this.prefixes) if (h.length > w.part.length && h.startsWith(w.part)) return w.vhost;
    return this.anyHost;
  }
}

/** "/mcp/files" matches "/mcp/files" and "/mcp/files/x", never "/mcp/filesystem"; "" matches every path. */
function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47;
}

/** A request host lower-cased without its port: "Files.Example.com:8443" → "files.example.com", "[::1]:80" → "[::1]". */
export function bareHost(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith('[')) {
    const close = h.indexOf(']');
    return close === -1 ? h : h.slice(0, close + 1);
  }
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}
