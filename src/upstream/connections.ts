// userConnections: each user's own account at an upstream's authorization server ("connect
// your GitHub account"). One ConnectionProvider per provider name, shared by the endpoints
// that name it, by the Check (the user's access token, refreshed before it expires) and by
// the /connect/<provider> pages (connections-pages.ts) that make a connection.
//
// Records are sealed (AES-256-GCM, connections-keys.ts) with the provider and user as
// additional data, and kept in a ConnectionStore (Redis or memory). A record that does not
// open is treated as no connection (a metric and a log line, never a crash). One refresh per
// user at a time across replicas: the store's lock, and the others wait for the new record.
// A refresh the authorization server refuses with invalid_grant removes the connection.
import { randomUUID } from 'node:crypto';
import type { UserConnectionsConfig } from '../config/upstream-schema.js';
import type { CheckContext } from '../decision/context.js';
import type { UpstreamGrant } from '../decision/phases.js';
import { answer, deny, fixedDeny, type Answer, type Deny } from '../contracts/outcome.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { canElicitUrl, urlElicitationMessage } from '../mcp-response/url-elicitation.js';
import { discoverAuthorizationServer, type AuthorizationServer } from '../oauth-client/authorization-server.js';
import { KeyRing, SealError } from './connections-keys.js';
import {
  MemoryConnectionStore,
  RedisConnectionStore,
  type ConnectionKey,
  type ConnectionStore,
} from './connections-store.js';
import { SecretFile } from './secret-file.js';
import { requestToken, UpstreamTokenError, type IssuedToken, type UpstreamTokenCode } from './token-endpoint.js';

/** What a sealed record holds. */
export interface ConnectionRecord {
  /** The access token. */
  at: string;
  /** Its expiry, epoch ms; absent: the server named none. */
  exp?: number;
  /** The refresh token. */
  rt?: string;
  /** When the user connected, epoch ms. */
  since: number;
}

/** The link in an elicitation: who it was issued to, for which provider, until when, and its single-use id. */
export interface ConnectLink {
  p: string;
  u: string;
  n: string;
  exp: number;
}

export interface ConnectionProviderOptions {
  logger: Logger;
  events: ServiceEvents;
  /** The service's public URL (publicBaseUrl): links and the redirect URI are made from it. */
  publicBaseUrl: string;
  watch: boolean;
  fetch?: typeof fetch;
  now?: () => number;
  /** A store to use instead of the configured one (tests). */
  store?: ConnectionStore;
}

const MAX_OPENED = 10_000;
/** While another replica refreshes, how often the record is read again. */
const WAIT_POLL_MS = 50;

export const connectionAad = (k: ConnectionKey) => `connection\n${k.provider}\n${k.user}`;
export const linkAad = (provider: string) => `connect-link\n${provider}`;

export class ConnectionProvider {
  readonly name: string;
  readonly store: ConnectionStore;
  private readonly keys: SecretFile<KeyRing>;
  private readonly secret: SecretFile<string>;
  private readonly now: () => number;
  private readonly fetchImpl: typeof fetch;
  /** Opened records by their sealed text (a Check does not decrypt the same record twice). */
  private readonly opened = new Map<string, { rec: ConnectionRecord; grant: UpstreamGrant }>();
  private readonly refreshing = new Map<string, Promise<UpstreamGrant | 'none' | Deny>>();
  private server:
    | Promise<Pick<AuthorizationServer, 'authorizationEndpoint' | 'tokenEndpoint' | 'issuer' | 'issInCallback'>>
    | undefined;
  private readonly denies: Record<UpstreamTokenCode | 'store', Deny>;
  readonly redirectUri: string;
  readonly connectUrl: string;

  private constructor(
    readonly cfg: UserConnectionsConfig,
    store: ConnectionStore,
    private readonly opts: ConnectionProviderOptions,
  ) {
    this.name = cfg.provider;
    this.store = store;
    this.now = opts.now ?? Date.now;
    this.fetchImpl = opts.fetch ?? fetch;
    const base = opts.publicBaseUrl.replace(/\/+$/, '');
    this.connectUrl = `${base}/connect/${cfg.provider}`;
    this.redirectUri = `${this.connectUrl}/callback`;
    this.keys = new SecretFile({
      path: cfg.encryptionKeyFile,
      what: `the encryption keys of provider ${cfg.provider}`,
      parse: (t) => KeyRing.parse(t),
      pollIntervalMs: 5000,
      logger: opts.logger,
      onChange: () => this.opened.clear(),
    });
    this.secret = new SecretFile({
      path: cfg.client.secretFile,
      what: `the client secret of provider ${cfg.provider}`,
      parse: (t) => t,
      pollIntervalMs: 5000,
      logger: opts.logger,
    });
    const p = cfg.provider;
    this.denies = {
      upstream_token_unavailable: fixedDeny(
        'upstream_token_unavailable',
        `Your ${p} access token could not be refreshed: ${p}'s token endpoint is unreachable or too slow. Retry later.`,
      ),
      upstream_token_refused: fixedDeny(
        'upstream_token_refused',
        `${p}'s token endpoint refused to refresh your access token.`,
      ),
      upstream_token_invalid: fixedDeny(
        'upstream_token_invalid',
        `${p}'s token endpoint answered something that is not a usable token.`,
      ),
      upstream_secret_unavailable: fixedDeny(
        'upstream_secret_unavailable',
        `Connections to ${p} are not configured yet (the client secret or encryption key file is missing or empty).`,
      ),
      store: fixedDeny(
        'upstream_token_unavailable',
        `Your ${p} connection could not be read: the connection store is unreachable. Retry later.`,
      ),
    };
  }

