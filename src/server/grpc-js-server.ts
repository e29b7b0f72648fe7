// The gRPC side on grpc-js (`grpcServer: grpc-js`): envoy.service.auth.v3.Authorization/Check,
// grpc.health.v1.Health and, behind a flag, reflection. Kept selectable for one release
// beside the service's own server (h2-grpc-server.ts), which is the default; loaded only
// when chosen.
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { deny } from '../contracts/outcome.js';
import { encodeCheckResponse } from '../envoy/encode-response.js';
import { authorizationService, extProcPackageDefinition, extProcService, healthService, packageDefinitions } from '../envoy/protos.js';
import { toRequest, type WireCheckRequest } from '../envoy/to-request.js';
import { toCheckResponse } from '../envoy/to-response.js';
import { runCheck, type CallHeader } from '../pipeline/pipeline.js';
import { processHandler } from './ext-proc-call.js';
import type { GrpcListener, GrpcServerOptions } from './grpc-server.js';

export function createGrpcJsServer(opts: GrpcServerOptions, maxReceiveMessageBytes: number): GrpcListener {
  const { runtime } = opts;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxReceiveMessageBytes,
    'grpc.keepalive_permit_without_calls': 1,
  });
  const inFlight = new Set<Promise<unknown>>();
  server.addService(checkService(), {
    Check: (call: grpc.ServerUnaryCall<WireCheckRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const p = runCheck(runtime, toRequest, call.request, call.metadata, metadataValue).then(
        (trace) => callback(null, encodeCheckResponse(trace.outcome, trace.decisionId)),
        // runCheck never rejects; this is the last line of defence and still a deny.
        () => callback(null, toCheckResponse(deny('internal_error', 'internal error'))),
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    },
  });
  const track = (p: Promise<unknown>) => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  server.addService(extProcService(), { Process: processHandler(runtime, track) as grpc.handleBidiStreamingCall<unknown, unknown> });
  server.addService(healthService(), opts.health.handlers() as grpc.UntypedServiceImplementation);
  if (opts.reflection) {
    const defs = packageDefinitions();
    new ReflectionService({ ...defs.authDef, ...defs.healthDef, ...extProcPackageDefinition() }).addToServer(server);
  }
  return {
    bind: (address) =>
      new Promise((resolve, reject) => {
        server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
      }),
    tryShutdown: (cb) => server.tryShutdown(() => void Promise.allSettled([...inFlight]).then(() => cb())),
    forceShutdown: () => server.forceShutdown(),
  };
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
