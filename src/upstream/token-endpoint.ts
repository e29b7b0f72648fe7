// One request to an OAuth token endpoint (RFC 6749 §3.2, RFC 8693 §2): a form POST with the
// service's client authentication, a timeout, a size cap, no redirects, and a strict reading
// of the answer. Every failure is an UpstreamTokenError whose code is the deny's; its
// message is safe to log (no token, no secret ever appears in it).
import type { DenyCode } from '../contracts/codes.js';
import { readCappedText } from '../contracts/read-capped.js';

export type UpstreamTokenCode = Extract<
  DenyCode,
  'upstream_token_unavailable' | 'upstream_token_refused' | 'upstream_token_invalid' | 'upstream_secret_unavailable'
>;

export class UpstreamTokenError extends Error {
  constructor(
    readonly code: UpstreamTokenCode,
    message: string,
    /** The RFC 6749 §5.2 `error` of a refusal (`invalid_grant`, …), when the server named one. */
    readonly oauthError?: string,
  ) {
    super(message);
    this.name = 'UpstreamTokenError';
  }
}

export interface IssuedToken {
  accessToken: string;
  /** Epoch milliseconds; from expires_in, else the JWT's exp, else undefined (not cached long). */
  expiresAtMs: number | undefined;
  /** A refresh token, when the answer carries a usable one. */
  refreshToken?: string;
}

export interface TokenRequest {
  url: string;
  form: URLSearchParams;
  /** Extra request headers (Authorization: Basic for client_secret_basic). */
  headers: Record<string, string>;
  timeoutMs: number;
}

/** A token response larger than this is not a token response. */
const MAX_RESPONSE_BYTES = 64 * 1024;
// A token goes into a header value: visible ASCII only, so it can never split or add a header.
const TOKEN_CHARS = /^[\x21-\x7e]{1,16384}$/;

export async function requestToken(
  req: TokenRequest,
  fetchImpl: typeof fetch,
  now: () => number,
): Promise<IssuedToken> {
  let res: Response;
  try {
    res = await fetchImpl(req.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...req.headers },
      body: req.form.toString(),
      // A redirect would carry the client's credentials somewhere else: never followed.
      redirect: 'manual',
      signal: AbortSignal.timeout(req.timeoutMs),
    });
  } catch (err) {
    const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
    throw new UpstreamTokenError(
      'upstream_token_unavailable',
      timedOut ? `no answer within ${req.timeoutMs} ms` : `unreachable: ${reason(err)}`,
    );
  }
  let text: string;
  try {
    text = await readCappedText(res, MAX_RESPONSE_BYTES);
  } catch (err) {
    const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
    if (timedOut)
      throw new UpstreamTokenError('upstream_token_unavailable', `no whole answer within ${req.timeoutMs} ms`);
    throw new UpstreamTokenError(
      res.status >= 500 ? 'upstream_token_unavailable' : 'upstream_token_invalid',
      `HTTP ${res.status}, body unreadable: ${reason(err)}`,
    );
  }
  if (res.status >= 500) throw new UpstreamTokenError('upstream_token_unavailable', `HTTP ${res.status}`);
  if (res.status >= 300 && res.status < 400)
    throw new UpstreamTokenError('upstream_token_invalid', `HTTP ${res.status}: redirects are not followed`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (res.status !== 200) {
    // RFC 6749 §5.2: an error response names its error; only that short code is logged.
    const error =
      isRecord(body) && typeof body.error === 'string' && /^[\x20-\x7e]{1,64}$/.test(body.error)
        ? body.error
        : undefined;
    throw new UpstreamTokenError('upstream_token_refused', `HTTP ${res.status}${error ? ` ${error}` : ''}`, error);
  }
  if (!isRecord(body)) throw new UpstreamTokenError('upstream_token_invalid', 'the answer is not a JSON object');
  const token = body.access_token;
  if (typeof token !== 'string' || !TOKEN_CHARS.test(token))
    throw new UpstreamTokenError('upstream_token_invalid', 'no usable access_token');
  if (typeof body.token_type !== 'string' || body.token_type.toLowerCase() !== 'bearer') {
    throw new UpstreamTokenError('upstream_token_invalid', 'token_type is not Bearer');
  }
  const expiresIn = body.expires_in;
  let expiresAtMs: number | undefined;
  if (expiresIn !== undefined) {
    // Some servers send it as a numeric string; anything else is not an expiry.
    const seconds = typeof expiresIn === 'string' && /^\d{1,10}$/.test(expiresIn) ? Number(expiresIn) : expiresIn;
    if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0)
      throw new UpstreamTokenError('upstream_token_invalid', 'expires_in is not a positive number');
    expiresAtMs = now() + seconds * 1000;
  } else {
    expiresAtMs = jwtExpiry(token);
  }
  const refresh = body.refresh_token;
  return typeof refresh === 'string' && TOKEN_CHARS.test(refresh)
    ? { accessToken: token, expiresAtMs, refreshToken: refresh }
    : { accessToken: token, expiresAtMs };
}

/** The `exp` of a JWT access token, read (not verified) only to know how long to keep it. */
function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as unknown;
    return isRecord(payload) && typeof payload.exp === 'number' && Number.isFinite(payload.exp)
      ? payload.exp * 1000
      : undefined;
  } catch {
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function reason(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}
