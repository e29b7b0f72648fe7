// Builds rate-limiter-flexible limiters on the configured store: process memory (one
// process), the cluster primary (workers of one `serve --workers N`), or Redis (replicas)
// with a local limiter as insurance while Redis is unreachable. Whatever the store, a
// limiter call never throws: if the store fails, a last-resort in-process limiter answers.
import { RateLimiterCluster, RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Logger } from '../log/logger.js';
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
}

export function createLimiter(spec: LimiterSpec, opts: StoreOptions): FlexLimiter {
  const base = { points: spec.points, duration: spec.durationSeconds };
  const local: RateLimiterAbstract =
    opts.local === 'cluster'
      ? new RateLimiterCluster({ ...base, keyPrefix: `${spec.keyPrefix}:local`, timeoutMs: opts.clusterTimeoutMs ?? 1000 })
      : new RateLimiterMemory({ ...base, keyPrefix: `${spec.keyPrefix}:local` });
  const primary: RateLimiterAbstract = opts.redis
    ? new RateLimiterRedis({
        ...base,
        storeClient: opts.redis.store.client,
        keyPrefix: `${opts.redis.keyPrefix}:${spec.keyPrefix}`,
        rejectIfRedisNotReady: true,
        insuranceLimiter: local,
      })
    : local;
  return new Resilient(primary, new RateLimiterMemory({ ...base, keyPrefix: `${spec.keyPrefix}:last-resort` }), spec.keyPrefix, opts.logger);
}

/** A limiter whose store errors (not limit decisions) are answered by an in-process limiter. */
class Resilient implements FlexLimiter {
  private lastWarned = 0;

  constructor(
    private readonly primary: RateLimiterAbstract,
    private readonly lastResort: RateLimiterAbstract,
    private readonly name: string,
    private readonly logger: Logger,
  ) {}

  consume(key: string, points = 1): Promise<RateLimiterResult> {
    return this.primary.consume(key, points).catch((err: unknown) => {
      if (err instanceof RateLimiterRes) throw err;
      this.warn(err);
      return this.lastResort.consume(key, points);
    });
  }

  get(key: string): Promise<RateLimiterResult | null> {
    return this.primary.get(key).catch((err: unknown) => {
      this.warn(err);
      return this.lastResort.get(key);
    });
  }

  private warn(err: unknown): void {
    const now = Date.now();
    if (now - this.lastWarned < 10_000) return;
    this.lastWarned = now;
    this.logger.warn({ limiter: this.name, err: { message: (err as Error)?.message } }, 'limiter store failed: this process limits on its own counters');
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
      (res: unknown) => ({ tally: 'over', windowEnd: Date.now() + (res instanceof RateLimiterRes ? res.msBeforeNext : 1000), lease: 0 }),
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
