// The cluster primary decides no Check and has no registry of its own: /metrics is the sum of
// its workers' (prom-client's AggregatorRegistry). What the primary itself counts — the log
// lines it dropped — is added to those sums here, in the exposition text.
import { LOG_KINDS, type DroppedLines } from '../log/log-sink.js';

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
