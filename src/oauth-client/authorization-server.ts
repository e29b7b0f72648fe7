// An authorization server's metadata, found at the well-known URLs MCP clients try
// (MCP 2025-11-25, "Authorization Server Metadata Discovery": RFC 8414 then OpenID
// Connect Discovery, path inserted before appended) and checked before anything is sent to
// it: the same issuer (RFC 8414 §3.3), an authorization and a token endpoint, and PKCE with
// S256 — a server that does not say it supports PKCE is refused, as the MCP spec requires.
import { assertTransport, jsonObject, request, type HttpContext } from './http.js';
import { LoginFailure } from './login-failure.js';

export interface AuthorizationServer {
  /** The metadata's own `issuer`: what the callback's `iss` must equal. */
  issuer: string;
  metadataUrl: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  registrationEndpoint?: string;
  /** `client_id_metadata_document_supported: true` */
  clientIdMetadataDocuments: boolean;
  /** RFC 9207 `authorization_response_iss_parameter_supported: true`: the callback must carry `iss`. */
  issInCallback: boolean;
  /** `token_endpoint_auth_methods_supported` (RFC 8414 default: client_secret_basic). */
  tokenAuthMethods: string[];
  scopesSupported?: string[];
}

const OAUTH = '/.well-known/oauth-authorization-server';
const OPENID = '/.well-known/openid-configuration';

const trimSlash = (p: string) => p.replace(/\/+$/, '');

/** The metadata URLs for an issuer, in the order MCP clients try them. */
export function authorizationServerMetadataUrls(issuer: URL): string[] {
  const path = trimSlash(issuer.pathname);
  if (path === '') return [`${issuer.origin}${OAUTH}`, `${issuer.origin}${OPENID}`];
  return [`${issuer.origin}${OAUTH}${path}`, `${issuer.origin}${OPENID}${path}`, `${issuer.origin}${path}${OPENID}`];
}

/** Issuers compared as RFC 8414 says (identical), forgiving only a trailing slash, as the service does. */
export function sameIssuer(found: string, expected: string): boolean {
  return found === expected || trimSlash(found) === trimSlash(expected);
}

export async function discoverAuthorizationServer(issuerUrl: string, ctx: HttpContext): Promise<AuthorizationServer> {
  const issuer = assertTransport(issuerUrl, 'the issuer', ctx.allowHttp);
  if (issuer.search !== '' || issuer.hash !== '')
    throw new LoginFailure(
      'metadata_invalid',
      `the issuer ${issuerUrl} has a query or fragment; an issuer identifier has neither (RFC 8414 §2)`,
    );
  const tried: string[] = [];
  let rejected: LoginFailure | undefined;
  for (const url of authorizationServerMetadataUrls(issuer)) {
    const answer = await request(url, { headers: { accept: 'application/json' } }, ctx);
    if (answer.status < 200 || answer.status > 299) {
      tried.push(`GET ${url} answered ${answer.status}`);
      continue;
    }
    try {
      return validate(jsonObject(answer, 'the authorization server metadata'), url, issuerUrl, ctx);
    } catch (err) {
      if (!(err instanceof LoginFailure)) throw err;
      // Another of the URLs may hold the right document (a multi-tenant server, a catch-all page).
      tried.push(err.message);
      if (!rejected || err.code === 'issuer_mismatch') rejected = err;
    }
  }
  if (rejected)
    throw new LoginFailure(
      rejected.code,
      tried.length > 1 ? `${rejected.message} (tried: ${tried.join('; ')})` : rejected.message,
    );
  throw new LoginFailure('metadata_missing', `no authorization server metadata for ${issuerUrl}: ${tried.join('; ')}`);
}

function validate(doc: Record<string, unknown>, url: string, expected: string, ctx: HttpContext): AuthorizationServer {
  const str = (k: string) => (typeof doc[k] === 'string' ? (doc[k] as string) : undefined);
  const strings = (k: string) =>
    Array.isArray(doc[k]) && (doc[k] as unknown[]).every((v) => typeof v === 'string')
      ? (doc[k] as string[])
      : undefined;
  const issuer = str('issuer');
  if (issuer === undefined)
    throw new LoginFailure('metadata_invalid', `the authorization server metadata at ${url} has no "issuer"`);
  if (!sameIssuer(issuer, expected)) {
    throw new LoginFailure(
      'issuer_mismatch',
      `the authorization server metadata at ${url} is for issuer ${issuer}, not ${expected}: refusing it (RFC 8414 §3.3)`,
    );
  }
  const authorizationEndpoint = str('authorization_endpoint');
  const tokenEndpoint = str('token_endpoint');
  if (authorizationEndpoint === undefined || tokenEndpoint === undefined) {
    throw new LoginFailure(
      'metadata_invalid',
      `the authorization server metadata at ${url} lacks ${authorizationEndpoint === undefined ? 'authorization_endpoint' : 'token_endpoint'}`,
    );
  }
  assertTransport(authorizationEndpoint, 'authorization_endpoint', ctx.allowHttp);
  assertTransport(tokenEndpoint, 'token_endpoint', ctx.allowHttp);
  if (!(strings('code_challenge_methods_supported') ?? []).includes('S256')) {
    throw new LoginFailure(
      'metadata_invalid',
      `the authorization server ${issuer} does not list S256 in code_challenge_methods_supported: MCP clients must not log in without PKCE`,
    );
  }
  const responseTypes = strings('response_types_supported');
  if (responseTypes !== undefined && !responseTypes.includes('code')) {
    throw new LoginFailure('metadata_invalid', `the authorization server ${issuer} does not offer response_type code`);
  }
  const registrationEndpoint = str('registration_endpoint');
  if (registrationEndpoint !== undefined) assertTransport(registrationEndpoint, 'registration_endpoint', ctx.allowHttp);
  const scopesSupported = strings('scopes_supported');
  return {
    issuer,
    metadataUrl: url,
    authorizationEndpoint,
    tokenEndpoint,
    ...(registrationEndpoint !== undefined ? { registrationEndpoint } : {}),
    clientIdMetadataDocuments: doc.client_id_metadata_document_supported === true,
    issInCallback: doc.authorization_response_iss_parameter_supported === true,
    tokenAuthMethods: strings('token_endpoint_auth_methods_supported') ?? ['client_secret_basic'],
    ...(scopesSupported ? { scopesSupported } : {}),
  };
}