  static async create(cfg: UserConnectionsConfig, opts: ConnectionProviderOptions): Promise<ConnectionProvider> {
    const redis = cfg.store.redis;
    const store =
      opts.store ?? (redis ? await RedisConnectionStore.connect(redis) : new MemoryConnectionStore(opts.now));
    const p = new ConnectionProvider(cfg, store, opts);
    await Promise.all([p.keys.load(opts.watch), p.secret.load(opts.watch)]);
    return p;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.keys.close(), this.secret.close(), this.store.close()]);
  }

  get keyRing(): KeyRing | undefined {
    return this.keys.current;
  }

  /** The authorization server's endpoints: configured, or discovered once (a failed discovery is tried again next time). */
  authorizationServer(): Promise<
    Pick<AuthorizationServer, 'authorizationEndpoint' | 'tokenEndpoint' | 'issuer' | 'issInCallback'>
  > {
    const c = this.cfg;
    if (c.authorizationEndpoint !== undefined && c.tokenEndpoint !== undefined)
      return Promise.resolve({
        authorizationEndpoint: c.authorizationEndpoint,
        tokenEndpoint: c.tokenEndpoint,
        issuer: c.issuer ?? '',
        issInCallback: false,
      });
    this.server ??= discoverAuthorizationServer(c.issuer!, {
      fetch: this.fetchImpl,
      signal: AbortSignal.timeout(c.timeoutMs * 2),
      requestTimeoutMs: c.timeoutMs,
      allowHttp: false,
    }).catch((err: unknown) => {
      this.server = undefined;
      throw err;
    });
    return this.server;
  }

  /** A token request with the service's client authentication (client_secret_basic). */
  async tokenRequest(form: URLSearchParams): Promise<IssuedToken> {
    const secret = this.secret.current;
    if (secret === undefined)
      throw new UpstreamTokenError('upstream_secret_unavailable', 'the client secret file is not loaded');
    const as = await this.authorizationServer().catch((err: unknown) => {
      throw new UpstreamTokenError(
        'upstream_token_unavailable',
        `the authorization server's metadata: ${err instanceof Error ? err.message : String(err)}`,
      );
    });
    if (this.cfg.resource !== undefined) form.set('resource', this.cfg.resource);
    const basic = Buffer.from(
      `${encodeURIComponent(this.cfg.client.id)}:${encodeURIComponent(secret)}`,
      'utf8',
    ).toString('base64');
    return requestToken(
      { url: as.tokenEndpoint, form, headers: { authorization: `Basic ${basic}` }, timeoutMs: this.cfg.timeoutMs },
      this.fetchImpl,
      this.now,
    );
  }

  /** Seals and stores a new connection (the /connect callback). */
  async connect(user: string, issued: IssuedToken): Promise<void> {
    const ring = this.requireKeys();
    const rec: ConnectionRecord = {
      at: issued.accessToken,
      ...(issued.expiresAtMs !== undefined ? { exp: issued.expiresAtMs } : {}),
      ...(issued.refreshToken !== undefined ? { rt: issued.refreshToken } : {}),
      since: this.now(),
    };
    const k = { provider: this.name, user };
    await this.store.set(k, ring.seal(connectionAad(k), JSON.stringify(rec)));
    this.opts.events.upstreamConnection?.(this.name, 'connected');
    this.opts.logger.info({ provider: this.name, principal: user }, 'userConnections: a user connected');
  }

  requireKeys(): KeyRing {
    const ring = this.keys.current;
    if (ring === undefined)
      throw new UpstreamTokenError('upstream_secret_unavailable', 'the encryption key file is not loaded');
    return ring;
  }

  /** The user's upstream token: a grant, 'none' (no usable connection: send them to connect), or a deny. */
  async tokenFor(user: string): Promise<UpstreamGrant | 'none' | Deny> {
    const ring = this.keys.current;
    if (ring === undefined) return this.denies.upstream_secret_unavailable;
    const k = { provider: this.name, user };
    let sealed: string | undefined;
    try {
      sealed = await this.store.get(k);
    } catch (err) {
      this.storeFailed(err);
      return this.denies.store;
    }
    if (sealed === undefined) return 'none';
    const open = this.open(ring, k, sealed);
    if (open === undefined) return 'none';
    if (this.fresh(open.rec)) return open.grant;
    if (open.rec.rt === undefined) return 'none';
    const id = `${k.provider}\n${k.user}`;
    let flight = this.refreshing.get(id);
    if (flight !== undefined) {
      this.opts.events.upstreamConnectionRefresh?.(this.name, 'joined');
      return flight;
    }
    flight = this.refresh(ring, k, sealed).finally(() => this.refreshing.delete(id));
    this.refreshing.set(id, flight);
    return flight;
  }

  private fresh(rec: ConnectionRecord): boolean {
    return rec.exp === undefined || rec.exp - this.cfg.expirySkewSeconds * 1000 > this.now();
  }

  private open(
    ring: KeyRing,
    k: ConnectionKey,
    sealed: string,
  ): { rec: ConnectionRecord; grant: UpstreamGrant } | undefined {
    const known = this.opened.get(sealed);
    if (known !== undefined) return known;
    let rec: ConnectionRecord;
    try {
      rec = JSON.parse(ring.open(connectionAad(k), sealed)) as ConnectionRecord;
      if (typeof rec.at !== 'string' || !/^[\x21-\x7e]{1,16384}$/.test(rec.at)) throw new SealError('no access token');
    } catch (err) {
      this.opts.events.upstreamConnection?.(this.name, 'unreadable');
      this.opts.logger.warn(
        { provider: this.name, principal: k.user, err: err instanceof Error ? err.message : String(err) },
        'userConnections: a stored connection does not open (altered, or sealed with a key no longer in the key file); treated as no connection',
      );
      return undefined;
    }
    const grant = Object.freeze({
      kind: 'grant',
      headers: Object.freeze([{ name: 'authorization', value: `Bearer ${rec.at}`, append: false }]),
    }) as UpstreamGrant;
    if (this.opened.size >= MAX_OPENED) this.opened.delete(this.opened.keys().next().value!);
    const entry = { rec, grant };
    this.opened.set(sealed, entry);
    return entry;
  }

  /** One refresh for this user across replicas: whoever holds the lock refreshes, the others read its result. */
  private async refresh(ring: KeyRing, k: ConnectionKey, sealed: string): Promise<UpstreamGrant | 'none' | Deny> {
    const giveUpAt = Date.now() + this.cfg.timeoutMs * 3;
    for (;;) {
      let release: (() => Promise<void>) | undefined;
      let current: string | undefined;
      try {
        release = await this.store.tryLock(k, this.cfg.timeoutMs * 2 + 1000);
        if (release === undefined) {
          // Another replica is refreshing: wait for its record.
          await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
          current = await this.store.get(k);
        } else {
          current = await this.store.get(k);
        }
      } catch (err) {
        await release?.().catch(() => {});
        this.storeFailed(err);
        return this.denies.store;
      }
      if (current !== sealed) {
        await release?.().catch(() => {});
        // Refreshed (or removed) by someone else meanwhile.
        if (current === undefined) return 'none';
        const open = this.open(ring, k, current);
        if (open === undefined) return 'none';
        if (this.fresh(open.rec)) {
          this.opts.events.upstreamConnectionRefresh?.(this.name, 'joined');
          return open.grant;
        }
        sealed = current;
        continue;
      }
      if (release === undefined) {
        if (Date.now() > giveUpAt) return this.denies.upstream_token_unavailable;
        continue;
      }
      try {
        return await this.refreshHeld(ring, k, sealed);
      } finally {
        await release().catch(() => {});
      }
    }
  }

  private async refreshHeld(ring: KeyRing, k: ConnectionKey, sealed: string): Promise<UpstreamGrant | 'none' | Deny> {
    const rec = this.open(ring, k, sealed)!.rec;
    try {
      const issued = await this.tokenRequest(
        new URLSearchParams([
          ['grant_type', 'refresh_token'],
          ['refresh_token', rec.rt!],
          ...(this.cfg.scope.length > 0 ? [['scope', this.cfg.scope.join(' ')] as [string, string]] : []),
        ]),
      );
      const next: ConnectionRecord = {
        at: issued.accessToken,
        ...(issued.expiresAtMs !== undefined ? { exp: issued.expiresAtMs } : {}),
        rt: issued.refreshToken ?? rec.rt!,
        since: rec.since,
      };
      const nextSealed = ring.seal(connectionAad(k), JSON.stringify(next));
      await this.store.replace(k, sealed, nextSealed);
      this.opts.events.upstreamConnectionRefresh?.(this.name, 'ok');
      return this.open(ring, k, nextSealed)?.grant ?? 'none';
    } catch (err) {
      if (err instanceof UpstreamTokenError) {
        if (err.oauthError === 'invalid_grant') {
          await this.store.replace(k, sealed, undefined).catch(() => false);
          this.opts.events.upstreamConnectionRefresh?.(this.name, 'invalid_grant');
          this.opts.events.upstreamConnection?.(this.name, 'removed_after_refresh');
          this.opts.logger.warn(
            { provider: this.name, principal: k.user },
            "userConnections: the authorization server refused the user's refresh token (invalid_grant); the connection is removed and the user is asked to connect again",
          );
          return 'none';
        }
        this.opts.events.upstreamConnectionRefresh?.(this.name, err.code);
        this.opts.logger.warn(
          { provider: this.name, principal: k.user, code: err.code, err: err.message },
          "userConnections: the user's access token could not be refreshed; the request is denied",
        );
        return this.denies[err.code];
      }
      this.storeFailed(err);
      return this.denies.store;
    }
  }

  private storeFailed(err: unknown): void {
    this.opts.events.upstreamConnection?.(this.name, 'store_unavailable');
    this.opts.logger.warn(
      { provider: this.name, err: err instanceof Error ? err.message : String(err) },
      'userConnections: the connection store did not answer; the request is denied',
    );
  }

  /** A single-use connect link for this user, valid for connectLinkSeconds. */
  connectLink(user: string): { url: string; id: string } | undefined {
    const ring = this.keys.current;
    if (ring === undefined) return undefined;
    const id = randomUUID();
    const link: ConnectLink = { p: this.name, u: user, n: id, exp: this.now() + this.cfg.connectLinkSeconds * 1000 };
    return { url: `${this.connectUrl}?link=${ring.seal(linkAad(this.name), JSON.stringify(link))}`, id };
  }
}

