// `mcp-authz login`: an OAuth 2.1 login as MCP clients do it, to get a real token for trying a
// policy. Discovery from an MCP endpoint (RFC 9728) or an issuer (RFC 8414 / OpenID), a client
// identity (given, a Client ID Metadata Document, or dynamic registration), the authorization
// code with PKCE S256, `state` and the RFC 8707 `resource` through the system browser and a
// one-shot loopback listener, then the code exchange. The token goes to standard output, and to
// a file only with --save.
import { readFileSync } from 'node:fs';
import { authorizationUrl, newPkce, newState, readCallback } from '../oauth-client/authorization-code.js';
import { discoverAuthorizationServer, type AuthorizationServer } from '../oauth-client/authorization-server.js';
import {
  clientFromMetadataDocument,
  clientMetadataUrlProblem,
  registerClient,
} from '../oauth-client/client-registration.js';
import type { HttpContext } from '../oauth-client/http.js';
import { LoginFailure } from '../oauth-client/login-failure.js';
import { discoverProtectedResource } from '../oauth-client/protected-resource.js';
import { exchangeCode, secretAuthMethod, type ClientIdentity, type TokenSet } from '../oauth-client/token-endpoint.js';
import { LOGIN_EXIT_CODES } from './login-exit-codes.js';
import { listenForCallback } from './loopback-callback.js';
import { checkSaveTarget, saveTokenFile } from './token-file.js';

export interface LoginFlags {
  resource?: string;
  issuer?: string;
  scopes: string[];
  clientId?: string;
  clientSecretFile?: string;
  clientMetadataUrl?: string;
  port: number;
  browser: boolean;
  json: boolean;
  save?: string;
  timeoutSeconds: number;
  allowHttp: boolean;
}

export interface LoginIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  fetch: typeof fetch;
  openBrowser: (url: string) => Promise<boolean>;
  version: string;
  now: () => number;
}

/** A mistake in the flags, before anything is contacted (exit code 2). */
export class LoginUsageError extends Error {}

const REQUEST_TIMEOUT_MS = 15_000;

/** Parses and checks the flags; throws LoginUsageError. */
export function loginFlags(v: Record<string, unknown>): LoginFlags {
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const resource = str('resource');
  const issuer = str('issuer');
  if (resource === undefined && issuer === undefined)
    throw new LoginUsageError('login needs --resource (an MCP endpoint URL) or --issuer (an authorization server)');
  for (const [flag, value] of [
    ['--resource', resource],
    ['--issuer', issuer],
  ] as const) {
    if (value === undefined) continue;
    let u: URL;
    try {
      u = new URL(value);
    } catch {
      throw new LoginUsageError(`${flag} expects an absolute URL, got ${JSON.stringify(value)}`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      throw new LoginUsageError(`${flag} expects an http(s) URL, got ${JSON.stringify(value)}`);
    if (value.includes('#')) throw new LoginUsageError(`${flag} must not have a fragment (RFC 8707 §2)`);
  }
  const clientId = str('client-id');
  const clientMetadataUrl = str('client-metadata-url');
  const clientSecretFile = str('client-secret-file');
  if (clientId !== undefined && clientMetadataUrl !== undefined)
    throw new LoginUsageError('--client-id and --client-metadata-url are two client identities: give one');
  if (clientId === '') throw new LoginUsageError('--client-id is empty');
  if (clientSecretFile !== undefined && clientId === undefined)
    throw new LoginUsageError('--client-secret-file goes with --client-id');
  if (clientMetadataUrl !== undefined) {
    const problem = clientMetadataUrlProblem(clientMetadataUrl);
    if (problem) throw new LoginUsageError(`--client-metadata-url ${problem}`);
  }
  const port = str('port') === undefined ? 0 : Number(str('port'));
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new LoginUsageError(
      `--port expects a port number from 1 to 65535 (or 0 to let the system pick), got ${JSON.stringify(str('port'))}`,
    );
  const timeoutSeconds = str('timeout') === undefined ? 300 : Number(str('timeout'));
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0 || timeoutSeconds > 86_400)
    throw new LoginUsageError(
      `--timeout expects seconds, more than 0 and at most 86400, got ${JSON.stringify(str('timeout'))}`,
    );
  const scopes = ((v.scope as string[] | undefined) ?? []).flatMap((s) => s.split(/\s+/)).filter(Boolean);
  const save = str('save');
  if (save === '') throw new LoginUsageError('--save expects a file name');
  return {
    ...(resource !== undefined ? { resource } : {}),
    ...(issuer !== undefined ? { issuer } : {}),
    scopes,
    ...(clientId !== undefined ? { clientId } : {}),
    ...(clientSecretFile !== undefined ? { clientSecretFile } : {}),
    ...(clientMetadataUrl !== undefined ? { clientMetadataUrl } : {}),
    port,
    browser: !v['no-browser'],
    json: Boolean(v.json),
    ...(save !== undefined ? { save } : {}),
    timeoutSeconds,
    allowHttp: Boolean(v['allow-http']),
  };
}

function readSecret(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new LoginUsageError(`--client-secret-file ${file}: ${(err as Error).message}`);
  }
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '' || /[\r\n]/.test(secret))
    throw new LoginUsageError(`--client-secret-file ${file} must hold the secret alone, on one line`);
  return secret;
}

