// Failed authentications counted across the workers of `serve --workers N`: the primary
// keeps the one FailureLedger; each worker counts the failures its leases cover by itself
// (a Map lookup, no message), and asks the primary for the rest — all the failures asked
// for in one turn of its event loop in one message, answered in one message, with one timer
// per message rather than one per call. Near the limit the primary revokes the leases and
// decides each failure itself (failure-ledger.ts), so "exactly N tried" holds across workers.
import type { Logger } from '../log/logger.js';
import type { ForfeitCause } from '../metrics/primary-metrics.js';
import { UNDER, type Counted, type FailureLedger, type Spent, type Tally } from './failure-ledger.js';
import { LocalFailureCounter, type FailureCounter } from './failure-counter.js';

/** One failure to count (or, with `peek`, to look up) and what the worker spent of its lease of the key. */
export interface FailureItem {
  key: string;
  peek?: true;
  spent?: Spent;
}

export type FailureResult = Counted | { tally: 'none'; windowEnd: 0; lease: 0 };

export type FailureMessage =
  /** Worker → primary: the failures of one turn. */
  | { type: 'mcp-authz:failures'; batch: number; items: FailureItem[] }
  /** Primary → worker: their tallies, in the same order. */
  | { type: 'mcp-authz:failures-counted'; batch: number; results: FailureResult[] }
  /** Primary → worker: give back your leases of these keys (`id` names this revoke). */
  | { type: 'mcp-authz:failure-revoke'; id: number; keys: string[] }
  /** Worker → primary: what was spent of the leases given back, in answer to revoke `id`. */
  | { type: 'mcp-authz:failure-returned'; id: number; items: { key: string; spent: Spent }[] };

const NONE: FailureResult = Object.freeze({ tally: 'none', windowEnd: 0, lease: 0 });

/** How many batches the last resort answered a worker keeps, for the leases of late answers. */
const LATE_BATCHES = 1024;

export function isFailureMessage(o: Record<string, unknown>): boolean {
  switch (o.type) {
    case 'mcp-authz:failures':
      return (
        typeof o.batch === 'number' &&
        Array.isArray(o.items) &&
        o.items.every((i) => typeof (i as FailureItem)?.key === 'string')
      );
    case 'mcp-authz:failures-counted':
      return typeof o.batch === 'number' && Array.isArray(o.results);
    case 'mcp-authz:failure-revoke':
      return typeof o.id === 'number' && Array.isArray(o.keys) && o.keys.every((k) => typeof k === 'string');
    case 'mcp-authz:failure-returned':
      return (
        typeof o.id === 'number' &&
        Array.isArray(o.items) &&
        o.items.every((i) => typeof (i as { key?: unknown })?.key === 'string')
      );
    default:
      return false;
  }
}

interface Lease {
  left: number;
  used: number;
  windowEnd: number;
}

interface Waiter {
  item: FailureItem;
  resolve(r: FailureResult): void;
}

/** A worker's counter: its leases, and one message per turn for everything else. */
export class ClusterFailureCounter implements FailureCounter {
  private readonly leases = new Map<string, Lease>();
  private queued: Waiter[] = [];
  private readonly inFlight = new Map<number, { waiters: Waiter[]; timer: NodeJS.Timeout }>();
  /**
   * Batches the last resort answered, by number: the keys they asked for, so that the leases in
   * the primary's late answer are still taken (the primary counted them as lent). At most
   * LATE_BATCHES are kept; a lease in an answer later than that is lost, and counts as spent.
   */
  private readonly late = new Map<number, (string | undefined)[]>();
  private nextBatch = 1;
  private flushing = false;
  private lastWarned = 0;
  private readonly lastResort: LocalFailureCounter;

