// Shadow policies: a candidate policy evaluated on the same input as the policy in force,
// never deciding. The Check only queues its trace (one push, no evaluation); the queue is
// drained after the answer has gone (setImmediate runs after the Check's continuation has
// written it), a few evaluations per turn of the event loop, so a shadow policy costs the
// Check path one array push. A full queue drops the newest and counts it; a shadow policy
// that fails, is missing or throws only changes what is counted and logged.
import type { CheckContext, CheckTrace, ShadowVerdict, VerdictKind } from '../decision/context.js';
import type { Observer } from '../decision/phases.js';
import { callTargetText } from '../contracts/request.js';
import { childLogger, type Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { UNKNOWN_ENDPOINT } from '../metrics/service-metrics.js';
import type { GrantsInput } from '../policy/policy-input.js';
import type { LoadedPolicy } from '../policy/policy-source.js';
import { differ, evaluateVerdict, verdictOfResult } from './verdict.js';

/** The metric's shadow label: a verdict, or no shadow policy loaded. */
export type ShadowLabel = VerdictKind | 'unavailable';

export interface ShadowEvaluatorOptions {
  /** The shadow policy (a PolicySource of its own). */
  shadow: { readonly current: LoadedPolicy | undefined };
  /** The policy in force, to know which input fields it was given. */
  enforced: { readonly current: LoadedPolicy | undefined };
  /**
   * Builds the input again for a shadow policy that reads more than the one in force was given:
   * opa-envoy-plugin's fields, or all the caller's grants rather than the applicable ones.
   */
  rebuild(ctx: CheckContext, envoyInput: boolean, grants: GrantsInput): string;
  /** policy.envoyInput: set, it decides for both policies. */
  envoyInput: boolean | undefined;
  /** policy.grantsInput: set, it decides for both policies. */
  grantsInput?: GrantsInput | undefined;
  queueSize: number;
  events: ServiceEvents;
  logger: Logger;
  /** Why the shadow policy is not loaded (its source's reasons). */
  shadowNotReady?(): string | undefined;
  /** Evaluations per turn of the event loop (default 16): I/O is served between turns. */
  perTurn?: number;
}

export class ShadowEvaluator implements Observer {
  private readonly queue: CheckTrace[] = [];
  private head = 0;
  private scheduled = false;
  private closed = false;
  private readonly log: Logger;
  private readonly perTurn: number;
  private readonly drainNow = () => this.drain();
  private idle: (() => void)[] = [];

  constructor(private readonly opts: ShadowEvaluatorOptions) {
    this.log = childLogger(opts.logger, { log: 'decision' });
    this.perTurn = opts.perTurn ?? 16;
  }

  /** The Check path: one push (Checks the policy never saw are not compared). */
  decided(trace: CheckTrace): void {
    if (trace.policy === undefined || trace.ctx === undefined || this.closed) return;
    if (this.queue.length - this.head >= this.opts.queueSize) {
      trace.shadow = DROPPED;
      this.opts.events.shadowDropped?.();
      return;
    }
    trace.shadow = { state: 'pending' };
    this.queue.push(trace);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drainNow);
    }
  }

  /** Why no shadow policy is loaded, while none is. */
  get loadError(): string | undefined {
    return this.opts.shadow.current === undefined ? this.opts.shadowNotReady?.() : undefined;
  }

  /** Decisions waiting (tests, shutdown). */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Resolves when the queue is empty. */
  settled(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  close(): void {
    this.closed = true;
  }

  private drain(): void {
    this.scheduled = false;
    const end = Math.min(this.queue.length, this.head + this.perTurn);
    while (this.head < end) {
      const trace = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as CheckTrace;
      try {
        this.compare(trace);
      } catch (err) {
        // Nothing a shadow policy does reaches an answer: it is counted as its error.
        trace.shadow!.state = 'done';
        this.opts.logger.warn({ err, decision_id: trace.decisionId }, 'shadow evaluation failed');
      }
    }
    if (this.head >= this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
      const waiting = this.idle;
      this.idle = [];
      for (const w of waiting) w();
    } else {
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.scheduled = true;
      setImmediate(this.drainNow);
    }
  }

  private compare(trace: CheckTrace): void {
    const record = trace.policy!;
    const ctx = trace.ctx!;
    const verdict = trace.shadow!;
    const endpoint = ctx.endpoint?.name ?? UNKNOWN_ENDPOINT;
    const enforced = { ...verdictOfResult(record.result, record.failed), revision: record.revision };
    verdict.enforced = enforced;
    const policy = this.opts.shadow.current;
    if (policy === undefined) {
      verdict.state = 'unavailable';
      this.opts.events.shadowDecision?.(endpoint, enforced.decision, 'unavailable');
      return;
    }
    const input = this.inputFor(policy, ctx, record.input);
    const shadow = { ...evaluateVerdict(policy.engine, input), revision: policy.engine.revision };
    verdict.shadow = shadow;
    verdict.differs = differ(enforced, shadow);
    verdict.state = 'done';
    this.opts.events.shadowDecision?.(endpoint, enforced.decision, shadow.decision);
    if (!verdict.differs) return;
    const first = ctx.mcp.calls[0];
    this.log.info(
      {
        ts: new Date().toISOString(),
        decision_id: trace.decisionId,
        request_id: ctx.request.id,
        endpoint: ctx.endpoint?.name ?? null,
        principal: ctx.principal.id,
        mcp_method: first?.method ?? null,
        tool: (first && callTargetText(first)) ?? null,
        enforced: { decision: enforced.decision, reason: enforced.code, revision: enforced.revision },
        shadow: { decision: shadow.decision, reason: shadow.code, revision: shadow.revision },
      },
      'shadow decision differs',
    );
  }

  /**
   * The input the policy in force saw, or one built again when the shadow policy reads what it
   * was not given: opa-envoy-plugin's fields, or all the caller's grants.
   */
  private inputFor(policy: LoadedPolicy, ctx: CheckContext, recorded: string): string {
    const enforced = this.opts.enforced.current;
    const enforcedEnvoy = this.opts.envoyInput ?? enforced?.envoyInput ?? true;
    const enforcedGrants = this.opts.grantsInput ?? enforced?.grantsInput ?? 'all';
    const needsEnvoy = this.opts.envoyInput === undefined && policy.envoyInput && !enforcedEnvoy;
    const needsGrants = this.opts.grantsInput === undefined && policy.grantsInput === 'all' && enforcedGrants !== 'all';
    if (!needsEnvoy && !needsGrants) return recorded;
    return this.opts.rebuild(ctx, enforcedEnvoy || needsEnvoy, needsGrants ? 'all' : enforcedGrants);
  }
}

const DROPPED: ShadowVerdict = Object.freeze({ state: 'dropped' }) as ShadowVerdict;
