// The metrics only the primary of `serve --workers N` can count, served after the workers'
// aggregated ones on its /metrics (docs/metrics.md): the failed-auth leases it forfeited, and
// the log lines it dropped itself (added to the workers' sums in the exposition text).
import { Counter, Registry } from 'prom-client';
import { LOG_KINDS, type DroppedLines } from '../log/log-sink.js';

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

/** The workers' aggregated exposition with the primary's dropped log lines added to `mcp_authz_log_lines_dropped_total`. */
export function withPrimaryLogDrops(text: string, sink: { readonly dropped?: DroppedLines } | undefined): string {
  if (!sink?.dropped) return text;
  let out = text;
  for (const log of LOG_KINDS) {
    const own = sink.dropped[log];
    if (own === 0) continue;
    const re = new RegExp(`^(mcp_authz_log_lines_dropped_total\\{log="${log}"\\}) (\\S+)$`, 'm');
    out = out.replace(re, (_m, series: string, value: string) => `${series} ${Number(value) + own}`);
  }
  return out;
}
