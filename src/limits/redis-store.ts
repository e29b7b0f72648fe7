// The Redis connection shared limits use. It never queues commands while Redis is away
// (the limiters' local insurance answers at once instead), times commands out quickly,
// reconnects in the background, and reports each change of state once.
import { Redis } from 'ioredis';
import type { Logger } from '../log/logger.js';

export type StoreState = 'shared' | 'local_fallback';

const QUIT_WAIT_MS = 1000;

export interface RedisStoreOptions {
  url: string;
  logger: Logger;
  onState: (state: StoreState) => void;
  /** Per-command timeout; a slow Redis must not hold a Check. */
  commandTimeoutMs?: number;
}

export class RedisLimiterStore {
  readonly client: Redis;
  private state: StoreState | undefined;
  private closed = false;

  constructor(private readonly opts: RedisStoreOptions) {
    this.client = new Redis(opts.url, {
      enableOfflineQueue: false,
      connectTimeout: 1000,
      commandTimeout: opts.commandTimeoutMs ?? 250,
      maxRetriesPerRequest: 0,
      // Keep trying, at most every 2 s, so shared limits resume when Redis is back.
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
      lazyConnect: false,
    });
    this.client.on('ready', () => this.set('shared'));
    this.client.on('close', () => this.set('local_fallback'));
    this.client.on('end', () => this.set('local_fallback'));
    this.client.on('error', (err: Error) => {
      // ioredis repeats connection errors on every retry; the state change is logged once.
      if (this.state !== 'local_fallback') this.set('local_fallback', err);
    });
  }

  get current(): StoreState | undefined {
    return this.state;
  }

  private set(state: StoreState, err?: Error): void {
    if (this.closed || state === this.state) return;
    const first = this.state === undefined;
    this.state = state;
    if (state === 'shared') {
      this.opts.logger.info(
        { store: 'redis' },
        first ? 'rate limits use the shared Redis store' : 'Redis is reachable again: rate limits are shared again',
      );
    } else {
      this.opts.logger.warn(
        { store: 'redis', err: err ? { message: err.message, code: (err as { code?: string }).code } : undefined },
        'Redis is unreachable: rate limits fall back to local counters (authentication is unaffected)',
      );
    }
    this.opts.onState(state);
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
}
