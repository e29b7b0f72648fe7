// RFC 9728 protected resource metadata, answered directly from Check (and on the HTTP
// port): GET /.well-known/oauth-protected-resource[<endpoint path>] → 200 with the JSON
// document, so no extra Envoy route is needed. Documents exist only for OAuth-enabled
// endpoints: advertising authorization servers for an API-key-only endpoint would lure
// clients into an OAuth flow they cannot finish.
import type { DirectRequest, DirectResponder } from '../decision/phases.js';
import type { Config } from '../config/schema.js';
import { answer, deny, type Answer, type Deny } from '../contracts/outcome.js';
import type { Request } from '../contracts/request.js';
import { PROTECTED_RESOURCE_PATH, publicBase } from '../endpoints/metadata-url.js';
import type { Endpoint, EndpointRegistry } from '../endpoints/registry.js';

export class ProtectedResourceMetadata implements DirectResponder {
  private readonly issuers: readonly string[];
  private readonly rootScopes: readonly string[];
  /** Precomputed bodies when publicBaseUrl fixes every URL. */
  private readonly fixed = new Map<Endpoint | 'root', string>();

  constructor(
    private readonly config: Config,
    private readonly endpoints: EndpointRegistry,
  ) {
    this.issuers = config.oauth.issuers.map((i) => i.issuer);
    const scopes = new Set<string>();
    for (const e of endpoints.all) if (e.auth.oauth) for (const s of e.scopes) scopes.add(s);
    this.rootScopes = [...scopes];
    if (config.publicBaseUrl !== undefined) {
      for (const e of endpoints.all) if (e.auth.oauth) this.fixed.set(e, this.document(e, undefined));
      this.fixed.set('root', this.document(undefined, undefined));
    }
  }

  answer(request: DirectRequest): Answer | Deny | undefined {
    const path = request.path;
    if (!path.startsWith(PROTECTED_RESOURCE_PATH) || (request.method !== 'GET' && request.method !== 'HEAD'))
      return undefined;
    let suffix = path.slice(PROTECTED_RESOURCE_PATH.length);
    if (suffix !== '' && suffix.charCodeAt(0) !== 47) return undefined; // "/.well-known/oauth-protected-resourceX" is not ours
    while (suffix.endsWith('/')) suffix = suffix.slice(0, -1);
    if (this.issuers.length === 0) return notFound(path);
    // The document of the endpoint this host and path select, the way requests to it are routed.
    const e = this.endpoints.virtualHost(request.host).endpoints.find((x) => x.auth.oauth && x.metadataPath === suffix);
    if (e) return found(this.fixed.get(e) ?? this.document(e, request));
    if (suffix === '') return found(this.fixed.get('root') ?? this.document(undefined, request));
    return notFound(path);
  }

  private document(e: Endpoint | undefined, request: Pick<Request, 'scheme' | 'host'> | undefined): string {
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

function found(body: string): Answer {
  return answer('protected_resource_metadata', body, 'application/json');
}

function notFound(path: string): Deny {
  return deny(
    'not_found',
    `No OAuth protected resource metadata is published at ${path}: it exists for the root and for each OAuth-enabled endpoint's path.`,
  );
}