  constructor(
    max: number,
    windowSeconds: number,
    private readonly send: (m: FailureMessage) => void,
    private readonly logger: Logger,
    private readonly timeoutMs = 1000,
    /** A failure counted by the last resort, because the primary did not answer in time. */
    private readonly onLocalAnswer: () => void = () => undefined,
  ) {
    this.lastResort = new LocalFailureCounter(max, windowSeconds);
  }

  count(key: string): Counted | Promise<Counted> {
    const lease = this.leases.get(key);
    let spent: Spent | undefined;
    if (lease !== undefined) {
      if (lease.left > 0 && Date.now() < lease.windowEnd) {
        lease.left--;
        lease.used++;
        return UNDER;
      }
      this.leases.delete(key);
      spent = { lent: lease.left + lease.used, used: lease.used, windowEnd: lease.windowEnd };
    }
    return this.ask(spent ? { key, spent } : { key }) as Promise<Counted>;
  }

  async peek(key: string): Promise<{ tally: Tally; windowEnd: number } | undefined> {
    const r = await this.ask({ key, peek: true });
    return r.tally === 'none' ? undefined : { tally: r.tally, windowEnd: r.windowEnd };
  }

  /** A message from the primary. */
  heard(m: FailureMessage): void {
    if (m.type === 'mcp-authz:failures-counted') {
      const batch = this.inFlight.get(m.batch);
      if (!batch) {
        // Answered already, by the last resort: the tallies are moot, the leases are not.
        const keys = this.late.get(m.batch);
        this.late.delete(m.batch);
        keys?.forEach((key, i) => {
          const r = m.results[i];
          if (key !== undefined && r !== undefined && r.tally !== 'none' && r.lease > 0)
            this.lend(key, r.lease, r.windowEnd);
        });
        return;
      }
      this.inFlight.delete(m.batch);
      clearTimeout(batch.timer);
      batch.waiters.forEach((w, i) => {
        const r = m.results[i] ?? NONE;
        if (r.tally !== 'none' && r.lease > 0) this.lend(w.item.key, r.lease, r.windowEnd);
        w.resolve(r);
      });
    } else if (m.type === 'mcp-authz:failure-revoke') {
      const items: { key: string; spent: Spent }[] = [];
      for (const key of m.keys) {
        const lease = this.leases.get(key);
        this.leases.delete(key);
        items.push({
          key,
          spent: lease
            ? { lent: lease.left + lease.used, used: lease.used, windowEnd: lease.windowEnd }
            : { lent: 0, used: 0, windowEnd: 0 },
        });
      }
      this.send({ type: 'mcp-authz:failure-returned', id: m.id, items });
    }
  }

  private lend(key: string, units: number, windowEnd: number): void {
    const lease = this.leases.get(key);
    if (lease !== undefined && lease.windowEnd === windowEnd) lease.left += units;
    else this.leases.set(key, { left: units, used: 0, windowEnd });
  }

  private ask(item: FailureItem): Promise<FailureResult> {
    return new Promise((resolve) => {
      this.queued.push({ item, resolve });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(flush, this);
      }
    });
  }

  /** Sends this turn's items as one message; the last resort answers if the primary does not in time. */
  flush(): void {
    this.flushing = false;
    const waiters = this.queued;
    if (waiters.length === 0) return;
    this.queued = [];
    const batch = this.nextBatch++;
    const timer = setTimeout(expire, this.timeoutMs, this, batch);
    timer.unref();
    this.inFlight.set(batch, { waiters, timer });
    try {
      this.send({ type: 'mcp-authz:failures', batch, items: waiters.map((w) => w.item) });
    } catch (err) {
      this.expire(batch, err);
    }
  }

  expire(batch: number, err?: unknown): void {
    const b = this.inFlight.get(batch);
    if (!b) return;
    this.inFlight.delete(batch);
    clearTimeout(b.timer);
    this.late.set(
      batch,
      b.waiters.map((w) => (w.item.peek ? undefined : w.item.key)),
    );
    if (this.late.size > LATE_BATCHES) this.late.delete(this.late.keys().next().value!);
    const now = Date.now();
    if (now - this.lastWarned > 10_000) {
      this.lastWarned = now;
      this.logger.warn(
        {
          limiter: 'failed-auth',
          err: { message: (err as Error | undefined)?.message ?? `no answer from the primary in ${this.timeoutMs} ms` },
        },
        'limiter store failed: this process limits on its own counters',
      );
    }
    for (const w of b.waiters) {
      if (w.item.peek) void this.lastResort.peek(w.item.key).then((r) => w.resolve(r ? { ...r, lease: 0 } : NONE));
      else {
        this.onLocalAnswer();
        w.resolve(this.lastResort.count(w.item.key));
      }
    }
  }
}

