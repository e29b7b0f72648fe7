// Decision logs to a remote service, in OPA's decision-log event shape, so a consumer
// written for OPA's decision-log plugin reads mcp-authz's events unchanged: POST <service>/logs,
// a gzip-compressed JSON array per upload. A Check only appends a small record to a bounded
// buffer (no I/O, no serialization); events are built, masked, compressed and sent off the
// Check path. A full buffer drops the oldest events and counts them; a failed upload is
// retried with backoff; nothing here can block or fail a Check.
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import type { CheckTrace, ShadowVerdict } from '../decision/context.js';
import type { Observer } from '../decision/phases.js';
import type { DecisionLogsConfig } from '../config/management.js';
import type { RemoteService } from '../config/remote-service.js';
import { callTargetText } from '../contracts/request.js';
import type { Logger } from './logger.js';

const gzip = promisify(gzipCb);

/** Per-event allowance over the input's length in the buffer's byte count (ids, result, outcome). */
const EVENT_OVERHEAD_BYTES = 512;

export interface DecisionLogShipperOptions {
  service: RemoteService;
  config: DecisionLogsConfig;
  /** OPA's `labels`: `id` (this instance), `version`, and the configured ones. */
  labels: Readonly<Record<string, string>>;
  /** The decision rule's path (OPA's event `path`). */
  path: string;
  /** The bundle's name, for the event's `bundles` map (OPA's `{name: {revision}}`). */
  bundleName: string;
  /** Events sent, or dropped (buffer full, upload refused): the metrics' counter. */
  shipped?(result: 'sent' | 'dropped', events: number): void;
  logger: Logger;
  random?: () => number;
}

/**
 * What a Check leaves in the buffer: references to strings and values it already built, and
 * nothing else of the Check (not its body or headers), so the byte count bounds the memory.
 */
interface Pending {
  decisionId: string;
  ms: number;
  /** The policy's input as JSON text (credentials already redacted), its result, revision and time. */
  input: string | undefined;
  result: unknown;
  revision: string | undefined;
  evalNs: number | undefined;
  handlerNs: number;
  requestedBy: string | undefined;
  outcome: CheckTrace['outcome'];
  endpoint: string | null;
  principal: string | null;
  requestId: string | null;
  method: string | null;
  tool: string | null;
  /** The shadow policy's verdict, filled in after the Check (docs/shadow.md); sent when it differs. */
  shadow: ShadowVerdict | undefined;
  size: number;
}

export class DecisionLogShipper implements Observer {
  private readonly buffer: Pending[] = [];
  private head = 0;
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private failures = 0;
  private closed = false;
  private reqId = 0;
  private readonly maskPaths: string[][];

  constructor(private readonly opts: DecisionLogShipperOptions) {
    this.maskPaths = opts.config.mask.map((p) =>
      p
        .split('/')
        .slice(1)
        .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')),
    );
    this.schedule();
  }

