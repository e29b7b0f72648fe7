// The credential the MCP server behind an endpoint receives (endpoints[].upstream), one plan
// per endpoint built at load time:
//   tokenExchange      RFC 8693: the caller's verified token exchanged for one whose audience is the upstream
//   clientCredentials  the service's own token for the upstream, the caller's identity in a header
//   static             a secret header value from a mounted file
// Tokens are cached per (issuer, subject) of the caller — audience and scope are the
// endpoint's — until shortly before they expire, with one fetch in flight per key. A Check
// waits on I/O only on a miss. Any failure is a deny: the caller's own credential is
// removed before the request goes upstream, so it never stands in for the missing one.
import type { CheckContext } from '../decision/context.js';
import type { UpstreamCredentials, UpstreamGrant } from '../decision/phases.js';
import type {
  ClientCredentialsConfig,
  StaticCredentialConfig,
  TokenExchangeConfig,
  UpstreamCredentialConfig,
} from '../config/upstream-schema.js';
import { fixedDeny, type Answer, type Deny, type HeaderToSet } from '../contracts/outcome.js';
import { ConnectionProvider, UserConnectionsPlan } from './connections.js';
import type { ConnectionStore } from './connections-store.js';
import type { Principal } from '../contracts/principal.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { ClientAuth } from './client-auth.js';
import { SecretFile } from './secret-file.js';
import { TokenCache, type CachedToken } from './token-cache.js';
import { requestToken, UpstreamTokenError, type UpstreamTokenCode } from './token-endpoint.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
/** How long a token is kept when its answer names no expiry at all. */
const NO_EXPIRY_KEEP_MS = 60_000;

export interface UpstreamBrokerOptions {
  endpoints: readonly { name: string; upstream?: UpstreamCredentialConfig | undefined }[];
  /** The service's public URL: userConnections' connect links are made from it. */
  publicBaseUrl?: string | undefined;
  /** userConnections: a store to use instead of the configured one (tests). */
  connectionStore?: ConnectionStore;
  logger: Logger;
  events: ServiceEvents;
  /** Watch secret files for changes (serve: yes; the one-shot `check` command: no). */
  watch: boolean;
  fetch?: typeof fetch;
  now?: () => number;
}

interface Plan {
  credentialFor(ctx: CheckContext): UpstreamGrant | Deny | Promise<UpstreamGrant | Deny | Answer>;
  load(): Promise<unknown>;
  close(): Promise<unknown>;
}

export class UpstreamCredentialBroker implements UpstreamCredentials {
  private constructor(
    private readonly plans: ReadonlyMap<string, Plan>,
    /** userConnections providers by name: the /connect/<provider> pages use the same ones. */
    readonly connections: ReadonlyMap<string, ConnectionProvider>,
  ) {}

  /** The broker for the endpoints that have an upstream credential; undefined when none does. */
  static async create(opts: UpstreamBrokerOptions): Promise<UpstreamCredentialBroker | undefined> {
    const plans = new Map<string, Plan>();
    const providers = await connectionProviders(opts);
    for (const e of opts.endpoints) {
      if (e.upstream === undefined) continue;
      const u = e.upstream;
      plans.set(
        e.name,
        u.mode === 'static'
          ? new StaticPlan(e.name, u, opts)
          : u.mode === 'userConnections'
            ? new UserConnectionsPlan(e.name, providers.get(u.provider)!, opts.events)
            : new TokenPlan(e.name, u, opts),
      );
    }
    if (plans.size === 0) return undefined;
    await Promise.all([...plans.values()].map((p) => p.load()));
    return new UpstreamCredentialBroker(plans, providers);
  }

  credentialFor(ctx: CheckContext): UpstreamGrant | Deny | undefined | Promise<UpstreamGrant | Deny | Answer> {
    const endpoint = ctx.endpoint;
    return endpoint === undefined ? undefined : this.plans.get(endpoint.name)?.credentialFor(ctx);
  }

  async close(): Promise<void> {
    await Promise.allSettled([
      ...[...this.plans.values()].map((p) => p.close()),
      ...[...this.connections.values()].map((c) => c.close()),
    ]);
  }
}

/** One ConnectionProvider per userConnections provider name (endpoints that name it share it). */
export async function connectionProviders(
  opts: Pick<
    UpstreamBrokerOptions,
    'endpoints' | 'publicBaseUrl' | 'logger' | 'events' | 'watch' | 'fetch' | 'now' | 'connectionStore'
  >,
): Promise<Map<string, ConnectionProvider>> {
  const providers = new Map<string, ConnectionProvider>();
  for (const e of opts.endpoints) {
    const u = e.upstream;
    if (u?.mode !== 'userConnections' || providers.has(u.provider)) continue;
    if (opts.publicBaseUrl === undefined) throw new Error('userConnections needs publicBaseUrl');
    providers.set(
      u.provider,
      await ConnectionProvider.create(u, {
        logger: opts.logger,
        events: opts.events,
        publicBaseUrl: opts.publicBaseUrl,
        watch: opts.watch,
        ...(opts.fetch ? { fetch: opts.fetch } : {}),
        ...(opts.now ? { now: opts.now } : {}),
        ...(opts.connectionStore ? { store: opts.connectionStore } : {}),
      }),
    );
  }
  return providers;
}