/** The credential plan of an endpoint in userConnections mode. */
export class UserConnectionsPlan {
  private readonly anonymous: Deny;

  constructor(
    private readonly endpoint: string,
    private readonly provider: ConnectionProvider,
    private readonly events: ServiceEvents,
  ) {
    this.anonymous = fixedDeny(
      'upstream_not_connected',
      `Endpoint ${endpoint} sends each user's own ${provider.name} token upstream: an anonymous caller has none. Authenticate.`,
    );
  }

  load(): Promise<unknown> {
    return Promise.resolve();
  }

  close(): Promise<unknown> {
    return Promise.resolve();
  }

  credentialFor(ctx: CheckContext): Promise<UpstreamGrant | Deny | Answer> | Deny {
    const p = ctx.principal;
    if (!p.authenticated) return this.anonymous;
    return this.provider.tokenFor(p.id).then((r) => (r === 'none' ? this.notConnected(ctx) : r));
  }

  /** The elicitation (or, where a request cannot carry one, a deny) that sends the user to connect. */
  private notConnected(ctx: CheckContext): Answer | Deny {
    const provider = this.provider.name;
    this.events.upstreamConnection?.(provider, 'missing');
    const link = this.provider.connectLink(ctx.principal.id);
    if (link === undefined)
      return deny(
        'upstream_secret_unavailable',
        `Connections to ${provider} are not configured yet (the encryption key file is missing or empty).`,
      );
    const message = `Connect your ${provider} account to use ${this.endpoint}: open the link, sign in at ${provider} and allow access, then retry.`;
    const plain = deny('upstream_not_connected', `${message} ${link.url}`, {
      extra: { connect_url: link.url },
    });
    const mcp = ctx.mcp;
    const body = ctx.parsedBody as Record<string, unknown> | undefined;
    const call = mcp.calls[0];
    const id = body !== undefined && !mcp.batch && typeof body === 'object' ? body.id : undefined;
    // An initialize request carries no MCP-Protocol-Version header yet: the revision it asks
    // for is in its params.
    const asked = (body?.params as { protocolVersion?: unknown } | undefined)?.protocolVersion;
    const protocolVersion =
      mcp.protocolVersion ?? (call?.method === 'initialize' && typeof asked === 'string' ? asked : undefined);
    if (
      call === undefined ||
      call.kind !== 'request' ||
      (typeof id !== 'string' && typeof id !== 'number') ||
      !canElicitUrl(protocolVersion, call.method, body?.params)
    )
      return plain;
    const a = answer(
      'upstream_connection_required',
      urlElicitationMessage({
        message,
        url: link.url,
        elicitationId: link.id,
        protocolVersion,
        requestId: id,
      }).body,
      'application/json',
    );
    a.orDeny = plain;
    return a;
  }
}
