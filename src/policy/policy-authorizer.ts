// The authorize phase: builds the input, evaluates the policy in force, maps its decision,
// and returns both with the record of what the policy saw and decided. The policy in force
// is swapped atomically on reload; a Check in flight keeps the one it read.
import type { CheckContext, PolicyRecord } from '../decision/context.js';
import type { Authorization, Authorizer, VisibilityResult } from '../decision/phases.js';
import { deny } from '../contracts/outcome.js';
import type { McpCall } from '../contracts/request.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import {
  isFailure,
  malformedDecision,
  mapResultSet,
  policyError,
  toAuthzResult,
  type Mapped,
} from './decision-mapper.js';
import type { InputBuilder } from './policy-input.js';
import type { LoadedPolicy } from './policy-source.js';
import { mentionsCredential, scrubJson, scrubText } from './redact-attributes.js';

export interface PolicyAuthorizerOptions {
  /** Where the policy in force is read from (the PolicySource). */
  policy: { readonly current: LoadedPolicy | undefined };
  input: InputBuilder;
  events: ServiceEvents;
  logger: Logger;
  /**
   * policy.rawCredentials: the policy sees the credential headers' values (it verifies them
   * itself, as opa-envoy-plugin policies do). What is recorded for every output stays redacted.
   */
  rawCredentials?: boolean;
}

const UNAVAILABLE: Authorization = Object.freeze({
  result: {
    allow: false,
    deny: deny('policy_unavailable', 'No authorization policy is loaded; the request is denied.'),
  },
}) as Authorization;

export class PolicyAuthorizer implements Authorizer {
  constructor(private readonly opts: PolicyAuthorizerOptions) {}

  authorize(ctx: CheckContext): Authorization {
    const policy = this.opts.policy.current;
    if (!policy) return UNAVAILABLE;
    const { engine } = policy;
    const { input: builder } = this.opts;
    const secrets = this.opts.rawCredentials ? builder.credentialValues(ctx) : NO_SECRETS;
    const input = builder.build(ctx, policy.envoyInput, false, policy.grantsInput);
    // With raw credentials, the policy evaluates an input of its own; `input` stays the one every output shows.
    const evaluated = secrets.length === 0 ? input : builder.build(ctx, policy.envoyInput, true, policy.grantsInput);
    const ev = engine.evaluate(evaluated);
    this.opts.events.policyEval?.(ev.durationNs / 1e9);
    let mapped: Mapped;
    // An error message may quote what the policy read.
    const error = ev.ok ? '' : secrets.length > 0 ? scrubText(ev.error, secrets) : ev.error;
    let result = ev.ok
      ? Array.isArray(ev.resultSet)
        ? (ev.resultSet[0] as { result?: unknown } | undefined)?.result
        : undefined
      : { error };
    if (ev.ok) {
      mapped = mapResultSet(ev.resultSet);
    } else {
      this.opts.logger.warn(
        { request_id: ctx.request.id, endpoint: ctx.endpoint?.name, policy_revision: engine.revision, err: error },
        'policy evaluation failed; denied',
      );
      mapped = policyError(error);
    }
    if (secrets.length > 0 && result !== undefined && mentionsCredential(JSON.stringify(result), secrets)) {
      // A decision that would send a credential on (to the upstream, the client or Envoy's metadata) is refused whole.
      mapped = malformedDecision('it carries a credential of the request, which mcp-authz never passes on');
      this.opts.logger.warn(
        { request_id: ctx.request.id, endpoint: ctx.endpoint?.name, policy_revision: engine.revision },
        'the policy decision carries a credential of the request; denied',
      );
      result = scrubJson(result, secrets);
    }
    const record: PolicyRecord = {
      input,
      result,
      revision: engine.revision,
      durationNs: ev.durationNs,
      decision: mapped.allow ? 'allow' : 'deny',
      failed: !mapped.allow && isFailure(mapped.reason),
    };
    if (secrets.length > 0) record.credentials = credentialView(evaluated, secrets);
    return { result: toAuthzResult(mapped), record };
  }

  evaluateDocument(input: string): Authorization {
    const policy = this.opts.policy.current;
    if (!policy) return UNAVAILABLE;
    const { engine } = policy;
    const ev = engine.evaluate(input);
    this.opts.events.policyEval?.(ev.durationNs / 1e9);
    const mapped = ev.ok ? mapResultSet(ev.resultSet) : policyError(ev.error);
    const result = ev.ok
      ? Array.isArray(ev.resultSet)
        ? (ev.resultSet[0] as { result?: unknown } | undefined)?.result
        : undefined
      : { error: ev.error };
    const record: PolicyRecord = {
      input,
      result,
      revision: engine.revision,
      durationNs: ev.durationNs,
      decision: mapped.allow ? 'allow' : 'deny',
      failed: !mapped.allow && isFailure(mapped.reason),
    };
    return { result: toAuthzResult(mapped), record };
  }

  /**
   * The visibility rule, once for every item of a list: the list request's input with
   * `list.calls` added. Anything but one boolean per call is a failure, and the list is withheld.
   */
  visible(ctx: CheckContext, calls: readonly McpCall[], requestInput: string | undefined): VisibilityResult {
    const policy = this.opts.policy.current;
    if (!policy) return { ok: false, reason: 'visibility_unavailable', detail: 'no policy is loaded' };
    const { engine } = policy;
    const base =
      requestInput ??
      this.opts.input.build(
        ctx,
        policy.envoyInput,
        this.opts.rawCredentials === true && this.opts.input.credentialValues(ctx).length > 0,
        policy.grantsInput,
      );
    const ev = engine.evaluateVisible(`${base.slice(0, -1)},"list":{"calls":${JSON.stringify(calls)}}}`);
    if (ev === undefined)
      return {
        ok: false,
        reason: 'visibility_unavailable',
        detail: `the policy ${engine.revision} has no visibility rule`,
      };
    this.opts.events.policyEval?.(ev.durationNs / 1e9);
    const record = { revision: engine.revision, durationNs: ev.durationNs, items: calls.length };
    if (!ev.ok) {
      this.opts.logger.warn(
        { request_id: ctx.request.id, endpoint: ctx.endpoint?.name, policy_revision: engine.revision, err: ev.error },
        'visibility rule failed; the list is withheld',
      );
      return { ok: false, reason: 'visibility_error', detail: `evaluation failed: ${ev.error}`, record };
    }
    const visible = visibleAnswer(ev.resultSet, calls.length);
    if (typeof visible === 'string') return { ok: false, reason: 'visibility_error', detail: visible, record };
    return { ok: true, visible, record };
  }
}

const NO_SECRETS: readonly string[] = Object.freeze([]);

/**
 * What the policy saw beyond the recorded input, for `check --explain` and the visibility
 * rule only: behind functions, so no logger or serializer that walks the record writes it.
 */
function credentialView(input: string, secrets: readonly string[]): NonNullable<PolicyRecord['credentials']> {
  return { input: () => input, strings: () => secrets };
}

/** The rule's answer as one boolean per item, or why it is not one. */
function visibleAnswer(resultSet: unknown, n: number): boolean[] | string {
  if (!Array.isArray(resultSet) || resultSet.length !== 1) return 'the visibility rule made no decision';
  const result = (resultSet[0] as { result?: unknown } | null)?.result;
  if (!Array.isArray(result)) return 'the visibility rule answered something other than an array';
  if (result.length !== n) return `the visibility rule answered ${result.length} values for ${n} items`;
  if (!result.every((v) => typeof v === 'boolean')) return 'the visibility rule answered values other than booleans';
  return result as boolean[];
}
