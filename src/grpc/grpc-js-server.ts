// The gRPC server on grpc-js (`grpcServer: grpc-js`), the reference implementation, behind the
// same interface as the service's own server (h2-server.ts, the default); loaded only when
// chosen. Bytes unary methods are registered with identity (de)serializers, so a Check reads
// the same bytes through the same decoder on either server. Shutdown waits for the calls in
// flight: grpc-js's tryShutdown closes a connection once its calls have been answered, which a
// handler still at work on an answer has not. TLS comes through grpc-js's certificate provider
// interface, fed by the service's certificates, so a reload reaches new connections as on the
// own server.
import * as grpc from '@grpc/grpc-js';
import {
  addReflectionTo,
  type BytesCall,
  type BytesHandler,
  type GrpcServer,
  type Handler,
  type ServiceDefinition,
} from './server.js';
import { STREAM_RESET_BURST, STREAM_RESET_RATE } from './h2-server.js';
import type { CallError } from './wire.js';

/** A certificate, its key and the client CA, as the service keeps them: the set in force, then each new one. */
export interface CertificateSource {
  readonly current: CertificateSet;
  onChange(listener: (set: CertificateSet) => void): void;
}

export interface CertificateSet {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
}

export interface GrpcJsServerOptions {
  maxReceiveMessageBytes: number;
  /** TLS on the port; `mtls`: clients must present a certificate the CA signed. */
  tls?: { certificates: CertificateSource; mtls: boolean };
}

const same = (b: Buffer) => b;

export class GrpcJsServer implements GrpcServer {
  private readonly server: grpc.Server;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly credentials: grpc.ServerCredentials;

  constructor(opts: GrpcJsServerOptions) {
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': opts.maxReceiveMessageBytes,
      'grpc.keepalive_permit_without_calls': 1,
    });
    raiseResetLimits(this.server);
    this.credentials = serverCredentials(opts.tls);
  }

  addBytesUnary(path: string, handler: BytesHandler): void {
    const method = {
      path,
      originalName: path,
      requestStream: false,
      responseStream: false,
      requestSerialize: same,
      requestDeserialize: same,
      responseSerialize: same,
      responseDeserialize: same,
    };
    this.server.addService({ [path]: method } as grpc.ServiceDefinition, {
      [path]: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        let over!: () => void;
        this.track(new Promise<void>((resolve) => (over = resolve)));
        handler(call.request, new GrpcJsBytesCall(call.metadata, callback, over));
      },
    });
  }

  addService(def: ServiceDefinition, impl: Record<string, Handler>): void {
    const tracked: Record<string, Handler> = {};
    for (const [name, fn] of Object.entries(impl)) {
      tracked[name] = ((...args: never[]) => {
        const r = fn(...args);
        if (r instanceof Promise) this.track(r);
        return r;
      }) as Handler;
    }
    this.server.addService(def as grpc.ServiceDefinition, tracked as grpc.UntypedServiceImplementation);
  }

  addReflection(packages: object): Promise<void> {
    return addReflectionTo(this, packages);
  }

  bind(address: string): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, this.credentials, (err, port) => (err ? reject(err) : resolve(port)));
    });
  }

  tryShutdown(cb: () => void): void {
    this.server.tryShutdown(() => void Promise.allSettled([...this.inFlight]).then(() => cb()));
  }

  forceShutdown(): void {
    this.server.forceShutdown();
  }

  private track(p: Promise<unknown>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}

class GrpcJsBytesCall implements BytesCall {
  private done = false;

  constructor(
    private readonly metadata: grpc.Metadata,
    private readonly callback: grpc.sendUnaryData<Buffer>,
    private readonly over: () => void,
  ) {}

  header(name: string): string | undefined {
    const v = this.metadata.get(name)[0];
    return typeof v === 'string' ? v : undefined;
  }

  reply(message: Uint8Array): void {
    if (this.end())
      this.callback(
        null,
        Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength),
      );
  }

  fail(status: CallError): void {
    if (this.end()) this.callback({ code: status.code, details: status.details });
  }

  private end(): boolean {
    if (this.done) return false;
    this.done = true;
    this.over();
    return true;
  }
}

function serverCredentials(tls: GrpcJsServerOptions['tls']): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const provider = new CertificateProvider(tls.certificates);
  const mtls = tls.mtls;
  // grpc-js 1.14 declares (caProvider, identityProvider, …) but hands its first argument to the
  // identity and its second to the CA: one provider serves both, and "no client CA" is a null second.
  return grpc.experimental.createCertificateProviderServerCredentials(provider, mtls ? provider : null, mtls);
}

/** grpc-js's certificate provider interface over the service's certificates: the set in force, then each new one. */
class CertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly ca = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly identity = new Set<grpc.experimental.IdentityCertificateUpdateListener>();

  constructor(private readonly files: CertificateSource) {
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

const identityOf = (m: CertificateSet) => ({ certificate: m.cert, privateKey: m.key });
const caOf = (m: CertificateSet) => (m.ca ? { caCertificate: m.ca } : null);

/**
 * grpc-js builds its node:http2 server from `commonServerOptions` and has no option of its own
 * for Node's limit on client stream resets (a GOAWAY INTERNAL_ERROR past 1,000 RST_STREAMs at
 * once, 33 a second): an Envoy cancelling a burst of Checks would lose the connection. The
 * own server's limits are set there too. Should a grpc-js release rename the field, the
 * grpc-go client's cancel_burst case fails (test/grpc-go-client.test.ts).
 */
function raiseResetLimits(server: grpc.Server): void {
  const http2Options = (server as unknown as { commonServerOptions?: Record<string, unknown> }).commonServerOptions;
  if (http2Options === undefined) return;
  http2Options.streamResetBurst = STREAM_RESET_BURST;
  http2Options.streamResetRate = STREAM_RESET_RATE;
}
