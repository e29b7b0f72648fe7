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
  const parts = path
    .slice(q + 1)
    .split('&')
    .map((kv) => {
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

/**
 * The strings that stand for a request's credentials in anything the service writes: each
 * credential header's whole value, then its parts of 8 characters or more (the token of
 * "Bearer <token>", a cookie's value, a JWT's segments), so a policy that splits a header
 * and a trace that shows the parts are caught too. Longest first: a whole value is replaced
 * before its parts.
 */
export function credentialStrings(values: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const v of values) {
    if (v.length === 0 || v === REDACTED) continue;
    out.add(v);
    for (const part of v.split(/[\s,;=.:"'()<>[\]{}\\/]+/)) if (part.length >= 8) out.add(part);
  }
  // The JSON-escaped forms, as they appear inside JSON text.
  for (const s of [...out]) {
    const escaped = JSON.stringify(s).slice(1, -1);
    if (escaped !== s) out.add(escaped);
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/** Whether `text` contains any of the credential strings. */
export function mentionsCredential(text: string, secrets: readonly string[]): boolean {
  for (const s of secrets) if (text.includes(s)) return true;
  return false;
}

/** `text` with every credential string replaced by [REDACTED]. */
export function scrubText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
  return out;
}

/** A copy of a JSON value with every credential string inside its strings (keys too) replaced. */
export function scrubJson(value: unknown, secrets: readonly string[]): unknown {
  if (secrets.length === 0) return value;
  if (typeof value === 'string') return scrubText(value, secrets);
  if (Array.isArray(value)) return value.map((v) => scrubJson(v, secrets));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[scrubText(k, secrets)] = scrubJson(v, secrets);
    return out;
  }
  return value;
}
