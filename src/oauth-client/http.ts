// The OAuth client's HTTP: bounded requests (a per-request timeout, the login's deadline, a
// size cap) whose failures are login failures that say which URL and why. OAuth 2.1 puts every
// authorization server endpoint on HTTPS; plain http is accepted for loopback hosts only,
// unless the user says otherwise.
import { LoginFailure } from './login-failure.js';
import { readCappedText } from '../contracts/read-capped.js';

export interface HttpContext {
  fetch: typeof fetch;
  /** The whole login's deadline (--timeout) and Ctrl-C. */
  signal: AbortSignal;
  /** Each request's own limit. */
  requestTimeoutMs: number;
  /** Plain http to hosts other than loopback (--allow-http). */
  allowHttp: boolean;
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  text: string;
  url: string;
}

const MAX_BYTES = 1 << 20;

const LOOPBACK = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/** Refuses a URL the login must not send credentials or codes to: not http(s), or plain http off loopback. */
export function assertTransport(url: string, what: string, allowHttp: boolean): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new LoginFailure('metadata_invalid', `${what} ${JSON.stringify(url)} is not an absolute URL`);
  }
  if (u.protocol === 'https:') return u;
  if (u.protocol === 'http:' && (allowHttp || LOOPBACK.test(u.hostname))) return u;
  if (u.protocol === 'http:') {
    throw new LoginFailure(
      'metadata_invalid',
      `${what} ${url} is plain http: OAuth 2.1 needs https off loopback (pass --allow-http for a test server you trust)`,
    );
  }
  throw new LoginFailure('metadata_invalid', `${what} ${url} is not an http(s) URL`);
}

/** One request; `discardBody` reads only the status and headers (a stream that never ends cannot stall it). */
export async function request(
  url: string,
  init: RequestInit,
  ctx: HttpContext,
  discardBody = false,
): Promise<HttpAnswer> {
  const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(ctx.requestTimeoutMs)]);
  const method = init.method ?? 'GET';
  let res: Response;
  try {
    res = await ctx.fetch(url, { ...init, signal });
  } catch (err) {
    throw failure(err, `${method} ${url}`, ctx);
  }
  if (discardBody) {
    await res.body?.cancel().catch(() => {});
    return { status: res.status, headers: res.headers, text: '', url: res.url || url };
  }
  let text: string;
  try {
    text = await readCappedText(res, MAX_BYTES);
  } catch (err) {
    throw failure(err, `${method} ${url} (reading the answer)`, ctx);
  }
  return { status: res.status, headers: res.headers, text, url: res.url || url };
}

/** Parses a JSON object answer, or says which document is not one. */
export function jsonObject(answer: HttpAnswer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(answer.text);
  } catch {
    throw new LoginFailure(
      'metadata_invalid',
      `${what} at ${answer.url} is not JSON (HTTP ${answer.status}, ${answer.headers.get('content-type') ?? 'no content-type'})`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new LoginFailure('metadata_invalid', `${what} at ${answer.url} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function failure(err: unknown, what: string, ctx: HttpContext): LoginFailure {
  if (ctx.signal.aborted) {
    const reason = ctx.signal.reason as { name?: string } | undefined;
    if (reason instanceof LoginFailure) return reason;
    return new LoginFailure(
      'timeout',
      `${what}: the login ran out of time (${reason?.name === 'TimeoutError' ? '--timeout' : 'interrupted'})`,
    );
  }
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError')
    return new LoginFailure('unreachable', `${what}: no answer within ${ctx.requestTimeoutMs / 1000} s`);
  const detail = e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
  return new LoginFailure('unreachable', `${what} failed: ${detail}`);
}
