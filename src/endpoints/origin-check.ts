// The Origin check (docs/origins.md): a browser page may call an endpoint only from an origin
// the endpoint allows, so a page on another site — or one reached through DNS rebinding —
// cannot use the endpoint through a user's browser. Requests without Origin (MCP clients that
// are not browsers) pass. Allowed origins are compiled per endpoint at load; a Check does one
// header read, one canonicalization and one Set lookup.
import { deny, type Deny } from '../contracts/outcome.js';
import type { HeaderMap } from '../contracts/request.js';
import { canonicalOrigin, originOfUrl } from '../contracts/web-origin.js';
import type { Endpoint } from './registry.js';

/** How a request's Origin reads, before any endpoint is asked. */
export type RequestOrigin =
  | { kind: 'absent' }
  | { kind: 'origin'; origin: string }
  /** Present but not one origin: "null", malformed, repeated. */
  | { kind: 'invalid'; reason: 'null' | 'malformed' | 'repeated' };

export type OriginVerdict = 'absent' | 'allowed' | 'not_allowed' | 'null' | 'malformed' | 'repeated';

interface OriginRule {
  any: boolean;
  allowed: ReadonlySet<string>;
}

const ABSENT: RequestOrigin = Object.freeze({ kind: 'absent' });

const ADVICE =
  'A browser page may call this endpoint only from an origin listed in its allowedOrigins (docs/origins.md); MCP clients that are not browsers send no Origin.';
const DESCRIPTIONS: Readonly<Record<Exclude<OriginVerdict, 'absent' | 'allowed'>, string>> = {
  not_allowed: `The request's Origin is not allowed on this endpoint. ${ADVICE}`,
  null: `The request's Origin is "null" (a sandboxed frame, a file: page or a redirect), which any site can send; it is never allowed. ${ADVICE}`,
  malformed: `The request's Origin is not an origin (scheme://host[:port]). ${ADVICE}`,
  repeated: `The request carries more than one Origin. ${ADVICE}`,
};

export function readOrigin(headers: HeaderMap): RequestOrigin {
  const values = headers.origin;
  if (values === undefined) return ABSENT;
  // Two Origin headers, or one holding a list, cannot be one origin: readers would pick differently.
  if (values.length !== 1 || values[0]!.includes(',')) return { kind: 'invalid', reason: 'repeated' };
  const v = values[0]!.trim();
  if (v === 'null') return { kind: 'invalid', reason: 'null' };
  const origin = canonicalOrigin(v);
  return origin === undefined ? { kind: 'invalid', reason: 'malformed' } : { kind: 'origin', origin };
}

export class OriginCheck {
  private readonly rules = new Map<Endpoint, OriginRule>();

  /** @param publicBaseUrl the service's public URL: its origin is every endpoint's own by default. */
  constructor(endpoints: readonly Endpoint[], publicBaseUrl: string | undefined) {
    const base = publicBaseUrl === undefined ? undefined : originOfUrl(publicBaseUrl);
    for (const e of endpoints) this.rules.set(e, ruleFor(e, base));
  }

  /** Whether `headers` come from a caller the endpoint admits, and why not. */
  verdict(headers: HeaderMap, endpoint: Endpoint): OriginVerdict {
    const o = readOrigin(headers);
    if (o.kind === 'absent') return 'absent';
    const rule = this.rules.get(endpoint);
    if (rule?.any) return 'allowed';
    if (o.kind === 'invalid') return o.reason;
    return rule?.allowed.has(o.origin) ? 'allowed' : 'not_allowed';
  }

  /** The 403 for a request whose Origin the endpoint does not admit; undefined when it does (or there is none). */
  check(headers: HeaderMap, endpoint: Endpoint): Deny | undefined {
    const v = this.verdict(headers, endpoint);
    if (v === 'absent' || v === 'allowed') return undefined;
    return deny('origin_not_allowed', DESCRIPTIONS[v], { extra: { origin_check: v } });
  }

  /** The origins an endpoint admits ("*" for any), canonical. */
  allowedOrigins(endpoint: Endpoint): string[] {
    const rule = this.rules.get(endpoint);
    return rule === undefined ? [] : rule.any ? ['*'] : [...rule.allowed];
  }
}

/** The endpoint's list, else its own origins: that of its `resource` and of `publicBaseUrl` (configured, never read from the request). */
function ruleFor(e: Endpoint, baseOrigin: string | undefined): OriginRule {
  if (e.allowedOrigins !== undefined) {
    if (e.allowedOrigins.includes('*')) return { any: true, allowed: new Set() };
    return { any: false, allowed: new Set(e.allowedOrigins) };
  }
  const own = new Set<string>();
  if (baseOrigin !== undefined) own.add(baseOrigin);
  const resourceOrigin = e.resource === undefined ? undefined : originOfUrl(e.resource);
  if (resourceOrigin !== undefined) own.add(resourceOrigin);
  return { any: false, allowed: own };
}
