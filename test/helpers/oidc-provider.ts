// A real OpenID Provider on loopback for tests: panva's oidc-provider (a certified
// implementation), configured the way MCP deployments use one — authorization code with PKCE
// required, RFC 8707 resource indicators issuing JWT access tokens whose audience is the
// resource, dynamic client registration (RFC 7591), Client ID Metadata Documents, refresh
// tokens, RFC 9207 `iss` on authorization responses — with its own login and consent pages
// (plain HTML forms a browser fills) and users that carry group claims.
//
// Tests add clients, users and resources while it runs. Everything is in memory and dies with
// `stop()`.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { errors } from 'oidc-provider';
import type { Page } from 'playwright-core';

// oidc-provider ships no type declarations (tests are not type-checked); these name the shapes used here.
/* eslint-disable @typescript-eslint/no-explicit-any */
type ClientMetadata = Record<string, unknown> & { client_id: string };
type AdapterPayload = Record<string, any>;
type Adapter = Record<string, (...args: any[]) => Promise<any>>;
type Configuration = Record<string, any>;

export interface IdpUser {
  /** The login name typed in the form; also the token's `sub`. */
  username: string;
  password: string;
  /** Put in access tokens (JWT) and ID tokens as `groups`. */
  groups?: string[];
  /** Any other claims (email, name, roles…), in ID tokens, userinfo and access tokens. */
  claims?: Record<string, unknown>;
}

export interface IdpResource {
  /** The scopes a token for this resource may carry. */
  scopes: string[];
  /** Access token lifetime in seconds (default 3600). */
  accessTokenTtl?: number;
}

export interface OidcProviderOptions {
  users?: IdpUser[];
  /** Clients known from the start (static clients). More can be added with `addClient`. */
  clients?: ClientMetadata[];
  /** RFC 8707 resources (keyed by their URI) the provider issues JWT access tokens for. */
  resources?: Record<string, IdpResource>;
  /** RFC 7591 registration endpoint (default on). */
  registration?: boolean;
  /** Client ID Metadata Documents (default on). */
  clientIdMetadataDocument?: boolean;
  /** CA certificate(s) (PEM) trusted when the provider fetches a client's metadata document over HTTPS. */
  trustedCa?: string;
  /** Refresh tokens for clients allowed the refresh_token grant (default on). */
  refreshTokens?: boolean;
}

export interface OidcTestProvider {
  /** http://127.0.0.1:<port> */
  issuer: string;
  jwksUri: string;
  provider: any;
  addUser(user: IdpUser): void;
  /** Registers a client (a confidential one when it has a client_secret). */
  addClient(metadata: ClientMetadata): Promise<void>;
  addResource(uri: string, resource: IdpResource): void;
  /** Requests received, by path (for asserting what a client did). */
  readonly requests: readonly { method: string; path: string }[];
  stop(): Promise<void>;
}

