// Where users' upstream connections are kept: sealed records (connections-keys.ts) keyed by
// provider and user, in Redis when configured (replicas share them, and `mcp-authz connections`
// reads and revokes them there) or in this process's memory. The store holds only sealed
// text; it never sees a token in the clear.
//
// Besides the records: a lock per connection, so that one replica refreshes a user's token
// while the others wait for its result (a refresh token used twice is, at many servers, a
// revoked grant), and single-use marks for connect links.
import { randomBytes } from 'node:crypto';
import type { RedisClient, SharedRedis } from '../config/redis-client.js';
import type { RedisConnectionConfig } from '../config/redis-schema.js';

export interface ConnectionKey {
  provider: string;
  user: string;
}

export interface ConnectionStore {
  readonly kind: 'redis' | 'memory';
  get(k: ConnectionKey): Promise<string | undefined>;
  set(k: ConnectionKey, sealed: string): Promise<void>;
  /** Replaces the record only while it is still `expected` (undefined: removes it); false when it had changed. */
  replace(k: ConnectionKey, expected: string, next: string | undefined): Promise<boolean>;
  delete(k: ConnectionKey): Promise<boolean>;
  list(provider?: string): Promise<ConnectionKey[]>;
  /** Takes the connection's refresh lock for `ttlMs`; undefined while another holder has it. */
  tryLock(k: ConnectionKey, ttlMs: number): Promise<(() => Promise<void>) | undefined>;
  /** True the first time `id` is claimed within `ttlMs`; false ever after (a connect link is used once). */
  claimOnce(id: string, ttlMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export class MemoryConnectionStore implements ConnectionStore {
  readonly kind = 'memory';
  private readonly records = new Map<string, { k: ConnectionKey; sealed: string }>();
  private readonly locks = new Map<string, number>();
  private readonly claimed = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  private static id(k: ConnectionKey): string {
    return `${k.provider}\n${k.user}`;
  }

  async get(k: ConnectionKey): Promise<string | undefined> {
    return this.records.get(MemoryConnectionStore.id(k))?.sealed;
  }

  async set(k: ConnectionKey, sealed: string): Promise<void> {
    this.records.set(MemoryConnectionStore.id(k), { k: { ...k }, sealed });
  }

  async replace(k: ConnectionKey, expected: string, next: string | undefined): Promise<boolean> {
    const id = MemoryConnectionStore.id(k);
    if (this.records.get(id)?.sealed !== expected) return false;
    if (next === undefined) this.records.delete(id);
    else this.records.set(id, { k: { ...k }, sealed: next });
    return true;
  }

  async delete(k: ConnectionKey): Promise<boolean> {
    return this.records.delete(MemoryConnectionStore.id(k));
  }

  async list(provider?: string): Promise<ConnectionKey[]> {
    return [...this.records.values()].map((r) => r.k).filter((k) => provider === undefined || k.provider === provider);
  }

  async tryLock(k: ConnectionKey, ttlMs: number): Promise<(() => Promise<void>) | undefined> {
    const id = MemoryConnectionStore.id(k);
    const held = this.locks.get(id);
    if (held !== undefined && held > this.now()) return undefined;
    const until = this.now() + ttlMs;
    this.locks.set(id, until);
    return async () => {
      if (this.locks.get(id) === until) this.locks.delete(id);
    };
  }

  async claimOnce(id: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    for (const [k, until] of this.claimed) if (until <= now) this.claimed.delete(k);
    if (this.claimed.has(id)) return false;
    this.claimed.set(id, now + ttlMs);
    return true;
  }

  async close(): Promise<void> {}
}

// Compare-and-set and compare-and-delete, atomic in Redis.
const REPLACE = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1`;
const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/** A user id in a Redis key: base64url, so no id can reach into another key's shape. */
const encodeUser = (u: string) => Buffer.from(u, 'utf8').toString('base64url');

/** How long connecting waits for Redis before its commands fail fast (as while it is away). */
const CONNECT_WAIT_MS = 2000;

/**
 * Keys: `<prefix>:connection:<provider>:<user>` (the sealed record), `…connection-lock:…` and
 * `…connect-link:<id>`, each read and written on its own: the same names on one server and in a
 * Redis Cluster, where listing scans every master.
 */
export class RedisConnectionStore implements ConnectionStore {
  readonly kind = 'redis';
  private readonly client: RedisClient;

  constructor(
    private readonly redis: SharedRedis,
    private readonly prefix: string,
  ) {
    this.client = redis.client;
  }

  /** Connects to Redis (or a Redis Cluster), waiting a little for it; commands fail fast while it is away rather than queue. */
  static async connect(
    cfg: Pick<RedisConnectionConfig, 'url' | 'cluster' | 'nodes' | 'keyPrefix' | 'commandTimeoutMs'>,
  ): Promise<RedisConnectionStore> {
    const { SharedRedis } = await import('../config/redis-client.js');
    // Errors surface on the commands that fail; the connection's own retries are not news.
    const redis = new SharedRedis(cfg, { feature: 'user connections' });
    await redis.connected(CONNECT_WAIT_MS);
    return new RedisConnectionStore(redis, cfg.keyPrefix);
  }

  private key(k: ConnectionKey): string {
    return `${this.prefix}:connection:${k.provider}:${encodeUser(k.user)}`;
  }

  async get(k: ConnectionKey): Promise<string | undefined> {
    return (await this.client.get(this.key(k))) ?? undefined;
  }

  async set(k: ConnectionKey, sealed: string): Promise<void> {
    await this.client.set(this.key(k), sealed);
  }

  async replace(k: ConnectionKey, expected: string, next: string | undefined): Promise<boolean> {
    return (await this.client.eval(REPLACE, 1, this.key(k), expected, next ?? '')) === 1;
  }

  async delete(k: ConnectionKey): Promise<boolean> {
    return (await this.client.del(this.key(k))) > 0;
  }

  async list(provider?: string): Promise<ConnectionKey[]> {
    const base = `${this.prefix}:connection:`;
    const out: ConnectionKey[] = [];
    for (const server of this.redis.scanTargets()) {
      let cursor = '0';
      do {
        const [next, keys] = await server.scan(cursor, 'MATCH', `${base}${provider ?? '*'}:*`, 'COUNT', 500);
        cursor = next;
        for (const key of keys) {
          const rest = key.slice(base.length);
          const at = rest.lastIndexOf(':');
          if (at <= 0) continue;
          out.push({
            provider: rest.slice(0, at),
            user: Buffer.from(rest.slice(at + 1), 'base64url').toString('utf8'),
          });
        }
      } while (cursor !== '0');
    }
    return out.sort((a, b) => a.provider.localeCompare(b.provider) || a.user.localeCompare(b.user));
  }

  async tryLock(k: ConnectionKey, ttlMs: number): Promise<(() => Promise<void>) | undefined> {
    const lockKey = `${this.prefix}:connection-lock:${k.provider}:${encodeUser(k.user)}`;
    const token = randomBytes(16).toString('hex');
    const ok = await this.client.set(lockKey, token, 'PX', ttlMs, 'NX');
    if (ok !== 'OK') return undefined;
    return async () => {
      await this.client.eval(UNLOCK, 1, lockKey, token);
    };
  }

  async claimOnce(id: string, ttlMs: number): Promise<boolean> {
    return (await this.client.set(`${this.prefix}:connect-link:${id}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  close(): Promise<void> {
    return this.redis.close();
  }
}
