// The authorize phase: builds the input, evaluates the policy in force, maps its decision,
// and returns both with the record of what the policy saw and decided. The policy in force
// is swapped atomically on reload; a Check in flight keeps the one it read.
import type { CheckContext, PolicyRecord } from '../check/context.js';
import type { Authorization, Authorizer } from '../check/phases.js';
import { deny } from '../contracts/outcome.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { isFailure, mapResultSet, policyError, toAuthzResult } from './decision-mapper.js';
import type { InputBuilder } from './policy-input.js';
import type { LoadedPolicy } from './policy-source.js';

export interface PolicyAuthorizerOptions {
  /** Where the policy in force is read from (the PolicySource). */
  policy: { readonly current: LoadedPolicy | undefined };
  input: InputBuilder;
  events: ServiceEvents;
  logger: Logger;
}

const UNAVAILABLE: Authorization = Object.freeze({
  result: { allow: false, deny: deny('policy_unavailable', 'No authorization policy is loaded; the request is denied.') },
}) as Authorization;

export class PolicyAuthorizer implements Authorizer {
  constructor(private readonly opts: PolicyAuthorizerOptions) {}

  authorize(ctx: CheckContext): Authorization {
    const policy = this.opts.policy.current;
    if (!policy) return UNAVAILABLE;
    const { engine } = policy;
    const input = this.opts.input.build(ctx, policy.envoyInput);
    const ev = engine.evaluate(input);
    this.opts.events.policyEval?.(ev.durationNs / 1e9);
    let mapped;
    if (ev.ok) {
      mapped = mapResultSet(ev.resultSet);
    } else {
      this.opts.logger.warn({ request_id: ctx.request.id, endpoint: ctx.endpoint?.name, policy_revision: engine.revision, err: ev.error }, 'policy evaluation failed; denied');
      mapped = policyError(ev.error);
    }
    const record: PolicyRecord = {
      input,
      result: ev.ok ? (Array.isArray(ev.resultSet) ? (ev.resultSet[0] as { result?: unknown } | undefined)?.result : undefined) : { error: ev.error },
      revision: engine.revision,
      durationNs: ev.durationNs,
      decision: mapped.allow ? 'allow' : 'deny',
      failed: !mapped.allow && isFailure(mapped.reason),
    };
    return { result: toAuthzResult(mapped), record };
  }
}
