// SPIFFE IDs (spiffe://<trust domain>/<path>), read strictly: lower-case trust domain, path
// segments of letters, digits, ".", "-" and "_", no "." or ".." segments, no empty segment,
// no trailing "/", no query, fragment, port or escapes, at most 2048 bytes. A workload's ID has
// a path; the bare trust domain ID names no workload.

const MAX_SPIFFE_ID_BYTES = 2048;
const SPIFFE_ID = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[A-Za-z0-9._-]+)+)$/;
const DOT_SEGMENT = /\/\.\.?(?=\/|$)/;

/** The SPIFFE ID of a workload, split, or undefined when `s` is not one. */
export function parseSpiffeId(s: string): { id: string; trustDomain: string; path: string } | undefined {
  if (s.length > MAX_SPIFFE_ID_BYTES) return undefined;
  const m = SPIFFE_ID.exec(s);
  if (m === null || DOT_SEGMENT.test(m[2]!)) return undefined;
  return { id: s, trustDomain: m[1]!, path: m[2]! };
}

/**
 * Whether `s` names workloads in an endpoint's `workloads` map: a workload's SPIFFE ID, or
 * "spiffe://<trust domain>[/<path>]/*" for every ID below that prefix.
 */
export function isSpiffePattern(s: string): boolean {
  if (!s.endsWith('/*')) return parseSpiffeId(s) !== undefined;
  const prefix = s.slice(0, -2);
  return parseSpiffeId(`${prefix}/x`) !== undefined;
}
