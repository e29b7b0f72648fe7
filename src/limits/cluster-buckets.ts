// Token buckets shared by the workers of `serve --workers N`: the primary holds them
// (MemoryBuckets) and decides each take — all of a request's takes in one message, so a
// request's buckets are taken together or not at all, exactly as in one process. A worker
// that gets no answer within its timeout decides on its own last-resort buckets and says so.
import type { Logger } from '../log/logger.js';
import { MemoryBuckets, type BucketStore, type Take, type Taken } from './token-bucket.js';

export type BucketMessage =
  /** Worker → primary: take these, all or none. */
  | { type: 'mcp-authz:bucket-take'; id: number; takes: Take[] }
  /** Primary → worker: the answer to take `id`. */
  | { type: 'mcp-authz:bucket-taken'; id: number; taken: Taken };

export function isBucketMessage(o: Record<string, unknown>): boolean {
  switch (o.type) {
    case 'mcp-authz:bucket-take':
      return typeof o.id === 'number' && Array.isArray(o.takes) && o.takes.every(isTake);
    case 'mcp-authz:bucket-taken':
      return (
        typeof o.id === 'number' &&
        typeof o.taken === 'object' &&
        o.taken !== null &&
        typeof (o.taken as { ok?: unknown }).ok === 'boolean'
      );
    default:
      return false;
  }
}

function isTake(t: unknown): boolean {
  if (typeof t !== 'object' || t === null) return false;
  const { key, n, shape } = t as Partial<Take>;
  return (
    typeof key === 'string' &&
    typeof n === 'number' &&
    n > 0 &&
    typeof shape?.intervalMs === 'number' &&
    shape.intervalMs > 0 &&
    typeof shape.capacity === 'number'
  );
}

/** A worker's buckets: each take asks the primary. */
export class ClusterBuckets implements BucketStore {
  private readonly pending = new Map<number, { resolve(t: Taken): void; timer: NodeJS.Timeout; takes: Take[] }>();
  private nextId = 1;
  private lastWarned = 0;
  private readonly lastResort = new MemoryBuckets();

  constructor(
    private readonly send: (m: BucketMessage) => boolean | void,
    private readonly logger: Logger,
    private readonly timeoutMs = 1000,
  ) {}

  take(takes: readonly Take[]): Promise<Taken> {
    const id = this.nextId++;
    return new Promise<Taken>((resolve) => {
      const timer = setTimeout(() => this.giveUp(id), this.timeoutMs);
      this.pending.set(id, { resolve, timer, takes: [...takes] });
      try {
        this.send({ type: 'mcp-authz:bucket-take', id, takes: [...takes] });
      } catch {
        this.giveUp(id);
      }
    });
  }

  /** The primary's answer. */
  heard(m: BucketMessage): void {
    if (m.type !== 'mcp-authz:bucket-taken') return;
    const p = this.pending.get(m.id);
    if (p === undefined) return; // answered by the last resort already
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    p.resolve(m.taken);
  }

  private giveUp(id: number): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    const now = Date.now();
    if (now - this.lastWarned >= 10_000) {
      this.lastWarned = now;
      this.logger.warn(
        { limiter: 'buckets' },
        'the cluster primary did not answer a rate or quota take: this worker limits on its own counters',
      );
    }
    p.resolve({ ...this.lastResort.take(p.takes), local: 'cluster' });
  }
}

/** The primary's side: one set of buckets for every worker. */
export class BucketHost {
  constructor(
    private readonly reply: (workerId: number, m: BucketMessage) => void,
    private readonly buckets: BucketStore = new MemoryBuckets(),
  ) {}

  heard(workerId: number, m: BucketMessage): void {
    if (m.type !== 'mcp-authz:bucket-take') return;
    const taken = this.buckets.take(m.takes);
    if (taken instanceof Promise)
      void taken.then((t) => this.reply(workerId, { type: 'mcp-authz:bucket-taken', id: m.id, taken: t }));
    else this.reply(workerId, { type: 'mcp-authz:bucket-taken', id: m.id, taken });
  }
}
