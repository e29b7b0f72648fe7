// Status reports in OPA's status shape: POST <service>/status with the labels, each bundle's
// state (active revision, last request, download and activation, the last error) and the
// plugins' states, whenever the bundle's state changes. A report that fails is retried with
// backoff; a newer state replaces one not yet sent.
import type { RemoteService } from '../config/remote-service.js';
import type { Logger } from '../log/logger.js';
import type { BundleStatus } from './bundle-poller.js';

export interface StatusReporterOptions {
  service: RemoteService;
  labels: Readonly<Record<string, string>>;
  logger: Logger;
  /** Whether decision logs go to a service too (the `decision_logs` plugin's state). */
  decisionLogs: boolean;
}

export class StatusReporter {
  private latest: BundleStatus | undefined;
  private sending: Promise<void> | undefined;
  private dirty = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: StatusReporterOptions) {}

  /** The bundle's state changed: report it (coalesced with reports in flight). */
  update(status: BundleStatus): void {
    this.latest = structuredClone(status);
    this.dirty = true;
    if (!this.sending && this.failures === 0) this.kick();
  }

  /** The report in OPA's shape. */
  report(): Record<string, unknown> {
    const b = this.latest;
    const bundleState = b === undefined || b.active_revision === undefined ? 'NOT_READY' : 'OK';
    return {
      labels: this.opts.labels,
      ...(b ? { bundles: { [b.name]: b } } : {}),
      plugins: {
        bundle: { state: bundleState },
        ...(this.opts.decisionLogs ? { decision_logs: { state: 'OK' } } : {}),
        status: { state: 'OK' },
      },
    };
  }

  /** Resolves when nothing is waiting to be sent (tests). */
  async settled(): Promise<void> {
    while (this.sending) await this.sending;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private kick(): void {
    if (this.closed) return;
    this.sending ??= (async () => {
      while (this.dirty && !this.closed) {
        this.dirty = false;
        try {
          const res = await this.opts.service.request({
            method: 'POST',
            path: '/status',
            headers: { 'content-type': 'application/json' },
            body: Buffer.from(JSON.stringify(this.report())),
            maxBytes: 64 * 1024,
          });
          if (res.status < 200 || res.status >= 300) throw new Error(`answered HTTP ${res.status}`);
          this.failures = 0;
        } catch (err) {
          this.failures++;
          this.dirty = true;
          if (this.failures === 1 || this.failures % 10 === 0) {
            this.opts.logger.warn(
              { url: this.opts.service.url('/status').href, err: (err as Error).message, failures: this.failures },
              'status report failed; retrying with backoff',
            );
          }
          this.timer = setTimeout(() => this.kick(), Math.min(60, 2 ** Math.min(this.failures - 1, 6)) * 1000);
          this.timer.unref();
          return;
        }
      }
    })().finally(() => {
      this.sending = undefined;
    });
  }
}