/** The one store of this provider instance: oidc-provider's adapter interface over a Map. */
function mapAdapter(): (name: string) => Adapter {
  const store = new Map<string, { payload: AdapterPayload; expiresAt?: number }>();
  const live = (key: string) => {
    const hit = store.get(key);
    if (!hit) return undefined;
    if (hit.expiresAt !== undefined && hit.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return hit.payload;
  };
  return (model: string) => ({
    async upsert(id: string, payload: AdapterPayload, expiresIn: number) {
      store.set(`${model}:${id}`, { payload, ...(expiresIn ? { expiresAt: Date.now() + expiresIn * 1000 } : {}) });
      if (model === 'Session' && payload.uid)
        store.set(`sessionUid:${payload.uid}`, { payload: { id } as AdapterPayload });
      if (payload.userCode) store.set(`userCode:${payload.userCode}`, { payload: { id } as AdapterPayload });
      if (payload.grantId) {
        const key = `grant:${payload.grantId}`;
        const members = (live(key) as unknown as { keys?: string[] } | undefined)?.keys ?? [];
        store.set(key, { payload: { keys: [...members, `${model}:${id}`] } as AdapterPayload });
      }
    },
    async find(id: string) {
      return live(`${model}:${id}`);
    },
    async findByUid(uid: string) {
      const ref = live(`sessionUid:${uid}`) as { id?: string } | undefined;
      return ref?.id ? live(`${model}:${ref.id}`) : undefined;
    },
    async findByUserCode(userCode: string) {
      const ref = live(`userCode:${userCode}`) as { id?: string } | undefined;
      return ref?.id ? live(`${model}:${ref.id}`) : undefined;
    },
    async consume(id: string) {
      const hit = live(`${model}:${id}`);
      if (hit) hit.consumed = Math.floor(Date.now() / 1000);
    },
    async destroy(id: string) {
      store.delete(`${model}:${id}`);
    },
    async revokeByGrantId(grantId: string) {
      const key = `grant:${grantId}`;
      for (const member of (live(key) as unknown as { keys?: string[] } | undefined)?.keys ?? []) store.delete(member);
      store.delete(key);
    },
  });
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** Fetches a client's metadata document over HTTPS, trusting the test CA (and only HTTPS). */
function httpsFetch(ca: string | undefined) {
  return (url: string | URL, options?: RequestInit): Promise<Response> =>
    new Promise((resolve, reject) => {
      const target = new URL(url.toString());
      if (target.protocol !== 'https:') {
        reject(new Error(`refusing to fetch ${target.protocol} URL`));
        return;
      }
      const headers: Record<string, string> = {};
      new Headers(options?.headers as HeadersInit | undefined).forEach((v, k) => (headers[k] = v));
      const req = httpsRequest(
        target,
        { method: options?.method ?? 'GET', headers, ...(ca ? { ca } : {}), signal: options?.signal ?? undefined },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const h = new Headers();
            for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
            resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 502, headers: h }));
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
}

export async function startOidcProvider(options: OidcProviderOptions = {}): Promise<OidcTestProvider> {
  const users = new Map<string, IdpUser>();
  for (const u of options.users ?? []) users.set(u.username, u);
  const resources = new Map<string, IdpResource>(Object.entries(options.resources ?? {}));
  const requests: { method: string; path: string }[] = [];

  // The port is needed for the issuer before the provider exists: listen first, route after.
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: (req.url ?? '').split('?')[0]! });
    if (handler) handler(req, res);
    else res.writeHead(503).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = {
    ...(await exportJWK(privateKey)),
    kid: `k-${randomBytes(4).toString('hex')}`,
    alg: 'RS256',
    use: 'sig',
  };
  const adapter = mapAdapter();

  const configuration: Configuration = {
    adapter,
    clients: options.clients ?? [],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    // Lifetimes set (rather than the provider's defaults, which it warns about on every start).
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 86_400,
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    claims: { openid: ['sub'], profile: ['name'], email: ['email'], groups: ['groups'] },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx: unknown, sub: string) {
      const user = users.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        claims: async () => ({ sub, ...(user.groups ? { groups: user.groups } : {}), ...user.claims }),
      };
    },
    // The groups and extra claims of the user go into JWT access tokens, as IdPs do for RBAC.
    async extraTokenClaims(_ctx: unknown, token: { accountId?: string }) {
      const user = token.accountId ? users.get(token.accountId) : undefined;
      if (!user) return undefined;
      return { ...(user.groups ? { groups: user.groups } : {}), ...user.claims };
    },
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) =>
      options.refreshTokens !== false && client.grantTypeAllowed('refresh_token'),
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: options.registration !== false },
      ...(options.clientIdMetadataDocument !== false
        ? { clientIdMetadataDocument: { enabled: true, ack: 'draft-02' } }
        : {}),
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx: unknown, _client: unknown, oneOf?: string) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, indicator: string) => {
          const r = resources.get(indicator);
          if (!r) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          return {
            scope: r.scopes.join(' '),
            audience: indicator,
            accessTokenTTL: r.accessTokenTtl ?? 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
      revocation: { enabled: true },
    },
    ...(options.trustedCa !== undefined || options.clientIdMetadataDocument !== false
      ? { fetch: httpsFetch(options.trustedCa) }
      : {}),
    renderError: async (ctx: { type: string; body: string }, out: Record<string, string>) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<pre id="error">${escapeHtml(JSON.stringify(out))}</pre>`);
    },
  };
  const provider: any = new Provider(issuer, configuration);
  // Reached over plain HTTP on loopback only; nothing sits in front of it.
  provider.proxy = false;
  const oidcCallback = provider.callback();

  const interaction = async (req: IncomingMessage, res: ServerResponse, uid: string, action: string | undefined) => {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction mismatch');
    const { prompt, params } = details;
    const send = (html: string) =>
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
    if (action === undefined) {
      if (prompt.name === 'login') {
        send(
          page(
            'Sign in',
            `<form method="post" action="/interaction/${uid}/login"><label>Username <input name="login" autocomplete="off"></label><label>Password <input name="password" type="password"></label><button type="submit" name="sign-in">Sign in</button></form><form method="post" action="/interaction/${uid}/abort"><button type="submit" name="cancel">Cancel</button></form>`,
          ),
        );
        return;
      }
      const scopes = [
        ...new Set([
          ...((prompt.details.missingOIDCScope as string[] | undefined) ?? []),
          ...Object.values((prompt.details.missingResourceScopes as Record<string, string[]> | undefined) ?? {}).flat(),
        ]),
      ];
      send(
        page(
          'Authorize',
          `<p id="client">${escapeHtml(String(params.client_id))} asks for: <span id="scopes">${escapeHtml(scopes.join(' '))}</span> on <span id="resource">${escapeHtml(String(params.resource ?? ''))}</span></p><form method="post" action="/interaction/${uid}/confirm"><button type="submit" name="allow">Allow</button></form><form method="post" action="/interaction/${uid}/abort"><button type="submit" name="deny">Deny</button></form>`,
        ),
      );
      return;
    }
    const form = await readForm(req);
    if (action === 'login') {
      const user = users.get(form.get('login') ?? '');
      if (!user || user.password !== form.get('password')) {
        send(
          page(
            'Sign in',
            `<p id="login-error">Wrong username or password.</p><form method="post" action="/interaction/${uid}/login"><label>Username <input name="login"></label><label>Password <input name="password" type="password"></label><button type="submit" name="sign-in">Sign in</button></form>`,
          ),
        );
        return;
      }
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: user.username } },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    if (action === 'confirm') {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session!.accountId, clientId: String(params.client_id) });
      if (!grant) throw new Error('grant not found');
      const d = prompt.details as {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      for (const [indicator, scope] of Object.entries(d.missingResourceScopes ?? {}))
        grant.addResourceScope(indicator, scope.join(' '));
      await provider.interactionFinished(
        req,
        res,
        { consent: { grantId: await grant.save() } },
        { mergeWithLastSubmission: true },
      );
      return;
    }
    if (action === 'abort') {
      await provider.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'The user denied the request' },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    res.writeHead(404).end();
  };

  handler = (req, res) => {
    const m = /^\/interaction\/([\w-]+)(?:\/(login|confirm|abort))?$/.exec((req.url ?? '').split('?')[0]!);
    if (m) {
      interaction(req, res, m[1]!, m[2]).catch((err: unknown) => {
        if (!res.headersSent)
          res
            .writeHead(400, { 'content-type': 'text/html' })
            .end(page('Error', `<pre id="error">${escapeHtml((err as Error).message)}</pre>`));
      });
      return;
    }
    oidcCallback(req, res);
  };

  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    provider,
    requests,
    addUser: (u) => void users.set(u.username, u),
    addResource: (uri, r) => void resources.set(uri, r),
    async addClient(metadata) {
      // Through the provider's own model, so the metadata is validated as registration would.
      // (validate throws for bad metadata and returns nothing; the adapter keeps the metadata as registered.)
      await provider.Client.validate(metadata);
      await adapter('Client').upsert(metadata.client_id, metadata, 0);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Signs in at this provider's pages in a real browser page that has been sent to its
 * authorization endpoint, and answers the consent page. Resolves once the consent form is
 * submitted (the browser is then redirected to the client).
 */
export async function signInAtIdp(
  page: Page,
  user: { username: string; password: string },
  consent: 'allow' | 'deny' = 'allow',
): Promise<void> {
  await page.locator('input[name=login]').fill(user.username);
  await page.locator('input[name=password]').fill(user.password);
  await page.locator('button[name=sign-in]').click();
  await page.locator(`button[name=${consent}]`).click();
}
