// `serve --workers N`: N worker processes answer Check on one shared gRPC port (node:cluster
// hands the listening socket to every worker). The primary keeps the state that must be
// one for all of them — the rate and quota buckets, the failed-authentication counts, and
// the running lockouts, relayed from the worker that counted them to the others — and
// serves the HTTP port: /metrics aggregated over the workers, /readyz true when every
// worker serves, and the discovery documents (built from the config alone: the primary
// loads no policy and decides no Check). SIGTERM to the primary drains every worker, then
// the primary exits.
import cluster, { type Worker } from 'node:cluster';
import type { Server } from 'node:http';
import { AggregatorRegistry } from 'prom-client';
import { ProtectedResourceMetadata } from '../auth/protected-resource-metadata.js';
import type { LoadedConfig } from '../config/load.js';
import { EndpointRegistry } from '../endpoints/registry.js';
import { BucketHost } from '../limits/cluster-buckets.js';
import { FailureLedgerHost, type FailureMessage } from '../limits/cluster-failures.js';
import { FailureLedger } from '../limits/failure-ledger.js';
import { LockoutTable } from '../limits/lockouts.js';
import type { Logger } from '../log/logger.js';
import type { ClusterMessage } from './cluster-messages.js';
import { WorkerSupervisor } from './cluster-supervisor.js';
import { HealthState } from './health.js';
import { closeHttp, createHttpServer, listenHttp } from './http-server.js';

export interface PrimaryOptions {
  workers: number;
  logger: Logger;
  /** How long workers get to finish in-flight Checks on shutdown. */
  graceMs?: number;
}

/** Runs the primary until SIGTERM/SIGINT; resolves with the exit code. */
export async function runPrimary(loaded: LoadedConfig, opts: PrimaryOptions): Promise<number> {
  const { logger, workers } = opts;
  const graceMs = opts.graceMs ?? 10_000;
  if (workersUseClusterStore(loaded)) {
    // The failed-authentication counts' local insurance while Redis is away count here for every worker.
    const { RateLimiterClusterMaster } = await import('rate-limiter-flexible');
    new RateLimiterClusterMaster();
  }
  const relay = new LockoutRelay();
  const failures = failureLedgerHost(loaded, workers);
  // The per-client rate and the per-tool quotas of every worker (and their local buckets while Redis is away).
  const buckets = new BucketHost((id, m) => {
    const w = cluster.workers?.[id];
    if (w?.isConnected()) w.send(m);
  });
  const health = new HealthState();
  const supervisor = new WorkerSupervisor({
    workers,
    logger,
    health,
    onMessage: (w, m) => {
      if (m.type === 'mcp-authz:failures' || m.type === 'mcp-authz:failure-returned') failures?.heard(w.id, m);
      else if (m.type === 'mcp-authz:bucket-take') buckets.heard(w.id, m);
      else relay.heard(w, m);
    },
  });
  cluster.on('exit', (w) => failures?.holderGone(w.id));

  const started = await supervisor.start();
  if (started !== 0) {
    await supervisor.stop(1000);
    return started;
  }

  const httpServer = await serveHttp(loaded, health);
  logger.info({ grpc: supervisor.grpcPort, http: httpServer.port, ...(supervisor.extAuthzHttpPort ? { extAuthzHttp: supervisor.extAuthzHttpPort } : {}), workers, endpoints: loaded.config.endpoints.length, config: loaded.file ?? '(built in)' }, 'mcp-authz serving');

  const code = await untilStopped(supervisor, logger);
  health.set('NOT_SERVING', ['shutting down']);
  health.endWatches();
  await supervisor.stop(graceMs + 5000);
  await closeHttp(httpServer.server);
  logger.info('mcp-authz stopped');
  return code;
}

/**
 * Whether any worker limiter counts in rate-limiter-flexible's cluster store
 * (RateLimiterCluster): only the failed-authentication counter's insurance while Redis is
 * away. The rate and quota buckets are the BucketHost's.
 */
function workersUseClusterStore(loaded: LoadedConfig): boolean {
  return loaded.config.rateLimit.redis !== undefined;
}

/** The failed-authentication counts every worker shares (absent with Redis, which holds them, or with the lockout off). */
function failureLedgerHost(loaded: LoadedConfig, workers: number): FailureLedgerHost | undefined {
  const { rateLimit } = loaded.config;
  if (rateLimit.redis || rateLimit.failedAuth.maxAttempts <= 0) return undefined;
  const ledger = new FailureLedger(rateLimit.failedAuth.maxAttempts, rateLimit.failedAuth.windowSeconds * 1000, workers);
  return new FailureLedgerHost(ledger, (id, m: FailureMessage) => {
    const w = cluster.workers?.[id];
    if (w?.isConnected()) w.send(m);
  });
}

/** The running lockouts: each one a worker records goes to every other worker, and to a worker that starts later. */
class LockoutRelay {
  private readonly table = new LockoutTable();

  heard(from: Worker, m: ClusterMessage): void {
    if (m.type === 'mcp-authz:lockout') {
      this.table.lock(m.key, m.until, true);
      for (const other of Object.values(cluster.workers ?? {})) if (other && other !== from && other.isConnected()) other.send(m);
    } else if (m.type === 'mcp-authz:lockout-sync') {
      for (const l of this.table.snapshot()) from.send(l);
    }
  }
}

/** The HTTP port: metrics aggregated over the workers, readiness, discovery documents. */
async function serveHttp(loaded: LoadedConfig, health: HealthState): Promise<{ server: Server; port: number }> {
  const aggregator = new AggregatorRegistry();
  const server = createHttpServer({
    health,
    metrics: async () => ({ contentType: aggregator.contentType, body: await aggregator.clusterMetrics() }),
    discovery: new ProtectedResourceMetadata(loaded.config, new EndpointRegistry(loaded.config.endpoints)),
  });
  return { server, port: await listenHttp(server, loaded.config.listen.http) };
}

/** Resolves with 0 on SIGTERM/SIGINT, or with the supervisor's failure code. */
function untilStopped(supervisor: WorkerSupervisor, logger: Logger): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down: draining every worker');
      resolve(0);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    void supervisor.failed.then((c) => {
      if (!stopping) resolve(c);
    });
  });
}
