// The clients locked out right now, kept in every process so that the check before
// authentication is a Map lookup instead of a question to the store (an IPC round trip to
// the cluster primary, or a Redis call, on every Check). The counting stays in the store:
// a failure is counted there once, atomically, and the process whose failure reaches the
// limit records the lockout here and publishes it; the cluster primary hands it to every
// other worker (src/server/cluster-primary.ts, cluster-worker.ts).
export interface LockoutMessage {
  type: 'mcp-authz:lockout';
  key: string;
  /** Epoch milliseconds: the end of the window the lockout lasts for. */
  until: number;
}

export class LockoutTable {
  private readonly until = new Map<string, number>();
  /** Until when a lockout this table had to drop (it was full) may still be running. */
  private droppedUntil = 0;
  private synced: boolean;

  /**
   * @param publish tells sibling processes about a lockout recorded here.
   * @param maxEntries a bound on memory: clients locked out at once beyond it are dropped,
   *   oldest first, and `incomplete` says so until their windows end.
   * @param awaitingSync the table starts without the lockouts already running elsewhere (a
   *   worker that replaces one): `incomplete` until `markSynced` is called.
   */
  constructor(
    private readonly publish?: (m: LockoutMessage) => void,
    private readonly maxEntries = 100_000,
    awaitingSync = false,
  ) {
    this.synced = !awaitingSync;
  }

  /** Milliseconds left on the client's lockout; 0 when it is not locked out. */
  remainingMs(key: string, now = Date.now()): number {
    const until = this.until.get(key);
    if (until === undefined) return 0;
    if (until > now) return until - now;
    this.until.delete(key);
    return 0;
  }

  /**
   * True while a dropped lockout may still be running, or before the running lockouts have
   * arrived: then absence from this table proves nothing and the caller asks the store.
   */
  incomplete(now = Date.now()): boolean {
    return !this.synced || this.droppedUntil > now;
  }

  /** The lockouts already running elsewhere have all been recorded here. */
  markSynced(): void {
    this.synced = true;
  }

  /**
   * Records a lockout found here (published to siblings) or received from one (`remote`).
   * False when it adds nothing (ended, or known until as late).
   */
  lock(key: string, until: number, remote = false, now = Date.now()): boolean {
    if (until <= now) return false;
    const known = this.until.get(key);
    if (known !== undefined && known >= until) return false;
    this.until.delete(key); // re-inserted last: the Map's order is the order of expiry, roughly
    this.until.set(key, until);
    if (this.until.size > this.maxEntries) this.shrink(now);
    if (!remote) this.publish?.({ type: 'mcp-authz:lockout', key, until });
    return true;
  }

  /** Every running lockout, for a process that starts later (a replaced worker). */
  snapshot(now = Date.now()): LockoutMessage[] {
    const out: LockoutMessage[] = [];
    for (const [key, until] of this.until) if (until > now) out.push({ type: 'mcp-authz:lockout', key, until });
    return out;
  }

  get size(): number {
    return this.until.size;
  }

  /** Drops what has ended, then the oldest, down to 90% of the bound (so this runs rarely). */
  private shrink(now: number): void {
    for (const [key, until] of this.until) if (until <= now) this.until.delete(key);
    const target = Math.floor(this.maxEntries * 0.9);
    for (const [key, until] of this.until) {
      if (this.until.size <= target) break;
      this.until.delete(key);
      this.droppedUntil = Math.max(this.droppedUntil, until);
    }
  }
}