function flush(c: ClusterFailureCounter): void {
  c.flush();
}

function expire(c: ClusterFailureCounter, batch: number): void {
  c.expire(batch);
}

interface Pending {
  holder: number;
  item: FailureItem;
  done(r: FailureResult): void;
}

/** What the primary's ledger tells the rest of the primary. */
export interface LedgerEvents {
  /**
   * Lease units that count as failures though the worker holding them may not have tried them
   * all: the worker exited, or did not answer a revoke within the timeout.
   */
  forfeited?(units: number, reason: ForfeitCause): void;
  /** A failure reached the limit or went past it: the client is locked out until `until`. */
  locked?(key: string, until: number): void;
}

/** A revoke sent to one holder and not yet answered. */
interface Revoke {
  id: number;
  timer: NodeJS.Timeout;
}

/**
 * The primary's side: counts each worker's batch on the ledger in arrival order and answers
 * it in one message; a failure that needs leases back waits (with every later one of its key)
 * until their holders have answered, or have had `timeoutMs` to. Leases are granted as an
 * answer is sent, and not for a key while its leases are being taken back: so a holder's
 * answer to a revoke covers every unit it was lent, and a batch held back by one key never
 * holds a grant of another that a revoke could overtake.
 */
export class FailureLedgerHost {
  private readonly waiting = new Map<string, Pending[]>();
  /** Revokes sent and not yet answered: key → holder → revoke. */
  private readonly revoking = new Map<string, Map<number, Revoke>>();
  /** Holders that exited (node:cluster never reuses a worker id): nothing is lent to them any more. */
  private readonly gone = new Set<number>();
  private nextRevoke = 1;

  constructor(
    private readonly ledger: FailureLedger,
    private readonly send: (holder: number, m: FailureMessage) => void,
    private readonly timeoutMs = 1000,
    private readonly events: LedgerEvents = {},
  ) {}

  heard(holder: number, m: FailureMessage): void {
    if (m.type === 'mcp-authz:failures') {
      const { items } = m;
      const results: FailureResult[] = new Array(items.length);
      let left = items.length;
      const answer = () => {
        this.lendWith(holder, items, results);
        this.send(holder, { type: 'mcp-authz:failures-counted', batch: m.batch, results });
      };
      if (left === 0) {
        answer();
        return;
      }
      const now = Date.now();
      items.forEach((item, i) => {
        // What the worker spent is settled as it arrives, even if the count itself must wait:
        // a revoke the worker answers later no longer covers it.
        if (item.spent) this.ledger.returned(item.key, holder, item.spent, now);
        this.enqueue({
          holder,
          item: item.spent ? { key: item.key } : item,
          done: (r) => {
            results[i] = r;
            if (--left === 0) answer();
          },
        });
      });
    } else if (m.type === 'mcp-authz:failure-returned') {
      const now = Date.now();
      for (const { key, spent } of m.items) {
        // An answer to a revoke that timed out (its lease was forfeited) settles nothing: the
        // lease it speaks of is gone, and what the holder was lent since is not in it.
        if (this.revoking.get(key)?.get(holder)?.id !== m.id) continue;
        this.ledger.returned(key, holder, spent, now);
        // Nothing is lent to a holder while a revoke waits on it, and the worker answers after
        // every grant sent before the revoke: its answer covers its whole lease, and nothing is
        // left to forfeit. The forfeit only keeps a revoke from ever having to be asked twice.
        this.ledger.forfeit(key, holder);
        this.revoked(key, holder);
      }
    }
  }

