// The service's Prometheus metrics (prefix mcp_authz_). Label values are bounded: the
// endpoint is a configured name or "_unknown", a tool a known name or "_other", a key id
// one the registry produced, a reason one of AUTH_FAILURE_REASONS or "_other". Label
// children are created at load so the Check path only increments counters.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CheckContext } from '../check/context.js';
import type { Outcome } from '../check/outcome.js';
import type { Observer } from '../check/phases.js';
import type { Config, EndpointConfig } from '../config/schema.js';
import type { ServiceEvents } from './hooks.js';

export const UNKNOWN_ENDPOINT = '_unknown';
export const OTHER = '_other';

/** Authentication failure codes that get their own `reason` label; any other code is "_other". */
export const AUTH_FAILURE_REASONS = [
  'authentication_required',
  'invalid_api_key',
  'invalid_credentials',
  'invalid_token',
  'ambiguous_credentials',
] as const;

/** Which credential kind a failure code is about when the principal does not say. */
const METHOD_BY_REASON: Record<string, string> = {
  authentication_required: 'none',
  invalid_api_key: 'api_key',
  invalid_token: 'oauth',
};

/** 50 µs … 1 s: a Check is tens of µs when everything is cached, ms when something is not. */
export const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** Statuses a deny commonly has; their series exist from start-up so dashboards see zeros. */
const COMMON_DENY_STATUSES = [400, 401, 403, 404, 413, 429, 503];

export type LimiterName = 'failed_auth' | 'per_client';

/** Distinct key ids given their own label before further ids are counted as "_other". */
const MAX_KEY_ID_LABELS = 10_000;

interface Inc {
  inc(v?: number): void;
}

/**
 * The tools an endpoint's metrics name individually: its `tools:` list and every
 * non-glob `tools:<name>` grant in its `scopes`. Any other tool is counted as "_other".
 */
export function knownTools(e: Pick<EndpointConfig, 'scopes'> & { tools?: string[] }): Set<string> {
  const out = new Set<string>(e.tools ?? []);
  for (const s of e.scopes) {
    if (!s.startsWith('tools:')) continue;
    const name = s.slice('tools:'.length);
    if (name !== '' && !/[*?[\]{}]/.test(name)) out.add(name);
  }
  return out;
}

export class ServiceMetrics {
  readonly observer: Observer;
  readonly events: ServiceEvents;

  private readonly checkTotal: Counter<'endpoint' | 'decision' | 'status'>;
  private readonly durAllow: ReturnType<Histogram<'decision'>['labels']>;
  private readonly durDeny: ReturnType<Histogram<'decision'>['labels']>;
  private readonly authFailures: Counter<'endpoint' | 'method' | 'reason'>;
  private readonly rateLimitedTotal: Counter<'endpoint' | 'limiter'>;
  private readonly toolDecisions: Counter<'endpoint' | 'tool' | 'decision'>;
  private readonly apiKeyRequests: Counter<'key_id'>;
  private readonly children = new Map<string, Inc>();
  private readonly tools = new Map<string, Set<string>>();
  private readonly reasons = new Set<string>(AUTH_FAILURE_REASONS);
  private readonly issuers: Set<string>;
  private readonly keyIds = new Set<string>();

