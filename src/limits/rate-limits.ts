// The limits phase: the failed-authentication lockout (per client address and endpoint),
// the per-client request rate (per endpoint, keyed by key id, token issuer+subject, SPIFFE ID
// or client address), and per-tool quotas (per endpoint, rule and the same principal key,
// counted after the policy allowed). All run on rate-limiter-flexible limiters from
// limiter-store.ts.
import { createHash } from 'node:crypto';
import { BurstyRateLimiter, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { CheckContext } from '../check/context.js';
import type { Limiter } from '../check/phases.js';
import { quotaRulesFor, type Config } from '../config/schema.js';
import { deny, type Deny } from '../contracts/outcome.js';
import type { Endpoint } from '../endpoints/registry.js';
import type { LimiterName, ServiceEvents } from '../metrics/hooks.js';
import { LocalFailureCounter, type Counted, type FailureCounter } from './failure-counter.js';
import { callTarget, compileGrant, type GrantMatcher } from './grant-match.js';
import { createLimiter, RateLimiterRes, StoreFailureCounter, type FlexLimiter, type StoreOptions } from './limiter-store.js';
import { LockoutTable } from './lockouts.js';

const LOCKOUT_DESCRIPTION = 'Too many failed authentication attempts. Please try again later.';
const RATE_DESCRIPTION = 'Too many requests from this client. Retry after the number of seconds in Retry-After.';
const UNKNOWN_ENDPOINT = '_unknown';

export interface RateSpec {
  rps: number;
  burst: number;
}

/**
 * rps/burst as two rate-limiter-flexible fixed windows: a sustained window allowing `rps`
 * per second (spread over the shortest window that makes it whole: 0.5 rps = 1 per 2 s),
 * and a burst window allowing `burst - rps` more per burst/rps seconds, the time a token
 * bucket of size `burst` takes to refill. So a client gets `burst` at once, then `rps`.
 */
export function windowsFor(spec: RateSpec): { sustained: { points: number; duration: number }; burst?: { points: number; duration: number } } {
  let duration = 1;
  while (duration < 3600 && Math.abs(spec.rps * duration - Math.round(spec.rps * duration)) > 1e-9) duration++;
  if (spec.rps * duration < 1) duration = Math.ceil(1 / spec.rps);
  const points = Math.max(1, Math.floor(spec.rps * duration + 1e-9));
  const extra = Math.max(0, spec.burst - points);
  if (extra === 0) return { sustained: { points, duration } };
  return { sustained: { points, duration }, burst: { points: extra, duration: Math.max(1, Math.ceil(spec.burst / spec.rps)) } };
}

/** One per-tool quota rule of one endpoint, compiled. */
interface Quota {
  endpoint: string;
  name: string;
  matches: GrantMatcher;
  limiter: FlexLimiter;
}

export class RateLimits implements Limiter {
  private readonly failed: FailureCounter | undefined;
  private readonly perEndpoint = new Map<string, FlexLimiter>();
  private readonly quotas = new Map<string, readonly Quota[]>();
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
    if (failedAuth.maxAttempts > 0) {
      const { maxAttempts: max, windowSeconds } = failedAuth;
      this.failed = store.redis
        ? new StoreFailureCounter(createLimiter({ keyPrefix: 'failed-auth', points: max, durationSeconds: windowSeconds, limiter: 'failed_auth' }, store), max)
        : failures
          ? failures(max, windowSeconds, events)
          : store.local === 'cluster'
            ? new StoreFailureCounter(createLimiter({ keyPrefix: 'failed-auth', points: max, durationSeconds: windowSeconds, limiter: 'failed_auth' }, store), max)
            : new LocalFailureCounter(max, windowSeconds);
    }
    for (const e of endpoints) {
      const spec = e.rateLimit?.rps !== undefined ? { rps: e.rateLimit.rps, burst: e.rateLimit.burst ?? 0 } : perClient;
      if (spec.rps > 0) this.perEndpoint.set(e.name, rateLimiter(`rate:${e.name}`, `burst:${e.name}`, 'per_client', spec, store));
      const rules = quotaRulesFor(e, config).map((r) => ({
        endpoint: e.name,
        name: r.name,
        matches: compileGrant(r.match),
        limiter: rateLimiter(`quota:${e.name}:${r.name}`, `quota-burst:${e.name}:${r.name}`, 'per_tool', r, store),
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
   * Per-tool quotas, once the policy has allowed the request: every rule counts the calls it
   * names (a batch's calls together), rule after rule; the first rule past its limit answers
   * 429 and the rules after it count nothing. Requests naming no counted call cost no store
   * round trip.
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
    for (let i = 0; i < rules.length; i++) {
      const n = counts[i]!;
      if (n === 0) continue;
      const q = rules[i]!;
      try {
        await q.limiter.consume(key, n);
        this.events.quota?.(q.endpoint, q.name, 'allowed');
      } catch (res) {
        this.events.quota?.(q.endpoint, q.name, 'exceeded');
        return quotaExceeded(q.name, res instanceof RateLimiterRes ? res.msBeforeNext : 1000);
      }
    }
    return undefined;
  }

  async afterAuth(ctx: CheckContext): Promise<Deny | undefined> {
    const limiter = ctx.endpoint && this.perEndpoint.get(ctx.endpoint.name);
    if (!limiter) return undefined;
    try {
      await limiter.consume(rateKey(ctx));
      return undefined;
    } catch (res) {
      return rateLimited(res instanceof RateLimiterRes ? res.msBeforeNext : 1000);
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
  if (p.method === 'oauth' && p.issuer !== undefined && p.subject !== undefined) return digestKey(p, 'sub', p.issuer, p.subject);
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
  return deny('too_many_requests', LOCKOUT_DESCRIPTION, { headers: [{ name: 'retry-after', value: s, append: false }], extra: { retry_after: Number(s) } });
}

function quotaExceeded(rule: string, ms: number): Deny {
  const s = retryAfter(ms);
  return deny('quota_exceeded', `Quota "${rule}" exceeded: this client made more of these calls on this endpoint than the quota allows. Retry after the number of seconds in Retry-After.`, {
    headers: [{ name: 'retry-after', value: s, append: false }],
    extra: { retry_after: Number(s), quota: rule },
  });
}

/** A token bucket of `spec` as rate-limiter-flexible limiters: a sustained window, and a burst window when burst exceeds it. */
function rateLimiter(prefix: string, burstPrefix: string, limiter: LimiterName, spec: RateSpec, store: StoreOptions): FlexLimiter {
  const w = windowsFor(spec);
  const sustained = createLimiter({ keyPrefix: prefix, points: w.sustained.points, durationSeconds: w.sustained.duration, limiter }, store);
  if (!w.burst) return sustained;
  const burst = createLimiter({ keyPrefix: burstPrefix, points: w.burst.points, durationSeconds: w.burst.duration, limiter }, store);
  // BurstyRateLimiter only calls consume/get, which FlexLimiter provides (and never throws store errors).
  return new BurstyRateLimiter(sustained as unknown as RateLimiterAbstract, burst as unknown as RateLimiterAbstract) as unknown as FlexLimiter;
}

function rateLimited(ms: number): Deny {
  const s = retryAfter(ms);
  return deny('rate_limited', RATE_DESCRIPTION, { headers: [{ name: 'retry-after', value: s, append: false }], extra: { retry_after: Number(s) } });
}
