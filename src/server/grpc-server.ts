// The gRPC side: envoy.service.auth.v3.Authorization/Check, grpc.health.v1.Health and,
// behind a flag, reflection.
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { deny } from '../contracts/outcome.js';
import { encodeCheckResponse } from '../envoy/encode-response.js';
import type { ProcessingRequest, ProcessingResponse } from '../envoy/ext-proc-wire.js';
import { authorizationService, extProcPackageDefinition, extProcService, healthService, packageDefinitions } from '../envoy/protos.js';
import { ExtProcSession } from '../extproc/session.js';
import { toRequest, type WireCheckRequest } from '../envoy/to-request.js';
import { toCheckResponse } from '../envoy/to-response.js';
import { runCheck, type CallHeader } from '../pipeline/pipeline.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { HealthState } from './health.js';

export interface GrpcServerOptions {
  runtime: Runtime;
  health: HealthState;
  reflection: boolean;
  /** Tracks in-flight Checks so shutdown can drain them. */
  inFlight: { add(p: Promise<unknown>): void };
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

export function createGrpcServer(opts: GrpcServerOptions): grpc.Server {
  const { runtime } = opts;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxCheckRequestBytes(runtime.config.limits),
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(checkService(), {
    Check: (call: grpc.ServerUnaryCall<WireCheckRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const p = runCheck(runtime, toRequest, call.request, call.metadata, metadataValue).then(
        (trace) => callback(null, encodeCheckResponse(trace.outcome, trace.decisionId)),
        // runCheck never rejects; this is the last line of defence and still a deny.
        () => callback(null, toCheckResponse(deny('internal_error', 'internal error'))),
      );
      opts.inFlight.add(p);
    },
  });
  server.addService(extProcService(), {
    // One session per stream; it answers in order, and only it decides how the stream ends.
    Process: (call: grpc.ServerDuplexStream<ProcessingRequest, ProcessingResponse>) => {
      const session = new ExtProcSession(runtime);
      let closed = false;
      let over!: () => void;
      opts.inFlight.add(new Promise<void>((resolve) => (over = resolve)));
      const stop = () => ((closed = true), session.onError(), over());
      call.on('data', (msg: ProcessingRequest) => {
        void session.onMessage(msg).then((step) => {
          if (closed) return;
          for (const answer of step.send) call.write(answer);
          // A failure is a gRPC error, never OK: Envoy would pass the rest of the response unfiltered.
          if (step.fail) call.emit('error', { code: step.fail.code, details: step.fail.details });
        });
      });
      call.on('end', () => {
        void session.onEnd().then((ok) => {
          if (ok && !closed) call.end();
          closed = true;
          over();
        });
      });
      call.on('cancelled', stop);
      call.on('error', stop);
    },
  });
  server.addService(healthService(), opts.health.handlers());
  if (opts.reflection) {
    const defs = packageDefinitions();
    new ReflectionService({ ...defs.authDef, ...defs.healthDef, ...extProcPackageDefinition() }).addToServer(server);
  }
  return server;
}

/** A gRPC call's metadata value (W3C trace context from Envoy's ext_authz client span). */
const metadataValue: CallHeader<grpc.Metadata> = (metadata, name) => {
  const v = metadata.get(name)[0];
  return typeof v === 'string' ? v : undefined;
};

/** The Check service, answering either bytes encoded already (encodeCheckResponse) or a CheckResponse object. */
function checkService(): grpc.ServiceDefinition {
  const def = authorizationService();
  const check = def.Check!;
  return { ...def, Check: { ...check, responseSerialize: (v: unknown) => (Buffer.isBuffer(v) ? v : check.responseSerialize(v)) } };
}

export function bindGrpc(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
}
