// The decision log: one JSON line per Check decision (pino), for audit and for explaining
// a deny after the fact. Only ids and codes: never a key, a token or a header map.
// It runs on every Check, so the line is built with one JSON.stringify and written to the
// service log's sink (src/log/log-sink.ts), in exactly the shape pino writes (level, time, the
// logger's bindings, the fields, msg): pino's field-by-field serializer cost twice as much. A
// logger not made by createLogger gets the fields through pino (its `time` is then pino's
// own clock reading, which can be a millisecond after `ts`).
// `time` stays pino's (epoch milliseconds, what log shippers already parse); `ts` is the
// same instant in ISO 8601 for people and for tools that want a calendar time.
import { randomUUID } from 'node:crypto';
import type { CheckTrace, ListTrace } from '../decision/context.js';
import type { DriftRecord, Observer } from '../decision/phases.js';
import { callTargetText } from '../contracts/request.js';
import { childLogger, logSinkOf, type LineSink, type Logger } from './logger.js';

export interface DecisionLogOptions {
  /** Fraction of allowed decisions logged (0..1). Denies are always logged. */
  sampleRate: number;
  /** Source of randomness for sampling (tests pass a fixed one). */
  random?: () => number;
}

/** At most this many MCP calls of a batch are listed in one line. */
const MAX_CALLS = 20;

const INFO = 30;

export class DecisionLog implements Observer {
  private readonly log: Logger;
  private readonly random: () => number;
  /** The service log's sink and the logger's bindings, serialized once (`,"service":…,"log":"decision"`). */
  private readonly sink: LineSink | undefined;
  private readonly bindings: string;
  /** The last millisecond formatted, and its ISO form: many decisions share one. */
  private lastMs = -1;
  private lastIso = '';

  constructor(
    logger: Logger,
    private readonly opts: DecisionLogOptions,
  ) {
    this.log = childLogger(logger, { log: 'decision' });
    this.random = opts.random ?? Math.random;
    this.sink = logSinkOf(this.log);
    // pino writes each binding as `,"key":value` after level and time (logger.bindings() is its public copy of them).
    const bindings = JSON.stringify(this.log.bindings());
    this.bindings = this.sink && bindings.length > 2 ? `,${bindings.slice(1, -1)}` : '';
  }

  decided({ decisionId, ctx, outcome, policy, durationNs, incoming, span, approval }: CheckTrace): void {
    // Sampling drops allows only: denies are what an investigation looks for (and allows an approval let through).
    if (
      outcome.allow &&
      approval === undefined &&
      outcome.reason !== 'dry_run' &&
      !(this.opts.sampleRate >= 1 || this.random() < this.opts.sampleRate)
    )
      return;
    if (!this.log.isLevelEnabled('info')) return;
    const calls = ctx?.mcp.calls ?? [];
    const first = calls[0];
    const now = Date.now();
    this.write(
      now,
      {
        ts: this.iso(now),
        decision_id: decisionId,
        request_id: ctx?.request.id,
        // The trace this decision belongs to: its own span's when sampled, else the caller's.
        trace_id: span?.traceId ?? incoming?.traceId,
        span_id: span?.spanId,
        client_address: ctx?.clientAddress,
        endpoint: ctx?.endpoint?.name ?? null,
        principal: ctx?.principal.id ?? null,
        auth_method: ctx?.principal.method ?? null,
        mcp_method: first?.method ?? null,
        tool: (first && callTargetText(first)) ?? null,
        calls:
          calls.length > 1
            ? calls.slice(0, MAX_CALLS).map((c) => ({ method: c.method, name: callTargetText(c) }))
            : undefined,
        batch_size: calls.length > 1 ? calls.length : undefined,
        decision: outcome.kind,
        allow: outcome.allow,
        status: outcome.status,
        reason: outcome.allow ? outcome.reason : outcome.code,
        auth_detail: ctx?.authFailure?.detail,
        policy_decision: policy?.decision ?? null,
        policy_revision: policy?.revision ?? null,
        duration_ms: Number(durationNs) / 1e6,
        policy_duration_ms: policy !== undefined ? policy.durationNs / 1e6 : undefined,
        // A held call let through: which approval, and its signed receipt (docs/approvals.md),
        // the last field: its JSON, made once per grant, follows the others as written.
        approval:
          approval && !this.sink
            ? { id: approval.approvalId, approver: approval.approver, receipt: approval.receipt }
            : undefined,
      },
      'decision',
      approval && `,"approval":${approval.logJson}`,
    );
  }

  /** One line per list response filtered for a caller (ext_proc): what was shown and hidden, or why it was withheld. */
  listed({ ctx, form, result, reason, methods, policy, dryRun, durationNs }: ListTrace): void {
    if (!this.log.isLevelEnabled('info')) return;
    const now = Date.now();
    this.write(
      now,
      {
        ts: this.iso(now),
        decision_id: randomUUID(),
        request_id: ctx.request.id,
        endpoint: ctx.endpoint?.name ?? null,
        principal: ctx.principal.id,
        auth_method: ctx.principal.method,
        lists: methods.map((m) => ({ method: m.method, shown: m.shown, hidden: m.hidden })),
        form,
        result,
        reason,
        dry_run: dryRun || undefined,
        policy_revision: policy[0]?.revision ?? null,
        policy_duration_ms: policy.length > 0 ? policy.reduce((n, p) => n + p.durationNs, 0) / 1e6 : undefined,
        duration_ms: Number(durationNs) / 1e6,
      },
      'list',
    );
  }

  /** One line per definition found not to be its pin (docs/pinning.md), with both digests. */
  drifted(d: DriftRecord): void {
    if (!this.log.isLevelEnabled('info')) return;
    const now = Date.now();
    this.write(
      now,
      {
        ts: this.iso(now),
        decision_id: randomUUID(),
        request_id: d.requestId,
        endpoint: d.endpoint,
        kind: d.kind,
        name: d.name,
        mode: d.mode,
        change: d.change,
        pinned_sha256: d.pinned ?? null,
        listed_sha256: d.listed ?? null,
        seen_by: d.where,
      },
      'drift',
    );
  }

  private iso(ms: number): string {
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      this.lastIso = new Date(ms).toISOString();
    }
    return this.lastIso;
  }

  /** `tail`: JSON members written after `fields` (`,"name":value`), for the sink's line only. */
  private write(now: number, fields: Record<string, unknown>, msg = 'decision', tail = ''): void {
    if (!this.sink) {
      this.log.info(fields, msg);
      return;
    }
    const json = JSON.stringify(fields);
    this.sink.writeDecision(
      `{"level":${INFO},"time":${now}${this.bindings}${json.length > 2 ? ',' : ''}${json.slice(1, -1)}${tail},"msg":"${msg}"}\n`,
    );
  }
}