  /** The Check path: one push, and a count. */
  decided(trace: CheckTrace): void {
    if (this.closed) return;
    const size = (trace.policy?.input.length ?? 0) + EVENT_OVERHEAD_BYTES;
    const limit = this.opts.config.reporting.buffer_size_limit_bytes;
    let dropped = 0;
    while (this.bytes + size > limit && this.head < this.buffer.length) {
      this.bytes -= this.buffer[this.head]!.size;
      this.buffer[this.head++] = undefined as unknown as Pending;
      dropped++;
    }
    if (dropped > 0) {
      this.opts.shipped?.('dropped', dropped);
      this.compact();
    }
    if (size > limit) {
      this.opts.shipped?.('dropped', 1);
      return;
    }
    const { policy, ctx } = trace;
    const first = ctx?.mcp.calls[0];
    this.buffer.push({
      decisionId: trace.decisionId,
      ms: Date.now(),
      input: policy?.input,
      result: policy?.result,
      revision: policy?.revision,
      evalNs: policy?.durationNs,
      handlerNs: Number(trace.durationNs),
      requestedBy: ctx?.clientAddress,
      outcome: trace.outcome,
      endpoint: ctx?.endpoint?.name ?? null,
      principal: ctx?.principal.id ?? null,
      requestId: ctx?.request.id ?? null,
      method: first?.method ?? null,
      tool: (first && callTargetText(first)) ?? null,
      shadow: trace.shadow,
      size,
    });
    this.bytes += size;
    if (this.bytes >= this.opts.config.reporting.upload_size_limit_bytes && this.failures === 0 && !this.flushing) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.flush(), 0);
      this.timer.unref();
    }
  }

  /** Events waiting to be sent (tests, shutdown). */
  get pending(): number {
    return this.buffer.length - this.head;
  }

  /** Sends what is buffered now (uploads of at most upload_size_limit_bytes each). */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
      this.schedule();
    });
    return this.flushing;
  }

  /** One last flush, then stop. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.timer);
    if (this.failures === 0) await this.flush().catch(() => undefined);
    else await this.flushing;
    this.closed = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    const { min_delay_seconds: min, max_delay_seconds: max } = this.opts.config.reporting;
    const random = this.opts.random ?? Math.random;
    const ms =
      this.failures > 0
        ? Math.min(Math.max(max, 60), 2 ** Math.min(this.failures - 1, 16)) * 1000 * (0.5 + random() / 2)
        : (min + random() * (max - min)) * 1000;
    this.timer = setTimeout(() => void this.flush(), ms);
    this.timer.unref();
  }

  private async drain(): Promise<void> {
    const limit = this.opts.config.reporting.upload_size_limit_bytes;
    while (this.pending > 0) {
      // Take events up to one upload's size (at least one).
      const batch: Pending[] = [];
      let size = 0;
      while (this.head < this.buffer.length && (batch.length === 0 || size + this.buffer[this.head]!.size <= limit)) {
        const p = this.buffer[this.head]!;
        this.buffer[this.head++] = undefined as unknown as Pending;
        this.bytes -= p.size;
        size += p.size;
        batch.push(p);
      }
      this.compact();
      const body = await gzip(Buffer.from(`[${batch.map((p) => this.event(p)).join(',')}]`));
      let status: number;
      try {
        status = (
          await this.opts.service.request({
            method: 'POST',
            path: this.opts.config.resource,
            headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
            body,
            maxBytes: 64 * 1024,
          })
        ).status;
      } catch (err) {
        this.retryLater(batch, (err as Error).message);
        return;
      }
      if (status >= 200 && status < 300) {
        this.failures = 0;
        this.opts.shipped?.('sent', batch.length);
      } else if (status === 429 || status >= 500 || status === 408) {
        this.retryLater(batch, `answered HTTP ${status}`);
        return;
      } else {
        // The service refuses these events for good (a 4xx): retrying would refuse them again.
        this.failures = 0;
        this.opts.shipped?.('dropped', batch.length);
        this.opts.logger.error(
          { url: this.opts.service.url(this.opts.config.resource).href, status, events: batch.length },
          'decision-log upload refused by the service; these events are dropped',
        );
      }
    }
  }

  /** Puts a failed batch back in front (as far as the buffer's bound allows) and backs off. */
  private retryLater(batch: Pending[], why: string): void {
    this.failures++;
    const limit = this.opts.config.reporting.buffer_size_limit_bytes;
    let kept = 0;
    let bytes = this.bytes;
    while (kept < batch.length && bytes + batch[batch.length - 1 - kept]!.size <= limit)
      bytes += batch[batch.length - 1 - kept++]!.size;
    this.buffer.splice(this.head, 0, ...batch.slice(batch.length - kept));
    this.bytes = bytes;
    if (kept < batch.length) this.opts.shipped?.('dropped', batch.length - kept);
    if (this.failures === 1 || this.failures % 10 === 0) {
      this.opts.logger.warn(
        {
          url: this.opts.service.url(this.opts.config.resource).href,
          err: why,
          failures: this.failures,
          pending: this.pending,
        },
        'decision-log upload failed; retrying with backoff (Checks are not affected)',
      );
    }
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.buffer.length) {
      this.buffer.splice(0, this.head);
      this.head = 0;
    }
  }

  /** One event in OPA's shape, as JSON text. */
  private event(p: Pending): string {
    const erased: string[] = [];
    let input: unknown;
    let result: unknown = p.result;
    // Without masks the input goes out as the JSON text the policy read, unparsed.
    const raw = this.maskPaths.length === 0 ? p.input : undefined;
    if (raw === undefined && p.input !== undefined) {
      try {
        input = JSON.parse(p.input);
      } catch {
        input = undefined;
      }
    }
    if (this.maskPaths.length > 0) {
      const doc: { input?: unknown; result?: unknown } = {
        input,
        result: result === undefined ? undefined : structuredClone(result),
      };
      for (const path of this.maskPaths) if (remove(doc, path)) erased.push(`/${path.join('/')}`);
      input = doc.input;
      result = doc.result;
    }
    const { outcome } = p;
    const head = JSON.stringify({
      labels: this.opts.labels,
      decision_id: p.decisionId,
      ...(p.revision !== undefined ? { bundles: { [this.opts.bundleName]: { revision: p.revision } } } : {}),
      path: this.opts.path,
      ...(input !== undefined ? { input } : {}),
    });
    const tail = JSON.stringify({
      ...(result !== undefined ? { result } : {}),
      ...(p.requestedBy ? { requested_by: p.requestedBy } : {}),
      timestamp: new Date(p.ms).toISOString(),
      metrics: {
        ...(p.evalNs !== undefined ? { timer_rego_query_eval_ns: Math.round(p.evalNs) } : {}),
        timer_server_handler_ns: p.handlerNs,
      },
      ...(erased.length > 0 ? { erased } : {}),
      req_id: ++this.reqId,
      // mcp-authz's own answer, which a deny before the policy (401, 429) has without a result.
      mcp_authz: {
        decision: outcome.kind,
        allow: outcome.allow,
        status: outcome.status,
        reason: outcome.allow ? outcome.reason : outcome.code,
        endpoint: p.endpoint,
        principal: p.principal,
        request_id: p.requestId,
        mcp_method: p.method,
        tool: p.tool,
        ...shadowField(p.shadow),
      },
    });
    return `${head.slice(0, -1)}${raw !== undefined ? `,"input":${raw}` : ''},${tail.slice(1)}`;
  }
}

