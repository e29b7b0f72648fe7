// Where failed authentications are counted, behind one small interface: in this process
// (one process, or a worker's last resort), in the cluster primary (cluster-failures.ts),
// or in Redis through rate-limiter-flexible (limits shared by replicas).
import { RateLimiterRes } from 'rate-limiter-flexible';
import { FailureLedger, type Counted, type Tally } from './failure-ledger.js';
import type { FlexLimiter } from './limiter-store.js';

export type { Counted, Tally };

export interface FailureCounter {
  /** Counts one failure of `key`: under the limit, the one that reaches it, or over it. */
  count(key: string): Counted | Promise<Counted>;
  /** The key's state without counting, for the check before authentication; undefined when it has no window running. */
  peek(key: string): Promise<{ tally: Tally; windowEnd: number } | undefined>;
}

/** One process's own counts (a FailureLedger without leases). */
export class LocalFailureCounter implements FailureCounter {
  private readonly ledger: FailureLedger;

  constructor(max: number, windowSeconds: number) {
    this.ledger = new FailureLedger(max, windowSeconds * 1000, 0);
  }

  count(key: string): Counted {
    return this.ledger.count(key, 0, Date.now()) as Counted;
  }

  peek(key: string): Promise<{ tally: Tally; windowEnd: number } | undefined> {
    return Promise.resolve(this.ledger.peek(key, Date.now()));
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
