// RFC 9728 protected resource metadata, answered directly from Check (and on the HTTP
// port): GET /.well-known/oauth-protected-resource[<endpoint path>] → 200 with the JSON
// document, so no extra Envoy route is needed. Documents exist only for OAuth-enabled
// endpoints: advertising authorization servers for an API-key-only endpoint would lure
// clients into an OAuth flow they cannot finish.
import type { Config } from '../config/schema.js';
import { deny, type Deny, type Outcome } from '../check/outcome.js';
import type { DirectResponder } from '../check/phases.js';
import type { Endpoint, EndpointRegistry } from '../endpoints/registry.js';
import type { Request } from '../request/types.js';
import { PROTECTED_RESOURCE_PATH, publicBase } from './challenge.js';

export class ProtectedResourceMetadata implements DirectResponder {
  /** "<host>|<metadataPath>" (host "" for any host) → endpoint. */
  private readonly byPath = new Map<string, Endpoint>();
  /** Host-only endpoints: their document is the root one on their host. */
  private readonly byHost = new Map<string, Endpoint>();
  private readonly issuers: readonly string[];
  private readonly rootScopes: readonly string[];
  /** Precomputed bodies when publicBaseUrl fixes every URL. */
  private readonly fixed = new Map<Endpoint | 'root', string>();

  constructor(private readonly config: Config, endpoints: EndpointRegistry) {
    this.issuers = config.oauth.issuers.map((i) => i.issuer);
    const scopes = new Set<string>();
    for (const e of endpoints.all) {
      if (!e.auth.oauth) continue;
      for (const s of e.scopes) scopes.add(s);
      if (e.match.pathPrefix !== undefined) this.byPath.set(`${e.match.host?.toLowerCase() ?? ''}|${e.metadataPath}`, e);
      else if (e.match.host !== undefined) this.byHost.set(e.match.host.toLowerCase(), e);
    }
    this.rootScopes = [...scopes];
    if (config.publicBaseUrl !== undefined) {
      for (const e of [...this.byPath.values(), ...this.byHost.values()]) this.fixed.set(e, this.document(e, undefined));
      this.fixed.set('root', this.document(undefined, undefined));
    }
  }

  answer(request: Request): Outcome | undefined {
    const path = request.path;
    if (!path.startsWith(PROTECTED_RESOURCE_PATH) || (request.method !== 'GET' && request.method !== 'HEAD')) return undefined;
    let suffix = path.slice(PROTECTED_RESOURCE_PATH.length);
    if (suffix !== '' && suffix.charCodeAt(0) !== 47) return undefined; // "/.well-known/oauth-protected-resourceX" is not ours
    while (suffix.endsWith('/')) suffix = suffix.slice(0, -1);
    const host = bareHost(request.host);
    if (this.issuers.length === 0) return notFound(path);
    if (suffix === '') {
      const e = this.byHost.get(host);
      return found(e ? this.fixed.get(e) ?? this.document(e, request) : this.fixed.get('root') ?? this.document(undefined, request));
    }
    const e = this.byPath.get(`${host}|${suffix}`) ?? this.byPath.get(`|${suffix}`);
    if (!e) return notFound(path);
    return found(this.fixed.get(e) ?? this.document(e, request));
  }

  private document(e: Endpoint | undefined, request: Request | undefined): string {
    const base = publicBase(this.config.publicBaseUrl, request);
    const doc: Record<string, unknown> = {
      resource: e ? (e.resource ?? base + e.metadataPath) : base,
      authorization_servers: this.issuers,
      scopes_supported: e ? e.scopes : this.rootScopes,
      bearer_methods_supported: ['header'],
    };
    if (e) doc.resource_name = e.name;
    return JSON.stringify(doc);
  }
}

function found(body: string): Deny {
  return { allow: false, status: 200, code: 'protected_resource_metadata', description: 'RFC 9728 protected resource metadata', headers: [], rawBody: body, contentType: 'application/json' };
}

function notFound(path: string): Deny {
  return deny(404, 'not_found', `No OAuth protected resource metadata is published at ${path}: it exists for the root and for each OAuth-enabled endpoint's path.`);
}

function bareHost(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}
