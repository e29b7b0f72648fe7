// Downloads the policy bundle from a bundle service the way OPA's bundle plugin does:
// GET <service>/<resource> with If-None-Match (304: nothing new), a random wait between the
// polling delays, long polling (`Prefer: wait=N`) when the server answers with OPA's
// long-polling content type, and a bounded exponential backoff while the server fails.
// What was downloaded goes to `activate`, which verifies and swaps it in or throws; the
// ETag is kept only for a bundle that activated, so a refused one is fetched again (and
// refused again, counted) until the server serves a good one. It keeps OPA's status fields.
import { createHash } from 'node:crypto';
import type { BundleSourceConfig } from '../config/management.js';
import type { RemoteService } from '../config/remote-service.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';

/** OPA's content type for a long-polled bundle answer. */
export const LONG_POLL_CONTENT_TYPE = 'application/vnd.openpolicyagent.bundles';

/** One bundle's state in OPA's status shape (docs/decision-logs.md, "Status reports"). */
export interface BundleStatus {
  name: string;
  active_revision?: string;
  last_request?: string;
  last_successful_request?: string;
  last_successful_download?: string;
  last_successful_activation?: string;
  http_code?: number;
  code?: string;
  message?: string;
  errors?: string[];
  type: 'snapshot';
  size?: number;
}

export interface BundlePollerOptions {
  name: string;
  service: RemoteService;
  config: BundleSourceConfig;
  /** Verifies and activates the downloaded bytes, answering the revision in force; throws to refuse them. */
  activate(bytes: Buffer, origin: string): Promise<string>;
  logger: Logger;
  events: ServiceEvents;
  /** Called whenever the status changes (status reports, tests). */
  onStatus?(status: BundleStatus): void;
  random?: () => number;
}

export class BundlePoller {
  private etag: string | undefined;
  /** The digest of the bytes in force: a server without ETags that serves them again changes nothing. */
  private activeDigest: string | undefined;
  private longPolling = false;
  private failures = 0;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readonly abort = new AbortController();
  readonly status: BundleStatus;
  readonly resource: string;

  constructor(private readonly opts: BundlePollerOptions) {
    this.resource = opts.config.resource ?? `bundles/${opts.name}`;
    this.status = { name: opts.name, type: 'snapshot' };
  }

  /** Where the bundle comes from, for logs. */
  get origin(): string {
    return this.opts.service.url(this.resource).href;
  }

  /** One request (and activation, when something new came); never throws. */
  async once(): Promise<boolean> {
    const { config, service, events, logger, name } = this.opts;
    const now = () => new Date().toISOString();
    const wait = config.polling.long_polling_timeout_seconds;
    const headers: Record<string, string> = { accept: `application/gzip, ${LONG_POLL_CONTENT_TYPE}` };
    if (this.etag !== undefined) headers['if-none-match'] = this.etag;
    if (wait !== undefined) headers.prefer = `wait=${wait}`;
    this.status.last_request = now();
    let stage: 'request' | 'activation' = 'request';
    try {
      const res = await service.request({
        method: 'GET',
        path: this.resource,
        headers,
        holdMs: wait !== undefined ? wait * 1000 : 0,
        maxBytes: config.size_limit_bytes,
        signal: this.abort.signal,
      });
      this.status.http_code = res.status;
      if (res.status !== 200 && res.status !== 304)
        throw new Error(
          `answered HTTP ${res.status}${res.body.length ? `: ${res.body.subarray(0, 200).toString('utf8').replace(/\s+/g, ' ')}` : ''}`,
        );
      this.longPolling =
        wait !== undefined &&
        String(res.headers['content-type'] ?? '')
          .split(';')[0]!
          .trim() === LONG_POLL_CONTENT_TYPE;
      this.status.last_successful_request = now();
      if (res.status === 304) {
        events.bundleRequest?.(name, 'not_modified');
      } else {
        events.bundleRequest?.(name, 'modified');
        this.status.last_successful_download = now();
        this.status.size = res.body.length;
        const digest = createHash('sha256').update(res.body).digest('hex');
        if (digest !== this.activeDigest) {
          stage = 'activation';
          const revision = await this.opts.activate(res.body, this.origin);
          this.activeDigest = digest;
          this.status.active_revision = revision;
          this.status.last_successful_activation = now();
        }
        const etag = res.headers.etag;
        this.etag = typeof etag === 'string' && etag !== '' ? etag : undefined;
      }
      this.failures = 0;
      delete this.status.code;
      delete this.status.message;
      delete this.status.errors;
      this.opts.onStatus?.(this.status);
      return true;
    } catch (err) {
      if (this.closed) return false;
      this.failures++;
      const message = err instanceof Error ? err.message : String(err);
      this.status.code = 'bundle_error';
      this.status.message = stage === 'request' ? `download failed: ${message}` : `activation failed: ${message}`;
      this.status.errors = [message];
      if (stage === 'request') {
        events.bundleRequest?.(name, 'failure');
        const kept = this.status.active_revision;
        logger.error(
          { bundle: name, url: this.origin, err: message, policy_revision_kept: kept ?? null, failures: this.failures },
          kept
            ? 'bundle download failed; the policy in force stays'
            : 'bundle download failed; no policy is loaded and Checks are denied',
        );
      }
      this.opts.onStatus?.(this.status);
      return false;
    }
  }

  /** Polls until closed. */
  start(): void {
    this.loop ??= (async () => {
      while (!this.closed) {
        await this.sleep(this.nextDelayMs());
        if (this.closed) break;
        await this.once();
      }
    })();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
  }

  /** Long polling: at once; failing: 1 s doubling up to max_delay; else random between the delays. */
  private nextDelayMs(): number {
    const { min_delay_seconds: min, max_delay_seconds: max } = this.opts.config.polling;
    const random = this.opts.random ?? Math.random;
    if (this.failures > 0) return Math.min(max, 2 ** Math.min(this.failures - 1, 20)) * 1000 * (0.5 + random() / 2);
    if (this.longPolling) return 0;
    return (min + random() * (max - min)) * 1000;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }
}
