// Serving state shared by gRPC health, /readyz and shutdown.
import type * as grpc from '@grpc/grpc-js';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

export class HealthState {
  private status: ServingStatus = 'NOT_SERVING';
  private readonly watchers = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  private readonly listeners = new Set<(status: ServingStatus, reasons: readonly string[]) => void>();
  /** Why the service is not ready (for /readyz), empty when ready. */
  private reasons: string[] = ['starting'];

  get current(): ServingStatus {
    return this.status;
  }

  get notReadyReasons(): readonly string[] {
    return this.reasons;
  }

  set(status: ServingStatus, reasons: string[] = []): void {
    const next = status === 'SERVING' ? [] : reasons;
    const changed = status !== this.status || next.join('\n') !== this.reasons.join('\n');
    this.reasons = next;
    if (status !== this.status) {
      this.status = status;
      for (const w of this.watchers) w.write({ status });
    }
    if (changed) for (const l of this.listeners) l(status, next);
  }

  /** Called after every change of status or reasons (a cluster worker reports them to the primary). */
  onChange(listener: (status: ServingStatus, reasons: readonly string[]) => void): void {
    this.listeners.add(listener);
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
