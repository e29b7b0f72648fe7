// `serve --workers N`: N worker processes answer Check on one shared gRPC port (node:cluster
// hands the listening socket to every worker). The primary keeps the state that must be
// one for all of them — the rate-limit counters (rate-limiter-flexible's cluster store) and
// the running lockouts, relayed from the worker that counted them to the others — and
// serves the HTTP port: /metrics aggregated over the workers, /readyz true when every
// worker serves and reports its own health SERVING (its policy loaded). SIGTERM to the
// primary drains every worker, then the primary exits.
import cluster, { type Worker } from 'node:cluster';
import type { Server } from 'node:http';
import { AggregatorRegistry, Registry } from 'prom-client';
import { RateLimiterClusterMaster } from 'rate-limiter-flexible';
import type { LoadedConfig } from '../config/load.js';
import type { Logger } from '../log/logger.js';
import { isLockoutMessage, LOCKOUT_SYNC, LockoutTable } from '../limits/lockouts.js';
import { buildRuntime, type BuildOptions } from './build-runtime.js';
import { HealthState, type ServingStatus } from './health.js';
import { closeHttp, createHttpServer, listenHttp } from './http-server.js';
import { startService } from './service.js';

const READY = 'mcp-authz:worker-ready';
const HEALTH = 'mcp-authz:worker-health';
const SHUTDOWN = 'mcp-authz:shutdown';

interface ReadyMessage {
  type: typeof READY;
  grpcPort: number;
}

/** A worker's own serving state (NOT_SERVING while it has no policy), sent on every change. */
interface HealthMessage {
  type: typeof HEALTH;
  status: ServingStatus;
  reasons: string[];
}

function isReady(m: unknown): m is ReadyMessage {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === READY;
}

