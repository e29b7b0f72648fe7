// The endpoint registry: compiled once at load, asked once per Check.
import type { EndpointConfig } from '../config/schema.js';

export interface Endpoint extends EndpointConfig {
  /** Path used for the path-suffixed RFC 9728 document: the pathPrefix, or "" for host-only endpoints. */
  metadataPath: string;
}

export class EndpointRegistry {
  /** Path-prefix endpoints, longest prefix first. */
  private readonly byPrefix: Endpoint[];
  /** Host-only endpoints by lower-cased host (port stripped). */
  private readonly byHost = new Map<string, Endpoint>();
  readonly all: readonly Endpoint[];

  constructor(configs: readonly EndpointConfig[]) {
    this.all = configs.map((c) => ({ ...c, metadataPath: c.match.pathPrefix ? trimSlash(c.match.pathPrefix) : '' }));
    this.byPrefix = this.all
      .filter((e) => e.match.pathPrefix !== undefined)
      .sort((a, b) => trimSlash(b.match.pathPrefix!).length - trimSlash(a.match.pathPrefix!).length);
    for (const e of this.all) {
      if (e.match.pathPrefix === undefined && e.match.host !== undefined) this.byHost.set(e.match.host.toLowerCase(), e);
    }
  }

  /** The endpoint for a normalized path and host: the longest matching path prefix, else a host match. */
  match(path: string, host: string): Endpoint | undefined {
    const bareHost = stripPort(host);
    for (const e of this.byPrefix) {
      if (e.match.host !== undefined && e.match.host.toLowerCase() !== bareHost) continue;
      if (prefixMatches(trimSlash(e.match.pathPrefix!), path)) return e;
    }
    return this.byHost.get(bareHost);
  }

  byName(name: string): Endpoint | undefined {
    return this.all.find((e) => e.name === name);
  }
}

/** "/mcp/files" matches "/mcp/files" and "/mcp/files/x", never "/mcp/filesystem". */
function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47;
}

function trimSlash(p: string): string {
  return p.endsWith('/') ? p.replace(/\/+$/, '') : p;
}

function stripPort(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith('[')) {
    const close = h.indexOf(']');
    return close === -1 ? h : h.slice(0, close + 1);
  }
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}
