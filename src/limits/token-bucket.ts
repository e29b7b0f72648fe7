// Token buckets for the per-client rate and the per-tool quotas: `burst` tokens, one more
// every 1/rps seconds. A take of n tokens from one or several buckets is all or nothing: it
// either takes n from each or, when one of them lacks them, takes nothing from any, so a
// refused request (a batch of calls, or a request several quota rules count) spends nothing.
//
// Each bucket is one number, its theoretical arrival time (GCRA): the time at which it would
// be full again. Taking n moves it n intervals later; the take fits while that stays within
// `capacity` intervals of now. The same arithmetic runs in process (MemoryBuckets, also on
// the cluster primary for its workers: cluster-buckets.ts) and in Redis (redis-buckets.ts).

import type { LimiterStoreName } from '../metrics/hooks.js';

/** A bucket's shape: one token every `intervalMs`, room for `capacity` tokens. */
export interface BucketShape {
  intervalMs: number;
  capacity: number;
}

/** n tokens from the bucket `key` of shape `shape`. Keys are namespaced by their limiter. */
export interface Take {
  key: string;
  n: number;
  shape: BucketShape;
}

/**
 * All the takes were made, or none: `index` is the first take that did not fit. `local` names
 * the sharing store that did not answer (Redis, or the cluster primary), when this process's
 * own buckets decided instead.
 */
export type Taken = ({ ok: true } | { ok: false; index: number; retryMs: number }) & { local?: LimiterStoreName };

export interface BucketStore {
  take(takes: readonly Take[]): Promise<Taken> | Taken;
}

/** `taken`, marked as decided on local buckets because `store` did not answer. */
export function answeredLocally(taken: Promise<Taken> | Taken, store: LimiterStoreName): Promise<Taken> | Taken {
  return taken instanceof Promise ? taken.then((t) => ({ ...t, local: store })) : { ...taken, local: store };
}

export interface RateSpec {
  rps: number;
  burst: number;
}

/**
 * The bucket of `rps`/`burst`: `burst` tokens, or one second's worth when `burst` is smaller
 * (so `burst: 0` means "the rate alone"), at least one.
 */
export function bucketShape(spec: RateSpec): BucketShape {
  return { intervalMs: 1000 / spec.rps, capacity: Math.max(spec.burst, Math.floor(spec.rps + 1e-9), 1) };
}

// Float slack: bucket times are milliseconds near 2^41, where doubles are exact to ~1e-4 ms.
const SLACK_MS = 1e-3;

/**
 * Decides `takes` against the bucket times `tatOf` gives (undefined: full) at `now`, and
 * returns the new times to store when all of them fit.
 */
export function decide(
  takes: readonly Take[],
  tatOf: (key: string) => number | undefined,
  now: number,
): { taken: Taken; tats?: Map<string, number> } {
  const tats = new Map<string, number>();
  for (let i = 0; i < takes.length; i++) {
    const { key, n, shape } = takes[i]!;
    const base = Math.max(tats.get(key) ?? tatOf(key) ?? now, now);
    const tat = base + n * shape.intervalMs;
    const room = shape.capacity * shape.intervalMs;
    if (tat - now > room + SLACK_MS) {
      // More than the bucket holds never fits: the soonest useful retry is when it is full.
      const retryMs = n <= shape.capacity ? tat - room - now : base - now;
      return { taken: { ok: false, index: i, retryMs: Math.max(retryMs, 0) } };
    }
    tats.set(key, tat);
  }
  return { taken: { ok: true }, tats };
}

const SWEEP_FROM = 4096;

/** Buckets in this process's memory; a bucket that is full again is forgotten. */
export class MemoryBuckets implements BucketStore {
  private readonly tats = new Map<string, number>();
  private sweepAt = SWEEP_FROM;

  constructor(private readonly now: () => number = Date.now) {}

  take(takes: readonly Take[]): Taken {
    const now = this.now();
    const { taken, tats } = decide(takes, (key) => this.tats.get(key), now);
    if (tats === undefined) return taken;
    for (const [key, tat] of tats) this.tats.set(key, tat);
    if (this.tats.size >= this.sweepAt) this.sweep(now);
    return taken;
  }

  /** How many buckets are held (not yet full again, or not yet swept). */
  get size(): number {
    return this.tats.size;
  }

  private sweep(now: number): void {
    for (const [key, tat] of this.tats) if (tat <= now) this.tats.delete(key);
    this.sweepAt = Math.max(SWEEP_FROM, 2 * this.tats.size);
  }
}
