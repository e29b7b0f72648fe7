// The gRPC port: envoy.service.auth.v3.Authorization/Check, envoy.service.ext_proc.v3.
// ExternalProcessor/Process (a bidirectional stream per HTTP request), grpc.health.v1.Health
// (Check and the Watch stream) and, behind `reflection: true`, server reflection. Served by the
// service's own server on node:http2 (src/grpc/h2-server.ts) unless `grpcServer: grpc-js`;
// both are the same GrpcServer to this file.
import { chmod } from 'node:fs/promises';
import { extProcRoot, healthRoot, serviceDefinition } from '../envoy/proto-root.js';
import { CHECK_PATH, checkHandler, maxCheckRequestBytes } from '../ext-authz/check.js';
import { processHandler } from '../ext-proc/process-stream.js';
import { H2GrpcServer } from '../grpc/h2-server.js';
import type { GrpcServer } from '../grpc/server.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { HealthState } from './health.js';
import { freeSocketPath, listenOn, parseListenAddress, type ListenOptions } from './listen-address.js';
import { portTls, type TlsFiles } from './tls-files.js';

export { CHECK_PATH, maxCheckRequestBytes };

export interface GrpcServerOptions {
  runtime: Runtime;
  health: HealthState;
  reflection: boolean;
  /** How a Unix socket is made (its mode; whether this process frees a stale one). */
  listen: ListenOptions;
  /** TLS on the port (tls.grpc): the files, and whether clients must present a certificate. */
  tls?: { files: TlsFiles; mode: 'tls' | 'mtls' };
}

/** A gRPC server, whichever serves: listen, then drain or cut on shutdown. */
export type GrpcListener = Pick<GrpcServer, 'bind' | 'tryShutdown' | 'forceShutdown'>;

export async function createGrpcServer(opts: GrpcServerOptions): Promise<GrpcListener> {
  const max = maxCheckRequestBytes(opts.runtime.config.limits);
  const server = opts.runtime.config.grpcServer === 'grpc-js' ? await grpcJs(opts, max) : ownServer(opts, max);
  server.addBytesUnary(CHECK_PATH, checkHandler(opts.runtime));
  server.addService(serviceDefinition(extProcRoot(), 'envoy.service.ext_proc.v3.ExternalProcessor'), {
    Process: processHandler(opts.runtime),
  });
  server.addService(serviceDefinition(healthRoot(), 'grpc.health.v1.Health'), opts.health.handlers());
  if (opts.reflection) {
    // Reflection describes the services with proto-loader's definitions (@grpc/reflection needs them): loaded only when enabled.
    const { extProcPackageDefinition, packageDefinitions } = await import('../envoy/protos.js');
    const defs = packageDefinitions();
    await server.addReflection({ ...defs.authDef, ...defs.healthDef, ...extProcPackageDefinition() });
  }
  return server;
}

function ownServer(opts: GrpcServerOptions, max: number): GrpcServer {
  return new H2GrpcServer({
    maxReceiveMessageBytes: max,
    listen: (server, address) => listenOn(server, address, opts.listen),
    ...(opts.tls ? { tls: portTls(opts.tls.files, opts.tls.mode, opts.runtime.events) } : {}),
  });
}

/** grpc-js, loaded only when chosen; it binds the port itself, so a Unix socket is prepared around its bind. */
async function grpcJs(opts: GrpcServerOptions, max: number): Promise<GrpcServer> {
  const { GrpcJsServer } = await import('../grpc/grpc-js-server.js');
  const server = new GrpcJsServer({
    maxReceiveMessageBytes: max,
    ...(opts.tls ? { tls: { certificates: opts.tls.files, mtls: opts.tls.mode === 'mtls' } } : {}),
  });
  const bind = server.bind.bind(server);
  server.bind = async (address) => {
    const where = parseListenAddress(address);
    if (where.kind !== 'unix') return bind(address);
    if (opts.listen.freeStale !== false) await freeSocketPath(where.path);
    await bind(`unix:${where.path}`);
    await chmod(where.path, opts.listen.socketMode);
    return 0;
  };
  return server;
}
