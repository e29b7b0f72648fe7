// Obtaining a client identity when none is given, in the MCP 2025-11-25 order: a Client ID
// Metadata Document URL when the server supports them, else RFC 7591 dynamic registration of
// a native public client for this one loopback redirect.
import type { AuthorizationServer } from './authorization-server.js';
import { jsonObject, request, type HttpContext } from './http.js';
import { LoginFailure } from './login-failure.js';
import type { ClientIdentity } from './token-endpoint.js';

/**
 * A Client ID Metadata Document URL as the draft requires: https, a path, no fragment, no
 * credentials, no dot segments. Returns why not, or undefined when it is one.
 */
export function clientMetadataUrlProblem(value: string): string | undefined {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return 'is not an absolute URL';
  }
  if (u.protocol !== 'https:') return 'must be an https URL';
  if (u.pathname === '/' || u.pathname === '')
    return 'must have a path (e.g. https://example.com/mcp-authz-client.json)';
  if (value.includes('#')) return 'must not have a fragment';
  if (u.username !== '' || u.password !== '') return 'must not carry credentials';
  if (/(^|\/)(\.|%2e){1,2}(\/|$)/i.test(value.slice(value.indexOf('//') + 2))) return 'must not have . or .. segments';
  return undefined;
}

export function clientFromMetadataDocument(as: AuthorizationServer, url: string): ClientIdentity {
  if (!as.clientIdMetadataDocuments) {
    throw new LoginFailure(
      'client_registration',
      `${as.issuer} does not advertise client_id_metadata_document_supported: it cannot use ${url} as a client_id. Pass --client-id of a registered client instead`,
    );
  }
  return { clientId: url, authMethod: 'none', source: 'client-id-metadata-document' };
}

export async function registerClient(
  as: AuthorizationServer,
  redirectUri: string,
  ctx: HttpContext,
  clientName: string,
): Promise<ClientIdentity> {
  if (as.registrationEndpoint === undefined) {
    throw new LoginFailure(
      'client_registration',
      `${as.issuer} offers no dynamic client registration (no registration_endpoint)${as.clientIdMetadataDocuments ? ' but accepts Client ID Metadata Documents: pass --client-metadata-url' : ''}; pass --client-id of a client registered there with redirect URI ${redirectUri}`,
    );
  }
  const metadata = {
    client_name: clientName,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    application_type: 'native',
  };
  const answer = await request(
    as.registrationEndpoint,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(metadata),
      redirect: 'manual',
    },
    ctx,
  );
  if (answer.status !== 201 && answer.status !== 200) {
    let reason = `HTTP ${answer.status}`;
    try {
      const e = JSON.parse(answer.text) as { error?: unknown; error_description?: unknown };
      if (typeof e.error === 'string')
        reason = `${e.error}${typeof e.error_description === 'string' ? `: ${e.error_description.slice(0, 300)}` : ''} (HTTP ${answer.status})`;
    } catch {
      // not JSON
    }
    throw new LoginFailure(
      'client_registration',
      `${as.registrationEndpoint} refused to register a client: ${reason}. Pass --client-id of a registered client instead`,
    );
  }
  let doc: Record<string, unknown>;
  try {
    doc = jsonObject(answer, 'the registration response');
  } catch (err) {
    throw new LoginFailure('client_registration', (err as Error).message);
  }
  if (typeof doc.client_id !== 'string' || doc.client_id === '')
    throw new LoginFailure(
      'client_registration',
      `the registration response from ${as.registrationEndpoint} has no client_id`,
    );
  const secret = typeof doc.client_secret === 'string' && doc.client_secret !== '' ? doc.client_secret : undefined;
  const method = doc.token_endpoint_auth_method;
  return {
    clientId: doc.client_id,
    ...(secret !== undefined ? { clientSecret: secret } : {}),
    authMethod:
      secret === undefined ? 'none' : method === 'client_secret_post' ? 'client_secret_post' : 'client_secret_basic',
    source: 'dynamic-registration',
  };
}
