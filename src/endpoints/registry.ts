// The endpoint registry: compiled once at load, asked once per Check. Endpoints are chosen
// the way Envoy routes (docs/endpoints.md): the request's host picks a virtual host first —
// an exact host, else the longest `*.suffix` wildcard, else the longest `prefix.*`
// wildcard, else the hosts no endpoint names — and only then does the path pick an endpoint
// inside it, longest segment-aware prefix first. Both steps are indexed (exact hosts and
// wildcard parts by hash, path prefixes by length at the path's "/"), so choosing costs the
// same among 10 endpoints or 100,000. A host an endpoint names never falls back
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

/**
 * A virtual host's path index. A prefix matches a path exactly when it equals the path cut
 * at its end or at one of its "/", so a request costs one Map lookup per "/" of its path at
 * which some prefix of that length exists — whatever the number of endpoints.
 */
interface PathIndex {
  /** Non-empty prefixes: the first endpoint in config order for each. */
  readonly byPrefix: Map<string, Endpoint>;
  /** hasLength[n] = 1 when some prefix is n characters long. */
  readonly hasLength: Uint8Array;
  /** The first endpoint covering the whole host (no pathPrefix, or "/"). */
  readonly whole: Endpoint | undefined;
}

interface IndexedHost extends VirtualHost {
  readonly paths: PathIndex;
}

/** Wildcard hosts by their fixed part, and the distinct lengths of those parts, longest first. */
interface WildcardIndex {
  readonly byPart: Map<string, IndexedHost>;
  readonly lengths: readonly number[];
}

export class EndpointRegistry {
  readonly all: readonly Endpoint[];
  private readonly exact = new Map<string, IndexedHost>();
  /** `*<suffix>` hosts: the fixed part is ".example.com" for "*.example.com". */
  private readonly suffixes: WildcardIndex;
  /** `<prefix>*` hosts: the fixed part is "mcp." for "mcp.*". */
  private readonly prefixes: WildcardIndex;
  /** Path-only endpoints: they serve every host no endpoint names. */
  private readonly anyHost: IndexedHost;

  constructor(configs: readonly EndpointConfig[]) {
    this.all = configs.map((c) => ({
      ...c,
      metadataPath: c.match.pathPrefix !== undefined ? trimSlash(c.match.pathPrefix) : '',
    }));
    const groups = new Map<string | undefined, Endpoint[]>();
    for (const e of this.all) {
      const host = e.match.host?.toLowerCase();
      let list = groups.get(host);
      if (!list) groups.set(host, (list = []));
      list.push(e);
    }
    this.anyHost = indexHost(undefined, groups.get(undefined) ?? []);
    const suffixes = new Map<string, IndexedHost>();
    const prefixes = new Map<string, IndexedHost>();
    for (const [host, list] of groups) {
      if (host === undefined) continue;
      const vhost = indexHost(host, list);
      if (host.startsWith('*')) suffixes.set(host.slice(1), vhost);
      else if (host.endsWith('*')) prefixes.set(host.slice(0, -1), vhost);
      else this.exact.set(host, vhost);
    }
    this.suffixes = wildcardIndex(suffixes);
    this.prefixes = wildcardIndex(prefixes);
  }

  /** The endpoint for a normalized path and a request host (`:authority`, any case, port allowed). */
  match(path: string, host: string): Endpoint | undefined {
    const { byPrefix, hasLength, whole } = (this.virtualHost(host) as IndexedHost).paths;
    // The longest matching prefix wins: try the path whole, then cut at each "/" from the right.
    let end = path.length;
    if (end >= hasLength.length) end = path.lastIndexOf('/', hasLength.length - 1);
    while (end > 0) {
      if (hasLength[end] === 1) {
        const e = byPrefix.get(end === path.length ? path : path.slice(0, end));
        if (e !== undefined) return e;
      }
      end = path.lastIndexOf('/', end - 1);
    }
    return whole;
  }

  /** The virtual host a request host selects, as Envoy selects it. */
  virtualHost(host: string): VirtualHost {
    const h = bareHost(host);
    const exact = this.exact.get(h);
    if (exact) return exact;
    // A wildcard never matches the empty string: "*.example.com" is not "example.com" or ".example.com".
    for (const n of this.suffixes.lengths) {
      if (n >= h.length) continue;
      const v = this.suffixes.byPart.get(h.slice(h.length - n));
      if (v) return v;
    }
    for (const n of this.prefixes.lengths) {
      if (n >= h.length) continue;
      const v = this.prefixes.byPart.get(h.slice(0, n));
      if (v) return v;
    }
    return this.anyHost;
  }
}

function indexHost(host: string | undefined, list: Endpoint[]): IndexedHost {
  // Longest prefix first; the sort is stable, so equal prefixes keep their config order.
  const endpoints = list.sort((a, b) => b.metadataPath.length - a.metadataPath.length);
  const byPrefix = new Map<string, Endpoint>();
  let whole: Endpoint | undefined;
  let longest = 0;
  for (const e of endpoints) {
    const p = e.metadataPath;
    if (p === '') whole ??= e;
    else if (!byPrefix.has(p)) byPrefix.set(p, e);
    if (p.length > longest) longest = p.length;
  }
  const hasLength = new Uint8Array(longest + 1);
  for (const p of byPrefix.keys()) hasLength[p.length] = 1;
  return { host, endpoints, paths: { byPrefix, hasLength, whole } };
}

function wildcardIndex(byPart: Map<string, IndexedHost>): WildcardIndex {
  const lengths = [...new Set([...byPart.keys()].map((p) => p.length))].sort((a, b) => b - a);
  return { byPart, lengths };
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
