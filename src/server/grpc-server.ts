// The gRPC port: envoy.service.auth.v3.Authorization/Check, envoy.service.ext_proc.v3.
// ExternalProcessor/Process (a bidirectional stream per HTTP request), grpc.health.v1.Health
// (Check and the Watch stream) and, behind `reflection: true`, server reflection. Served by the
// service's own server on node:http2 (src/grpc/h2-server.ts) unless `grpcServer: grpc-js`.
import { deny } from '../contracts/outcome.js';
import { checkResponseBytes, loadCheckCodec, readCheckRequest } from '../ext-authz/check-codec.js';
import { extProcRoot, healthRoot, serviceDefinition } from '../envoy/proto-root.js';
import { runCheck } from '../pipeline/pipeline.js';
import { headerRecordValue } from '../request/trace-context.js';
import type { Runtime } from '../pipeline/runtime.js';
import { processHandler } from '../ext-proc/process-stream.js';
import { H2GrpcServer, type RawUnaryCall } from '../grpc/h2-server.js';
import type { HealthState } from './health.js';
import type { ListenOptions } from './listen-address.js';
import { portTls, type TlsFiles } from './tls-files.js';

export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

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
export interface GrpcListener {
  /** Listens on "host:port" or "unix:/path"; resolves with the TCP port (0 for a socket). */
  bind(address: string): Promise<number>;
  /** GOAWAY to every connection; `cb` once the calls in flight have been answered. */
  tryShutdown(cb: () => void): void;
  forceShutdown(): void;
}

/**
 * Room in a CheckRequest for everything but the body: Envoy caps request headers at 8 MiB
 * (max_request_headers_kb), twice that covers the attributes and metadata around them.
 */
export const CHECK_REQUEST_OVERHEAD_BYTES = 16 * 1024 * 1024;

/**
 * The largest CheckRequest accepted: any body up to limits.maxBodyBytes with the largest
 * headers Envoy sends, and bodies up to 16 MiB above the limit, which are answered with the
 * 413 deny. Larger messages fail as gRPC RESOURCE_EXHAUSTED (docs/envoy.md "Body size").
 */
export function maxCheckRequestBytes(limits: { maxBodyBytes: number }): number {
  return limits.maxBodyBytes + CHECK_REQUEST_OVERHEAD_BYTES;
}

export async function createGrpcServer(opts: GrpcServerOptions): Promise<GrpcListener> {
  const max = maxCheckRequestBytes(opts.runtime.config.limits);
  if (opts.runtime.config.grpcServer === 'grpc-js') {
    const { createGrpcJsServer } = await import('../grpc/grpc-js-server.js');
    return createGrpcJsServer(opts, max);
  }
  const server = new H2GrpcServer({ maxReceiveMessageBytes: max, ...(opts.tls ? { tls: portTls(opts.tls.files, opts.tls.mode, opts.runtime.events) } : {}) });
  loadCheckCodec();
  server.addRawUnary(CHECK_PATH, checkHandler(opts.runtime));
  server.addService(serviceDefinition(extProcRoot(), 'envoy.service.ext_proc.v3.ExternalProcessor'), { Process: processHandler(opts.runtime) as never });
  server.addService(serviceDefinition(healthRoot(), 'grpc.health.v1.Health'), opts.health.handlers());
  if (opts.reflection) {
    // Reflection describes the services with proto-loader's definitions (@grpc/reflection needs them): loaded only when enabled.
    const [{ ReflectionService }, { extProcPackageDefinition, packageDefinitions }] = await Promise.all([import('@grpc/reflection'), import('../envoy/protos.js')]);
    const defs = packageDefinitions();
    new ReflectionService({ ...defs.authDef, ...defs.healthDef, ...extProcPackageDefinition() }).addToServer(server as never);
  }
  return {
    bind: (address) => server.bind(address, opts.listen),
    tryShutdown: (cb) => server.tryShutdown(cb),
    forceShutdown: () => server.forceShutdown(),
  };
}

/** Check on the raw unary path: the request's bytes through the pipeline, the answer's bytes back. */
function checkHandler(runtime: Runtime): (message: Buffer, call: RawUnaryCall) => void {
  return (message, call) => void answerCheck(runtime, message, call);
}

async function answerCheck(runtime: Runtime, message: Buffer, call: RawUnaryCall): Promise<void> {
  let bytes: Uint8Array;
  try {
    // The call's own headers carry Envoy's ext_authz client span (traceparent).
    const trace = await runCheck(runtime, readCheckRequest, message, call.headers, headerRecordValue);
    bytes = checkResponseBytes(trace.outcome, trace.decisionId);
  } catch {
    // runCheck never rejects; this is the last line of defence and still a deny.
    bytes = checkResponseBytes(deny('internal_error', 'internal error'));
  }
  call.reply(bytes);
}
