// Token buckets in Redis, shared by replicas: one Lua script decides a request's takes
// against every bucket they touch, on Redis's own clock, and stores the new bucket times only
// when all of them fit — the arithmetic of token-bucket.ts, atomic across replicas. While
// Redis is not connected and ready, or a command fails, the local buckets (this process's, or
// the cluster primary's) answer at once, as rate-limiter-flexible's insurance limiter does
// for the other limits.
//
// Keys: `<prefix>:bucket:<rule>|<principal>`. The takes of one call are always one
// principal's (its rate, or the quota rules its calls match), so in a Redis Cluster the
// principal is the hash tag — `<prefix>:bucket:<rule>|{<principal>}` — and the script's keys
// share a slot.
import type { Logger } from '../log/logger.js';
import type { RedisLimiterStore } from './redis-store.js';
import { answeredLocally, type BucketStore, type Take, type Taken } from './token-bucket.js';

// KEYS: one per take. ARGV: n, interval (ms), capacity per take. Returns {0} when all were
// taken, else {index (1-based), retry ms as text}. A bucket's key expires when it is full again.
const TAKE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tats = {}
for i = 1, #KEYS do
  local n = tonumber(ARGV[3 * i - 2])
  local interval = tonumber(ARGV[3 * i - 1])
  local capacity = tonumber(ARGV[3 * i])
  local key = KEYS[i]
  local tat = tats[key]
  if tat == nil then tat = tonumber(redis.call('GET', key) or '0') or 0 end
  local base = math.max(tat, now)
  local new = base + n * interval
  local room = capacity * interval
  if new - now > room + 0.001 then
    local retry = base - now
    if n <= capacity then retry = new - room - now end
    return {i, string.format('%.3f', math.max(retry, 0))}
  end
  tats[key] = new
end
for key, new in pairs(tats) do
  redis.call('SET', key, string.format('%.3f', new), 'PX', math.max(1, math.ceil(new - now)))
end
return {0}
`;

const COMMAND = 'mcpAuthzTakeBuckets';

type Client = RedisLimiterStore['client'] & {
  [COMMAND]?: (...args: (string | number)[]) => Promise<[number, string?]>;
};

export class RedisBuckets implements BucketStore {
  private readonly client: Client;
  private readonly tag: (s: string) => string;
  private readonly redisCluster: boolean;

  constructor(
    store: RedisLimiterStore,
    private readonly keyPrefix: string,
    private readonly insurance: BucketStore,
    private readonly logger: Logger,
  ) {
    this.client = store.client as Client;
    this.redisCluster = store.redis.cluster;
    this.tag = store.redis.tag;
    if (typeof this.client[COMMAND] !== 'function') this.client.defineCommand(COMMAND, { lua: TAKE_SCRIPT });
  }

  take(takes: readonly Take[]): Promise<Taken> | Taken {
    // Never queue behind a Redis that is not ready: the local buckets answer at once.
    if (this.client.status !== 'ready') return answeredLocally(this.insurance.take(takes), 'redis');
    const args: (string | number)[] = [takes.length];
    for (const t of takes) args.push(`${this.keyPrefix}:bucket:${this.keyOf(t.key)}`);
    for (const t of takes) args.push(t.n, t.shape.intervalMs, t.shape.capacity);
    return this.client[COMMAND]!(...args).then(
      (r): Taken => (r[0] === 0 ? { ok: true } : { ok: false, index: r[0] - 1, retryMs: Number(r[1]) }),
      (err: unknown) => {
        this.logger.debug(
          { err: { message: (err as Error)?.message } },
          'Redis did not take a rate or quota bucket: local buckets answered',
        );
        return answeredLocally(this.insurance.take(takes), 'redis');
      },
    );
  }

  /** `<rule>|<principal>`, the principal tagged in a cluster (rule names hold no "|"). */
  private keyOf(key: string): string {
    if (!this.redisCluster) return key;
    const at = key.indexOf('|');
    return at < 0 ? this.tag(key) : `${key.slice(0, at + 1)}${this.tag(key.slice(at + 1))}`;
  }
}
