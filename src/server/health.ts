// Serving state shared by gRPC health, /readyz and shutdown.
import type * as grpc from '@grpc/grpc-js';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

export class HealthState {
  private status: ServingStatus = 'NOT_SERVING';
  private readonly watchers = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  /** Why the service is not ready (for /readyz), empty when ready. */
  private reasons: string[] = ['starting'];

  get current(): ServingStatus {
    return this.status;
  }

  get notReadyReasons(): readonly string[] {
    return this.reasons;
  }

  set(status: ServingStatus, reasons: string[] = []): void {
    this.reasons = status === 'SERVING' ? [] : reasons;
    if (status === this.status) return;
    this.status = status;
    for (const w of this.watchers) w.write({ status });
  }

  handlers(): grpc.UntypedServiceImplementation {
    return {
      Check: (call: grpc.ServerUnaryCall<{ service?: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const service = call.request.service ?? '';
        if (service !== '' && service !== 'envoy.service.auth.v3.Authorization') {
          cb(null, { status: 'SERVICE_UNKNOWN' });
          return;
        }
        cb(null, { status: this.status });
      },
      Watch: (call: grpc.ServerWritableStream<{ service?: string }, unknown>) => {
        call.write({ status: this.status });
        this.watchers.add(call as grpc.ServerWritableStream<unknown, unknown>);
        call.on('cancelled', () => this.watchers.delete(call as grpc.ServerWritableStream<unknown, unknown>));
      },
    };
  }

  endWatches(): void {
    for (const w of this.watchers) w.end();
    this.watchers.clear();
  }
}
