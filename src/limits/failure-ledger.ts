// The failed-authentication counts: per client key, a fixed window from its first failure
// and the number of failures in it. Exact at the limit: the first `max` failures of a window
// are under or at the limit, every later one is over.
//
// With workers, this ledger lives in the cluster primary and the workers count most
// failures themselves, without a round trip: the ledger lends a worker a few failures of a
// key (a lease) while the key is far from its limit — never so many that the leases could
// reach it — and counts them as spent. Near the limit it takes the unspent ones back
// (revoke) before it decides, so the failure that reaches the limit, and every one after,
// is decided here, one by one, in the order they arrive. Each failure is counted once:
// either here, or in a lease whose spent part comes back here.
//
// A lease is granted only as the answer that carries it is sent (`lend`), and never to a
// holder a revoke of its key is waiting on: so the answer to a revoke, which the worker
// sends after every message before the revoke, accounts for every unit it was lent.

/** Where a failure lands against the limit. */
export type Tally = 'under' | 'at' | 'over';

export interface Counted {
  tally: Tally;
  /** Epoch ms at which the key's window ends. */
  windowEnd: number;
  /** Failures of this key the asking worker may count itself until windowEnd (0: none). */
  lease: number;
}

/** What a worker did with the lease of a key it had received, sent with its next count or when asked. */
export interface Spent {
  /** Units of the lease the worker had received (grants still on their way to it are not in it). */
  lent: number;
  used: number;
  /** The window the lease was for: a lease of an ended window is nothing to settle. */
  windowEnd: number;
}

interface Entry {
  windowEnd: number;
  /** Failures counted here, leases spent included, plus the leases still out. */
  committed: number;
  /** Units lent and not yet returned, by holder. */
  leases: Map<number, number>;
}

/** Under the limit with nothing lent: the answer needs no window (the common case, allocated once). */
export const UNDER: Counted = Object.freeze({ tally: 'under', windowEnd: 0, lease: 0 });

/** The largest lease, so that a worker returns often enough for the window to stay fair. */
export const MAX_LEASE = 256;

/**
 * The most failures of one key a holder may hold at once, however many answers carry it
 * leases: also the most a holder that dies can take with it, so the most a client can be
 * locked out early by it (docs/rate-limits.md, "Workers").
 */
export function leaseBound(max: number, holders: number): number {
  return holders > 0 ? Math.min(MAX_LEASE, Math.floor((max - 1) / (2 * holders))) : 0;
}

export class FailureLedger {
  private readonly entries = new Map<string, Entry>();
  private lastSweep = 0;
  private readonly bound: number;

  /**
   * @param max failures allowed per window (maxAttempts > 0)
   * @param windowMs the window
   * @param holders how many workers lease (leases are sized so all of them together stay clear of the limit); 0: no leases
   */
  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly holders: number,
  ) {
    this.bound = leaseBound(max, holders);
  }

  /**
   * Counts one failure of `key` (settle what the asking holder spent of its lease first, with
   * `returned`). Returns the holders to revoke first when leases are out and this failure
   * could be at or past the limit: call `returned` for each, then count again. Lends nothing:
   * `lend` does, when the answer is sent.
   */
  count(key: string, now: number): Counted | { revoke: number[] } {
    this.sweep(now);
    let e = this.entries.get(key);
    if (e !== undefined && now >= e.windowEnd) {
      this.entries.delete(key);
      e = undefined;
    }
    if (e === undefined) {
      e = { windowEnd: now + this.windowMs, committed: 0, leases: new Map() };
      this.entries.set(key, e);
    }
    // Leases out could reach the limit before this failure does: the holders give them back first.
    if (e.committed + 1 >= this.max && e.leases.size > 0) return { revoke: [...e.leases.keys()] };
    e.committed++;
    const tally: Tally = e.committed < this.max ? 'under' : e.committed === this.max ? 'at' : 'over';
    return tally === 'under' ? UNDER : { tally, windowEnd: e.windowEnd, lease: 0 };
  }

  /**
   * Lends `holder` failures of `key` to count itself, as the answer that tells it is sent
   * (never while a revoke of the key waits on the holder); undefined when the key is too close
   * to its limit, or has no window running.
   */
  lend(key: string, holder: number, now: number): Counted | undefined {
    const e = this.entries.get(key);
    if (e === undefined || now >= e.windowEnd || this.holders === 0) return undefined;
    // Small enough that every holder's lease together stays below the limit, and that no
    // holder holds more than the bound (it may have several asks in flight).
    const lease = Math.min(
      this.bound - (e.leases.get(holder) ?? 0),
      Math.floor((this.max - e.committed - 1) / (2 * this.holders)),
    );
    if (lease <= 0) return undefined;
    e.leases.set(holder, (e.leases.get(holder) ?? 0) + lease);
    e.committed += lease;
    return { tally: 'under', windowEnd: e.windowEnd, lease };
  }

  /** What a holder did with its lease of the key: with its next count, or in answer to a revoke. */
  returned(key: string, holder: number, spent: Spent, now: number): void {
    const e = this.entries.get(key);
    if (e === undefined || now >= e.windowEnd) return;
    this.settle(e, holder, spent);
  }

  /**
   * A holder did not answer a revoke in time (or its answer left units out): its lease of the
   * key counts as spent, whole. Returns the units it held, which may not all have been tried.
   */
  forfeit(key: string, holder: number): number {
    const e = this.entries.get(key);
    const out = e?.leases.get(holder);
    if (out === undefined) return 0;
    e!.leases.delete(holder);
    return out;
  }

  /** A holder is gone (a worker exited): its leases count as spent, whole. Returns the units it held. */
  dropHolder(holder: number): number {
    let units = 0;
    for (const e of this.entries.values()) {
      const out = e.leases.get(holder);
      if (out === undefined) continue;
      units += out;
      e.leases.delete(holder);
    }
    return units;
  }

  /** The key's state now, for a check before authentication: over or at the limit, and until when. */
  peek(key: string, now: number): { tally: Tally; windowEnd: number } | undefined {
    const e = this.entries.get(key);
    if (e === undefined || now >= e.windowEnd) return undefined;
    return {
      tally: e.committed < this.max ? 'under' : e.committed === this.max ? 'at' : 'over',
      windowEnd: e.windowEnd,
    };
  }

  /** Keys with a window running (for tests and the bound on memory). */
  get size(): number {
    return this.entries.size;
  }

  /** The part of the holder's lease it had received comes back, `used` of it spent; grants still on their way stay out. */
  private settle(e: Entry, holder: number, spent: Spent): void {
    const out = e.leases.get(holder);
    if (out === undefined || spent.windowEnd !== e.windowEnd) return;
    const back = Math.min(out, spent.lent);
    if (back === out) e.leases.delete(holder);
    else e.leases.set(holder, out - back);
    e.committed -= back - Math.min(back, spent.used);
  }

  /** Ended windows go, at most once per window length (no timer per key). */
  private sweep(now: number): void {
    if (now - this.lastSweep < Math.min(this.windowMs, 60_000)) return;
    this.lastSweep = now;
    for (const [key, e] of this.entries) if (now >= e.windowEnd) this.entries.delete(key);
  }
}
