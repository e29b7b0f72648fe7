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
  /** A re-approved definition, when asked for and recorded. */
  repin?: Repin | undefined;
}

/** A changed (or new) definition an approver re-approved on the approval page: it replaces the pin it was reviewed against. */
export interface Repin extends Pin {
  /** The digest of the pin it replaces (the file's or the first-seen one); undefined: the item had none. */
  readonly replaces?: string;
  readonly approver: string;
  /** Epoch ms. */
  readonly approvedAt: number;
}

/** A drifted definition waiting for (or past) review: what a list showed against the pin in force. */
export interface Review {
  /** 32 hex digits: of (endpoint, kind, name, listed digest), so the same change is one review. */
  id: string;
  endpoint: string;
  kind: PinKind;
  name: string;
  /** The digest listed, and the pinned members as listed. */
  listed: string;
  definition: Readonly<Record<string, unknown>>;
  /** The pin in force when it was listed, and its definition when the pin holds one. */
  pinned?: string;
  pinnedDefinition?: Readonly<Record<string, unknown>>;
  /** Epoch ms. */
  requestedAt: number;
}

export interface ReviewDecision {
  state: 'granted' | 'rejected';
  approver: string;
  decidedAt: number;
}

export interface StoredReview {
  review: Review;
  decision?: ReviewDecision;
}

/** How long a review and its decision are kept. */
export const REVIEW_KEEP_MS = 7 * 24 * 3600_000;

export interface PinState {
  readonly shared: boolean;
  /** Every trust-on-first-use pin of an endpoint. */
  firstSeen(endpoint: string): Promise<Map<string, Pin>>;
  /** Records what a list showed: the digests seen, and first-seen pins (kept when one exists). */
  record(endpoint: string, seen: readonly Seen[], first: readonly FirstSeen[]): Promise<void>;
  lookup(
    endpoint: string,
    kind: PinKind,
    name: string,
    withFirstSeen: boolean,
    withRepin?: boolean,
  ): Promise<PinLookup>;
  /** Every re-approved definition of an endpoint (item key → repin). */
  repins(endpoint: string): Promise<ReadonlyMap<string, Repin>>;
  /** Stores a review unless one with its id exists; true when it is new. */
  requestReview(review: Review): Promise<boolean>;
  review(id: string): Promise<StoredReview | undefined>;
  /** pending → granted/rejected, once (false otherwise); a grant re-pins the listed definition. */
  decideReview(id: string, decision: ReviewDecision): Promise<boolean>;
  close(): Promise<void>;
}

/** The repin that a review's grant makes. */
export function repinOf(review: Review, decision: ReviewDecision): Repin {
  return Object.freeze({
    sha256: review.listed,
    definition: review.definition,
    ...(review.pinned === undefined ? {} : { replaces: review.pinned }),
    approver: decision.approver,
    approvedAt: decision.decidedAt,
  });
}

export const pinKey = (kind: PinKind, name: string): string => `${kind}\0${name}`;

interface EndpointMaps {
  seen: Map<string, string>;
  first: Map<string, Pin>;
  repins: Map<string, Repin>;
}

/** This process's memory: bounded by what the upstream servers list. */
export class LocalPinState implements PinState {
  readonly shared = false;
  private readonly endpoints = new Map<string, EndpointMaps>();

  private of(endpoint: string): EndpointMaps {
    let m = this.endpoints.get(endpoint);
    if (!m) this.endpoints.set(endpoint, (m = { seen: new Map(), first: new Map(), repins: new Map() }));
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

  async lookup(
    endpoint: string,
    kind: PinKind,
    name: string,
    withFirstSeen: boolean,
    withRepin = false,
  ): Promise<PinLookup> {
    const m = this.endpoints.get(endpoint);
    const k = pinKey(kind, name);
    return {
      seen: m?.seen.get(k),
      firstSeen: withFirstSeen ? m?.first.get(k) : undefined,
      repin: withRepin ? m?.repins.get(k) : undefined,
    };
  }

  private readonly reviews = new Map<string, { stored: StoredReview; dropAt: number }>();

  async repins(endpoint: string): Promise<ReadonlyMap<string, Repin>> {
    return this.endpoints.get(endpoint)?.repins ?? new Map();
  }

  async requestReview(review: Review): Promise<boolean> {
    if (this.reviews.has(review.id)) return false;
    const now = Date.now();
    for (const [id, r] of this.reviews) if (r.dropAt <= now) this.reviews.delete(id);
    this.reviews.set(review.id, { stored: { review: Object.freeze(review) }, dropAt: now + REVIEW_KEEP_MS });
    return true;
  }

  async review(id: string): Promise<StoredReview | undefined> {
    const r = this.reviews.get(id);
    return r === undefined ? undefined : { ...r.stored };
  }

  async decideReview(id: string, decision: ReviewDecision): Promise<boolean> {
    const r = this.reviews.get(id);
    if (r === undefined || r.stored.decision !== undefined) return false;
    r.stored.decision = Object.freeze({ ...decision });
    if (decision.state === 'granted') {
      const { review } = r.stored;
      this.of(review.endpoint).repins.set(pinKey(review.kind, review.name), repinOf(review, decision));
    }
    return true;
  }

  async close(): Promise<void> {}
}

// KEYS: review state, repins hash. ARGV: decision JSON, state, repin field, repin JSON, keep ms.
const DECIDE_REVIEW = `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'decision') then return 0 end
redis.call('HSET', KEYS[1], 'decision', ARGV[1])
if ARGV[2] == 'granted' and KEYS[2] then redis.call('HSET', KEYS[2], ARGV[3], ARGV[4]) end
return 1`;

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

