// Tokens kept per key until shortly before they expire, at most `max` of them, with one
// fetch in flight per key: concurrent Checks that miss the same key wait for the same
// answer. A failed fetch is not kept; the next Check tries again. Eviction is second-chance
// (CLOCK): the oldest entry goes unless it was used since it was last passed over, which
// keeps the recently used ones like LRU does while a hit only sets a flag (moving an entry
// in a Map on every hit costs a rehash now and then, on the Check path).

export interface CachedToken<V> {
  value: V;
  /** Epoch ms after which the entry is not used (the token's expiry minus the skew). */
  useUntilMs: number;
}

interface Entry<V> extends CachedToken<V> {
  used: boolean;
}

export class TokenCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly inFlight = new Map<string, Promise<CachedToken<V>>>();

  constructor(
    private readonly max: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The fresh value for `key`, or undefined. A hit marks the entry used. */
  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.useUntilMs <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    e.used = true;
    return e.value;
  }

  /**
   * The value from a fetch for `key`, sharing the one in flight when there is one (`joined`
   * true). The fetched value is kept when it stays usable past now.
   */
  fetch(key: string, load: () => Promise<CachedToken<V>>): { joined: boolean; value: Promise<V> } {
    const running = this.inFlight.get(key);
    if (running !== undefined) return { joined: true, value: running.then((e) => e.value) };
    const p = load().then(
      (e) => {
        this.inFlight.delete(key);
        if (e.useUntilMs > this.now()) this.put(key, e);
        return e;
      },
      (err: unknown) => {
        this.inFlight.delete(key);
        throw err;
      },
    );
    this.inFlight.set(key, p);
    return { joined: false, value: p.then((e) => e.value) };
  }

  get size(): number {
    return this.entries.size;
  }

  get fetching(): number {
    return this.inFlight.size;
  }

  clear(): void {
    this.entries.clear();
  }

  private put(key: string, e: CachedToken<V>): void {
    this.entries.delete(key);
    this.entries.set(key, { value: e.value, useUntilMs: e.useUntilMs, used: false });
    while (this.entries.size > this.max) {
      // Map order is insertion order: the first entry is the oldest.
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, Entry<V>];
      this.entries.delete(oldestKey);
      // Used since it was last passed over (or just fetched): a second chance, at the back.
      if (oldest.used || oldestKey === key) this.entries.set(oldestKey, { ...oldest, used: false });
    }
  }
}