/** `mcp_authz.shadow`: the shadow policy's decision where it differs from the policy in force. */
function shadowField(v: ShadowVerdict | undefined): { shadow?: unknown } {
  if (v?.state !== 'done' || !v.differs || !v.shadow || !v.enforced) return {};
  return {
    shadow: {
      decision: v.shadow.decision,
      reason: v.shadow.code,
      revision: v.shadow.revision,
      result: v.shadow.result,
      enforced: { decision: v.enforced.decision, reason: v.enforced.code },
    },
  };
}

/** Removes the value at `path` (["input", "a", "b"]); true when there was one. */
function remove(doc: Record<string, unknown>, path: readonly string[]): boolean {
  let node: unknown = doc;
  for (let i = 0; i < path.length - 1; i++) {
    if (node === null || typeof node !== 'object') return false;
    node = (node as Record<string, unknown>)[path[i]!];
  }
  const last = path[path.length - 1]!;
  if (node === null || typeof node !== 'object' || !Object.hasOwn(node, last)) return false;
  if (Array.isArray(node)) return false;
  delete (node as Record<string, unknown>)[last];
  return true;
}

/** OPA's labels for this instance: a fresh id, the version, and the configured ones. */
export function instanceLabels(version: string, labels: Readonly<Record<string, string>>): Record<string, string> {
  return { id: randomUUID(), version, ...labels };
}
