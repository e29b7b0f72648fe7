// Where failed authentications are counted, behind one small interface: in this process
// (one process, or a worker's last resort), in the cluster primary (cluster-failures.ts),
// or in Redis through rate-limiter-flexible (StoreFailureCounter, limiter-store.ts).
import { FailureLedger, type Counted, type Tally } from './failure-ledger.js';

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
    return this.ledger.count(key, Date.now()) as Counted;
  }

  peek(key: string): Promise<{ tally: Tally; windowEnd: number } | undefined> {
    return Promise.resolve(this.ledger.peek(key, Date.now()));
  }
}
