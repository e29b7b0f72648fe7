// Credentials never reach the policy: the opa-envoy-plugin `attributes` view of a request
// (src/envoy/attributes.ts) with credential headers and query parameters replaced. The view
// is shared by every reader of the request, so the parts redacted are copies.

/** What a credential's value is replaced with in the policy input. */
export const REDACTED = '[REDACTED]';

type Secret = (name: string) => boolean;
type Json = Record<string, unknown>;

interface HeaderEntry {
  key?: string;
  value?: string;
  rawValue?: string;
}

export function redactedAttributes(attrs: Readonly<Json>, headerSecret: Secret, querySecret: Secret): Json {
  const request = attrs.request as Json | undefined;
  const http = request?.http as Json | undefined;
  if (!http) return attrs as Json;
  const out: Json = { ...http };
  const headers = http.headers as Record<string, string> | undefined;
  if (headers) {
    const copy: Record<string, string> = {};
    for (const name of Object.keys(headers)) copy[name] = headerSecret(name.toLowerCase()) ? REDACTED : headers[name]!;
    if (typeof copy[':path'] === 'string') copy[':path'] = redactPathQuery(copy[':path'], querySecret);
    out.headers = copy;
  }
  const headerMap = http.headerMap as { headers?: HeaderEntry[] } | undefined;
  if (headerMap?.headers) {
    out.headerMap = {
      ...headerMap,
      headers: headerMap.headers.map((e) => {
        if (!e.key || !headerSecret(e.key.toLowerCase())) return e;
        const r: HeaderEntry = { ...e };
        if (r.value !== undefined) r.value = REDACTED;
        if (r.rawValue !== undefined) r.rawValue = Buffer.from(REDACTED).toString('base64');
        return r;
      }),
    };
  }
  if (typeof http.path === 'string') out.path = redactPathQuery(http.path, querySecret);
  return { ...attrs, request: { ...request, http: out } };
}

/** A path with the values of credential query parameters replaced. */
export function redactPathQuery(path: string, secret: Secret): string {
  const q = path.indexOf('?');
  if (q === -1) return path;
  const parts = path.slice(q + 1).split('&').map((kv) => {
    const eq = kv.indexOf('=');
    const rawName = eq === -1 ? kv : kv.slice(0, eq);
    let name = rawName;
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, ' '));
    } catch {
      // an undecodable name is compared as sent
    }
    return secret(name) ? `${rawName}=${encodeURIComponent(REDACTED)}` : kv;
  });
  return `${path.slice(0, q)}?${parts.join('&')}`;
}
