// Where pins learned at run time live: the digest each endpoint last listed for each item
// (what a call is checked against) and the first definitions a trust-on-first-use endpoint
// showed. In Redis when configured, so every replica refuses a call to a tool another
// replica saw change; else in this process. Reads that cannot be answered throw: the caller
// fails closed.
import { SharedRedis, type RedisClient } from '../config/redis-client.js';
import type { RedisConnectionConfig } from '../config/redis-schema.js';
import type { PinKind } from './definition.js';
import type { Pin } from './pins-file.js';

export interface Seen {
  kind: PinKind;
  name: string;
  sha256: string;
}

export interface FirstSeen extends Seen {
  definition: Readonly<Record<string, unknown>>;
}

export interface PinLookup {
  /** The digest this endpoint last listed for the item; undefined when never listed. */
  seen: string | undefined;
  /** The trust-on-first-use pin, when asked for and recorded. */
  firstSeen: Pin | undefined;
}

export interface PinState {
  readonly shared: boolean;
  /** Every trust-on-first-use pin of an endpoint. */
  firstSeen(endpoint: string): Promise<Map<string, Pin>>;
  /** Records what a list showed: the digests seen, and first-seen pins (kept when one exists). */
  record(endpoint: string, seen: readonly Seen[], first: readonly FirstSeen[]): Promise<void>;
  lookup(endpoint: string, kind: PinKind, name: string, withFirstSeen: boolean): Promise<PinLookup>;
  close(): Promise<void>;
}

export const pinKey = (kind: PinKind, name: string): string => `${kind}\0${name}`;

interface EndpointMaps {
  seen: Map<string, string>;
  first: Map<string, Pin>;
}

/** This process's memory: bounded by what the upstream servers list. */
export class LocalPinState implements PinState {
  readonly shared = false;
  private readonly endpoints = new Map<string, EndpointMaps>();

  private of(endpoint: string): EndpointMaps {
    let m = this.endpoints.get(endpoint);
    if (!m) this.endpoints.set(endpoint, (m = { seen: new Map(), first: new Map() }));
    return m;
  }

  async firstSeen(endpoint: string): Promise<Map<string, Pin>> {
    return new Map(this.of(endpoint).first);
  }

  async record(endpoint: string, seen: readonly Seen[], first: readonly FirstSeen[]): Promise<void> {
    const m = this.of(endpoint);
    for (const s of seen) m.seen.set(pinKey(s.kind, s.name), s.sha256);
    for (const f of first) {
      const k = pinKey(f.kind, f.name);
      if (!m.first.has(k)) m.first.set(k, Object.freeze({ sha256: f.sha256, definition: f.definition }));
    }
  }

  async lookup(endpoint: string, kind: PinKind, name: string, withFirstSeen: boolean): Promise<PinLookup> {
    const m = this.endpoints.get(endpoint);
    const k = pinKey(kind, name);
    return { seen: m?.seen.get(k), firstSeen: withFirstSeen ? m?.first.get(k) : undefined };
  }

  async close(): Promise<void> {}
}

export type RedisPinStateOptions = Pick<
  RedisConnectionConfig,
  'url' | 'cluster' | 'nodes' | 'keyPrefix' | 'commandTimeoutMs'
>;

/**
 * Two hashes per endpoint: `<prefix>:pins:seen:<endpoint>` (item → digest last listed) and
 * `<prefix>:pins:first:<endpoint>` (item → the first-seen pin as JSON, written with HSETNX so
 * the first replica to see an item pins it for all). One list's record writes both in one
 * transaction, so in a Redis Cluster the endpoint is a hash tag (`…:seen:{<endpoint>}`) and
 * both live in one slot.
 */
export class RedisPinState implements PinState {
  readonly shared = true;
  private readonly redis: SharedRedis;
  private readonly client: RedisClient;

  constructor(private readonly opts: RedisPinStateOptions) {
    // Failures surface on the commands (and fail closed there).
    this.redis = new SharedRedis(opts, { feature: 'pins' });
    this.client = this.redis.client;
  }

  private seenKey(endpoint: string): string {
    return `${this.opts.keyPrefix}:pins:seen:${this.redis.tag(endpoint)}`;
  }

  private firstKey(endpoint: string): string {
    return `${this.opts.keyPrefix}:pins:first:${this.redis.tag(endpoint)}`;
  }

  /** Resolves once connected (tests, start-up); never needed for correctness. */
  async ready(): Promise<void> {
    while (!(await this.redis.connected(60_000))) {
      // keep waiting: the caller asked to
    }
  }

  async firstSeen(endpoint: string): Promise<Map<string, Pin>> {
    const all = await this.client.hgetall(this.firstKey(endpoint));
    const out = new Map<string, Pin>();
    for (const [k, v] of Object.entries(all)) {
      const pin = readPin(v);
      if (pin) out.set(k, pin);
    }
    return out;
  }

  async record(endpoint: string, seen: readonly Seen[], first: readonly FirstSeen[]): Promise<void> {
    if (seen.length === 0 && first.length === 0) return;
    const m = this.client.multi();
    if (seen.length > 0) {
      const fields: string[] = [];
      for (const s of seen) fields.push(pinKey(s.kind, s.name), s.sha256);
      m.hset(this.seenKey(endpoint), ...fields);
    }
    for (const f of first) {
      m.hsetnx(
        this.firstKey(endpoint),
        pinKey(f.kind, f.name),
        JSON.stringify({ sha256: f.sha256, definition: f.definition }),
      );
    }
    const results = await m.exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw failed?.[0] ?? new Error('Redis did not run the pin update');
  }

  async lookup(endpoint: string, kind: PinKind, name: string, withFirstSeen: boolean): Promise<PinLookup> {
    const k = pinKey(kind, name);
    if (!withFirstSeen)
      return { seen: (await this.client.hget(this.seenKey(endpoint), k)) ?? undefined, firstSeen: undefined };
    const [seen, first] = await Promise.all([
      this.client.hget(this.seenKey(endpoint), k),
      this.client.hget(this.firstKey(endpoint), k),
    ]);
    return { seen: seen ?? undefined, firstSeen: first ? readPin(first) : undefined };
  }

  close(): Promise<void> {
    return this.redis.close();
  }
}

function readPin(v: string): Pin | undefined {
  try {
    const o = JSON.parse(v) as { sha256?: unknown; definition?: unknown };
    if (typeof o.sha256 !== 'string' || typeof o.definition !== 'object' || o.definition === null) return undefined;
    return Object.freeze({ sha256: o.sha256, definition: o.definition as Record<string, unknown> });
  } catch {
    return undefined;
  }
}
