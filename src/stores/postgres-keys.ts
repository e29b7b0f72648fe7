// API keys from PostgreSQL (docs/stores.md): looked up by hash on demand and kept in a bounded
// local cache (known keys and unknown ones), told of every change by LISTEN/NOTIFY.
//
// - A Check whose key is cached, while the notification channel is up, is answered at once
//   (no promise, no query): the same cost as the keys file.
// - A miss (or an entry past its TTL) is one indexed query; concurrent misses for one hash
//   share it.
// - A notification drops the entry for its hash on this replica, so a revoked key is
//   refused by the next Check; a query that was in flight across a notification answers
//   its caller but is not cached.
// - The channel lost: every lookup asks the database (no notification can be trusted to
//   arrive); the channel back: LISTEN first, then every cached hash is read again (a full
//   resync), then cached answers are trusted again.
// - The database unreachable: a key seen before keeps its last answer while that answer is
//   younger than maxStaleSeconds, counted from when it was last known current (fail-static);
//   any other key is 'unavailable' (key_store_unavailable). A key dropped by a notification
//   is not in the cache, so a key revoked before the outage is never allowed during it.
import pg from 'pg';
import type { ApiKeyEntry } from '../config/schema.js';
import { ApiKeyEntrySchema } from '../config/schema.js';
import type { KeyCacheConfig, PostgresStoreConfig } from '../config/stores-schema.js';
import { checkKeyEntry } from '../auth/key-entry.js';
import type { ApiKeyRecord, KeyAnswer, KeyLookup } from '../auth/key-registry.js';
import type { Principal } from '../contracts/principal.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { clientConfig, watchChannel, poolConfig, schemaName } from './postgres-connection.js';

export const KEYS_CHANNEL = 'mcp_authz_keys';

/** After a failed query, while the channel is down, misses answer 'unavailable' without asking for this long. */
const RETRY_AFTER_FAILURE_MS = 1000;
const RESYNC_BATCH = 1000;
const MAX_BACKOFF_MS = 5000;

interface Cached {
  /** The record, or undefined for a hash no key has. */
  record: ApiKeyRecord | undefined;
  /** When the database last gave this answer (ms). */
  at: number;
}

export interface PostgresKeyStoreOptions {
  postgres: PostgresStoreConfig;
  cache: KeyCacheConfig;
  logger: Logger;
  events: ServiceEvents;
  now?: () => number;
}

export type KeyStoreState = 'up' | 'down';

export class PostgresKeyStore implements KeyLookup {
  private readonly cache = new Map<string, Cached>();
  private readonly inflight = new Map<string, Promise<KeyAnswer>>();
  private readonly pool: pg.Pool;
  private readonly shared = new SharedLists();
  private readonly now: () => number;
  private readonly select: string;
  private readonly selectMany: string;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly maxStaleMs: number;
  /** Bumped by a notification for every key ("*") and by every loss of the channel: an answer read across a bump is not cached. */
  private epoch = 0;
  /** Hashes notified while their query was in flight: that query's answer is not cached. */
  private readonly invalidated = new Set<string>();
  /** Hashes notified while a resync batch was being read: the batch's answer for them is not kept. */
  private resyncNotified: Set<string> | undefined;
  /** The channel is listening and the cache has been resynced since it (re)connected. */
  private up = false;
  /** When the channel was lost (ms): cached answers were current until then. */
  private lostAt = 0;
  private lastFailureAt = Number.NEGATIVE_INFINITY;
  private listener: pg.Client | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private backoffMs = 100;
  private closed = false;
  private readonly upWaiters: (() => void)[] = [];
  private rowAt = 0;

  constructor(private readonly opts: PostgresKeyStoreOptions) {
    this.now = opts.now ?? Date.now;
    const schema = schemaName(opts.postgres);
    const cols = `id, sha256, name, owner, role, grants, expires_at, disabled, revoked_at IS NOT NULL AS revoked`;
    this.select = `SELECT ${cols} FROM ${schema}.api_keys WHERE sha256 = $1`;
    this.selectMany = `SELECT ${cols} FROM ${schema}.api_keys WHERE sha256 = ANY($1::text[])`;
    this.ttlMs = opts.cache.ttlSeconds * 1000;
    this.negativeTtlMs = opts.cache.negativeTtlSeconds * 1000;
    this.maxStaleMs = opts.cache.maxStaleSeconds * 1000;
    this.pool = new pg.Pool(poolConfig(opts.postgres, 'mcp-authz keys'));
    // An idle connection's error (the server stopped) must not end the process: the next query reports it.
    this.pool.on('error', () => undefined);
    this.lostAt = this.now();
    opts.events.keyStore?.('down');
  }

