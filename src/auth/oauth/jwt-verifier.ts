// Verifies OAuth bearer JWTs for the authentication phase: picks the issuer by the token's
// unverified iss, checks signature and claims with jose, and caches verified tokens.
import { decodeJwt, decodeProtectedHeader, type JWTPayload } from 'jose';
import type { Config, IssuerConfig } from '../../config/schema.js';
import type { AuthFailureDetail } from '../../contracts/codes.js';
import type { Logger } from '../../log/logger.js';
import type { ServiceEvents } from '../../metrics/hooks.js';
import { verifyCompactJwt } from './compact-jwt.js';
import { JwksCache } from './jwks-cache.js';
import { failureOf } from './token-failure.js';
import { tokenPrincipal } from './token-principal.js';
import { TokenCache, tokenDigest } from './token-cache.js';
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
  const cache = new TokenCache(oauth.tokenCacheSize);
  const tolerance = oauth.clockToleranceSeconds;

  const invalid = (detail: AuthFailureDetail, why: string): TokenResult => ({ ok: false, detail, why });

  async function verify(token: string, audiences: readonly string[]): Promise<TokenResult> {
    if (typeof token !== 'string' || token.length === 0) return invalid('token_not_jwt', 'token is empty');
    // Before any parsing or hashing: the size bound protects everything after it.
    if (token.length > oauth.maxTokenBytes)
      return invalid('token_too_large', `token is larger than ${oauth.maxTokenBytes} bytes`);
    if (!looksLikeJwt(token)) return invalid('token_not_jwt', 'token is not a compact JWS (header.payload.signature)');
    if (audiences.length === 0) return invalid('no_audience', 'no audience is configured for this endpoint');

    const digest = oauth.tokenCacheSize > 0 ? tokenDigest(token) : undefined;
    const cached = digest === undefined ? undefined : cache.get(digest);
    if (cached) {
      // Same expiry rule as jose: valid while now < exp + tolerance.
      if (Math.floor(now() / 1000) - tolerance >= cached.expiresAt) {
        cache.delete(digest!);
        return invalid('token_expired', 'token expired');
      }
      if (!intersects(cached.audiences, audiences))
        return invalid('token_audience', 'token audience is not this endpoint');
      return { ok: true, principal: cached.principal, expiresAt: cached.expiresAt };
    }

    let alg: unknown;
    let iss: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
      iss = decodeJwt(token).iss;
    } catch {
      return invalid('token_malformed', 'token is not a well-formed JWT');
    }
    if (typeof iss !== 'string') return invalid('token_claim_missing', 'token has no iss claim');
    const entry = issuers.get(iss);
    if (!entry) return invalid('token_issuer_unknown', 'token issuer is not configured');
    // Checked before any key lookup so HS*/none tokens never cause a JWKS fetch.
    if (typeof alg !== 'string' || !entry.algorithms.includes(alg)) {
      return invalid('token_algorithm', 'token algorithm is not allowed for this issuer');
    }

    let payload: JWTPayload;
    try {
      payload = await verifyCompactJwt(token, entry.jwks.getKey, {
        issuer: entry.config.issuer,
        audiences,
        algorithms: entry.algorithms,
        clockTolerance: tolerance,
        now: now(),
      });
    } catch (err) {
      return { ok: false, ...failureOf(err) };
    }
    // jose checks iat only against a maximum age; a token from the future is refused here.
    if (typeof payload.iat === 'number' && payload.iat > Math.floor(now() / 1000) + tolerance) {
      return invalid('token_issued_in_future', 'token issued in the future (iat is beyond the clock tolerance)');
    }
    const principal = tokenPrincipal(entry.config, payload, entry.sharedUserIds);
    if (typeof principal === 'string') return invalid('token_claim_missing', principal);
    const expiresAt = payload.exp!;
    if (digest !== undefined) {
      const aud = typeof payload.aud === 'string' ? [payload.aud] : (payload.aud ?? []);
      cache.set(digest, { principal, expiresAt, audiences: aud });
    }
    return { ok: true, principal, expiresAt };
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