  /**
   * A worker exited: its leases count as spent (it may have tried any part of them), nothing
   * waits for it any more, and what it asked and is still waiting is counted, not lent on.
   */
  holderGone(holder: number): void {
    this.gone.add(holder);
    const units = this.ledger.dropHolder(holder);
    if (units > 0) this.events.forfeited?.(units, 'worker_exit');
    for (const key of [...this.revoking.keys()]) this.revoked(key, holder);
  }

  /**
   * The leases an answer carries: one per key the batch counted under the limit (on its
   * last count of the key), unless the key's leases are being taken back.
   */
  private lendWith(holder: number, items: readonly FailureItem[], results: FailureResult[]): void {
    const now = Date.now();
    if (items.length === 1) {
      this.lendOne(holder, items[0]!, results, 0, now);
      return;
    }
    const seen = new Set<string>();
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i]!;
      if (item.peek || seen.has(item.key)) continue;
      seen.add(item.key);
      this.lendOne(holder, item, results, i, now);
    }
  }

  private lendOne(holder: number, item: FailureItem, results: FailureResult[], i: number, now: number): void {
    if (
      item.peek ||
      results[i]!.tally !== 'under' ||
      this.waiting.has(item.key) ||
      this.revoking.has(item.key) ||
      this.gone.has(holder)
    )
      return;
    const lent = this.ledger.lend(item.key, holder, now);
    if (lent) results[i] = lent;
  }

  private enqueue(p: Pending): void {
    const q = this.waiting.get(p.item.key);
    if (q) {
      q.push(p); // behind the ones already waiting for this key: in order
      return;
    }
    if (!this.decide(p)) this.waiting.set(p.item.key, [p]);
  }

  /** Decides one; false when leases must come back first (the revokes are sent). */
  private decide(p: Pending): boolean {
    const now = Date.now();
    const { key } = p.item;
    if (p.item.peek) {
      const r = this.ledger.peek(key, now);
      p.done(r ? { ...r, lease: 0 } : NONE);
      return true;
    }
    const r = this.ledger.count(key, now);
    if (!('revoke' in r)) {
      // Published from here, not only by the worker that asked: it may be gone before it can.
      if (r.tally !== 'under') this.events.locked?.(key, r.windowEnd);
      p.done(r);
      return true;
    }
    let asking = this.revoking.get(key);
    if (!asking) this.revoking.set(key, (asking = new Map()));
    for (const h of r.revoke) {
      if (asking.has(h)) continue;
      const id = this.nextRevoke++;
      const timer = setTimeout(() => {
        this.forfeit(key, h, 'revoke_timeout');
        this.revoked(key, h);
      }, this.timeoutMs);
      timer.unref();
      asking.set(h, { id, timer });
      this.send(h, { type: 'mcp-authz:failure-revoke', id, keys: [key] });
    }
    return false;
  }

  private forfeit(key: string, holder: number, reason: ForfeitCause): void {
    const units = this.ledger.forfeit(key, holder);
    if (units > 0) this.events.forfeited?.(units, reason);
  }

  private revoked(key: string, holder: number): void {
    const asking = this.revoking.get(key);
    const revoke = asking?.get(holder);
    if (revoke === undefined) return;
    clearTimeout(revoke.timer);
    asking!.delete(holder);
    if (asking!.size === 0) this.revoking.delete(key);
    this.drain(key);
  }

  private drain(key: string): void {
    const q = this.waiting.get(key);
    if (!q) return;
    while (q.length > 0) {
      if (!this.decide(q[0]!)) return;
      q.shift();
    }
    this.waiting.delete(key);
  }
}
