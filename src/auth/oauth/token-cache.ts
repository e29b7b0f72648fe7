// Verified tokens, so a repeated bearer token costs a hash and a Map lookup instead of a
// signature check. Keyed by the token's SHA-256: the raw token is never stored.
import { createHash } from 'node:crypto';
import type { Principal } from '../../contracts/principal.js';

export interface VerifiedToken {
  principal: Principal;
  /** exp, epoch seconds. */
  expiresAt: number;
  /** The token's aud values: each call still checks them against its own audiences. */
  audiences: readonly string[];
}

/** The cache key for a token. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** A bounded LRU; `capacity` 0 keeps nothing. */
export class TokenCache {
  private readonly entries = new Map<string, VerifiedToken>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(digest: string): VerifiedToken | undefined {
    const entry = this.entries.get(digest);
    if (entry) {
      // Map keeps insertion order: re-inserting marks the entry most recently used.
      this.entries.delete(digest);
      this.entries.set(digest, entry);
    }
    return entry;
  }

  set(digest: string, entry: VerifiedToken): void {
    if (this.capacity === 0) return;
    this.entries.delete(digest);
    this.entries.set(digest, entry);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  delete(digest: string): void {
    this.entries.delete(digest);
  }

  clear(): void {
    this.entries.clear();
  }
}
