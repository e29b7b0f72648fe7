// Redeeming the authorization code at the token endpoint (OAuth 2.1 §4.1.3) with the PKCE
// verifier and the same `resource` (RFC 8707 §2.2), authenticating the client the way the
// server lists; and reading the answer strictly: a Bearer access token or a refusal.
import { jsonObject, request, type HttpContext } from './http.js';
import { LoginFailure } from './login-failure.js';

export interface ClientIdentity {
  clientId: string;
  /** A confidential client's secret (--client-secret-file, or from registration). */
  clientSecret?: string;
  /** How the secret is sent; `none` for a public client. */
  authMethod: 'none' | 'client_secret_basic' | 'client_secret_post';
  /** How the identity was obtained, for messages and --json. */
  source: 'pre-registered' | 'client-id-metadata-document' | 'dynamic-registration';
}

export interface CodeExchange {
  tokenEndpoint: string;
  client: ClientIdentity;
  code: string;
  redirectUri: string;
  codeVerifier: string;
  resource?: string;
}

export interface TokenSet {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn?: number;
  /** Granted scopes: the answer's `scope`, or the requested ones when it has none (RFC 6749 §5.1). */
  scope?: string;
  refreshToken?: string;
}

/** Picks how to send a client secret: basic when listed (the RFC 8414 default), else post. */
export function secretAuthMethod(supported: readonly string[]): 'client_secret_basic' | 'client_secret_post' {
  if (supported.includes('client_secret_basic') || !supported.includes('client_secret_post'))
    return 'client_secret_basic';
  return 'client_secret_post';
}

// RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined for Basic.
const formEncode = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');

export async function exchangeCode(x: CodeExchange, ctx: HttpContext): Promise<TokenSet> {
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    code: x.code,
    redirect_uri: x.redirectUri,
    code_verifier: x.codeVerifier,
  });
  if (x.resource !== undefined) body.set('resource', x.resource);
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  const { client } = x;
  if (client.authMethod === 'client_secret_basic' && client.clientSecret !== undefined) {
    headers.authorization = `Basic ${Buffer.from(`${formEncode(client.clientId)}:${formEncode(client.clientSecret)}`).toString('base64')}`;
  } else {
    body.set('client_id', client.clientId);
    if (client.authMethod === 'client_secret_post' && client.clientSecret !== undefined)
      body.set('client_secret', client.clientSecret);
  }
  const answer = await request(
    x.tokenEndpoint,
    { method: 'POST', headers, body: body.toString(), redirect: 'manual' },
    ctx,
  );
  if (answer.status !== 200) {
    let reason = `HTTP ${answer.status}`;
    try {
      const err = JSON.parse(answer.text) as { error?: unknown; error_description?: unknown };
      if (typeof err.error === 'string')
        reason = `${err.error}${typeof err.error_description === 'string' ? `: ${err.error_description.slice(0, 300)}` : ''} (HTTP ${answer.status})`;
    } catch {
      // not JSON: the status says enough
    }
    throw new LoginFailure(
      'exchange_refused',
      `the token endpoint ${x.tokenEndpoint} refused the authorization code: ${reason}`,
    );
  }
  let doc: Record<string, unknown>;
  try {
    doc = jsonObject(answer, 'the token response');
  } catch (err) {
    throw new LoginFailure('exchange_refused', (err as Error).message);
  }
  const {
    access_token: accessToken,
    token_type: tokenType,
    expires_in: expiresIn,
    scope,
    refresh_token: refreshToken,
  } = doc;
  if (typeof accessToken !== 'string' || accessToken === '')
    throw new LoginFailure('exchange_refused', `the token response from ${x.tokenEndpoint} has no access_token`);
  if (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer') {
    throw new LoginFailure(
      'exchange_refused',
      `the token endpoint issued a ${JSON.stringify(tokenType)} token; only Bearer tokens can be used here`,
    );
  }
  return {
    accessToken,
    tokenType: 'Bearer',
    ...(typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn >= 0 ? { expiresIn } : {}),
    ...(typeof scope === 'string' ? { scope } : {}),
    ...(typeof refreshToken === 'string' && refreshToken !== '' ? { refreshToken } : {}),
  };
}
