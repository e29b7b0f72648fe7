// The gRPC side on grpc-js (`grpcServer: grpc-js`): envoy.service.auth.v3.Authorization/Check,
// grpc.health.v1.Health and, behind a flag, reflection. Kept selectable for one release
// beside the service's own server (h2-server.ts), which is the default; loaded only
// when chosen. TLS comes through grpc-js's certificate provider interface, fed by the
// service's TLS files, so a reload reaches new connections as on the lean server.
import { chmod } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { deny } from '../contracts/outcome.js';
import { encodeCheckResponse } from '../ext-authz/encode-answer.js';
import { authorizationService, extProcPackageDefinition, extProcService, healthService, packageDefinitions } from '../envoy/protos.js';
import { toRequest, type WireCheckRequest } from '../envoy/to-request.js';
import { toCheckResponse } from '../ext-authz/answer.js';
import { runCheck, type CallHeader } from '../pipeline/pipeline.js';
import { processHandler } from '../ext-proc/process-stream.js';
import type { GrpcListener, GrpcServerOptions } from '../server/grpc-server.js';
import { freeSocketPath, parseListenAddress } from '../server/listen-address.js';
import type { TlsFiles, TlsMaterial } from '../server/tls-files.js';

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
  const credentials = serverCredentials(opts.tls);
  return {
    bind: async (address) => {
      const where = parseListenAddress(address);
      if (where.kind === 'unix' && opts.listen.freeStale !== false) await freeSocketPath(where.path);
      const port = await new Promise<number>((resolve, reject) => {
        server.bindAsync(where.kind === 'unix' ? `unix:${where.path}` : address, credentials, (err, p) => (err ? reject(err) : resolve(p)));
      });
      if (where.kind !== 'unix') return port;
      await chmod(where.path, opts.listen.socketMode);
      return 0;
    },
    tryShutdown: (cb) => server.tryShutdown(() => void Promise.allSettled([...inFlight]).then(() => cb())),
    forceShutdown: () => server.forceShutdown(),
  };
}

function serverCredentials(tls: GrpcServerOptions['tls']): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const provider = new TlsFilesProvider(tls.files);
  const mtls = tls.mode === 'mtls';
  // grpc-js 1.14 declares (caProvider, identityProvider, …) but hands its first argument to the
  // identity and its second to the CA: one provider serves both, and "no client CA" is a null second.
  return grpc.experimental.createCertificateProviderServerCredentials(provider, mtls ? provider : null, mtls);
}

/** grpc-js's certificate provider interface over the service's TLS files: the set in force, then each new one. */
class TlsFilesProvider implements grpc.experimental.CertificateProvider {
  private readonly ca = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly identity = new Set<grpc.experimental.IdentityCertificateUpdateListener>();

  constructor(private readonly files: TlsFiles) {
    files.onChange((m) => {
      for (const l of this.identity) l(identityOf(m));
      for (const l of this.ca) l(caOf(m));
    });
  }

  // Told after the caller has registered (grpc-js's own file watcher does the same).
  addCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.ca.add(l);
    process.nextTick(l, caOf(this.files.current));
  }

  removeCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.ca.delete(l);
  }

  addIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identity.add(l);
    process.nextTick(l, identityOf(this.files.current));
  }

  removeIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identity.delete(l);
  }
}

const identityOf = (m: TlsMaterial) => ({ certificate: m.cert, privateKey: m.key });
const caOf = (m: TlsMaterial) => (m.ca ? { caCertificate: m.ca } : null);

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
