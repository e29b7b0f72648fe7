// The OAuth discovery documents clients fetch before they authenticate — many on any 401,
// even one without a Bearer challenge (the MCP Inspector does). They are answered from Check
// before authentication, so such a probe never meets a 401 that reads as "log in with
// OAuth": the RFC 9728 documents of OAuth endpoints are served (protected-resource-metadata.ts);
// those the service does not publish — OAuth authorization server metadata, OpenID
// configuration, protected resource metadata of an endpoint without OAuth — are 404 with a
// body that says how the endpoint authenticates. An endpoint declared at a well-known path
// (an MCP server that is its own authorization server) serves those documents itself.
import type { DirectRequest, DirectResponder } from '../decision/phases.js';
import type { Config } from '../config/schema.js';
import { deny, type Answer, type Deny } from '../contracts/outcome.js';
import { PROTECTED_RESOURCE_PATH, publicBase, resourceMetadataUrl } from '../endpoints/metadata-url.js';
import type { Endpoint, EndpointRegistry, VirtualHost } from '../endpoints/registry.js';
import { ProtectedResourceMetadata } from './protected-resource-metadata.js';
import { methodLabels, SUPPORTED_BEARER, supportedMethods, type MethodLabels } from './supported-methods.js';

const WELL_KNOWN = '/.well-known/';
/** Documents of an authorization server: the service is none. */
const UNPUBLISHED: Record<string, string> = {
  'oauth-authorization-server': 'OAuth authorization server metadata (RFC 8414)',
  'openid-configuration': 'OpenID Connect configuration',
};

interface Unpublished {
  title: string;
  /** The path the document is about: "" for the root. */
  about: string;
}

export class OAuthDiscovery implements DirectResponder {
  private readonly metadata: ProtectedResourceMetadata;
  private readonly labels: MethodLabels;
  /** supported_methods of the endpoints of one virtual host, for documents about no endpoint. */
  private readonly hostMethods = new Map<VirtualHost, { methods: string[]; oauth: boolean }>();

  constructor(
    private readonly config: Config,
    private readonly endpoints: EndpointRegistry,
  ) {
    this.metadata = new ProtectedResourceMetadata(config, endpoints);
    this.labels = methodLabels(config);
  }

  answer(request: DirectRequest): Answer | Deny | undefined {
    if (request.method !== 'GET' && request.method !== 'HEAD') return undefined;
    const path = request.path;
    const metadataPath = path === PROTECTED_RESOURCE_PATH || path.startsWith(`${PROTECTED_RESOURCE_PATH}/`);
    const unpublished = metadataPath ? undefined : unpublishedDocument(path);
    if (!metadataPath && unpublished === undefined) return undefined;
    // Declared by the operator: the MCP server behind this endpoint publishes its own documents.
    const owner = this.endpoints.match(path, request.host);
    if (owner?.metadataPath.split('/').includes('.well-known')) return undefined;

    if (metadataPath) {
      const answered = this.metadata.answer(request);
      if (answered?.kind !== 'deny') return answered;
      const about = trimSlashes(path.slice(PROTECTED_RESOURCE_PATH.length));
      const what = `No OAuth protected resource metadata (RFC 9728) is published at ${path}.`;
      if (about === '') return this.notPublished(what, undefined, request);
      const e = this.endpoints.virtualHost(request.host).endpoints.find((x) => x.metadataPath === about);
      return e === undefined ? answered : this.notPublished(what, e, request);
    }
    const about = trimSlashes(unpublished!.about);
    const e = about === '' ? undefined : this.endpoints.match(about, request.host);
    return this.notPublished(
      `mcp-authz is not an OAuth authorization server: no ${unpublished!.title} is published at ${path}.`,
      e,
      request,
    );
  }

  private notPublished(what: string, e: Endpoint | undefined, request: DirectRequest): Deny {
    if (e !== undefined) {
      const methods = supportedMethods(e.auth, this.labels);
      return deny('not_found', `${what} ${this.howEndpoint(e, request)}`, { extra: { supported_methods: methods } });
    }
    const host = this.forHost(this.endpoints.virtualHost(request.host));
    const how = host.oauth
      ? `Endpoints that take OAuth tokens name their authorization server in their protected resource metadata (${PROTECTED_RESOURCE_PATH}<endpoint path>); the others take an API key in the ${this.labels.key}.`
      : host.methods.length === 0
        ? 'The MCP endpoints here need no credential.'
        : this.onlyKeys(host.methods)
          ? `The MCP endpoints here do not use OAuth: send an API key in the ${this.labels.key}.`
          : `The MCP endpoints here do not use OAuth: they authenticate with ${host.methods.join(' or ')}.`;
    return deny('not_found', `${what} ${how}`, { extra: { supported_methods: host.methods } });
  }

  private howEndpoint(e: Endpoint, request: DirectRequest): string {
    const at = e.metadataPath === '' ? 'This MCP endpoint' : `The MCP endpoint ${e.metadataPath}`;
    if (!e.auth.oauth) {
      // Session cookies and mTLS peers are methods too: "no credential" or "an API key" would send the client the wrong way.
      const methods = supportedMethods(e.auth, this.labels);
      if (methods.length === 0) return `${at} needs no credential.`;
      if (this.onlyKeys(methods))
        return `${at} authenticates with an API key, not OAuth: send it in the ${this.labels.key}.`;
      return `${at} does not use OAuth: it authenticates with ${methods.join(' or ')}.`;
    }
    const metadata = resourceMetadataUrl(publicBase(this.config.publicBaseUrl, request), e);
    const key = e.auth.apiKey ? `, or an API key in the ${this.labels.key}` : '';
    return `${at} takes OAuth bearer tokens from the authorization server its protected resource metadata names (${metadata})${key}.`;
  }

  private onlyKeys(methods: readonly string[]): boolean {
    for (const m of methods) if (m !== this.labels.key && m !== this.labels.query) return false;
    return true;
  }

  private forHost(vhost: VirtualHost): { methods: string[]; oauth: boolean } {
    let found = this.hostMethods.get(vhost);
    if (found === undefined) {
      const methods = new Set<string>();
      for (const e of vhost.endpoints) for (const m of supportedMethods(e.auth, this.labels)) methods.add(m);
      const oauth = methods.has(SUPPORTED_BEARER);
      // Bearer first, as on a 401.
      found = {
        methods: oauth ? [SUPPORTED_BEARER, ...[...methods].filter((m) => m !== SUPPORTED_BEARER)] : [...methods],
        oauth,
      };
      this.hostMethods.set(vhost, found);
    }
    return found;
  }
}

/** The authorization server document a path asks for: at the root, with the path inserted after it (RFC 8414), or appended (OpenID Connect Discovery). */
function unpublishedDocument(path: string): Unpublished | undefined {
  for (const name in UNPUBLISHED) {
    const at = WELL_KNOWN + name;
    if (path === at) return { title: UNPUBLISHED[name]!, about: '' };
    if (path.startsWith(`${at}/`)) return { title: UNPUBLISHED[name]!, about: path.slice(at.length) };
    if (path.endsWith(at)) return { title: UNPUBLISHED[name]!, about: path.slice(0, -at.length) };
  }
  return undefined;
}

function trimSlashes(p: string): string {
  let end = p.length;
  while (end > 0 && p.charCodeAt(end - 1) === 47) end--;
  return p.slice(0, end);
}