/** The denies an endpoint answers with, built once. */
function denies(endpoint: string): Record<UpstreamTokenCode, Deny> {
  return {
    upstream_token_unavailable: fixedDeny(
      'upstream_token_unavailable',
      `The credential for the MCP server behind endpoint ${endpoint} could not be obtained: its token endpoint is unreachable or too slow. Retry later.`,
    ),
    upstream_token_refused: fixedDeny(
      'upstream_token_refused',
      `The token endpoint refused to issue the credential for the MCP server behind endpoint ${endpoint}.`,
    ),
    upstream_token_invalid: fixedDeny(
      'upstream_token_invalid',
      `The token endpoint's answer for the MCP server behind endpoint ${endpoint} is not a usable token.`,
    ),
    upstream_secret_unavailable: fixedDeny(
      'upstream_secret_unavailable',
      `The credential for the MCP server behind endpoint ${endpoint} is not configured yet (its secret file is missing or empty).`,
    ),
  };
}

class TokenPlan implements Plan {
  private readonly cache: TokenCache<UpstreamGrant>;
  private readonly client: ClientAuth;
  private readonly actor: SecretFile<string> | undefined;
  private readonly denies: Record<UpstreamTokenCode, Deny>;
  private readonly fetchImpl: typeof fetch;
  private readonly now: () => number;
  /** The form fields every request of this endpoint carries, built once. */
  private readonly baseForm: [string, string][];
  private readonly noSubject: Deny;
  /** The cache key of each token principal (the verified-token cache hands out the same object per token). */
  private readonly keys = new WeakMap<Principal, string>();
  /** clientCredentials: each caller's grant, rebuilt when the service's token changes. */
  private readonly withIdentityOf = new WeakMap<Principal, { base: UpstreamGrant; grant: UpstreamGrant }>();

  constructor(
    private readonly endpoint: string,
    private readonly cfg: TokenExchangeConfig | ClientCredentialsConfig,
    private readonly opts: UpstreamBrokerOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.fetchImpl = opts.fetch ?? fetch;
    this.cache = new TokenCache(cfg.cacheSize, this.now);
    // A new secret or key may mean another client: tokens issued to the old one are dropped.
    this.client = new ClientAuth(cfg, endpoint, opts.logger, () => this.cache.clear());
    this.actor =
      cfg.mode === 'tokenExchange' && cfg.actorTokenFile !== undefined
        ? new SecretFile({
            path: cfg.actorTokenFile,
            what: `the actor token of endpoint ${endpoint}`,
            parse: (t) => t,
            pollIntervalMs: 5000,
            logger: opts.logger,
            onChange: () => this.cache.clear(),
          })
        : undefined;
    this.denies = denies(endpoint);
    this.noSubject = fixedDeny(
      'upstream_token_refused',
      `Endpoint ${endpoint} exchanges the caller's OAuth token for the MCP server's, and this caller presented none.`,
    );
    const base: [string, string][] = [];
    if (cfg.mode === 'tokenExchange') {
      base.push(['grant_type', TOKEN_EXCHANGE], ['requested_token_type', cfg.requestedTokenType]);
    } else {
      base.push(['grant_type', 'client_credentials']);
    }
    if (cfg.audience !== undefined) base.push(['audience', cfg.audience]);
    if (cfg.resource !== undefined) base.push(['resource', cfg.resource]);
    if (cfg.scope.length > 0) base.push(['scope', cfg.scope.join(' ')]);
    this.baseForm = base;
  }

  load(): Promise<unknown> {
    return Promise.all([this.client.load(this.opts.watch), this.actor?.load(this.opts.watch)]);
  }

  close(): Promise<unknown> {
    return Promise.all([this.client.close(), this.actor?.close()]);
  }

