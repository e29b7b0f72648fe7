// Where pending and decided approvals live: in Redis when configured (every replica sees the
// same approvals, and a grant's uses are counted once across them), else in the process.
// Records carry their own expiry times and the service compares them with its clock; Redis TTLs
// only collect what is left. A Redis that does not answer is an error the caller turns into a
// deny (approval_unavailable): a held call never passes because the store is away.
import type { SharedRedis } from '../config/redis-client.js';

export type ApprovalState = 'pending' | 'granted' | 'rejected';

/** What was asked, fixed when the approval is requested. */
export interface ApprovalRequest {
  id: string;
  digest: string;
  principal: string;
  /** The caller's user id, when authentication named one (shown to the approver). */
  userId?: string;
  endpoint: string;
  tool: string;
  /** Canonical JSON of the arguments (masked only when shown). */
  arguments: string;
  reason: string;
  group: string;
  rule: string;
  uses: number;
  windowSeconds: number;
  policyRevision: string;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms: a pending approval not decided by then is expired. */
  expiresAt: number;
}

/** What the approver decided. */
export interface ApprovalDecision {
  state: 'granted' | 'rejected';
  approver: string;
  decidedAt: number;
  /** Granted: the grant is usable until then (epoch ms). */
  validUntil: number;
  /** Granted: the receipt (JWS) signed when the approver decided, carried by every call the grant lets through. */
  receipt?: string;
}

export interface StoredApproval {
  request: ApprovalRequest;
  state: ApprovalState;
  decision?: ApprovalDecision;
  /** Granted: calls the grant still lets through. */
  usesLeft?: number;
}

export class ApprovalStoreUnavailable extends Error {}

/**
 * A store that holds its records in this process answers the Check path's lookup and use of a
 * grant at once, with no promise to wait for (a retried call that was granted is the common case).
 */
export interface InstantGrants {
  /** byDigest's record, the store's own: read it at once, never keep or change it. */
  peek(digest: string): Readonly<StoredApproval> | undefined;
  /** consume, answered at once. */
  take(id: string): boolean;
}

export interface ApprovalStore {
  readonly kind: 'redis' | 'local';
  /** Stores a new pending approval and makes it the one for its digest. */
  create(request: ApprovalRequest, keepMs: number): Promise<void>;
  /** The latest approval asked for this digest. */
  byDigest(digest: string): Promise<StoredApproval | undefined>;
  byId(id: string): Promise<StoredApproval | undefined>;
  /** pending → granted/rejected, once; false when it was not pending any more. */
  decide(id: string, decision: ApprovalDecision, uses: number, keepMs: number): Promise<boolean>;
  /** Takes one use of a grant; false when none is left. */
  consume(id: string): Promise<boolean>;
  /** Present when the store can answer without waiting (in the process). */
  readonly instant?: InstantGrants;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- in the process

export class LocalApprovalStore implements ApprovalStore {
  readonly kind = 'local';
  private readonly byIdMap = new Map<string, { stored: StoredApproval; dropAt: number }>();
  private readonly digests = new Map<string, string>();
  private sweepAt = 0;
  readonly instant: InstantGrants = {
    peek: (digest) => this.peek(digest),
    take: (id) => this.take(id),
  };

  constructor(private readonly now: () => number = Date.now) {}

  async create(request: ApprovalRequest, keepMs: number): Promise<void> {
    this.sweep();
    // Frozen copies: byId hands out shallow copies that share them.
    const kept = Object.freeze({ ...request });
    this.byIdMap.set(request.id, { stored: { request: kept, state: 'pending' }, dropAt: this.now() + keepMs });
    this.digests.set(request.digest, request.id);
  }

  async byDigest(digest: string): Promise<StoredApproval | undefined> {
    const stored = this.peek(digest);
    return stored === undefined ? undefined : { ...stored };
  }

  async byId(id: string): Promise<StoredApproval | undefined> {
    const stored = this.live(id);
    return stored === undefined ? undefined : { ...stored };
  }

  async decide(id: string, decision: ApprovalDecision, uses: number, keepMs: number): Promise<boolean> {
    const e = this.byIdMap.get(id);
    if (e === undefined || e.stored.state !== 'pending') return false;
    e.stored.state = decision.state;
    e.stored.decision = Object.freeze({ ...decision });
    if (decision.state === 'granted') e.stored.usesLeft = uses;
    e.dropAt = Math.max(e.dropAt, this.now() + keepMs);
    return true;
  }

  async consume(id: string): Promise<boolean> {
    return this.take(id);
  }

  /** The record itself (its request and decision are frozen; state and usesLeft change). */
  private peek(digest: string): StoredApproval | undefined {
    const id = this.digests.get(digest);
    return id === undefined ? undefined : this.live(id);
  }

