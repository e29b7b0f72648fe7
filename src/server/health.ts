// Serving state shared by gRPC health, /readyz and shutdown. The handlers are written
// against grpc-js's call shapes, which both gRPC servers give them.
import { Status } from '../grpc/wire.js';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

/** The services grpc.health.v1 answers for: the server as a whole ("") and each service on the port. */
export const HEALTH_SERVICES: ReadonlySet<string> = new Set([
  '',
  'envoy.service.auth.v3.Authorization',
  'envoy.service.ext_proc.v3.ExternalProcessor',
]);

/** A Watch call: health.v1 HealthCheckResponse messages out until the client goes. */
interface WatchCall {
  write(message: { status: string }): unknown;
  end(): unknown;
  on(event: 'cancelled', listener: () => void): unknown;
}

type Answer = (err: { code: number; details: string } | null, value?: { status: string }) => void;

export class HealthState {
  private status: ServingStatus = 'NOT_SERVING';
  private readonly watchers = new Set<WatchCall>();
  /** Watches of a service the port does not serve: told SERVICE_UNKNOWN once, ended at shutdown. */
  private readonly unknownWatchers = new Set<WatchCall>();
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
      // grpc.health.v1: Check of an unknown service fails with NOT_FOUND; Watch of one sends
      // SERVICE_UNKNOWN and stays open, as the service may appear later (here it never does).
      Check: (call: { request: { service?: string } }, cb: Answer) => {
        const service = call.request.service ?? '';
        if (!HEALTH_SERVICES.has(service)) {
          cb({ code: Status.NOT_FOUND, details: `unknown service ${JSON.stringify(service)}` });
          return;
        }
        cb(null, { status: this.status });
      },
      Watch: (call: WatchCall & { request?: { service?: string } }) => {
        if (!HEALTH_SERVICES.has(call.request?.service ?? '')) {
          call.write({ status: 'SERVICE_UNKNOWN' });
          this.unknownWatchers.add(call);
          call.on('cancelled', () => this.unknownWatchers.delete(call));
          return;
        }
        call.write({ status: this.status });
        this.watchers.add(call);
        call.on('cancelled', () => this.watchers.delete(call));
      },
    };
  }

  endWatches(): void {
    for (const w of this.watchers) w.end();
    for (const w of this.unknownWatchers) w.end();
    this.watchers.clear();
    this.unknownWatchers.clear();
  }
}
