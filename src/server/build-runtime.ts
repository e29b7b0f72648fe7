// Wires the real phases from the config. `serve`, `check` and the tests all build the
// runtime here, so the CLI explains exactly what the server decides.
import cluster from 'node:cluster';
import type { Registry } from 'prom-client';
import type { LoadedConfig } from '../config/load.js';
import { createRuntime, type Runtime } from '../check/runtime.js';
import type { Observer } from '../check/phases.js';
import { EndpointRegistry } from '../endpoints/registry.js';
import { clientAddressResolver } from '../limits/client-address.js';
import type { LocalStore } from '../limits/limiter-store.js';
import { RateLimits } from '../limits/rate-limits.js';
import { RedisLimiterStore } from '../limits/redis-store.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { ServiceMetrics } from '../metrics/service-metrics.js';

export interface BuildOptions {
  /** Phases to use instead of the real ones (tests put a test double here; everything else stays real). */
  overrides?: Partial<Pick<Runtime, 'authenticator' | 'authorizer' | 'directResponder' | 'limiter' | 'clientAddress'>>;
  /** Where limits count when there is no Redis (or while it is away): default "cluster" in a worker, else "memory". */
  localLimiterStore?: LocalStore;
  /** Connect to the configured Redis (default true; `mcp-authz check` has no use for it). */
  sharedLimits?: boolean;
}

export async function buildRuntime(loaded: LoadedConfig, logger: Logger, metrics: Registry, options: BuildOptions = {}): Promise<Runtime> {
  const { config } = loaded;
  const serviceMetrics = new ServiceMetrics(metrics, config);
  const events: ServiceEvents = serviceMetrics.events;
  const observers: Observer[] = [serviceMetrics.observer];
  const endpoints = new EndpointRegistry(config.endpoints);

  const redisCfg = options.sharedLimits === false ? undefined : config.rateLimit.redis;
  const redis = redisCfg ? new RedisLimiterStore({ url: redisCfg.url, logger, onState: (s) => events.limiterStore?.(s) }) : undefined;
  const limiter = new RateLimits(config, endpoints.all, {
    local: options.localLimiterStore ?? (cluster.isWorker ? 'cluster' : 'memory'),
    ...(redis && redisCfg ? { redis: { store: redis, keyPrefix: redisCfg.keyPrefix } } : {}),
    logger,
  });

  return createRuntime(config, logger, {
    endpoints,
    limiter,
    clientAddress: clientAddressResolver(config.clientAddress),
    observer: observers.length === 1 ? observers[0]! : { decided: (c, o, d) => { for (const ob of observers) ob.decided(c, o, d); } },
    close: async () => {
      await redis?.close();
    },
    ...options.overrides,
  });
}