  private live(id: string): StoredApproval | undefined {
    const e = this.byIdMap.get(id);
    return e === undefined || e.dropAt <= this.now() ? undefined : e.stored;
  }

  private take(id: string): boolean {
    const e = this.byIdMap.get(id);
    if (e === undefined || e.stored.state !== 'granted' || (e.stored.usesLeft ?? 0) <= 0) return false;
    e.stored.usesLeft!--;
    return true;
  }

  async close(): Promise<void> {}

  /** Drops what has expired, at most once a minute. */
  private sweep(): void {
    const now = this.now();
    if (now < this.sweepAt) return;
    this.sweepAt = now + 60_000;
    for (const [id, e] of this.byIdMap) {
      if (e.dropAt > now) continue;
      this.byIdMap.delete(id);
      if (this.digests.get(e.stored.request.digest) === id) this.digests.delete(e.stored.request.digest);
    }
  }
}

// ---------------------------------------------------------------- Redis

// KEYS: state, decision, uses. ARGV: new state, decision JSON, uses, keep ms.
const DECIDE = `
if redis.call('GET', KEYS[1]) ~= 'pending' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
if ARGV[1] == 'granted' then redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4]) end
return 1`;

// KEYS: state, uses.
const CONSUME = `
if redis.call('GET', KEYS[1]) ~= 'granted' then return 0 end
local left = tonumber(redis.call('GET', KEYS[2]) or '0')
if left <= 0 then return 0 end
redis.call('DECR', KEYS[2])
return 1`;

/**
 * Keys: `<prefix>:approval:{request,state,decision,uses}:<id>`, read and changed together (MGET,
 * the scripts), so in a Redis Cluster the id is a hash tag (`…:state:{<id>}`) and they share a
 * slot; `<prefix>:approval:digest:<digest>` → the id, on its own.
 */
export class RedisApprovalStore implements ApprovalStore {
  readonly kind = 'redis';
  private readonly client: SharedRedis['client'];

  constructor(
    private readonly redis: SharedRedis,
    private readonly prefix: string,
  ) {
    this.client = redis.client;
  }

  private key(kind: string, id: string): string {
    return `${this.prefix}:approval:${kind}:${this.redis.tag(id)}`;
  }

  private digestKey(digest: string): string {
    return `${this.prefix}:approval:digest:${digest}`;
  }

  async create(request: ApprovalRequest, keepMs: number): Promise<void> {
    await this.run(() =>
      this.client
        .multi()
        .set(this.key('request', request.id), JSON.stringify(request), 'PX', keepMs)
        .set(this.key('state', request.id), 'pending', 'PX', keepMs)
        .exec()
        .then(execOk),
    );
    // Then the digest's pointer (a slot of its own in a cluster): it never names a missing record.
    await this.run(() => this.client.set(this.digestKey(request.digest), request.id, 'PX', keepMs));
  }

  async byDigest(digest: string): Promise<StoredApproval | undefined> {
    const id = await this.run(() => this.client.get(this.digestKey(digest)));
    return id === null ? undefined : this.byId(id);
  }

  async byId(id: string): Promise<StoredApproval | undefined> {
    const [request, state, decision, uses] = await this.run(() =>
      this.client.mget(this.key('request', id), this.key('state', id), this.key('decision', id), this.key('uses', id)),
    );
    if (request == null || state == null) return undefined;
    const stored: StoredApproval = { request: JSON.parse(request) as ApprovalRequest, state: state as ApprovalState };
    if (decision != null) stored.decision = JSON.parse(decision) as ApprovalDecision;
    if (uses != null) stored.usesLeft = Number(uses);
    return stored;
  }

  async decide(id: string, decision: ApprovalDecision, uses: number, keepMs: number): Promise<boolean> {
    const done = await this.run(() =>
      this.client.eval(
        DECIDE,
        3,
        this.key('state', id),
        this.key('decision', id),
        this.key('uses', id),
        decision.state,
        JSON.stringify(decision),
        String(uses),
        String(keepMs),
      ),
    );
    if (done === 1) {
      // The request record lives as long as its decision.
      await this.run(() => this.client.pexpire(this.key('request', id), keepMs));
      return true;
    }
    return false;
  }

  async consume(id: string): Promise<boolean> {
    const done = await this.run(() => this.client.eval(CONSUME, 2, this.key('state', id), this.key('uses', id)));
    return done === 1;
  }

  close(): Promise<void> {
    return this.redis.close();
  }

  private async run<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw new ApprovalStoreUnavailable(`the approval store (Redis) did not answer: ${(err as Error).message}`);
    }
  }
}

function execOk(results: [Error | null, unknown][] | null): void {
  if (results === null) throw new Error('transaction aborted');
  for (const [err] of results) if (err) throw err;
}