  async lookup(
    endpoint: string,
    kind: PinKind,
    name: string,
    withFirstSeen: boolean,
    withRepin = false,
  ): Promise<PinLookup> {
    const k = pinKey(kind, name);
    if (!withFirstSeen && !withRepin)
      return { seen: (await this.client.hget(this.seenKey(endpoint), k)) ?? undefined, firstSeen: undefined };
    // One round trip: ioredis pipelines commands sent together.
    const [seen, first, repin] = await Promise.all([
      this.client.hget(this.seenKey(endpoint), k),
      withFirstSeen ? this.client.hget(this.firstKey(endpoint), k) : null,
      withRepin ? this.client.hget(this.repinKey(endpoint), k) : null,
    ]);
    return {
      seen: seen ?? undefined,
      firstSeen: first ? readPin(first) : undefined,
      repin: repin ? readRepin(repin) : undefined,
    };
  }

  private repinKey(endpoint: string): string {
    return `${this.opts.keyPrefix}:pins:repin:${this.redis.tag(endpoint)}`;
  }

  private reviewKey(id: string): string {
    return `${this.opts.keyPrefix}:pins:review:${id}`;
  }

  async repins(endpoint: string): Promise<ReadonlyMap<string, Repin>> {
    const all = await this.client.hgetall(this.repinKey(endpoint));
    const out = new Map<string, Repin>();
    for (const [k, v] of Object.entries(all)) {
      const r = readRepin(v);
      if (r) out.set(k, r);
    }
    return out;
  }

  /** A hash per review: `review` (JSON, written once) and `decision` (JSON, written once). */
  async requestReview(review: Review): Promise<boolean> {
    const key = this.reviewKey(review.id);
    const results = await this.client
      .multi()
      .hsetnx(key, 'review', JSON.stringify(review))
      .pexpire(key, REVIEW_KEEP_MS, 'NX')
      .exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw failed?.[0] ?? new Error('Redis did not store the review');
    return results[0]![1] === 1;
  }

  async review(id: string): Promise<StoredReview | undefined> {
    const [review, decision] = await this.client.hmget(this.reviewKey(id), 'review', 'decision');
    if (review == null) return undefined;
    const out: StoredReview = { review: JSON.parse(review) as Review };
    if (decision != null) out.decision = JSON.parse(decision) as ReviewDecision;
    return out;
  }

  async decideReview(id: string, decision: ReviewDecision): Promise<boolean> {
    const stored = await this.review(id);
    if (stored === undefined) return false;
    const { review } = stored;
    const repin = JSON.stringify(repinOf(review, decision));
    const field = pinKey(review.kind, review.name);
    if (!this.redis.cluster) {
      // One server: the decision and the re-pin are written in one step.
      const done = await this.client.eval(
        DECIDE_REVIEW,
        2,
        this.reviewKey(id),
        this.repinKey(review.endpoint),
        JSON.stringify(decision),
        decision.state,
        field,
        repin,
      );
      return done === 1;
    }
    // A cluster: the review (by id) and the endpoint's re-pins live in different slots. The
    // decision is taken once first; a grant's re-pin follows. Should that second write fail, the
    // decision stands and the tool stays hidden (fail-closed) until the review expires.
    // (The script with the review's key alone and a state other than granted writes the decision only.)
    const done = await this.client.eval(DECIDE_REVIEW, 1, this.reviewKey(id), JSON.stringify(decision), 'decided');
    if (done === 1 && decision.state === 'granted')
      await this.client.hset(this.repinKey(review.endpoint), field, repin);
    return done === 1;
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

function readRepin(v: string): Repin | undefined {
  const pin = readPin(v);
  if (pin === undefined) return undefined;
  const o = JSON.parse(v) as { replaces?: unknown; approver?: unknown; approvedAt?: unknown };
  return Object.freeze({
    ...pin,
    ...(typeof o.replaces === 'string' ? { replaces: o.replaces } : {}),
    approver: typeof o.approver === 'string' ? o.approver : '?',
    approvedAt: typeof o.approvedAt === 'number' ? o.approvedAt : 0,
  });
}
