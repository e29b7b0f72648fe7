// The Redis connection shared limits use (src/config/redis-client.ts builds it, for one server
// or a Redis Cluster). It never queues commands while Redis is away (the limiters' local
// insurance answers at once instead), times commands out quickly, reconnects in the
// background, and reports each change of state once.
import { SharedRedis, type RedisClient } from '../config/redis-client.js';
import type { RedisConnectionConfig } from '../config/redis-schema.js';
import type { Logger } from '../log/logger.js';

export type StoreState = 'shared' | 'local_fallback';

export interface RedisStoreOptions {
  url: string;
  /** The URL is a seed node of a Redis Cluster; `nodes` are more seeds. */
  cluster?: boolean;
  nodes?: RedisConnectionConfig['nodes'];
  logger: Logger;
  onState: (state: StoreState) => void;
  /** Per-command timeout; a slow Redis must not hold a Check. */
  commandTimeoutMs?: number;
}

export class RedisLimiterStore {
  readonly redis: SharedRedis;
  private state: StoreState | undefined;

  constructor(opts: RedisStoreOptions) {
    this.redis = new SharedRedis(
      {
        url: opts.url,
        cluster: opts.cluster ?? false,
        nodes: opts.nodes,
        commandTimeoutMs: opts.commandTimeoutMs ?? 250,
      },
      {
        feature: 'rate limits',
        logger: opts.logger,
        whileDown: 'rate limits fall back to local counters (authentication is unaffected)',
        whenBack: 'rate limits are shared again',
        onState: (up) => {
          this.state = up ? 'shared' : 'local_fallback';
          opts.onState(this.state);
        },
      },
    );
  }

  get client(): RedisClient {
    return this.redis.client;
  }

  get current(): StoreState | undefined {
    return this.state;
  }

  close(): Promise<void> {
    return this.redis.close();
  }
}
