// Starts and stops the whole service: runtime, gRPC and HTTP servers (TLS from watched files
// when configured), health and drain.
import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { LoadedConfig } from '../config/load.js';
import type { Logger } from '../log/logger.js';
import { createMetricsRegistry } from '../metrics/registry.js';
import { inForce } from '../pipeline/live-runtime.js';
import type { Runtime } from '../pipeline/runtime.js';
import { ApprovalPages } from '../approvals/approval-page.js';
import { ApprovalService } from '../approvals/approval-service.js';
import { createGrpcServer, type GrpcListener } from './grpc-server.js';
import { HealthState } from './health.js';
import { HttpAuthzServer } from '../ext-authz/http-service-server.js';
import { closeHttp, createHttpServer, listenHttp } from './http-server.js';
import { AuthzenService } from '../authzen/authzen-service.js';
import { listenOn, listeningOn, listenOptions } from './listen-address.js';
import { portTls, servesTls, TlsFiles } from './tls-files.js';

export interface RunningService {
  grpcPort: number;
  httpPort: number;
  /** Envoy's HTTP authorization service (listen.extAuthzHttp); 0 when off. */
  extAuthzHttpPort: number;
  health: HealthState;
  runtime: Runtime;
  metrics: Registry;
  /** Graceful stop: NOT_SERVING first, in-flight Checks finish, then the listeners close. */
  close(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  logger: Logger;
  /** Builds the runtime from the config (src/pipeline/build-runtime.ts, or a test's variant of it). */
  buildRuntime: (loaded: LoadedConfig, logger: Logger, metrics: Registry) => Promise<Runtime> | Runtime;
  /** Serve the HTTP port (default true). A cluster worker leaves it to the primary, which aggregates /metrics. */
  http?: boolean;
}

export async function startService(loaded: LoadedConfig, opts: StartOptions): Promise<RunningService> {
  const { logger } = opts;
  const metrics = createMetricsRegistry();
  const health = new HealthState();
  const runtime = await opts.buildRuntime(loaded, logger, metrics);

  const { config } = loaded;
  let tlsFiles: TlsFiles | undefined;
  try {
    tlsFiles = servesTls(config)
      ? new TlsFiles({ config: config.tls!, logger, events: runtime.events, watch: true })
      : undefined;
  } catch (err) {
    await runtime.close();
    throw err;
  }
  const tls = config.tls;
  const listen = listenOptions(config);
  const grpcServer: GrpcListener = await createGrpcServer({
    runtime,
    health,
    reflection: config.reflection,
    listen,
    ...(tlsFiles && tls!.grpc !== 'off' ? { tls: { files: tlsFiles, mode: tls!.grpc } } : {}),
  });
  const authzen =
    opts.http !== false && config.authzen.enabled
      ? await AuthzenService.create({
          runtime,
          config: config.authzen,
          publicBaseUrl: config.publicBaseUrl,
          logger,
          watch: true,
        })
      : undefined;
  const httpServer: Server | undefined =
    opts.http === false
      ? undefined
      : createHttpServer({
          ...(authzen ? { authzen } : {}),
          // The endpoint set in force answers (it may change live).
          discovery: { answer: (request) => inForce(runtime).directResponder.answer(request) },
          ...(runtime.pages ? { pages: runtime.pages } : {}),
          ...(runtime.approvals instanceof ApprovalService
            ? {
                approvals: new ApprovalPages({
                  config,
                  approvals: runtime.approvals,
                  signer: runtime.approvals.signer,
                  events: runtime.events,
                  logger,
                  ...(runtime.pins ? { pins: runtime.pins } : {}),
                }),
              }
            : {}),
          health,
          metrics: async () => ({ contentType: metrics.contentType, body: await metrics.metrics() }),
          ...(tlsFiles && tls!.http !== 'off' ? { tls: portTls(tlsFiles, tls!.http, runtime.events) } : {}),
        });

  const extAuthz =
    config.listen.extAuthzHttp !== undefined
      ? new HttpAuthzServer(runtime, {
          listen: (server, address) => listenOn(server, address, listen),
          ...(tlsFiles && tls!.extAuthzHttp !== 'off'
            ? { tls: portTls(tlsFiles, tls!.extAuthzHttp, runtime.events) }
            : {}),
        })
      : undefined;

  const grpcPort = await grpcServer.bind(config.listen.grpc);
  const extAuthzHttpPort = extAuthz ? await extAuthz.bind(config.listen.extAuthzHttp!) : 0;
  const httpPort = httpServer ? await listenHttp(httpServer, config.listen.http, listen) : 0;
  let closing: Promise<void> | undefined;
  // Ready only when every phase can decide (a policy is loaded); re-checked on each reload.
  const refreshHealth = () => {
    if (closing) return;
    const reasons = runtime.notReady();
    health.set(reasons.length === 0 ? 'SERVING' : 'NOT_SERVING', reasons);
  };
  runtime.onReadinessChange(refreshHealth);
  refreshHealth();
  logger.info(
    {
      grpc: grpcPort,
      http: httpPort,
      ...(extAuthz ? { extAuthzHttp: extAuthzHttpPort } : {}),
      ...listeningOn(config),
      endpoints: runtime.endpoints.all.length,
      config: loaded.file ?? '(built in)',
    },
    'mcp-authz serving',
  );

  return {
    grpcPort,
    httpPort,
    extAuthzHttpPort,
    health,
    runtime,
    metrics,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        health.set('NOT_SERVING', ['shutting down']);
        health.endWatches();
        const drained = Promise.all([
          new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve())),
          new Promise<void>((resolve) => (extAuthz ? extAuthz.tryShutdown(() => resolve()) : resolve())),
        ]);
        const timer = setTimeout(() => {
          grpcServer.forceShutdown();
          extAuthz?.forceShutdown();
        }, graceMs);
        await drained;
        clearTimeout(timer);
        try {
          if (httpServer) await closeHttp(httpServer);
          await tlsFiles?.close();
          await authzen?.close();
          await runtime.close();
          logger.info('mcp-authz stopped');
        } catch (err) {
          logger.error(
            { err: { message: err instanceof Error ? err.message : String(err) } },
            'mcp-authz stopped; closing a part failed',
          );
          throw err;
        }
      })();
      return closing;
    },
  };
}