  /** The registry in force: the store itself (the authenticator reads `current`). */
  get current(): KeyLookup {
    return this;
  }

  /** Cached answers, for the cache-size gauge and tests. */
  get size(): number {
    return this.cache.size;
  }

  get state(): KeyStoreState {
    return this.up ? 'up' : 'down';
  }

  /** Connects the notification channel; resolves once it listens and the cache is current (or at once when `wait` is false). */
  async start(wait = true): Promise<void> {
    this.connect();
    if (wait) await this.whenUp();
  }

  /** Resolves the next time the channel is up (at once when it is). */
  whenUp(): Promise<void> {
    if (this.up) return Promise.resolve();
    return new Promise((resolve) => this.upWaiters.push(resolve));
  }

  lookup(sha256: string): KeyAnswer | Promise<KeyAnswer> {
    const e = this.cache.get(sha256);
    if (e !== undefined && this.up && this.now() - e.at < (e.record ? this.ttlMs : this.negativeTtlMs)) {
      this.opts.events.keyStoreAnswer?.('cache');
      return e.record;
    }
    const pending = this.inflight.get(sha256);
    if (pending !== undefined) return pending;
    if (!this.up && this.now() - this.lastFailureAt < RETRY_AFTER_FAILURE_MS) return this.fallback(sha256);
    const p = this.fetch(sha256);
    this.inflight.set(sha256, p);
    return p;
  }

  private async fetch(sha256: string): Promise<KeyAnswer> {
    const epoch = this.epoch;
    try {
      const res = await this.pool.query({ name: 'mcp_authz_key', text: this.select, values: [sha256] });
      const record = res.rows[0] ? this.toRecord(res.rows[0]) : undefined;
      if (epoch === this.epoch && !this.invalidated.has(sha256)) this.remember(sha256, record);
      this.opts.events.keyStoreAnswer?.('database');
      return record;
    } catch (err) {
      this.lastFailureAt = this.now();
      this.opts.logger.warn(
        { err: (err as Error).message, store: 'postgres' },
        'API key lookup failed; answering from the cache where it can',
      );
      return this.fallback(sha256);
    } finally {
      this.inflight.delete(sha256);
      this.invalidated.delete(sha256);
    }
  }

  /** The database cannot answer: the cached answer while it is young enough, else 'unavailable'. */
  private fallback(sha256: string): KeyAnswer {
    const e = this.cache.get(sha256);
    if (e !== undefined) {
      const currentAt = this.up ? this.now() : Math.max(e.at, this.lostAt);
      if (this.now() - currentAt < this.maxStaleMs) {
        this.opts.events.keyStoreAnswer?.('stale_cache');
        return e.record;
      }
    }
    this.opts.events.keyStoreAnswer?.('unavailable');
    return 'unavailable';
  }

  private remember(sha256: string, record: ApiKeyRecord | undefined): void {
    // Re-inserted at the end: the least recently fetched entry is the first to go.
    this.cache.delete(sha256);
    this.cache.set(sha256, { record, at: this.now() });
    if (this.cache.size > this.opts.cache.maxEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
  }

  private toRecord(row: KeyRow): ApiKeyRecord | undefined {
    const raw: Record<string, unknown> = { id: row.id, sha256: row.sha256, permissions: row.grants ?? [] };
    if (row.name !== null) raw.name = row.name;
    if (row.owner !== null) raw.userId = row.owner;
    if (row.role !== null) raw.role = row.role;
    if (row.expires_at !== null) raw.expiresAt = row.expires_at.toISOString();
    raw.disabled = row.disabled || row.revoked;
    let entry: ApiKeyEntry | undefined = checkKeyEntry(raw);
    if (entry === undefined) {
      const parsed = ApiKeyEntrySchema.safeParse(raw);
      if (!parsed.success) {
        // Never allowed: a row the keys file would refuse is refused here too.
        this.opts.logger.warn(
          { key_id: row.id, problems: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) },
          'API key row is not valid; the key is refused',
        );
        return {
          id: row.id,
          at: -1,
          principal: Object.freeze({
            authenticated: true,
            method: 'api_key',
            id: row.id,
            roles: [],
            permissions: [],
            scopes: [],
          }) as ApiKeyRecord['principal'],
          expiresAtMs: 0,
          disabled: true,
        };
      }
      entry = parsed.data;
    }
    const record = recordOf(entry, this.shared, this.rowAt++);
    if (row.revoked) record.revoked = true;
    return record;
  }

  // --- the notification channel ---