  credentialFor(ctx: CheckContext): UpstreamGrant | Deny | Promise<UpstreamGrant | Deny> {
    const exchange = this.cfg.mode === 'tokenExchange';
    const p = ctx.principal;
    let key: string;
    if (exchange) {
      if (ctx.subjectToken === undefined || p.issuer === undefined || p.subject === undefined) return this.noSubject;
      let k = this.keys.get(p);
      if (k === undefined) {
        k = `${p.issuer}\n${p.subject}`;
        this.keys.set(p, k);
      }
      key = k;
    } else {
      key = '';
    }
    const mode = this.cfg.mode;
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      this.opts.events.upstreamCache?.(this.endpoint, mode, 'hit');
      return exchange ? cached : this.withIdentity(cached, ctx);
    }
    const subjectToken = ctx.subjectToken;
    const { joined, value } = this.cache.fetch(key, () => this.issue(subjectToken));
    this.opts.events.upstreamCache?.(this.endpoint, mode, joined ? 'joined' : 'miss');
    return value.then(
      (grant) => (exchange ? grant : this.withIdentity(grant, ctx)),
      (err: unknown) => this.denies[err instanceof UpstreamTokenError ? err.code : 'upstream_token_unavailable'],
    );
  }

  /** clientCredentials: the service's token, and the caller named in the header the upstream trusts. */
  private withIdentity(grant: UpstreamGrant, ctx: CheckContext): UpstreamGrant {
    const p = ctx.principal;
    const known = this.withIdentityOf.get(p);
    if (known?.base === grant) return known.grant;
    const identity: HeaderToSet = {
      name: (this.cfg as ClientCredentialsConfig).identityHeader,
      value: p.id,
      append: false,
    };
    const made = Object.freeze({
      kind: 'grant',
      headers: Object.freeze([grant.headers[0]!, identity]),
    }) as UpstreamGrant;
    this.withIdentityOf.set(p, { base: grant, grant: made });
    return made;
  }

  private async issue(subjectToken: string | undefined): Promise<CachedToken<UpstreamGrant>> {
    const mode = this.cfg.mode;
    try {
      const form = new URLSearchParams(this.baseForm);
      if (subjectToken !== undefined) {
        form.set('subject_token', subjectToken);
        form.set('subject_token_type', ACCESS_TOKEN_TYPE);
      }
      if (this.actor !== undefined) {
        const actorToken = this.actor.current;
        if (actorToken === undefined)
          throw new UpstreamTokenError('upstream_secret_unavailable', `the actor token file is not loaded`);
        form.set('actor_token', actorToken);
        form.set('actor_token_type', (this.cfg as TokenExchangeConfig).actorTokenType);
      }
      const headers: Record<string, string> = {};
      await this.client.apply(form, headers);
      const issued = await requestToken(
        { url: this.cfg.tokenEndpoint, form, headers, timeoutMs: this.cfg.timeoutMs },
        this.fetchImpl,
        this.now,
      );
      const now = this.now();
      if (issued.expiresAtMs !== undefined && issued.expiresAtMs <= now)
        throw new UpstreamTokenError('upstream_token_invalid', 'the token has already expired');
      const useUntilMs =
        issued.expiresAtMs !== undefined
          ? issued.expiresAtMs - this.cfg.expirySkewSeconds * 1000
          : now + NO_EXPIRY_KEEP_MS;
      this.opts.events.upstreamTokenRequest?.(this.endpoint, mode, 'ok');
      const grant: UpstreamGrant = Object.freeze({
        kind: 'grant',
        headers: Object.freeze([{ name: 'authorization', value: `Bearer ${issued.accessToken}`, append: false }]),
      }) as UpstreamGrant;
      return { value: grant, useUntilMs };
    } catch (err) {
      const code: UpstreamTokenCode = err instanceof UpstreamTokenError ? err.code : 'upstream_token_unavailable';
      this.opts.events.upstreamTokenRequest?.(this.endpoint, mode, code);
      this.opts.logger.warn(
        { endpoint: this.endpoint, mode, code, err: err instanceof Error ? err.message : String(err) },
        'upstream credentials: no token from the token endpoint; the request is denied',
      );
      throw err instanceof UpstreamTokenError ? err : new UpstreamTokenError(code, String(err));
    }
  }
}

class StaticPlan implements Plan {
  private readonly file: SecretFile<UpstreamGrant>;
  private readonly missing: Deny;

  constructor(
    endpoint: string,
    cfg: StaticCredentialConfig,
    private readonly opts: UpstreamBrokerOptions,
  ) {
    this.missing = denies(endpoint).upstream_secret_unavailable;
    this.file = new SecretFile({
      path: cfg.valueFile,
      what: `the static credential of endpoint ${endpoint}`,
      pollIntervalMs: cfg.pollIntervalMs,
      logger: opts.logger,
      parse: (text) => {
        const value = cfg.prefix + text;
        // The value goes into a header: a line break or control character would split it.
        if (!/^[\x20-\x7e\x80-\xff]*$/.test(value) || /[\r\n]/.test(value))
          throw new Error('the value has control characters or line breaks');
        return Object.freeze({
          kind: 'grant',
          headers: Object.freeze([{ name: cfg.header, value, append: false }]),
        }) as UpstreamGrant;
      },
    });
  }

  load(): Promise<unknown> {
    return this.file.load(this.opts.watch);
  }

  close(): Promise<unknown> {
    return this.file.close();
  }

  credentialFor(): UpstreamGrant | Deny {
    return this.file.current ?? this.missing;
  }
}