function isHealth(m: unknown): m is HealthMessage {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === HEALTH;
}

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
  new RateLimiterClusterMaster(); // the counters every worker's limits share
  const lockouts = new LockoutTable(); // the running lockouts, relayed between workers
  const aggregator = new AggregatorRegistry();
  const health = new HealthState();
  // The primary answers discovery documents on the HTTP port too; it never limits anything.
  const runtime = await buildRuntime(loaded, logger, new Registry(), { sharedLimits: false, localLimiterStore: 'memory' });

  const ready = new Map<number, number>(); // worker id → gRPC port
  const workerHealth = new Map<number, { status: ServingStatus; reasons: string[] }>();
  // Serving when every worker is up and says it serves; else the workers' own reasons.
  const refreshHealth = () => {
    if (shuttingDown) return;
    const reasons: string[] = [];
    for (const [id, h] of workerHealth) if (h.status !== 'SERVING') reasons.push(...h.reasons.map((r) => `worker ${id}: ${r}`));
    if (ready.size < workers) reasons.push(`${ready.size} of ${workers} workers serving`);
    health.set(reasons.length === 0 ? 'SERVING' : 'NOT_SERVING', reasons);
  };
  let shuttingDown = false;
  let restarts: number[] = [];
  let startupFailed: (code: number) => void = () => undefined;
  let resolveStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (resolveStarted = resolve));
  const failed = new Promise<number>((resolve) => (startupFailed = resolve));

  const fork = (): Worker => {
    const w = cluster.fork();
    w.on('message', (m: unknown) => {
      if (isLockoutMessage(m)) {
        lockouts.lock(m.key, m.until, true);
        for (const other of Object.values(cluster.workers ?? {})) if (other && other !== w && other.isConnected()) other.send(m);
        return;
      }
      if (typeof m === 'object' && m !== null && (m as { type?: unknown }).type === LOCKOUT_SYNC) {
        for (const l of lockouts.snapshot()) w.send(l);
        return;
      }
      if (isHealth(m)) {
        workerHealth.set(w.id, { status: m.status, reasons: m.reasons });
        refreshHealth();
        return;
      }
      if (!isReady(m)) return;
      ready.set(w.id, m.grpcPort);
      refreshHealth();
      if (ready.size === workers && !shuttingDown) resolveStarted();
    });
    return w;
  };

  let everServed = false;
  cluster.on('exit', (w, code, signal) => {
    ready.delete(w.id);
    workerHealth.delete(w.id);
    if (shuttingDown) return;
    logger.error({ worker: w.id, pid: w.process.pid, code, signal }, 'worker exited unexpectedly');
    // A worker that exits before all have served is a start-up failure (port in use, bad config): stop.
    if (!everServed) {
      startupFailed(1);
      return;
    }
    health.set('NOT_SERVING', ['a worker exited; replacing it']);
    const now = Date.now();
    restarts = [...restarts.filter((t) => now - t < 60_000), now];
    if (restarts.length > workers * 3) {
      logger.error('workers keep exiting: giving up');
      startupFailed(1);
      return;
    }
    fork();
  });

  for (let i = 0; i < workers; i++) fork();

  const outcome = await Promise.race([started.then(() => 0), failed]);
  if (outcome !== 0) {
    await stopWorkers(1000);
    await runtime.close();
    return outcome;
  }
  everServed = true;

  const httpServer: Server = createHttpServer({
    runtime: () => runtime,
    health,
    metrics: async () => ({ contentType: aggregator.contentType, body: await aggregator.clusterMetrics() }),
  });
  const httpPort = await listenHttp(httpServer, loaded.config.listen.http);
  const grpcPort = [...ready.values()][0] ?? 0;
  logger.info({ grpc: grpcPort, http: httpPort, workers, endpoints: runtime.endpoints.all.length, config: loaded.file ?? '(built in)' }, 'mcp-authz serving');

  const code = await new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      if (shuttingDown) return;
      logger.info({ signal }, 'shutting down: draining every worker');
      resolve(0);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    void failed.then((c) => {
      if (!shuttingDown) resolve(c);
    });
  });
  shuttingDown = true;
  health.set('NOT_SERVING', ['shutting down']);
  health.endWatches();
  await stopWorkers(graceMs + 5000);
  await closeHttp(httpServer);
  await runtime.close();
  logger.info('mcp-authz stopped');
  return code;

  async function stopWorkers(killAfterMs: number): Promise<void> {
    shuttingDown = true;
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
    await Promise.all(
      alive.map(
        (w) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => w.process.kill('SIGKILL'), killAfterMs);
            w.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            if (w.isConnected()) w.send({ type: SHUTDOWN });
            else w.process.kill('SIGTERM');
          }),
      ),
    );
  }
}

/** Runs one worker: the full service without the HTTP port; drains and exits when told to. */
export async function runWorker(loaded: LoadedConfig, logger: Logger, build: BuildOptions = {}, graceMs = 10_000): Promise<number> {
  const service = await startService(loaded, { logger, buildRuntime: (l, lg, m) => buildRuntime(l, lg, m, build), http: false });
  AggregatorRegistry.setRegistries([service.metrics]);
  new AggregatorRegistry(); // answers the primary's requests for this worker's metrics
  const report = (status: ServingStatus, reasons: readonly string[]) => {
    if (process.connected) process.send?.({ type: HEALTH, status, reasons: [...reasons] } satisfies HealthMessage);
  };
  report(service.health.current, service.health.notReadyReasons);
  service.health.onChange(report);
  process.send?.({ type: READY, grpcPort: service.grpcPort } satisfies ReadyMessage);
  await new Promise<void>((resolve) => {
    const stop = () => service.close(graceMs).then(resolve, resolve);
    process.on('message', (m: unknown) => {
      if (typeof m === 'object' && m !== null && (m as { type?: unknown }).type === SHUTDOWN) stop();
    });
    // The primary is gone (killed): nothing can share limits any more, so stop too.
    process.once('disconnect', stop);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  // The IPC channel would keep this process alive; the primary is waiting for it to exit.
  setTimeout(() => process.exit(0), 2000).unref();
  process.disconnect?.();
  return 0;
}