  constructor(registry: Registry, config: Pick<Config, 'endpoints' | 'oauth' | 'rateLimit'>) {
    const p = 'mcp_authz_';
    const registers = [registry];
    const endpointNames = [...config.endpoints.map((e) => e.name), UNKNOWN_ENDPOINT];
    for (const e of config.endpoints) this.tools.set(e.name, knownTools(e as EndpointConfig & { tools?: string[] }));
    this.issuers = new Set(config.oauth.issuers.map((i) => i.issuer));

    this.checkTotal = new Counter({ name: `${p}check_total`, help: 'Check calls answered, by endpoint, decision and HTTP status.', labelNames: ['endpoint', 'decision', 'status'], registers });
    const duration = new Histogram({ name: `${p}check_duration_seconds`, help: 'Time to decide one Check call, from request decode to decision.', labelNames: ['decision'], buckets: LATENCY_BUCKETS, registers });
    duration.zero({ decision: 'allow' });
    duration.zero({ decision: 'deny' });
    this.durAllow = duration.labels('allow');
    this.durDeny = duration.labels('deny');
    this.authFailures = new Counter({ name: `${p}auth_failures_total`, help: 'Failed authentications answered 401, by endpoint, credential kind and reason code.', labelNames: ['endpoint', 'method', 'reason'], registers });
    this.rateLimitedTotal = new Counter({ name: `${p}rate_limited_total`, help: 'Requests answered 429, by endpoint and limiter (failed_auth lockout, per_client rate).', labelNames: ['endpoint', 'limiter'], registers });
    this.toolDecisions = new Counter({ name: `${p}tool_decisions_total`, help: 'tools/call requests decided after authentication, by endpoint, tool (known names, else _other) and decision.', labelNames: ['endpoint', 'tool', 'decision'], registers });
    this.apiKeyRequests = new Counter({ name: `${p}api_key_requests_total`, help: 'Requests authenticated with an API key, by key id.', labelNames: ['key_id'], registers });

    const policyEval = new Histogram({ name: `${p}policy_eval_duration_seconds`, help: 'Time to evaluate the policy once.', buckets: LATENCY_BUCKETS, registers });
    const policyReloads = new Counter({ name: `${p}policy_reloads_total`, help: 'Policy bundle loads and reloads, by result.', labelNames: ['result'], registers });
    const policyInfo = new Gauge({ name: `${p}policy_info`, help: 'The revision of the policy in force (value 1).', labelNames: ['revision'], registers, aggregator: 'max' });
    const jwksRefresh = new Counter({ name: `${p}jwks_refresh_total`, help: 'JWKS fetches, by issuer and result.', labelNames: ['issuer', 'result'], registers });
    const dryRunDenies = new Counter({ name: `${p}dry_run_denies_total`, help: 'Policy denies turned into allows by dry-run mode.', registers });
    const keysReloads = new Counter({ name: `${p}api_keys_reloads_total`, help: 'API key registry loads and reloads, by result.', labelNames: ['result'], registers });
    const keysLoaded = new Gauge({ name: `${p}api_keys`, help: 'API keys in the registry in force.', registers, aggregator: 'max' });
    const storeUp = new Gauge({ name: `${p}limiter_store_up`, help: '1 while rate limits use the shared Redis store, 0 while they fall back to local counters (minimum over workers).', labelNames: ['store'], registers, aggregator: 'min' });
    const storeFallbacks = new Counter({ name: `${p}limiter_store_fallbacks_total`, help: 'Times the shared Redis limiter store became unreachable and limits fell back to local counters.', labelNames: ['store'], registers });

    // Series that exist from start-up, so rate() and absent() behave from the first scrape.
    for (const ep of endpointNames) {
      this.checkChild(ep, 'allow', 200).inc(0);
      for (const s of COMMON_DENY_STATUSES) this.checkChild(ep, 'deny', s).inc(0);
      this.rateLimitedChild(ep, 'failed_auth').inc(0);
      this.rateLimitedChild(ep, 'per_client').inc(0);
      for (const r of AUTH_FAILURE_REASONS) this.authFailureChild(ep, METHOD_BY_REASON[r] ?? 'unknown', r).inc(0);
      for (const tool of [...(this.tools.get(ep) ?? []), OTHER]) {
        this.toolChild(ep, tool, 'allow').inc(0);
        this.toolChild(ep, tool, 'deny').inc(0);
      }
    }
    policyReloads.labels('success').inc(0);
    policyReloads.labels('failure').inc(0);
    for (const iss of this.issuers) {
      jwksRefresh.labels(iss, 'success').inc(0);
      jwksRefresh.labels(iss, 'failure').inc(0);
    }
    keysReloads.labels('success').inc(0);
    keysReloads.labels('failure').inc(0);
    if (config.rateLimit.redis) {
      storeUp.labels('redis').set(0);
      storeFallbacks.labels('redis').inc(0);
    }
    dryRunDenies.inc(0);

    this.observer = { decided: (ctx, outcome, durationNs) => this.decided(ctx, outcome, durationNs) };
    let storeState: 'shared' | 'local_fallback' | undefined;
    this.events = {
      policyReload: (result, revision) => {
        policyReloads.labels(result).inc();
        if (result === 'success' && revision !== undefined) {
          policyInfo.reset();
          policyInfo.labels(revision).set(1);
        }
      },
      policyEval: (seconds) => policyEval.observe(seconds),
      dryRunDeny: () => dryRunDenies.inc(),
      jwksRefresh: (issuer, result) => jwksRefresh.labels(this.issuers.has(issuer) ? issuer : OTHER, result).inc(),
      keysReload: (result, keys) => {
        keysReloads.labels(result).inc();
        if (result === 'success') keysLoaded.set(keys);
      },
      apiKeyUsed: (keyId) => {
        let label = keyId;
        if (!this.keyIds.has(keyId)) {
          if (this.keyIds.size >= MAX_KEY_ID_LABELS) label = OTHER;
          else this.keyIds.add(keyId);
        }
        this.apiKeyRequests.labels(label).inc();
      },
      limiterStore: (state) => {
        if (state === storeState) return;
        if (state === 'local_fallback') storeFallbacks.labels('redis').inc();
        storeState = state;
        storeUp.labels('redis').set(state === 'shared' ? 1 : 0);
      },
    };
  }