/** Runs the login; returns the exit code. Failures are reported on stderr, one clear line. */
export async function runLogin(flags: LoginFlags, io: LoginIo): Promise<number> {
  try {
    await login(flags, io);
    return 0;
  } catch (err) {
    if (err instanceof LoginFailure) {
      io.stderr(`mcp-authz login: ${err.message}\n`);
      return LOGIN_EXIT_CODES[err.code];
    }
    throw err;
  }
}

async function login(flags: LoginFlags, io: LoginIo): Promise<void> {
  const secret = flags.clientSecretFile !== undefined ? readSecret(flags.clientSecretFile) : undefined;
  if (flags.save !== undefined) checkSaveTarget(flags.save);

  // Bound first: a taken port fails before anything is asked of anyone.
  const listener = await listenForCallback(flags.port);
  // The deadline starts once the listener is up, so every way out below clears it: a pending
  // timer would keep the process alive until --timeout after a failure.
  const deadline = new AbortController();
  const timer = setTimeout(
    () =>
      deadline.abort(
        new LoginFailure('timeout', `the login did not finish within --timeout ${flags.timeoutSeconds} s`),
      ),
    flags.timeoutSeconds * 1000,
  );
  const ctx: HttpContext = {
    fetch: io.fetch,
    signal: deadline.signal,
    requestTimeoutMs: Math.min(REQUEST_TIMEOUT_MS, flags.timeoutSeconds * 1000),
    allowHttp: flags.allowHttp,
  };
  try {
    let issuer = flags.issuer;
    let resource = flags.resource;
    let scopes = flags.scopes;
    if (issuer === undefined) {
      const pr = await discoverProtectedResource(flags.resource!, ctx, io.version);
      issuer = pr.authorizationServers[0]!;
      resource = pr.resource;
      if (scopes.length === 0) scopes = pr.challengeScopes ?? pr.scopesSupported ?? [];
      const others =
        pr.authorizationServers.length > 1
          ? ` (it lists ${pr.authorizationServers.length}; pass --issuer to choose another)`
          : '';
      io.stderr(`${flags.resource} is protected by ${issuer}${others}; metadata: ${pr.metadataUrl}\n`);
    }
    const as = await discoverAuthorizationServer(issuer, ctx);
    const client = await clientIdentity(flags, secret, as, listener.redirectUri, ctx);
    const pkce = newPkce();
    const state = newState();
    const url = authorizationUrl({
      authorizationEndpoint: as.authorizationEndpoint,
      clientId: client.clientId,
      redirectUri: listener.redirectUri,
      pkce,
      state,
      scopes,
      ...(resource !== undefined ? { resource } : {}),
    });

    if (flags.browser && (await io.openBrowser(url))) {
      io.stderr(`Opening the browser to log in at ${as.issuer}. If it does not open, visit:\n\n  ${url}\n\n`);
    } else {
      io.stderr(
        `${flags.browser ? 'Could not open a browser. ' : ''}Open this URL in a browser to log in at ${as.issuer}:\n\n  ${url}\n\n`,
      );
    }
    io.stderr(`Waiting for the redirect to ${listener.redirectUri} (up to ${flags.timeoutSeconds} s)…\n`);

    const callback = await listener.next(deadline.signal);
    let tokens: TokenSet;
    try {
      const code = readCallback(callback.query, { state, issuer: as.issuer, issRequired: as.issInCallback });
      tokens = await exchangeCode(
        {
          tokenEndpoint: as.tokenEndpoint,
          client,
          code,
          redirectUri: listener.redirectUri,
          codeVerifier: pkce.verifier,
          ...(resource !== undefined ? { resource } : {}),
        },
        ctx,
      );
    } catch (err) {
      // No scope asked for is what the MCP spec says when nothing names one, and some servers
      // (oidc-provider among them) refuse such a request as access_denied: say so.
      const failure =
        err instanceof LoginFailure && err.code === 'access_denied' && scopes.length === 0
          ? new LoginFailure(
              'access_denied',
              `${err.message}. No scope was asked for (none given, none discovered): some servers refuse that; pass --scope`,
            )
          : err;
      await callback.respond(false, (failure as Error).message);
      throw failure;
    }
    await callback.respond(true, `Logged in at ${as.issuer}. The token is in the terminal.`);
    output(flags, io, as, client, tokens, scopes, resource);
  } finally {
    clearTimeout(timer);
    await listener.close();
  }
}

