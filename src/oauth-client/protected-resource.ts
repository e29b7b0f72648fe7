// Finding an MCP endpoint's authorization server the way MCP clients do (MCP 2025-11-25,
// "Protected Resource Metadata Discovery"): an unauthenticated request first, whose 401
// Bearer challenge names the RFC 9728 document in `resource_metadata` (and the scopes to ask
// for in `scope`); without one, the path-suffixed well-known URL, then the root one.
import { assertTransport, jsonObject, request, type HttpContext } from './http.js';
import { LoginFailure } from './login-failure.js';
import { bearerChallenge, ChallengeSyntaxError } from './www-authenticate.js';

export interface ProtectedResource {
  /** The canonical URI the metadata declares: the RFC 8707 `resource` to ask a token for. */
  resource: string;
  authorizationServers: string[];
  scopesSupported?: string[];
  /** The `scope` of the 401 challenge, when there was one: what to ask for first. */
  challengeScopes?: string[];
  metadataUrl: string;
  /** How the document was found. */
  via: 'challenge' | 'path' | 'root';
}

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

const trimSlash = (p: string) => p.replace(/\/+$/, '');

/** The RFC 9728 well-known URLs for an MCP endpoint, in the order MCP clients try them. */
export function protectedResourceUrls(endpoint: URL): { url: string; via: 'path' | 'root' }[] {
  const path = trimSlash(endpoint.pathname);
  const root = { url: `${endpoint.origin}${WELL_KNOWN}`, via: 'root' as const };
  return path === '' ? [root] : [{ url: `${endpoint.origin}${WELL_KNOWN}${path}`, via: 'path' }, root];
}

/**
 * Does the metadata's `resource` cover the URL the user gave? Same origin, and its path is
 * the endpoint's path or a segment prefix of it (RFC 9728 §7.3: a document naming some other
 * resource could send the token elsewhere).
 */
export function resourceCovers(declared: string, endpoint: URL): boolean {
  let d: URL;
  try {
    d = new URL(declared);
  } catch {
    return false;
  }
  if (d.origin !== endpoint.origin || d.hash !== '') return false;
  const dp = trimSlash(d.pathname);
  const ep = trimSlash(endpoint.pathname);
  return dp === '' || ep === dp || ep.startsWith(`${dp}/`);
}

/** The first request an MCP client makes: `initialize`, without a credential. */
function probeBody(clientVersion: string): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'mcp-authz-login', version: clientVersion },
    },
  });
}

export async function discoverProtectedResource(
  endpointUrl: string,
  ctx: HttpContext,
  clientVersion: string,
): Promise<ProtectedResource> {
  const endpoint = assertTransport(endpointUrl, 'the MCP endpoint', ctx.allowHttp);
  const tried: string[] = [];

  const probe = await request(
    endpoint.href,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: probeBody(clientVersion),
      redirect: 'manual',
    },
    ctx,
    true,
  );
  let challengeScopes: string[] | undefined;
  let headerUrl: string | undefined;
  if (probe.status === 401) {
    try {
      const params = bearerChallenge(probe.headers.get('www-authenticate'));
      headerUrl = params?.get('resource_metadata');
      const scope = params?.get('scope');
      if (scope !== undefined) challengeScopes = scope.split(' ').filter(Boolean);
    } catch (err) {
      if (!(err instanceof ChallengeSyntaxError)) throw err;
      tried.push(`the 401's WWW-Authenticate is unreadable (${err.message})`);
    }
    if (headerUrl === undefined) tried.push(`POST ${endpoint.href} answered 401 without a Bearer resource_metadata`);
  } else {
    tried.push(`POST ${endpoint.href} answered ${probe.status}, not 401 with a Bearer challenge`);
  }

  const candidates: { url: string; via: ProtectedResource['via'] }[] = [];
  if (headerUrl !== undefined) candidates.push({ url: headerUrl, via: 'challenge' });
  candidates.push(...protectedResourceUrls(endpoint));

  let invalid: LoginFailure | undefined;
  for (const { url, via } of candidates) {
    assertTransport(url, 'the protected resource metadata URL', ctx.allowHttp);
    const answer = await request(url, { headers: { accept: 'application/json' } }, ctx);
    if (answer.status < 200 || answer.status > 299) {
      tried.push(`GET ${url} answered ${answer.status}`);
      continue;
    }
    let doc: Record<string, unknown>;
    try {
      doc = jsonObject(answer, 'the protected resource metadata');
    } catch (err) {
      // A catch-all page (an SPA's index.html) answers 200 to any path: look further.
      tried.push((err as Error).message);
      invalid ??= err as LoginFailure;
      continue;
    }
    const found = validate(doc, url, endpoint, ctx);
    return { ...found, ...(challengeScopes ? { challengeScopes } : {}), metadataUrl: url, via };
  }
  if (invalid)
    throw new LoginFailure(
      'metadata_invalid',
      `no usable protected resource metadata for ${endpoint.href}: ${tried.join('; ')}`,
    );
  throw new LoginFailure(
    'metadata_missing',
    `no protected resource metadata (RFC 9728) for ${endpoint.href}: ${tried.join('; ')}. If the server has none, name its authorization server with --issuer`,
  );
}

function validate(
  doc: Record<string, unknown>,
  url: string,
  endpoint: URL,
  ctx: HttpContext,
): Omit<ProtectedResource, 'metadataUrl' | 'via' | 'challengeScopes'> {
  const { resource, authorization_servers: servers, scopes_supported: scopes } = doc;
  if (typeof resource !== 'string')
    throw new LoginFailure('metadata_invalid', `the protected resource metadata at ${url} has no "resource"`);
  if (!resourceCovers(resource, endpoint)) {
    throw new LoginFailure(
      'metadata_invalid',
      `the protected resource metadata at ${url} is for ${resource}, which does not cover ${endpoint.href}`,
    );
  }
  if (!Array.isArray(servers) || servers.length === 0 || !servers.every((s) => typeof s === 'string')) {
    throw new LoginFailure(
      'metadata_invalid',
      `the protected resource metadata at ${url} lists no "authorization_servers"`,
    );
  }
  for (const s of servers as string[]) assertTransport(s, 'the authorization server', ctx.allowHttp);
  const out: Omit<ProtectedResource, 'metadataUrl' | 'via' | 'challengeScopes'> = {
    resource,
    authorizationServers: servers as string[],
  };
  if (Array.isArray(scopes) && scopes.every((s) => typeof s === 'string')) out.scopesSupported = scopes as string[];
  return out;
}
