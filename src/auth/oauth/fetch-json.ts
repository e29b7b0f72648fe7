// One bounded HTTP GET for IdP documents (discovery, JWKS): a timeout, a size cap and
// JSON-only, so a slow or hostile IdP can never stall or flood the service.
import { readCappedText } from '../../contracts/read-capped.js';

export interface FetchJsonOptions {
  fetch: typeof fetch;
  timeoutMs: number;
  maxBytes: number;
  /** Aborts every request when the verifier closes. */
  signal: AbortSignal;
}

/** Thrown for any failed fetch; `message` is safe to log (URL and reason, no secrets). */
export class FetchJsonError extends Error {
  constructor(
    message: string,
    /** HTTP status, when a response arrived. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'FetchJsonError';
  }
}

export async function fetchJson(url: string, opts: FetchJsonOptions): Promise<unknown> {
  const signal = AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs)]);
  let res: Response;
  try {
    res = await opts.fetch(url, { headers: { accept: 'application/json' }, redirect: 'follow', signal });
  } catch (err) {
    throw new FetchJsonError(`GET ${url} failed: ${describe(err, opts.timeoutMs)}`);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new FetchJsonError(`GET ${url} answered HTTP ${res.status}`, res.status);
  }
  let text: string;
  try {
    text = await readCappedText(res, opts.maxBytes);
  } catch (err) {
    throw new FetchJsonError(`GET ${url} body unreadable: ${describe(err, opts.timeoutMs)}`, res.status);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new FetchJsonError(`GET ${url} did not return JSON`, res.status);
  }
}

function describe(err: unknown, timeoutMs: number): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return `timed out after ${timeoutMs} ms`;
    if (err.name === 'AbortError') return 'aborted';
    const cause = (err as { cause?: unknown }).cause;
    const detail = cause instanceof Error ? cause.message : undefined;
    return detail ? `${err.message} (${detail})` : err.message;
  }
  return String(err);
}
