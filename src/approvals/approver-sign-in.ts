// Approvers sign in at the configured OpenID Connect provider: authorization code with PKCE
// (S256), `state` and `nonce`, the ID token verified against the provider's keys (issuer,
// audience, nonce, expiry). What comes out is who the approver is and which groups they hold.
import { readFile } from 'node:fs/promises';
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { ApprovalsConfig } from '../config/approvals-schema.js';
import { authorizationUrl, newPkce, newState } from '../oauth-client/authorization-code.js';

export interface Approver {
  /** The ID token's `sub`. */
  subject: string;
  /** The name claim (email by default), else sub: how receipts and logs name the approver. */
  name: string;
  groups: string[];
}

/** What the browser must bring back to finish a sign-in (kept in a signed cookie). */
export interface PendingSignIn {
  state: string;
  nonce: string;
  verifier: string;
}

interface ProviderMetadata {
  authorization_endpoint: string;
  token_endpoint: string;
  userinfo_endpoint?: string;
  jwks: JWTVerifyGetKey;
}

export class SignInFailed extends Error {}

const REQUEST_TIMEOUT_MS = 10_000;

export class ApproverSignIn {
  private metadata: Promise<ProviderMetadata> | undefined;

  constructor(
    private readonly cfg: ApprovalsConfig,
    private readonly redirectUri: string,
  ) {}

  /** The provider's authorization URL for a new sign-in, and what the callback must match. */
  async start(): Promise<{ url: string; pending: PendingSignIn }> {
    const md = await this.provider();
    const pkce = newPkce();
    const pending = { state: newState(), nonce: newState(), verifier: pkce.verifier };
    const url = new URL(
      authorizationUrl({
        authorizationEndpoint: md.authorization_endpoint,
        clientId: this.cfg.oidc.clientId,
        redirectUri: this.redirectUri,
        pkce,
        state: pending.state,
        scopes: this.cfg.oidc.scopes,
      }),
    );
    url.searchParams.set('nonce', pending.nonce);
    return { url: url.href, pending };
  }

  /** Exchanges the callback's code and verifies the ID token; throws SignInFailed. */
  async finish(query: URLSearchParams, pending: PendingSignIn): Promise<Approver> {
    if (query.get('state') !== pending.state) throw new SignInFailed('the sign-in state does not match');
    const error = query.get('error');
    if (error !== null) throw new SignInFailed(`the provider refused the sign-in: ${error.slice(0, 100)}`);
    const code = query.get('code');
    if (code === null) throw new SignInFailed('the provider sent no code');
    const md = await this.provider();
    const body = new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: this.redirectUri,
      code_verifier: pending.verifier,
    });
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    const secretFile = this.cfg.oidc.clientSecretFile;
    if (secretFile !== undefined) {
      const secret = (await readFile(secretFile, 'utf8')).trim();
      const enc = (s: string) => encodeURIComponent(s);
      headers.authorization = `Basic ${Buffer.from(`${enc(this.cfg.oidc.clientId)}:${enc(secret)}`).toString('base64')}`;
    } else {
      body.set('client_id', this.cfg.oidc.clientId);
    }
    const res = await fetch(md.token_endpoint, {
      method: 'POST',
      headers,
      body: body.toString(),
      redirect: 'error',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    }).catch((err: Error) => {
      throw new SignInFailed(`the token endpoint did not answer: ${err.message}`);
    });
    const text = await res.text();
    if (res.status !== 200) throw new SignInFailed(`the token endpoint refused the code (HTTP ${res.status})`);
    let idToken: unknown;
    let accessToken: unknown;
    try {
      ({ id_token: idToken, access_token: accessToken } = JSON.parse(text) as {
        id_token?: unknown;
        access_token?: unknown;
      });
    } catch {
      throw new SignInFailed('the token endpoint answered something other than JSON');
    }
    if (typeof idToken !== 'string') throw new SignInFailed('the token endpoint sent no ID token');
    let claims: Record<string, unknown>;
    try {
      ({ payload: claims } = await jwtVerify(idToken, md.jwks, {
        issuer: this.cfg.oidc.issuer,
        audience: this.cfg.oidc.clientId,
        maxTokenAge: '10m',
      }));
    } catch (err) {
      throw new SignInFailed(`the ID token did not verify: ${(err as Error).message}`);
    }
    if (claims.nonce !== pending.nonce) throw new SignInFailed('the ID token was not issued for this sign-in (nonce)');
    const subject = typeof claims.sub === 'string' ? claims.sub : '';
    if (subject === '') throw new SignInFailed('the ID token names no subject');
    // Providers that keep the ID token small (oidc-provider, some Okta set-ups) give the
    // groups and the name at the userinfo endpoint, for the same subject.
    const { groupsClaim, nameClaim: nameKey } = this.cfg.oidc;
    if ((claims[groupsClaim] === undefined || claims[nameKey] === undefined) && typeof accessToken === 'string')
      claims = { ...(await this.userinfo(md, accessToken, subject)), ...claims };
    const nameClaim = claims[this.cfg.oidc.nameClaim];
    const rawGroups = claims[this.cfg.oidc.groupsClaim];
    const groups = Array.isArray(rawGroups)
      ? rawGroups.filter((g): g is string => typeof g === 'string')
      : typeof rawGroups === 'string'
        ? rawGroups.split(/[\s,]+/).filter((g) => g !== '')
        : [];
    return { subject, name: typeof nameClaim === 'string' && nameClaim !== '' ? nameClaim : subject, groups };
  }

  private async userinfo(md: ProviderMetadata, accessToken: string, subject: string): Promise<Record<string, unknown>> {
    if (md.userinfo_endpoint === undefined) return {};
    const res = await fetch(md.userinfo_endpoint, {
      headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' },
      redirect: 'error',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    }).catch(() => undefined);
    if (res?.status !== 200) return {};
    const info = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    // Claims about someone else are not this approver's (OpenID Connect Core §5.3.2).
    return info.sub === subject ? info : {};
  }

  private provider(): Promise<ProviderMetadata> {
    this.metadata ??= this.discover().catch((err: Error) => {
      // A provider that was down is asked again on the next sign-in.
      this.metadata = undefined;
      throw err;
    });
    return this.metadata;
  }

  private async discover(): Promise<ProviderMetadata> {
    const issuer = this.cfg.oidc.issuer.replace(/\/+$/, '');
    const res = await fetch(`${issuer}/.well-known/openid-configuration`, {
      redirect: 'error',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    }).catch((err: Error) => {
      throw new SignInFailed(`the OpenID provider did not answer: ${err.message}`);
    });
    if (res.status !== 200) throw new SignInFailed(`the OpenID provider's metadata: HTTP ${res.status}`);
    const md = (await res.json()) as Record<string, unknown>;
    if (md.issuer !== this.cfg.oidc.issuer && md.issuer !== issuer)
      throw new SignInFailed(`the OpenID provider names another issuer (${String(md.issuer).slice(0, 200)})`);
    for (const k of ['authorization_endpoint', 'token_endpoint', 'jwks_uri'])
      if (typeof md[k] !== 'string') throw new SignInFailed(`the OpenID provider's metadata has no ${k}`);
    return {
      authorization_endpoint: md.authorization_endpoint as string,
      token_endpoint: md.token_endpoint as string,
      ...(typeof md.userinfo_endpoint === 'string' ? { userinfo_endpoint: md.userinfo_endpoint } : {}),
      jwks: createRemoteJWKSet(new URL(md.jwks_uri as string)),
    };
  }
}
