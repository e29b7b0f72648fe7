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
import { FailureLedgerHost, type FailureMessage, type LedgerEvents } from '../limits/cluster-failures.js';
import { FailureLedger } from '../limits/failure-ledger.js';
import { LockoutTable } from '../limits/lockouts.js';
import { logSinkOf, type Logger } from '../log/logger.js';
import { PrimaryMetrics, withPrimaryLogDrops } from '../metrics/primary-metrics.js';
import { BundleDistributor } from './cluster-bundles.js';
import type { ClusterMessage } from './cluster-messages.js';
import { WorkerSupervisor } from './cluster-supervisor.js';
import { HealthState } from './health.js';
import { closeHttp, createHttpServer, listenHttp } from './http-server.js';
import { freeSocketPath, isUnixAddress, listeningOn, listenOptions, socketPath } from './listen-address.js';
import { portTls, TlsFiles } from './tls-files.js';

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
  const { config } = loaded;
  // The primary serves the HTTP port: its TLS files are its own (the workers' serve the other ports).
  const tlsFiles =
    config.tls && config.tls.http !== 'off'
      ? new TlsFiles({ config: config.tls, logger, events: {}, watch: true })
      : undefined;
  // The workers' sockets are one socket, made by the primary's cluster module: a stale file is removed here, once.
  for (const address of [config.listen.grpc, config.listen.extAuthzHttp]) {
    if (address !== undefined && isUnixAddress(address)) await freeSocketPath(socketPath(address));
  }
  const relay = new LockoutRelay();
  const metrics = new PrimaryMetrics();
  const failures = failureLedgerHost(loaded, workers, {
    forfeited: (units, reason) => metrics.leaseForfeited(units, reason),
    locked: (key, until) => relay.decided(key, until),
  });
  // The per-client rate and the per-tool quotas of every worker (and their local buckets while Redis is away).
  const buckets = new BucketHost((id, m) => {
    const w = cluster.workers?.[id];
    if (w?.isConnected()) w.send(m);
  });
  const health = new HealthState();
  // A remote bundle is polled here once for all workers and activated on all at once.
  const bundles = Object.keys(loaded.config.bundles).length > 0 ? new BundleDistributor(loaded, logger) : undefined;
  const supervisor = new WorkerSupervisor({
    workers,
    logger,
    health,
    onMessage: (w, m) => {
      if (m.type === 'mcp-authz:failures' || m.type === 'mcp-authz:failure-returned') failures?.heard(w.id, m);
      else if (m.type === 'mcp-authz:bucket-take') buckets.heard(w.id, m);
      else if (
        m.type === 'mcp-authz:bundle-sync' ||
        m.type === 'mcp-authz:bundle-prepared' ||
        m.type === 'mcp-authz:bundle-activated'
      )
        bundles?.heard(w, m);
      else relay.heard(w, m);
    },
  });
  cluster.on('exit', (w) => failures?.holderGone(w.id));

  const started = await supervisor.start();
  bundles?.start();
  if (started !== 0) {
    await bundles?.close();
    await supervisor.stop(1000);
    return started;
  }

  const httpServer = await serveHttp(loaded, health, tlsFiles, metrics, logger);
  logger.info(
    {
      grpc: supervisor.grpcPort,
      http: httpServer.port,
      ...(supervisor.extAuthzHttpPort ? { extAuthzHttp: supervisor.extAuthzHttpPort } : {}),
      ...listeningOn(config),
      workers,
      endpoints: loaded.config.endpoints.length,
      config: loaded.file ?? '(built in)',
    },
    'mcp-authz serving',
  );

  const code = await untilStopped(supervisor, logger);
  health.set('NOT_SERVING', ['shutting down']);
  health.endWatches();
  await bundles?.close();
  await supervisor.stop(graceMs + 5000);
  await httpServer.close();
  await tlsFiles?.close();
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
function failureLedgerHost(loaded: LoadedConfig, workers: number, events: LedgerEvents): FailureLedgerHost | undefined {
  const { rateLimit } = loaded.config;
  if (rateLimit.redis || rateLimit.failedAuth.maxAttempts <= 0) return undefined;
  const ledger = new FailureLedger(
    rateLimit.failedAuth.maxAttempts,
    rateLimit.failedAuth.windowSeconds * 1000,
    workers,
  );
  return new FailureLedgerHost(
    ledger,
    (id, m: FailureMessage) => {
      const w = cluster.workers?.[id];
      if (w?.isConnected()) w.send(m);
    },
    undefined,
    events,
  );
}

/**
 * The running lockouts: each one a worker records, or the primary's ledger decides, goes to
 * every worker, and to a worker that starts later.
 */
class LockoutRelay {
  private readonly table = new LockoutTable();

  heard(from: Worker, m: ClusterMessage): void {
    if (m.type === 'mcp-authz:lockout') {
      if (this.table.lock(m.key, m.until, true)) this.broadcast(m, from);
    } else if (m.type === 'mcp-authz:lockout-sync') {
      for (const l of this.table.snapshot()) from.send(l);
      from.send({ type: 'mcp-authz:lockout-synced' } satisfies ClusterMessage);
    }
  }

  /** A lockout the ledger decided: every worker hears of it, whether or not the one that asked lives to tell. */
  decided(key: string, until: number): void {
    if (this.table.lock(key, until, true)) this.broadcast({ type: 'mcp-authz:lockout', key, until });
  }

  private broadcast(m: ClusterMessage, except?: Worker): void {
    for (const w of Object.values(cluster.workers ?? {})) if (w && w !== except && w.isConnected()) w.send(m);
  }
}

/** The HTTP port: metrics aggregated over the workers (with the primary's own, and its dropped log lines), readiness, discovery documents. */
async function serveHttp(
  loaded: LoadedConfig,
  health: HealthState,
  tlsFiles: TlsFiles | undefined,
  metrics: PrimaryMetrics,
  logger: Logger,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const aggregator = new AggregatorRegistry();
  const sink = logSinkOf(logger);
  const { config } = loaded;
  const documents = (c: LoadedConfig['config']) => new ProtectedResourceMetadata(c, new EndpointRegistry(c.endpoints));
  let discovery = documents(config);
  const endpointStore =
    config.stores.endpoints === 'postgres'
      ? await (await import('../stores/postgres-endpoints.js')).watchStoreEndpoints(loaded, {
          logger,
          events: {},
          apply: async (next) => {
            discovery = documents(next.config);
            return next.config.endpoints.length;
          },
        })
      : undefined;
  const server = createHttpServer({
    health,
    metrics: async () => ({
      contentType: aggregator.contentType,
      body: withPrimaryLogDrops(await aggregator.clusterMetrics(), sink) + (await metrics.registry.metrics()),
    }),
    // The endpoint set in force answers: with endpoints from PostgreSQL it follows their changes.
    discovery: { answer: (request) => discovery.answer(request) },
    // Its reloads are logged; the workers' count in mcp_authz_tls_reloads_total (the same files).
    ...(tlsFiles && config.tls!.http !== 'off' ? { tls: portTls(tlsFiles, config.tls!.http, {}) } : {}),
  });
  return {
    server,
    port: await listenHttp(server, config.listen.http, listenOptions(config)),
    close: async () => {
      await endpointStore?.close();
      await closeHttp(server);
    },
  };
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