  private connect(): void {
    if (this.closed) return;
    const client = new pg.Client(clientConfig(this.opts.postgres, 'mcp-authz keys listener'));
    this.listener = client;
    const channel = watchChannel(
      client,
      KEYS_CHANNEL,
      (payload) => this.notified(payload ?? '*'),
      (why) => {
        if (this.listener === client) this.listener = undefined;
        this.channelLost(why);
      },
    );
    (async () => {
      await client.connect();
      await client.query(`LISTEN ${KEYS_CHANNEL}`);
      await this.resync();
      if (channel.gone || this.closed) return;
      this.backoffMs = 100;
      this.up = true;
      this.opts.events.keyStore?.('up');
      this.opts.logger.info({ store: 'postgres', cached: this.cache.size }, 'API key store connected');
      for (const w of this.upWaiters.splice(0)) w();
    })().catch((err: Error) => channel.fail(err.message));
  }

  private channelLost(why: string): void {
    this.epoch++;
    if (this.closed) return;
    if (this.up) {
      this.up = false;
      this.lostAt = this.now();
      this.opts.events.keyStore?.('down');
      this.opts.logger.warn(
        { store: 'postgres', why, maxStaleSeconds: this.opts.cache.maxStaleSeconds },
        'API key store connection lost; keys seen before are answered from the cache',
      );
    }
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), this.backoffMs);
    this.reconnectTimer.unref();
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
  }

  private notified(payload: string): void {
    if (payload === '*') {
      this.epoch++;
      this.cache.clear();
    } else {
      this.cache.delete(payload);
      if (this.inflight.has(payload)) this.invalidated.add(payload);
      this.resyncNotified?.add(payload);
    }
    this.opts.events.keyStoreNotification?.();
  }

  /** Reads every cached hash again; an answer read across a notification is dropped, not kept. */
  private async resync(): Promise<void> {
    const hashes = [...this.cache.keys()];
    for (let i = 0; i < hashes.length; i += RESYNC_BATCH) {
      const batch = hashes.slice(i, i + RESYNC_BATCH);
      const epoch = this.epoch;
      const started = this.now();
      const notified = new Set<string>();
      this.resyncNotified = notified;
      let res: pg.QueryResult<KeyRow>;
      try {
        res = await this.pool.query<KeyRow>(this.selectMany, [batch]);
      } finally {
        this.resyncNotified = undefined;
      }
      const found = new Map(res.rows.map((r) => [r.sha256, r]));
      for (const h of batch) {
        const e = this.cache.get(h);
        // Gone (notified, evicted), or fetched afresh while the batch was read: leave it as it is.
        if (e === undefined || e.at > started || notified.has(h)) continue;
        if (epoch !== this.epoch) this.cache.delete(h);
        else {
          const row = found.get(h);
          this.cache.set(h, { record: row ? this.toRecord(row) : undefined, at: this.now() });
        }
      }
    }
    this.opts.events.keyStoreResync?.(hashes.length);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    const l = this.listener;
    this.listener = undefined;
    await Promise.allSettled([l?.end(), this.pool.end()]);
  }
}

interface KeyRow {
  id: string;
  sha256: string;
  name: string | null;
  owner: string | null;
  role: string | null;
  grants: string[] | null;
  expires_at: Date | null;
  disabled: boolean;
  revoked: boolean;
}

const NO_SCOPES = Object.freeze([]) as unknown as string[];

/** One frozen list per distinct grant list, one string per distinct user or role: rows share them. Bounded: past a size, no longer shared. */
class SharedLists {
  private readonly lists = new Map<string, string[]>();
  private readonly texts = new Map<string, string>();

  text(s: string): string {
    const known = this.texts.get(s);
    if (known !== undefined) return known;
    if (this.texts.size < 100_000) this.texts.set(s, s);
    return s;
  }

  get(items: readonly string[]): string[] {
    const key = items.join('\n');
    const known = this.lists.get(key);
    if (known !== undefined) return known;
    const list = Object.freeze([...items]) as string[];
    if (this.lists.size < 100_000) this.lists.set(key, list);
    return list;
  }
}

/** A key row's record, with the principal the keys file's entry would give. */
function recordOf(e: ApiKeyEntry, shared: SharedLists, at: number): ApiKeyRecord {
  const principal: Principal = {
    authenticated: true,
    method: 'api_key',
    id: e.id,
    roles: shared.get(e.role !== undefined ? [e.role] : []),
    permissions: shared.get(e.permissions),
    scopes: NO_SCOPES,
    keyType: e.userId !== undefined ? 'private' : 'public',
    keyId: e.id,
  };
  if (e.userId !== undefined) principal.userId = shared.text(e.userId);
  if (e.role !== undefined) principal.role = shared.text(e.role);
  return {
    id: e.id,
    at,
    principal: Object.freeze(principal),
    expiresAtMs: e.expiresAt !== undefined ? Date.parse(e.expiresAt) : Number.POSITIVE_INFINITY,
    disabled: e.disabled,
  };
}