async function clientIdentity(
  flags: LoginFlags,
  secret: string | undefined,
  as: AuthorizationServer,
  redirectUri: string,
  ctx: HttpContext,
): Promise<ClientIdentity> {
  if (flags.clientId !== undefined) {
    return {
      clientId: flags.clientId,
      ...(secret !== undefined
        ? { clientSecret: secret, authMethod: secretAuthMethod(as.tokenAuthMethods) }
        : { authMethod: 'none' as const }),
      source: 'pre-registered',
    };
  }
  if (flags.clientMetadataUrl !== undefined) return clientFromMetadataDocument(as, flags.clientMetadataUrl);
  return registerClient(as, redirectUri, ctx, 'mcp-authz login');
}

function output(
  flags: LoginFlags,
  io: LoginIo,
  as: AuthorizationServer,
  client: ClientIdentity,
  tokens: TokenSet,
  requested: string[],
  resource: string | undefined,
): void {
  const scopes = tokens.scope !== undefined ? tokens.scope.split(' ').filter(Boolean) : requested;
  const expiresAt = tokens.expiresIn !== undefined ? new Date(io.now() + tokens.expiresIn * 1000).toISOString() : null;
  const summary = {
    access_token: tokens.accessToken,
    token_type: tokens.tokenType,
    expires_in: tokens.expiresIn ?? null,
    expires_at: expiresAt,
    scopes,
    issuer: as.issuer,
    resource: resource ?? null,
    client_id: client.clientId,
  };
  if (flags.save !== undefined) {
    saveTokenFile(flags.save, {
      ...summary,
      ...(tokens.refreshToken !== undefined ? { refresh_token: tokens.refreshToken } : {}),
      token_endpoint: as.tokenEndpoint,
    });
  }
  if (flags.json)
    io.stdout(
      `${JSON.stringify({ ...summary, ...(flags.save !== undefined ? { saved_to: flags.save } : {}) }, null, 2)}\n`,
    );
  else io.stdout(`${tokens.accessToken}\n`);
  const how = {
    'pre-registered': 'client',
    'client-id-metadata-document': 'client metadata document',
    'dynamic-registration': 'dynamically registered client',
  }[client.source];
  io.stderr(
    `Logged in at ${as.issuer} (${how} ${client.clientId}): a ${tokens.tokenType} token${resource !== undefined ? ` for ${resource}` : ''}, scopes ${scopes.length ? scopes.join(' ') : '(none)'}, ${expiresAt ? `expires ${expiresAt}` : 'no expiry given'}${flags.save !== undefined ? `; saved to ${flags.save}${tokens.refreshToken !== undefined ? ' with its refresh token' : ''}` : ''}.\n`,
  );
}
