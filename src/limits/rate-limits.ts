// The limits phase: the failed-authentication lockout (per client address and endpoint),
// the per-client request rate (per endpoint, keyed by key id, token issuer+subject, SPIFFE ID
// or client address), and per-tool quotas (per endpoint, rule and the same principal key,
// counted after the policy allowed). The lockout counts on rate-limiter-flexible limiters
// (limiter-store.ts); the rate and the quotas are token buckets (token-bucket.ts) taken all
// or nothing, in the same stores.
import { createHash } from 'node:crypto';
import type { CheckContext } from '../decision/context.js';
import type { Limiter } from '../decision/phases.js';
import { quotaRulesFor, type Config } from '../config/schema.js';
import { deny, type Deny } from '../contracts/outcome.js';
import type { Endpoint } from '../endpoints/registry.js';
import type { LimiterName, ServiceEvents } from '../metrics/hooks.js';
import { LocalFailureCounter, type Counted, type FailureCounter } from './failure-counter.js';
import { callTarget, compileGrant, type GrantMatcher } from './grant-match.js';
import { createLimiter, StoreFailureCounter, type StoreOptions } from './limiter-store.js';
import { LockoutTable } from './lockouts.js';
import { RedisBuckets } from './redis-buckets.js';
import {
  bucketShape,
  MemoryBuckets,
  type BucketShape,
  type BucketStore,
  type Take,
  type Taken,
} from './token-bucket.js';

const LOCKOUT_DESCRIPTION = 'Too many failed authentication attempts. Please try again later.';
const RATE_DESCRIPTION = 'Too many requests from this client. Retry after the number of seconds in Retry-After.';
const UNKNOWN_ENDPOINT = '_unknown';

export type { RateSpec } from './token-bucket.js';

/** One per-tool quota rule of one endpoint, compiled. */
interface Quota {
  endpoint: string;
  name: string;
  matches: GrantMatcher;
  /** The bucket key's namespace: one bucket per rule, endpoint and principal. */
  prefix: string;
  shape: BucketShape;
}

/** The per-client rate of one endpoint. */
interface Rate {
  prefix: string;
  shape: BucketShape;
}

export class RateLimits implements Limiter {
  private readonly failed: FailureCounter | undefined;
  private readonly perEndpoint = new Map<string, Rate>();
  private readonly quotas = new Map<string, readonly Quota[]>();
  private readonly buckets: BucketStore;
  private readonly lastResort = new MemoryBuckets();
  private readonly logger: StoreOptions['logger'];
  /** Shared by other instances (Redis): a lockout may have been counted elsewhere, so ask it. */
  private readonly storeIsShared: boolean;

  /**
   * @param lockouts the running lockouts this process knows of; in a worker, one that
   *   publishes to and hears from its siblings.
   * @param failures where failed authentications are counted, when not in Redis or this
   *   process (a cluster worker's counter, which asks the primary).
   */
  constructor(
    config: Pick<Config, 'rateLimit'>,
    endpoints: readonly Endpoint[],
    store: StoreOptions,
    private readonly lockouts: LockoutTable = new LockoutTable(),
    private readonly events: ServiceEvents = {},
    failures?: (max: number, windowSeconds: number, events: ServiceEvents) => FailureCounter,
  ) {
    const { failedAuth, perClient } = config.rateLimit;
    this.storeIsShared = store.redis !== undefined;
    this.logger = store.logger;
    const local = store.buckets ?? new MemoryBuckets();
    this.buckets = store.redis
      ? new RedisBuckets(store.redis.store, store.redis.keyPrefix, local, store.logger)
      : local;
    if (failedAuth.maxAttempts > 0) {
      const { maxAttempts: max, windowSeconds } = failedAuth;
      this.failed = store.redis
        ? new StoreFailureCounter(
            createLimiter(
              { keyPrefix: 'failed-auth', points: max, durationSeconds: windowSeconds, limiter: 'failed_auth' },
              store,
            ),
            max,
          )
        : failures
          ? failures(max, windowSeconds, events)
          : store.local === 'cluster'
            ? new StoreFailureCounter(
                createLimiter(
                  { keyPrefix: 'failed-auth', points: max, durationSeconds: windowSeconds, limiter: 'failed_auth' },
                  store,
                ),
                max,
              )
            : new LocalFailureCounter(max, windowSeconds);
    }
    for (const e of endpoints) {
      const spec = e.rateLimit?.rps !== undefined ? { rps: e.rateLimit.rps, burst: e.rateLimit.burst ?? 0 } : perClient;
      if (spec.rps > 0) this.perEndpoint.set(e.name, { prefix: `rate:${e.name}`, shape: bucketShape(spec) });
      const rules = quotaRulesFor(e, config).map((r) => ({
        endpoint: e.name,
        name: r.name,
        matches: compileGrant(r.match),
        prefix: `quota:${e.name}:${r.name}`,
        shape: bucketShape(r),
      }));
      if (rules.length > 0) this.quotas.set(e.name, rules);
    }
  }

