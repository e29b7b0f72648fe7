// The request headers mcp-authz sets for the MCP server, and how a list of header names —
// exact, or a prefix ending in "*" as Istio writes Envoy's prefix matchers — is matched.

/** The identity headers an allowed request carries upstream; client copies are always replaced or removed. */
export const IDENTITY_HEADER_NAMES = ['x-mcp-user-id', 'x-mcp-principal', 'x-mcp-auth-method', 'x-mcp-key-id'] as const;

/** Whether `pattern` ("cookie", "x-mcp-*") names the lower-case header `name`. */
export function headerNameMatches(pattern: string, name: string): boolean {
  return pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

/** A matcher over lower-case header names, built once from patterns. */
export function headerNamesMatcher(patterns: readonly string[]): (name: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')));
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return (name) => exact.has(name) || prefixes.some((p) => name.startsWith(p));
}
