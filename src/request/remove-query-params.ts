// Removes query parameters from a request path as sent (`/mcp?api_key=…&q=1` → `/mcp?q=1`),
// for transports that cannot ask Envoy to remove them (ext_proc rewrites `:path` instead).
// A parameter is removed when its name, decoded as the service reads it (src/request/parse-query.ts:
// form decoding, "&" separated), is one of `names`: every spelling of a credential the
// authenticator read goes. Every other byte of the path and query stays as it was.

export function removeQueryParams(rawPath: string, names: readonly string[]): string {
  const q = rawPath.indexOf('?');
  if (q < 0 || names.length === 0) return rawPath;
  const kept: string[] = [];
  for (const part of rawPath.slice(q + 1).split('&')) {
    if (!names.includes(decodedName(part))) kept.push(part);
  }
  const path = rawPath.slice(0, q);
  return kept.length === 0 ? path : `${path}?${kept.join('&')}`;
}

/** The parameter's name as URLSearchParams (parseQuery) decodes it; "" for an empty part. */
function decodedName(part: string): string {
  for (const [name] of new URLSearchParams(part)) return name;
  return '';
}
