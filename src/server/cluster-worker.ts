// One worker of `serve --workers N`: the full service without the HTTP port (the primary
// serves it), sharing its lockouts with its siblings through the primary; drains and exits
// when told to.
import { AggregatorRegistry } from 'prom-client';
import type { LoadedConfig } from '../config/load.js';
import { ClusterBuckets, type BucketMessage } from '../limits/cluster-buckets.js';
import { ClusterFailureCounter, type FailureMessage } from '../limits/cluster-failures.js';
import { LockoutTable } from '../limits/lockouts.js';
import { exitAfterLogs, leaveClusterAfterLogs, type Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { buildRuntime, type BuildOptions } from '../pipeline/build-runtime.js';
import { workerBundleFeed } from './cluster-bundles.js';
import { asClusterMessage, type ClusterMessage } from './cluster-messages.js';
import type { ServingStatus } from './health.js';
import { startService } from './service.js';

function send(m: ClusterMessage): void {
  process.send?.(m);
}

/**
 * A worker's lockout table: lockouts it records go to the primary, which hands them to
 * every other worker; lockouts from siblings (and, at start, the running ones) come back.
 * Until the running ones have arrived, the check before authentication asks the primary.
 */
export function workerLockoutTable(): LockoutTable {
  const table = new LockoutTable(send, undefined, true);
  process.on('message', (raw: unknown) => {
    const m = asClusterMessage(raw);
    if (m?.type === 'mcp-authz:lockout') table.lock(m.key, m.until, true);
    else if (m?.type === 'mcp-authz:lockout-synced') table.markSynced();
  });
  send({ type: 'mcp-authz:lockout-sync' });
  return table;
}

/** A worker's failure counter: its leases, and the primary's ledger for the rest (src/limits/cluster-failures.ts). */
export function workerFailureCounter(
  logger: Logger,
): (max: number, windowSeconds: number, events: ServiceEvents) => ClusterFailureCounter {
  return (max, windowSeconds, events) => {
    const counter = new ClusterFailureCounter(
      max,
      windowSeconds,
      (m: FailureMessage) => send(m),
      logger,
      undefined,
      () => events.limiterLocalAnswer?.('cluster', 'failed_auth'),
    );
    process.on('message', (raw: unknown) => {
      const m = asClusterMessage(raw);
      if (m?.type === 'mcp-authz:failures-counted' || m?.type === 'mcp-authz:failure-revoke') counter.heard(m);
    });
    return counter;
  };
}

/** A worker's rate and quota buckets: each take is decided by the primary (src/limits/cluster-buckets.ts). */
export function workerBuckets(logger: Logger): ClusterBuckets {
  const buckets = new ClusterBuckets((m: BucketMessage) => send(m), logger);
  process.on('message', (raw: unknown) => {
    const m = asClusterMessage(raw);
    if (m?.type === 'mcp-authz:bucket-taken') buckets.heard(m);
  });
  return buckets;
}

/** Runs one worker until the primary says stop (or goes away); resolves with the exit code. */
export async function runWorker(
  loaded: LoadedConfig,
  logger: Logger,
  build: BuildOptions = {},
  graceMs = 10_000,
): Promise<number> {
  const local = build.localLimiterStore ?? 'cluster';
  const options: BuildOptions = {
    ...build,
    localLimiterStore: local,
    ...(local === 'cluster'
      ? {
          lockouts: workerLockoutTable(),
          failureCounter: build.failureCounter ?? workerFailureCounter(logger),
          buckets: build.buckets ?? workerBuckets(logger),
        }
      : {}),
    // A remote bundle: the primary polls it for every worker and activates it on all at once.
    ...(Object.keys(loaded.config.bundles).length > 0
      ? {
          bundleFromPrimary: true,
          onPolicySource: (source, events) => workerBundleFeed(source, events, Object.keys(loaded.config.bundles)[0]!),
        }
      : {}),
  };
  const service = await startService(loaded, {
    logger,
    buildRuntime: (l, lg, m) => buildRuntime(l, lg, m, options),
    http: false,
  });
  AggregatorRegistry.setRegistries([service.metrics]);
  new AggregatorRegistry(); // answers the primary's requests for this worker's metrics
  const report = (status: ServingStatus, reasons: readonly string[]) => {
    if (process.connected) send({ type: 'mcp-authz:worker-health', status, reasons: [...reasons] });
  };
  report(service.health.current, service.health.notReadyReasons);
  service.health.onChange(report);
  send({ type: 'mcp-authz:worker-ready', grpcPort: service.grpcPort, extAuthzHttpPort: service.extAuthzHttpPort });
  await new Promise<void>((resolve) => {
    const stop = () => service.close(graceMs).then(resolve, resolve);
    process.on('message', (m: unknown) => {
      if (asClusterMessage(m)?.type === 'mcp-authz:shutdown') stop();
    });
    // The primary is gone (killed): nothing can share limits any more, so stop too.
    process.once('disconnect', stop);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  // The IPC channel would keep this process alive; the primary is waiting for it to exit.
  // Closing it ends this process at once (the cluster module calls process.exit), so the log
  // settles first: its last lines ("mcp-authz stopped") would otherwise be lost.
  setTimeout(() => void exitAfterLogs(0), 2000).unref();
  await leaveClusterAfterLogs();
  return 0;
}
