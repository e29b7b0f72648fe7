// Serving state shared by gRPC health, /readyz and shutdown. The handlers are written
// against grpc-js's call shapes, which both gRPC servers give them.

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

/** A Watch call: health.v1 HealthCheckResponse messages out until the client goes. */
interface WatchCall {
  write(message: { status: string }): unknown;
  end(): unknown;
  on(event: 'cancelled', listener: () => void): unknown;
}

type Answer = (err: null, value: { status: string }) => void;

export class HealthState {
  private status: ServingStatus = 'NOT_SERVING';
  private readonly watchers = new Set<WatchCall>();
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

  handlers(): Record<string, (...args: never[]) => void> {
    return {
      Check: (call: { request: { service?: string } }, cb: Answer) => {
        const service = call.request.service ?? '';
        if (service !== '' && service !== 'envoy.service.auth.v3.Authorization') {
          cb(null, { status: 'SERVICE_UNKNOWN' });
          return;
        }
        cb(null, { status: this.status });
      },
      Watch: (call: WatchCall) => {
        call.write({ status: this.status });
        this.watchers.add(call);
        call.on('cancelled', () => this.watchers.delete(call));
      },
    };
  }

  endWatches(): void {
    for (const w of this.watchers) w.end();
    this.watchers.clear();
  }
}