  /**
   * Answered from this process's lockout table: no store round trip on the way to an
   * allow. With Redis, lockouts counted by other instances are only in Redis, so it is
   * asked too.
   */
  beforeAuth(ctx: CheckContext): Promise<Deny | undefined> | Deny | undefined {
    if (!this.failed || !needsCredentials(ctx.endpoint)) return undefined;
    const key = failedAuthKey(ctx);
    const now = Date.now();
    const left = this.lockouts.remainingMs(key, now);
    if (left > 0) return lockout(left);
    if (!this.storeIsShared && !this.lockouts.incomplete(now)) return undefined;
    return this.failed.peek(key).then((res) => {
      if (!res || res.tally === 'under') return undefined;
      this.lockouts.lock(key, res.windowEnd, true);
      return lockout(res.windowEnd - Date.now());
    });
  }

  /** Counts the failure; a failure past the limit (concurrent attempts racing the lockout) is answered as the lockout. */
  authFailed(ctx: CheckContext): Deny | undefined | Promise<Deny | undefined> {
    if (!this.failed) return undefined;
    const key = failedAuthKey(ctx);
    const counted = this.failed.count(key);
    if (!(counted instanceof Promise)) return this.tallied(key, counted);
    return counted.then((c) => this.tallied(key, c));
  }

  private tallied(key: string, c: Counted): Deny | undefined {
    if (c.tally === 'under') return undefined;
    // The failure that reaches the limit is still answered 401; the lockout starts now.
    this.lockouts.lock(key, c.windowEnd);
    return c.tally === 'over' ? lockout(c.windowEnd - Date.now()) : undefined;
  }

  /**
   * Per-tool quotas, once the policy has allowed the request: every rule takes the calls it
   * names (a batch's calls together) from its bucket, all rules at once or none: the first
   * rule whose bucket lacks them answers 429, and no rule counts anything. Requests naming no
   * counted call cost no store round trip.
   */
  afterPolicy(ctx: CheckContext): Promise<Deny | undefined> | undefined {
    const rules = ctx.endpoint && this.quotas.get(ctx.endpoint.name);
    if (rules === undefined) return undefined;
    let counts: number[] | undefined;
    for (const call of ctx.mcp.calls) {
      const t = callTarget(call);
      if (t === undefined) continue;
      for (let i = 0; i < rules.length; i++) {
        if (!rules[i]!.matches(t.kind, t.target)) continue;
        counts ??= new Array<number>(rules.length).fill(0);
        counts[i]!++;
      }
    }
    return counts === undefined ? undefined : this.count(rateKey(ctx), rules, counts);
  }

  private async count(key: string, rules: readonly Quota[], counts: number[]): Promise<Deny | undefined> {
    const takes: Take[] = [];
    const counted: Quota[] = [];
    for (let i = 0; i < rules.length; i++) {
      const n = counts[i]!;
      if (n === 0) continue;
      takes.push({ key: `${rules[i]!.prefix}|${key}`, n, shape: rules[i]!.shape });
      counted.push(rules[i]!);
    }
    const taken = await this.take(takes, 'per_tool');
    if (!taken.ok) {
      const q = counted[taken.index]!;
      this.events.quota?.(q.endpoint, q.name, 'exceeded');
      return quotaExceeded(q.name, taken.retryMs);
    }
    for (const q of counted) this.events.quota?.(q.endpoint, q.name, 'allowed');
    return undefined;
  }

