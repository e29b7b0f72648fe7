// Verifies OAuth bearer JWTs for the authentication phase: picks the issuer by the token's
// unverified iss, checks signature and claims with jose, and caches verified tokens.
import type { JWTPayload } from 'jose';
import type { Config, IssuerConfig } from '../../config/schema.js';
import type { AuthFailureDetail } from '../../contracts/codes.js';
import type { Logger } from '../../log/logger.js';
import type { ServiceEvents } from '../../metrics/hooks.js';
import { decodeSegment, parseCompactJwt, verifyParsedJwt, type ParsedJwt } from './compact-jwt.js';
import { JwksCache } from './jwks-cache.js';
import { failureOf } from './token-failure.js';
import { identityPrincipal, tokenIdentity, type TokenIdentity } from './token-principal.js';
import { TokenCache, tokenDigest, type SharedRecord } from './token-cache.js';
import { looksLikeJwt, type TokenResult, type TokenVerifier } from './token-verifier.js';

export interface TokenVerifierOptions {
  logger: Logger;
  events?: ServiceEvents;
  fetch?: typeof fetch;
  /** Timeout of each discovery or JWKS request (default 5 s). */
  fetchTimeoutMs?: number;
  /** Clock in epoch milliseconds (tests move it instead of sleeping). */
  now?: () => number;
}

const DEFAULT_FETCH_TIMEOUT_MS = 5_000;
// Real JWKS and metadata documents are a few KiB; this only stops a runaway response.
const MAX_DOCUMENT_BYTES = 512 * 1024;

interface IssuerEntry {
  config: IssuerConfig;
  algorithms: string[];
  jwks: JwksCache;
  /** Its user ids are the same people as keys' userId and endpoints' owner (IssuerSchema.userIds). */
  sharedUserIds: boolean;
}

/** An issuer's user ids are shared when it says so, or when it is the only issuer configured. */
export function sharesUserIds(issuer: IssuerConfig, issuerCount: number): boolean {
  return issuer.userIds === undefined ? issuerCount === 1 : issuer.userIds === 'shared';
}

/** What the tokens of one identity and audience list share in the cache. */
interface CachedIdentity extends SharedRecord {
  identity: TokenIdentity;
  /** The token's aud values: each call still checks them against its own audiences. */
  audiences: readonly string[];
}

/**
 * A record's heap, estimated for the cache's byte budget: the objects (~240 bytes) and its
 * strings twice over (the key, and the fields it is made of) at up to 2 bytes a character.
 */
const recordBytes = (key: string) => 240 + 4 * key.length;

