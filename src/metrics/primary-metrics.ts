// The metrics only the primary of `serve --workers N` can count, served after the workers'
// aggregated ones on its /metrics (docs/metrics.md).
import { Counter, Registry } from 'prom-client';

export type ForfeitCause = 'worker_exit' | 'revoke_timeout';

export class PrimaryMetrics {
  readonly registry = new Registry();
  private readonly forfeited: Counter<'cause'>;

  constructor() {
    this.forfeited = new Counter({
      name: 'mcp_authz_failed_auth_lease_forfeited_total',
      help: 'Failed authentications a worker was lent and did not report back (it exited, or did not answer a revoke in time): counted as tried, so a client may be locked out up to this many failures early.',
      labelNames: ['cause'],
      registers: [this.registry],
    });
    for (const cause of ['worker_exit', 'revoke_timeout'] satisfies ForfeitCause[]) this.forfeited.labels(cause);
  }

  leaseForfeited(units: number, cause: ForfeitCause): void {
    this.forfeited.labels(cause).inc(units);
  }
}
