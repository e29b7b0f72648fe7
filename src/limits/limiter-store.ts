// Builds rate-limiter-flexible limiters on the configured store: process memory (one
// process), the cluster primary (workers of one `serve --workers N`), or Redis (replicas)
// with the local store answering while Redis does not. Whatever the store, a limiter call
// never throws: if the local store fails too, a last-resort in-process limiter answers. Every
// call the sharing store did not answer is counted (ServiceEvents.limiterLocalAnswer).
import {
  RateLimiterCluster,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import type { Logger } from '../log/logger.js';
import type { LimiterName, LimiterStoreName } from '../metrics/hooks.js';
import type { Counted, FailureCounter, Tally } from './failure-counter.js';
import type { RedisLimiterStore } from './redis-store.js';
import type { BucketStore } from './token-bucket.js';

export { RateLimiterRes };
export type RateLimiterResult = RateLimiterRes;

export type LocalStore = 'memory' | 'cluster';

export interface LimiterSpec {
  /** Unique per limiter (the cluster store and Redis keys are namespaced by it). */
  keyPrefix: string;
  points: number;
  durationSeconds: number;
  /** Which limit this is, for the count of calls answered on local counters. */
  limiter: LimiterName;
}

/** The two calls the limits make. */
export interface FlexLimiter {
  consume(key: string, points?: number): Promise<RateLimiterResult>;
  get(key: string): Promise<RateLimiterResult | null>;
}

export interface StoreOptions {
  local: LocalStore;
  redis?: { store: RedisLimiterStore; keyPrefix: string };
  logger: Logger;
  /** How long a worker waits for the primary's answer before its last-resort limiter answers. */
  clusterTimeoutMs?: number;
  /**
   * The local token buckets of the rate and the quotas (token-bucket.ts): a cluster worker's
   * ask the primary (cluster-buckets.ts); default: this process's memory.
   */
  buckets?: BucketStore;
  /** A count the store that shares it did not answer (unreachable, timed out, cut), made on this process's side instead. */
  onLocalAnswer?(store: LimiterStoreName, limiter: LimiterName): void;
}

export function createLimiter(spec: LimiterSpec, opts: StoreOptions): FlexLimiter {
  const base = { points: spec.points, duration: spec.durationSeconds };
  const local: RateLimiterAbstract =
    opts.local === 'cluster'
      ? new RateLimiterCluster({
          ...base,
          keyPrefix: `${spec.keyPrefix}:local`,
          timeoutMs: opts.clusterTimeoutMs ?? 1000,
        })
      : new RateLimiterMemory({ ...base, keyPrefix: `${spec.keyPrefix}:local` });
  const lastResort = new RateLimiterMemory({ ...base, keyPrefix: `${spec.keyPrefix}:last-resort` });
  const localLayer = new Fallback(local, lastResort, opts.local === 'cluster' ? 'cluster' : undefined, spec, opts);
  if (!opts.redis) return localLayer;
  // Redis answers at once with an error while its connection is not ready (no offline queue).
  const shared = new RateLimiterRedis({
    ...base,
    storeClient: opts.redis.store.client,
    keyPrefix: `${opts.redis.keyPrefix}:${spec.keyPrefix}`,
    rejectIfRedisNotReady: true,
  });
  return new Fallback(shared, localLayer, 'redis', spec, opts);
}

/**
 * A limiter whose store errors (not limit decisions) are answered by the next one: Redis by
 * the local store, the local store by the last resort. `store` names what failed, for the
 * count of local answers; a store that cannot fail (process memory) has none.
 */
class Fallback implements FlexLimiter {
  private lastWarned = 0;

  constructor(
    private readonly store: RateLimiterAbstract,
    private readonly next: FlexLimiter | RateLimiterAbstract,
    private readonly storeName: LimiterStoreName | undefined,
    private readonly spec: LimiterSpec,
    private readonly opts: StoreOptions,
  ) {}

  consume(key: string, points = 1): Promise<RateLimiterResult> {
    return this.store.consume(key, points).catch((err: unknown) => {
      if (err instanceof RateLimiterRes) throw err;
      this.failed(err);
      if (this.storeName) this.opts.onLocalAnswer?.(this.storeName, this.spec.limiter);
      return this.next.consume(key, points);
    });
  }

  get(key: string): Promise<RateLimiterResult | null> {
    return this.store.get(key).catch((err: unknown) => {
      this.failed(err);
      return this.next.get(key);
    });
  }

  private failed(err: unknown): void {
    const now = Date.now();
    if (now - this.lastWarned < 10_000) return;
    this.lastWarned = now;
    this.opts.logger.warn(
      { limiter: this.spec.keyPrefix, store: this.storeName ?? 'memory', err: { message: (err as Error)?.message } },
      this.storeName === 'redis'
        ? 'Redis did not answer a limiter call: it is decided on local counters'
        : 'limiter store failed: this process limits on its own counters',
    );
  }
}

/** Counts in a rate-limiter-flexible store (Redis, with its local insurance): one consume per failure. */
export class StoreFailureCounter implements FailureCounter {
  constructor(
    private readonly limiter: FlexLimiter,
    private readonly max: number,
  ) {}

  count(key: string): Promise<Counted> {
    return this.limiter.consume(key).then(
      (res) => ({ tally: this.tally(res.consumedPoints), windowEnd: Date.now() + res.msBeforeNext, lease: 0 }),
      // Only a limit decision reaches here: FlexLimiter answers store errors itself.
      (res: unknown) => ({
        tally: 'over',
        windowEnd: Date.now() + (res instanceof RateLimiterRes ? res.msBeforeNext : 1000),
        lease: 0,
      }),
    );
  }

  async peek(key: string): Promise<{ tally: Tally; windowEnd: number } | undefined> {
    const res = await this.limiter.get(key);
    return res ? { tally: this.tally(res.consumedPoints), windowEnd: Date.now() + res.msBeforeNext } : undefined;
  }

  private tally(consumed: number): Tally {
    return consumed < this.max ? 'under' : consumed === this.max ? 'at' : 'over';
  }
}
