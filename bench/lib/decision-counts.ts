// mcp-authz's own count of its decisions (mcp_authz_check_total from /metrics, summed over
// the workers by the primary), read before and after a load: since h2load reads no gRPC
// trailers, this is how the benchmark knows every answer under load was the expected one.
import type { Expectation } from './scenarios.js';

/** Decisions by "allow 200" / "deny 401" … */
export type DecisionCounts = Record<string, number>;

const LINE = /^mcp_authz_check_total\{([^}]*)\} ([0-9.e+]+)$/;

export async function readDecisionCounts(metricsUrl: string): Promise<DecisionCounts> {
  const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`${metricsUrl}: HTTP ${res.status}`);
  const counts: DecisionCounts = {};
  for (const line of (await res.text()).split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    const key = `${labels.decision} ${labels.status}`;
    counts[key] = (counts[key] ?? 0) + Number(m[2]);
  }
  return counts;
}

export interface DecisionTally {
  /** Decisions counted by the service during the load. */
  counted: number;
  /** Of which the scenario's expected decision (allow, or deny with its status). */
  expected: number;
  /** Anything else, by decision and status: must be empty. */
  other: DecisionCounts;
}

export function tally(before: DecisionCounts, after: DecisionCounts, expect: Expectation): DecisionTally {
  const want = expect.allow ? 'allow 200' : `deny ${expect.status}`;
  let counted = 0;
  let expected = 0;
  const other: DecisionCounts = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d <= 0) continue;
    counted += d;
    if (k === want) expected += d;
    else other[k] = d;
  }
  return { counted, expected, other };
}
