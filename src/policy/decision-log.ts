// The decision log: one JSON line per Check decision (pino), for audit and for explaining
// a deny after the fact. Only ids and codes: never a key, a token or a header map.
import { randomUUID } from 'node:crypto';
import type { CheckContext } from '../check/context.js';
import type { Outcome } from '../check/outcome.js';
import type { Observer } from '../check/phases.js';
import type { Logger } from '../log/logger.js';

export interface DecisionLogOptions {
  /** Fraction of allowed decisions logged (0..1). Denies are always logged. */
  sampleRate: number;
  /** Source of randomness for sampling (tests pass a fixed one). */
  random?: () => number;
}

/** At most this many MCP calls of a batch are listed in one line. */
const MAX_CALLS = 20;

export class DecisionLog implements Observer {
  private readonly log: Logger;
  private readonly random: () => number;

  constructor(logger: Logger, private readonly opts: DecisionLogOptions) {
    this.log = logger.child({ log: 'decision' });
    this.random = opts.random ?? Math.random;
  }

  decided(ctx: CheckContext | undefined, outcome: Outcome, durationNs: bigint): void {
    // Sampling drops allows only: denies are what an investigation looks for.
    if (outcome.allow && outcome.reason !== 'dry_run' && !(this.opts.sampleRate >= 1 || this.random() < this.opts.sampleRate)) return;
    const calls = ctx?.mcp.calls ?? [];
    const first = calls[0];
    this.log.info(
      {
        decision_id: randomUUID(),
        request_id: ctx?.request.id,
        endpoint: ctx?.endpoint?.name ?? null,
        principal: ctx?.principal.id ?? null,
        auth_method: ctx?.principal.method ?? null,
        mcp_method: first?.method ?? null,
        tool: first?.name ?? first?.uri ?? null,
        calls: calls.length > 1 ? calls.slice(0, MAX_CALLS).map((c) => ({ method: c.method, name: c.name ?? c.uri })) : undefined,
        batch_size: calls.length > 1 ? calls.length : undefined,
        allow: outcome.allow,
        status: outcome.status,
        reason: outcome.allow ? outcome.reason : outcome.code,
        policy_decision: ctx?.policy?.realDecision ?? null,
        policy_revision: ctx?.policy?.revision ?? null,
        duration_ms: Number(durationNs) / 1e6,
        policy_duration_ms: ctx?.policy?.durationNs !== undefined ? ctx.policy.durationNs / 1e6 : undefined,
      },
      'decision',
    );
  }
}
