// One issuer's signing keys. Refetches are rate-limited to one per cooldown however many
// unknown kids arrive, a stale set is refreshed in the background while it keeps serving,
// and a failed refresh never drops keys that already work (jose's createRemoteJWKSet
// throws once its cache is older than cacheMaxAge and the IdP is down).
import { createLocalJWKSet, errors, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters } from 'jose';
import type { Logger } from '../../log/logger.js';
import { fetchJson, type FetchJsonOptions } from './fetch-json.js';
import { discoverJwksUri } from './issuer-discovery.js';

type KeyResolver = ReturnType<typeof createLocalJWKSet>;

/** No keys could be fetched yet for the issuer (IdP down, misconfigured or cooling down). */
export class JwksUnavailableError extends Error {
  readonly code = 'ERR_JWKS_UNAVAILABLE';
  constructor(issuer: string) {
    super(`signing keys for ${issuer} are not available`);
    this.name = 'JwksUnavailableError';
  }
}

export interface JwksCacheOptions {
  issuer: string;
  /** Configured jwks_uri; discovered from the issuer's metadata when absent. */
  jwksUri?: string;
  cooldownMs: number;
  maxAgeMs: number;
  http: FetchJsonOptions;
  now: () => number;
  logger: Logger;
  onRefresh?: (result: 'success' | 'failure') => void;
}

export class JwksCache {
  private keys: KeyResolver | undefined;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private lastAttemptAt = Number.NEGATIVE_INFINITY;
  private inflight: Promise<void> | undefined;
  private jwksUri: string | undefined;
  private closed = false;

  constructor(private readonly opts: JwksCacheOptions) {
    this.jwksUri = opts.jwksUri;
  }

  /** jose key resolver: the key for the token's alg and kid. */
  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    const keys = this.keys;
    if (!keys) {
      await this.refreshIfAllowed();
      if (!this.keys) throw new JwksUnavailableError(this.opts.issuer);
      return this.keys(header, token);
    }
    if (this.opts.now() - this.fetchedAt >= this.opts.maxAgeMs) void this.refreshIfAllowed();
    try {
      return await keys(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      // An unknown kid may be a rotation: refetch, at most once per cooldown.
      await this.refreshIfAllowed();
      if (this.keys === keys || !this.keys) throw err;
      return this.keys(header, token);
    }
  };

  /** Stops all fetches, including one in flight. */
  close(): void {
    this.closed = true;
  }

  private refreshIfAllowed(): Promise<void> {
    if (this.inflight) return this.inflight;
    if (this.closed) return Promise.resolve();
    const now = this.opts.now();
    if (now - this.lastAttemptAt < this.opts.cooldownMs) return Promise.resolve();
    this.lastAttemptAt = now;
    this.inflight = this.refresh().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async refresh(): Promise<void> {
    const { issuer, http, logger } = this.opts;
    try {
      this.jwksUri ??= await discoverJwksUri(issuer, http);
      const doc = await fetchJson(this.jwksUri, http);
      const keys = createLocalJWKSet(doc as JSONWebKeySet);
      if ((doc as JSONWebKeySet).keys.length === 0) throw new Error(`${this.jwksUri} has no keys`);
      if (this.closed) return;
      this.keys = keys;
      this.fetchedAt = this.opts.now();
      this.opts.onRefresh?.('success');
      logger.debug({ issuer, jwksUri: this.jwksUri }, 'JWKS refreshed');
    } catch (err) {
      if (this.closed) return;
      // Rediscover next time: the IdP may have moved its jwks_uri.
      if (!this.opts.jwksUri) this.jwksUri = undefined;
      this.opts.onRefresh?.('failure');
      logger.warn(
        { issuer, err: err instanceof Error ? err.message : String(err), cachedKeys: this.keys !== undefined },
        this.keys
          ? 'JWKS refresh failed; the cached keys stay in use'
          : 'JWKS fetch failed; tokens of this issuer cannot be verified yet',
      );
    }
  }
}
