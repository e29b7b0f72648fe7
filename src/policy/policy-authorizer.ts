// The authorize phase: builds the input, evaluates the current policy, maps its decision.
// The policy in use is swapped atomically on reload; a Check in flight keeps the one it read.
import type { CheckContext } from '../check/context.js';
import { deny } from '../check/outcome.js';
import type { AuthzResult, Authorizer } from '../check/phases.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { mapResultSet, policyError } from './decision-mapper.js';
import type { InputBuilder } from './policy-input.js';
import type { WasmEngine } from './wasm-engine.js';

export interface PolicyAuthorizerOptions {
  input: InputBuilder;
  dryRun: boolean;
  events: ServiceEvents;
  logger: Logger;
}

const DRY_RUN_ALLOW: AuthzResult = Object.freeze({ allow: true, headers: [], headersToRemove: [], responseHeaders: [] }) as AuthzResult;

export class PolicyAuthorizer implements Authorizer {
  private engine: WasmEngine | undefined;
  private envoyInput = true;
  /** Why no policy is loaded (for /readyz), while there is none. */
  private missing = 'no policy loaded yet';

  constructor(private readonly opts: PolicyAuthorizerOptions) {}

  get revision(): string | undefined {
    return this.engine?.revision;
  }

  /** Reasons the authorizer is not ready (empty when a policy is loaded). */
  notReady(): string[] {
    return this.engine ? [] : [`policy: ${this.missing}`];
  }

  /**
   * Swaps in a loaded policy. `envoyInput` is what its bundle declares in data.mcp_authz.input.envoy:
   * a policy that never reads opa-envoy-plugin's fields saves building them (≈20 µs a Check).
   */
  use(engine: WasmEngine, envoyInput = true): void {
    this.engine = engine;
    this.envoyInput = envoyInput;
  }

  /** Records why the first load failed; a loaded policy stays in use regardless. */
  loadFailed(reason: string): void {
    this.missing = reason;
  }

  authorize(ctx: CheckContext): AuthzResult {
    const engine = this.engine;
    if (!engine) {
      return { allow: false, deny: deny(503, 'policy_unavailable', 'No authorization policy is loaded; the request is denied.') };
    }
    const input = this.opts.input.build(ctx, this.envoyInput);
    const ev = engine.evaluate(input);
    this.opts.events.policyEval?.(ev.durationNs / 1e9);
    let mapped;
    if (ev.ok) {
      mapped = mapResultSet(ev.resultSet);
    } else {
      this.opts.logger.warn({ request_id: ctx.request.id, endpoint: ctx.endpoint?.name, policy_revision: engine.revision, err: ev.error }, 'policy evaluation failed; denied');
      mapped = policyError(ev.error);
    }
    const result = ev.ok ? (Array.isArray(ev.resultSet) ? (ev.resultSet[0] as { result?: unknown } | undefined)?.result : undefined) : { error: ev.error };
    ctx.policy = { input, result, revision: engine.revision, durationNs: ev.durationNs, realDecision: mapped.allow ? 'allow' : 'deny' };
    if (mapped.allow) return mapped.result;
    // Dry-run turns the policy's denies into allows; a policy that fails or returns garbage still denies.
    if (this.opts.dryRun && (mapped.reason === 'policy_deny' || mapped.reason === 'policy_undefined')) {
      this.opts.events.dryRunDeny?.();
      this.opts.logger.info(
        { request_id: ctx.request.id, endpoint: ctx.endpoint?.name, principal: ctx.principal.id, status: mapped.deny.status, reason: mapped.deny.code, policy_revision: engine.revision },
        'dry-run: the policy denied this request; allowed',
      );
      return DRY_RUN_ALLOW;
    }
    return { allow: false, deny: mapped.deny };
  }
}
