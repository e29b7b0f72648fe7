// The one place a Redis client is built, for every feature that shares state through Redis
// (rate limits, lockouts and quotas; approvals; pins; user connections), from the one
// connection schema (redis-schema.ts): a single server, or a Redis Cluster found from seed
// nodes. Both behave alike: commands never queue while Redis is away (the feature's own
// fallback answers at once), each command times out after commandTimeoutMs, the connection
// retries in the background at most every 2 s, rediss:// is TLS (for every node of a cluster),
// and each change of the connection's state is logged once, not on every retry.
import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisConnectionConfig } from './redis-schema.js';

export type RedisClient = Redis | Cluster;

const CONNECT_TIMEOUT_MS = 1000;
const QUIT_WAIT_MS = 1000;

/** Reconnect after 50 ms, doubling to at most every 2 s, for as long as the process runs. */
const backoff = (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000);

export interface SharedRedisOptions {
  /** The feature this connection serves, in its log lines ("rate limits", "approvals", …). */
  feature: string;
  logger?: Logger;
  /** What the feature does while Redis is away, said once in the warning. */
  whileDown?: string;
  /** What the feature does again once Redis is back (default: "<feature> use it again"). */
  whenBack?: string;
  /** Each change of state, once: true when commands can be served, false when Redis is away. */
  onState?(up: boolean, err?: Error): void;
}

/** A connection to Redis or a Redis Cluster, with how its keys are named. */
export class SharedRedis {
  readonly client: RedisClient;
  readonly cluster: boolean;
  /**
   * Wraps the part of a key name that keys used together (by one script or transaction) share,
   * as a hash tag in a cluster so that they live in one slot; unchanged on a single server, so
   * its key names stay what they were.
   */
  readonly tag: (s: string) => string;
  private up: boolean | undefined;
  private closed = false;
  private readonly waiters = new Set<() => void>();

  constructor(
    cfg: Pick<RedisConnectionConfig, 'url' | 'cluster' | 'nodes' | 'commandTimeoutMs'>,
    private readonly opts: SharedRedisOptions,
  ) {
    this.cluster = cfg.cluster === true;
    this.tag = this.cluster ? hashTag : (s) => s;
    this.client = this.cluster ? clusterClient(cfg) : singleClient(cfg);
    if (this.client instanceof Cluster) this.watchNodes(this.client);
    else this.client.on('ready', () => this.set(true));
    this.client.on('close', () => this.set(false));
    this.client.on('end', () => this.set(false));
    // ioredis repeats a connection error on every retry: only the change of state is news.
    this.client.on('error', (err: Error) => this.set(false, err));
  }

  /**
   * Once the cluster is ready, its nodes are connected as soon as they are known, not on their
   * first command: with no offline queue, ioredis refuses a command for a node that is still
   * connecting, which the first burst of calls would meet. (Not while the cluster itself
   * connects: its ready check would meet the same refusal.) The connection is up once every
   * master's is.
   */
  private watchNodes(cluster: Cluster): void {
    const connect = (node: Redis) => {
      if (node.status === 'wait') node.connect().catch(() => undefined);
    };
    const allMasters = () => {
      if (cluster.status !== 'ready') return;
      const masters = cluster.nodes('master');
      for (const n of masters) connect(n);
      if (masters.length > 0 && masters.every((n) => n.status === 'ready')) this.set(true);
    };
    cluster.on('+node', (node: Redis) => {
      node.once('ready', allMasters);
      // After the turn that added it: a command sent to it at once (a MOVED reply followed)
      // then waits in its queue while it connects, rather than meeting the refusal.
      if (cluster.status === 'ready') setImmediate(() => connect(node));
    });
    cluster.on('ready', allMasters);
  }

  /** Resolves true once connected (to every master of a cluster), false when `ms` pass first (commands then fail fast, as while Redis is away). */
  connected(ms: number): Promise<boolean> {
    if (this.up === true) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        resolve(false);
      }, ms);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.add(done);
    });
  }

  /** The servers to SCAN: every master of a cluster, or the one server. */
  scanTargets(): Redis[] {
    return this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
  }

  /** QUIT politely, but never wait long for a Redis that does not answer. */
  async close(): Promise<void> {
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, QUIT_WAIT_MS);
      timer.unref();
    });
    try {
      await Promise.race([this.client.quit(), gaveUp]);
    } catch {
      // already closed or unreachable
    } finally {
      clearTimeout(timer);
      this.client.disconnect();
    }
  }

  private set(up: boolean, err?: Error): void {
    if (this.closed || up === this.up) return;
    const first = this.up === undefined;
    this.up = up;
    const what = this.cluster ? 'the Redis Cluster' : 'Redis';
    if (up)
      this.opts.logger?.info(
        { store: 'redis', cluster: this.cluster },
        first
          ? `${this.opts.feature} use ${what}`
          : `${what} is reachable again: ${this.opts.whenBack ?? `${this.opts.feature} use it again`}`,
      );
    else
      this.opts.logger?.warn(
        {
          store: 'redis',
          cluster: this.cluster,
          err: err ? { message: err.message, code: (err as { code?: string }).code } : undefined,
        },
        `${what} is unreachable${this.opts.whileDown ? `: ${this.opts.whileDown}` : ''}`,
      );
    this.opts.onState?.(up, err);
    if (up) {
      for (const w of this.waiters) w();
      this.waiters.clear();
    }
  }
}

function singleClient(cfg: Pick<RedisConnectionConfig, 'url' | 'commandTimeoutMs'>): Redis {
  return new Redis(cfg.url, {
    enableOfflineQueue: false,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: cfg.commandTimeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: backoff,
  });
}

function clusterClient(cfg: Pick<RedisConnectionConfig, 'url' | 'nodes' | 'commandTimeoutMs'>): Cluster {
  const first = new URL(cfg.url);
  const seeds: ClusterNode[] = [cfg.url, ...(cfg.nodes ?? [])].map((u) => {
    const p = new URL(u);
    return { host: p.hostname.replace(/^\[|\]$/g, ''), port: p.port ? Number(p.port) : 6379 };
  });
  const node: RedisOptions = {
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: cfg.commandTimeoutMs,
    maxRetriesPerRequest: 0,
  };
  if (first.username) node.username = decodeURIComponent(first.username);
  if (first.password) node.password = decodeURIComponent(first.password);
  if (first.protocol === 'rediss:') node.tls = {};
  return new Cluster(seeds, {
    enableOfflineQueue: false,
    redisOptions: node,
    clusterRetryStrategy: backoff,
    // Connect to the names the cluster announces as they are, so TLS checks them against the
    // certificate (ioredis would otherwise connect to a resolved IP address).
    dnsLookup: (address, callback) => callback(null, address),
    // Reads go to masters: a lockout, an approval or a pin read from a lagging replica could
    // miss what another instance just wrote.
    scaleReads: 'master',
    // A command to a master that is gone, or to a cluster that reports itself down, fails at once
    // (the feature's fallback answers) instead of being retried until the command timeout.
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
  });
}

/**
 * `{text}`, with "{", "}" and "%" percent-encoded inside, so that the whole text (never a
 * part of it, never nothing) is what Redis hashes to pick the slot.
 */
export function hashTag(text: string): string {
  // An empty tag ("{}") would hash the whole key; "%" alone is no encoding of any text.
  if (text === '') return '{%}';
  return `{${text.replace(/[{}%]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}}`;
}
