// Failed authentications counted across the workers of `serve --workers N`: the primary
// keeps the one FailureLedger; each worker counts the failures its leases cover by itself
// (a Map lookup, no message), and asks the primary for the rest — all the failures asked
// for in one turn of its event loop in one message, answered in one message, with one timer
// per message rather than one per call. Near the limit the primary revokes the leases and
// decides each failure itself (failure-ledger.ts), so "exactly N tried" holds across workers.
import type { Logger } from '../log/logger.js';
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
  /** Primary → worker: give back your leases of these keys. */
  | { type: 'mcp-authz:failure-revoke'; keys: string[] }
  /** Worker → primary: what was spent of the leases given back. */
  | { type: 'mcp-authz:failure-returned'; items: { key: string; spent: Spent }[] };

const NONE: FailureResult = Object.freeze({ tally: 'none', windowEnd: 0, lease: 0 });

export function isFailureMessage(o: Record<string, unknown>): boolean {
  switch (o.type) {
    case 'mcp-authz:failures':
      return typeof o.batch === 'number' && Array.isArray(o.items) && o.items.every((i) => typeof (i as FailureItem)?.key === 'string');
    case 'mcp-authz:failures-counted':
      return typeof o.batch === 'number' && Array.isArray(o.results);
    case 'mcp-authz:failure-revoke':
      return Array.isArray(o.keys) && o.keys.every((k) => typeof k === 'string');
    case 'mcp-authz:failure-returned':
      return Array.isArray(o.items) && o.items.every((i) => typeof (i as { key?: unknown })?.key === 'string');
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
      if (!batch) return; // answered already, by the last resort
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
        items.push({ key, spent: lease ? { lent: lease.left + lease.used, used: lease.used, windowEnd: lease.windowEnd } : { lent: 0, used: 0, windowEnd: 0 } });
      }
      this.send({ type: 'mcp-authz:failure-returned', items });
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
    const now = Date.now();
    if (now - this.lastWarned > 10_000) {
      this.lastWarned = now;
      this.logger.warn({ limiter: 'failed-auth', err: { message: (err as Error | undefined)?.message ?? `no answer from the primary in ${this.timeoutMs} ms` } }, 'limiter store failed: this process limits on its own counters');
    }
    for (const w of b.waiters) {
      if (w.item.peek) void this.lastResort.peek(w.item.key).then((r) => w.resolve(r ? { ...r, lease: 0 } : NONE));
      else w.resolve(this.lastResort.count(w.item.key));
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
  /** False when the same message asks again for the key further on: only the last ask may get a lease. */
  lend: boolean;
  done(r: FailureResult): void;
}

/**
 * The primary's side: counts each worker's batch on the ledger in arrival order and answers
 * it in one message; a failure that needs leases back waits (with every later one of its key)
 * until their holders have answered, or have had `timeoutMs` to.
 */
export class FailureLedgerHost {
  private readonly waiting = new Map<string, Pending[]>();
  /** Revokes sent and not yet answered: key → holder → timer. */
  private readonly revoking = new Map<string, Map<number, NodeJS.Timeout>>();

  constructor(
    private readonly ledger: FailureLedger,
    private readonly send: (holder: number, m: FailureMessage) => void,
    private readonly timeoutMs = 1000,
  ) {}

  heard(holder: number, m: FailureMessage): void {
    if (m.type === 'mcp-authz:failures') {
      const results: FailureResult[] = new Array(m.items.length);
      let left = m.items.length;
      const answer = () => this.send(holder, { type: 'mcp-authz:failures-counted', batch: m.batch, results });
      if (left === 0) return answer();
      const lastAsk = new Map<string, number>();
      m.items.forEach((item, i) => lastAsk.set(item.key, i));
      const now = Date.now();
      m.items.forEach((item, i) => {
        // What the worker spent is settled as it arrives, even if the count itself must wait:
        // a revoke the worker answers later no longer covers it.
        if (item.spent) this.ledger.returned(item.key, holder, item.spent, now);
        this.enqueue({
          holder,
          item: item.spent ? { key: item.key } : item,
          lend: lastAsk.get(item.key) === i,
          done: (r) => {
            results[i] = r;
            if (--left === 0) answer();
          },
        });
      });
    } else if (m.type === 'mcp-authz:failure-returned') {
      for (const { key, spent } of m.items) {
        this.ledger.returned(key, holder, spent, Date.now());
        // The answer covers every grant the worker had (messages arrive in order): anything
        // still out is counted as spent, so a revoke never has to be asked twice.
        this.ledger.forfeit(key, holder);
        this.revoked(key, holder);
      }
    }
  }

  /** A worker exited: its leases count as spent, and nothing waits for it any more. */
  holderGone(holder: number): void {
    this.ledger.dropHolder(holder);
    for (const key of [...this.revoking.keys()]) this.revoked(key, holder);
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
    if (p.item.peek) {
      const r = this.ledger.peek(p.item.key, now);
      p.done(r ? { ...r, lease: 0 } : NONE);
      return true;
    }
    const r = this.ledger.count(p.item.key, p.holder, now, p.lend);
    if (!('revoke' in r)) {
      p.done(r);
      return true;
    }
    let asking = this.revoking.get(p.item.key);
    if (!asking) this.revoking.set(p.item.key, (asking = new Map()));
    for (const h of r.revoke) {
      if (asking.has(h)) continue;
      const timer = setTimeout(() => {
        this.ledger.forfeit(p.item.key, h);
        this.revoked(p.item.key, h);
      }, this.timeoutMs);
      timer.unref();
      asking.set(h, timer);
      this.send(h, { type: 'mcp-authz:failure-revoke', keys: [p.item.key] });
    }
    return false;
  }

  private revoked(key: string, holder: number): void {
    const asking = this.revoking.get(key);
    const timer = asking?.get(holder);
    if (timer === undefined) return;
    clearTimeout(timer);
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