  async afterAuth(ctx: CheckContext): Promise<Deny | undefined> {
    const rate = ctx.endpoint && this.perEndpoint.get(ctx.endpoint.name);
    if (!rate) return undefined;
    const taken = await this.take([{ key: `${rate.prefix}|${rateKey(ctx)}`, n: 1, shape: rate.shape }], 'per_client');
    return taken.ok ? undefined : rateLimited(taken.retryMs);
  }

  /** The store's answer, counted when the sharing store left it to local buckets; if the store itself fails (not a refusal), this process's last-resort buckets answer. */
  private async take(takes: readonly Take[], limiter: LimiterName): Promise<Taken> {
    try {
      const taken = await this.buckets.take(takes);
      if (taken.local) this.events.limiterLocalAnswer?.(taken.local, limiter);
      return taken;
    } catch (err) {
      this.logger.warn(
        { err: { message: (err as Error)?.message } },
        'the rate and quota buckets failed: this process limits on its own counters',
      );
      return this.lastResort.take(takes);
    }
  }
}

/** Whether the endpoint takes any credential (a key, a token, a session cookie, an mTLS peer): only those can be locked out. */
function needsCredentials(e: Endpoint | undefined): boolean {
  return e === undefined || e.auth.apiKey || e.auth.oauth || e.auth.mtls || e.auth.jwtCookie !== undefined;
}

/** Per endpoint and client address: a client locked out of one endpoint can still use another. */
function failedAuthKey(ctx: CheckContext): string {
  return `${ctx.endpoint?.name ?? UNKNOWN_ENDPOINT}|${ctx.clientAddress}`;
}

/** Token and workload principals' rate keys, kept as long as their caches keep the principal. */
const digestKeys = new WeakMap<CheckContext['principal'], string>();

/** Who the request rate is counted for: never a raw credential. */
export function rateKey(ctx: CheckContext): string {
  const p = ctx.principal;
  if (p.method === 'api_key' && p.keyId !== undefined) return `key:${p.keyId}`;
  if (p.method === 'oauth' && p.issuer !== undefined && p.subject !== undefined)
    return digestKey(p, 'sub', p.issuer, p.subject);
  if (p.method === 'mtls' && p.spiffeId !== undefined) return digestKey(p, 'spiffe', p.spiffeId, '');
  return `addr:${ctx.clientAddress}`;
}

function digestKey(p: CheckContext['principal'], kind: string, a: string, b: string): string {
  let key = digestKeys.get(p);
  if (key === undefined) {
    // Issuers, subjects and SPIFFE IDs are not secret, but unbounded in length: a digest keeps keys small.
    key = `${kind}:${createHash('sha256').update(a).update('\n').update(b).digest('base64url').slice(0, 32)}`;
    digestKeys.set(p, key);
  }
  return key;
}

function retryAfter(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

function lockout(ms: number): Deny {
  const s = retryAfter(ms);
  return deny('too_many_requests', LOCKOUT_DESCRIPTION, {
    headers: [{ name: 'retry-after', value: s, append: false }],
    extra: { retry_after: Number(s) },
  });
}

function quotaExceeded(rule: string, ms: number): Deny {
  const s = retryAfter(ms);
  return deny(
    'quota_exceeded',
    `Quota "${rule}" exceeded: this client made more of these calls on this endpoint than the quota allows. Retry after the number of seconds in Retry-After.`,
    {
      headers: [{ name: 'retry-after', value: s, append: false }],
      extra: { retry_after: Number(s), quota: rule },
    },
  );
}

function rateLimited(ms: number): Deny {
  const s = retryAfter(ms);
  return deny('rate_limited', RATE_DESCRIPTION, {
    headers: [{ name: 'retry-after', value: s, append: false }],
    extra: { retry_after: Number(s) },
  });
}