export function createTokenVerifier(oauth: Config['oauth'], opts: TokenVerifierOptions): TokenVerifier {
  const now = opts.now ?? Date.now;
  const closing = new AbortController();
  const http = {
    fetch: opts.fetch ?? globalThis.fetch,
    timeoutMs: opts.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS,
    maxBytes: MAX_DOCUMENT_BYTES,
    signal: closing.signal,
  };
  const issuers = new Map<string, IssuerEntry>();
  for (const config of oauth.issuers) {
    const jwks = new JwksCache({
      issuer: config.issuer,
      jwksUri: config.jwksUri,
      cooldownMs: oauth.jwksCooldownSeconds * 1000,
      maxAgeMs: oauth.jwksCacheMaxAgeSeconds * 1000,
      http,
      now,
      logger: opts.logger,
      onRefresh: (result) => opts.events?.jwksRefresh?.(config.issuer, result),
    });
    issuers.set(config.issuer, {
      config,
      algorithms: [...config.algorithms],
      jwks,
      sharedUserIds: sharesUserIds(config, oauth.issuers.length),
    });
  }
  const cache = new TokenCache<CachedIdentity>(oauth.tokenCacheSize, oauth.tokenCacheMaxBytes);
  const caching = cache.maxEntries > 0;
  const tolerance = oauth.clockToleranceSeconds;

  const invalid = (detail: AuthFailureDetail, why: string): TokenResult => ({ ok: false, detail, why });

  async function verify(token: string, audiences: readonly string[]): Promise<TokenResult> {
    if (typeof token !== 'string' || token.length === 0) return invalid('token_not_jwt', 'token is empty');
    // Before any parsing or hashing: the size bound protects everything after it.
    if (token.length > oauth.maxTokenBytes)
      return invalid('token_too_large', `token is larger than ${oauth.maxTokenBytes} bytes`);
    if (!looksLikeJwt(token)) return invalid('token_not_jwt', 'token is not a compact JWS (header.payload.signature)');
    if (audiences.length === 0) return invalid('no_audience', 'no audience is configured for this endpoint');

    const digest = caching ? tokenDigest(token) : undefined;
    const slot = digest === undefined ? -1 : cache.find(digest);
    if (slot >= 0) {
      // The checks a verification makes, in its order (audience before expiry).
      const record = cache.record(slot);
      if (!intersects(record.audiences, audiences))
        return invalid('token_audience', 'token audience is not this endpoint');
      const expiresAt = cache.expiresAt(slot);
      // Same expiry rule as jose: valid while now < exp + tolerance.
      if (Math.floor(now() / 1000) - tolerance >= expiresAt) {
        cache.delete(slot);
        return invalid('token_expired', 'token expired');
      }
      // The same bytes were verified (the key is their digest): their claims decode the same.
      const claims = decodeSegment(token.slice(token.indexOf('.') + 1, token.lastIndexOf('.')));
      if (claims === undefined) return invalid('token_malformed', 'token is not a well-formed JWT');
      return { ok: true, principal: identityPrincipal(record.identity, claims), expiresAt };
    }

    // The header and claims are decoded once, for the issuer choice and the verification both.
    let jwt: ParsedJwt;
    try {
      jwt = parseCompactJwt(token);
    } catch {
      return invalid('token_malformed', 'token is not a well-formed JWT');
    }
    const claims = decodeSegment(jwt.encodedPayload);
    if (claims === undefined) return invalid('token_malformed', 'token is not a well-formed JWT');
    jwt.payload = claims;
    const alg = jwt.header.alg;
    const iss = claims.iss;
    if (typeof iss !== 'string') return invalid('token_claim_missing', 'token has no iss claim');
    const entry = issuers.get(iss);
    if (!entry) return invalid('token_issuer_unknown', 'token issuer is not configured');
    // Checked before any key lookup so HS*/none tokens never cause a JWKS fetch.
    if (typeof alg !== 'string' || !entry.algorithms.includes(alg)) {
      return invalid('token_algorithm', 'token algorithm is not allowed for this issuer');
    }

    let payload: JWTPayload;
    try {
      payload = await verifyParsedJwt(jwt, entry.jwks.getKey, {
        issuer: entry.config.issuer,
        audiences,
        algorithms: entry.algorithms,
        clockTolerance: tolerance,
        now: now(),
      });
    } catch (err) {
      return { ok: false, ...failureOf(err) };
    }
    const nowSec = Math.floor(now() / 1000);
    // jose checks iat only against a maximum age; a token from the future is refused here.
    if (typeof payload.iat === 'number' && payload.iat > nowSec + tolerance) {
      return invalid('token_issued_in_future', 'token issued in the future (iat is beyond the clock tolerance)');
    }
    const identity = tokenIdentity(entry.config, payload, entry.sharedUserIds);
    if (typeof identity === 'string') return invalid('token_claim_missing', identity);
    const expiresAt = payload.exp!;
    if (digest !== undefined) {
      const aud = typeof payload.aud === 'string' ? [payload.aud] : (payload.aud ?? []);
      const key = JSON.stringify([
        identity.issuer,
        identity.subject,
        identity.userId ?? null,
        identity.roles,
        identity.scopes,
        aud,
      ]);
      // Entries expired by now (exp + tolerance passed) are evicted before live ones.
      cache.set(digest, expiresAt, { key, bytes: recordBytes(key), identity, audiences: aud }, nowSec - tolerance + 1);
    }
    return { ok: true, principal: identityPrincipal(identity, payload), expiresAt };
  }

  return {
    verify: async (token, audiences) => {
      try {
        return await verify(token, audiences);
      } catch (err) {
        // Defence in depth: an unexpected error is a deny with a reason, never a throw.
        opts.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'token verification error');
        return invalid('token_verification_failed', 'token verification failed');
      }
    },
    close: async () => {
      closing.abort();
      for (const entry of issuers.values()) entry.jwks.close();
      cache.clear();
    },
  };
}

function intersects(a: readonly string[], b: readonly string[]): boolean {
  for (const x of a) if (b.includes(x)) return true;
  return false;
}
