// Finds an issuer's jwks_uri from its metadata: OpenID Connect Discovery first, then
// RFC 8414 authorization server metadata (inserted form, then the appended form that
// many IdPs with a path actually serve).
import { trimSlash } from '../../contracts/trim-slash.js';
import { fetchJson, FetchJsonError, type FetchJsonOptions } from './fetch-json.js';

const OPENID = '/.well-known/openid-configuration';
const OAUTH = '/.well-known/oauth-authorization-server';

/** The metadata URLs to try for `issuer`, in order, without duplicates. */
export function discoveryUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = trimSlash(url.pathname);
  const base = `${url.origin}${path}`;
  const urls = [
    `${base}${OPENID}`,
    // RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
    `${url.origin}${OAUTH}${path}`,
    `${base}${OAUTH}`,
  ];
  return [...new Set(urls)];
}

/**
 * Fetches the issuer's metadata and returns its jwks_uri. A document whose `issuer` differs
 * from the configured one is refused (RFC 8414 §3.3, OIDC Discovery §4.3): it would let one
 * IdP's keys sign for another.
 */
export async function discoverJwksUri(issuer: string, opts: FetchJsonOptions): Promise<string> {
  const failures: string[] = [];
  for (const url of discoveryUrls(issuer)) {
    let doc: unknown;
    try {
      doc = await fetchJson(url, opts);
    } catch (err) {
      if (opts.signal.aborted) throw err;
      failures.push(err instanceof FetchJsonError ? err.message : String(err));
      continue;
    }
    const meta = doc as { issuer?: unknown; jwks_uri?: unknown } | null;
    if (typeof meta !== 'object' || meta === null) {
      failures.push(`${url}: metadata is not a JSON object`);
      continue;
    }
    if (!sameIssuer(meta.issuer, issuer)) {
      failures.push(`${url}: metadata issuer ${JSON.stringify(meta.issuer)} does not match`);
      continue;
    }
    if (typeof meta.jwks_uri !== 'string' || !isHttpUrl(meta.jwks_uri)) {
      failures.push(`${url}: metadata has no http(s) jwks_uri`);
      continue;
    }
    return meta.jwks_uri;
  }
  throw new FetchJsonError(`discovery for ${issuer} failed: ${failures.join('; ')}`);
}

// A trailing slash is the one difference IdPs and operators commonly disagree on.
function sameIssuer(found: unknown, configured: string): boolean {
  return typeof found === 'string' && trimSlash(found) === trimSlash(configured);
}

function isHttpUrl(value: string): boolean {
  try {
    const { protocol } = new URL(value);
    return protocol === 'https:' || protocol === 'http:';
  } catch {
    return false;
  }
}