  private decided(ctx: CheckContext | undefined, outcome: Outcome, durationNs: bigint): void {
    const endpoint = ctx?.endpoint?.name ?? UNKNOWN_ENDPOINT;
    const seconds = Number(durationNs) / 1e9;
    if (outcome.allow) {
      this.checkChild(endpoint, 'allow', 200).inc();
      this.durAllow.observe(seconds);
    } else {
      this.checkChild(endpoint, 'deny', outcome.status).inc();
      this.durDeny.observe(seconds);
      if (outcome.code === 'too_many_requests') this.rateLimitedChild(endpoint, 'failed_auth').inc();
      else if (outcome.code === 'rate_limited') this.rateLimitedChild(endpoint, 'per_client').inc();
      else if (ctx?.authFailure !== undefined) this.authFailed(endpoint, ctx);
    }
    const calls = ctx?.mcp.calls;
    if (calls && calls.length > 0) {
      const decision = outcome.allow ? 'allow' : 'deny';
      const known = this.tools.get(endpoint);
      for (const c of calls) {
        if (c.method !== 'tools/call') continue;
        const tool = c.name !== undefined && known?.has(c.name) ? c.name : OTHER;
        this.toolChild(endpoint, tool, decision).inc();
      }
    }
  }

  private authFailed(endpoint: string, ctx: CheckContext): void {
    const code = ctx.authFailure!;
    const reason = this.reasons.has(code) ? code : OTHER;
    const method = ctx.principal.method !== 'anonymous' ? ctx.principal.method : METHOD_BY_REASON[code] ?? 'unknown';
    this.authFailureChild(endpoint, method, reason).inc();
  }

  private checkChild(endpoint: string, decision: 'allow' | 'deny', status: number): Inc {
    const s = Number.isInteger(status) && status >= 100 && status <= 599 ? status : 0;
    return this.child(`c\0${endpoint}\0${decision}\0${s}`, () => this.checkTotal.labels(endpoint, decision, s === 0 ? OTHER : String(s)));
  }

  private rateLimitedChild(endpoint: string, limiter: LimiterName): Inc {
    return this.child(`r\0${endpoint}\0${limiter}`, () => this.rateLimitedTotal.labels(endpoint, limiter));
  }

  private authFailureChild(endpoint: string, method: string, reason: string): Inc {
    return this.child(`a\0${endpoint}\0${method}\0${reason}`, () => this.authFailures.labels(endpoint, method, reason));
  }

  private toolChild(endpoint: string, tool: string, decision: string): Inc {
    return this.child(`t\0${endpoint}\0${tool}\0${decision}`, () => this.toolDecisions.labels(endpoint, tool, decision));
  }

  private child(key: string, make: () => Inc): Inc {
    let c = this.children.get(key);
    if (c === undefined) {
      c = make();
      this.children.set(key, c);
    }
    return c;
  }
}
