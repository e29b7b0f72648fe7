// The service's Prometheus metrics (prefix mcp_authz_). Label values are bounded: the
// endpoint is a configured name or "_unknown", a tool a known name or "_other", a key id
// one the registry produced, a code, reason or detail one of the catalogue's
// (src/contracts/codes.ts; a policy's own code is "_policy"). Label children are created
// at load so the Check path only increments counters.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CheckContext, CheckTrace, ListTrace } from '../decision/context.js';
import type { Observer } from '../decision/phases.js';
import { quotaRulesFor, type Config, type EndpointConfig } from '../config/schema.js';
import { packageVersion } from '../config/version.js';
import {
  AUTH_FAILURE_DETAILS,
  badCredentialCode,
  CODES,
  isDenyCode,
  WITHHELD_REASONS,
  type AuthCode,
  type AuthFailureDetail,
  type DecisionCode,
  type DenyCode,
  type WithheldReason,
} from '../contracts/codes.js';
import type { Outcome } from '../contracts/outcome.js';
import { LOG_KINDS, type DroppedLines, type LogKind } from '../log/log-sink.js';
import { LabelHistogram } from './label-histogram.js';
import { LIST_SHAPES, type ListMethod } from '../mcp-response/list-methods.js';
import {
  KEY_STORE_ANSWER_SOURCES,
  APPROVAL_EVENTS,
  TLS_LISTENERS,
  type ExtProcStreamResult,
  type LimiterName,
  type ServiceEvents,
  type UpstreamTokenMode,
  UPSTREAM_CONNECTION_EVENTS,
  UPSTREAM_CONNECTION_REFRESH_RESULTS,
} from './hooks.js';

export type { LimiterName };

export const UNKNOWN_ENDPOINT = '_unknown';
export const OTHER = '_other';
/** The `code` label of a deny whose code the policy chose outside the catalogue. */
export const POLICY_CODE = '_policy';

/** The authentication codes: the `reason` label of auth_failures_total. */
export const AUTH_FAILURE_REASONS = (Object.keys(CODES) as DecisionCode[]).filter(
  (c): c is AuthCode => CODES[c].kind === 'auth',
);
/** The deny codes: the `code` label of denies_total (besides `_policy`). */
export const DENY_CODES = (Object.keys(CODES) as DecisionCode[]).filter((c): c is DenyCode => isDenyCode(c));
/** The `decision` label of check_total and check_duration_seconds. */
export const DECISIONS: readonly Outcome['kind'][] = ['allow', 'deny', 'answer'];

/** Which credential kind a failure code is about. */
const METHOD_BY_REASON: ReadonlyMap<string, string> = new Map([
  ['authentication_required', 'none'],
  ['invalid_api_key', 'api_key'],
  ['invalid_token', 'oauth'],
]);

/** The limiter that answers with a code. */
const LIMITER_BY_CODE: ReadonlyMap<string, LimiterName> = new Map([
  ['too_many_requests', 'failed_auth'],
  ['rate_limited', 'per_client'],
  ['quota_exceeded', 'per_tool'],
]);

/** 50 µs … 1 s: a Check is tens of µs when everything is cached, ms when something is not. */
export const LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];

/** A decision kind's place in check_total's per-endpoint index (status × 4 + this). */
const KIND_INDEX: Readonly<Record<Outcome['kind'], number>> = { allow: 0, deny: 1, answer: 2 };

/** Statuses a deny commonly has; their series exist from start-up so dashboards see zeros. */
const COMMON_DENY_STATUSES = [400, 401, 403, 404, 413, 429, 503];

const LIMITERS: readonly LimiterName[] = ['failed_auth', 'per_client', 'per_tool'];

/** The `result` label of ext_proc_streams_total. */
export const EXT_PROC_STREAM_RESULTS: readonly ExtProcStreamResult[] = ['completed', 'denied', 'failed', 'cancelled'];
/** The `result` label of list_responses_total. */
export const LIST_RESULTS: readonly ListTrace['result'][] = ['filtered', 'withheld', 'aborted', 'unfiltered'];
const LIST_METHODS: readonly ListMethod[] = [...LIST_SHAPES.keys()];
/** The `reason` label of list_withheld_total: the catalogue's withheld reasons. */
export const WITHHELD_REASON_LABELS = Object.keys(WITHHELD_REASONS) as WithheldReason[];

/** The `result` label of upstream_token_requests_total: ok, or the deny code of a failed request. */
export const UPSTREAM_TOKEN_RESULTS = [
  'ok',
  'upstream_token_unavailable',
  'upstream_token_refused',
  'upstream_token_invalid',
  'upstream_secret_unavailable',
] as const;
/** The `result` label of upstream_token_cache_total. */
export const UPSTREAM_CACHE_RESULTS = ['hit', 'miss', 'joined'] as const;

/**
 * Endpoints whose series are made at 0 at start-up. Each endpoint has about 120 (every deny
 * code, status, limiter, auth failure reason, list method), some 57 KB of heap: past this
 * count an endpoint's series appear with its first event instead, so 100,000 endpoints do
 * not hold gigabytes of zeros (nor put millions of series on /metrics).
 */
export const ZERO_SERIES_MAX_ENDPOINTS = 1000;

/** Distinct key ids given their own label before further ids are counted as "_other". */
const MAX_KEY_ID_LABELS = 10_000;

interface Inc {
  inc(v?: number): void;
}

/**
 * One labelled series of a counter the Check path increments, counted in a plain number and
 * handed to prom-client when it collects: prom-client hashes and validates the label set on
 * every inc, which cost more than the rest of the observer.
 */
class Tally implements Inc {
  private pending = 0;

  constructor(private readonly series: Inc) {
    series.inc(0); // the series exists from now on, at 0
  }

  inc(v = 1): void {
    this.pending += v;
  }

  flush(): void {
    if (this.pending === 0) return;
    this.series.inc(this.pending);
    this.pending = 0;
  }
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
  private readonly durations: LabelHistogram<Outcome['kind']>;
  /** The durations' series index of each decision kind. */
  private readonly durationIndex: Record<Outcome['kind'], number>;
  private readonly authFailures: Counter<'endpoint' | 'method' | 'reason' | 'detail'>;
  private readonly deniesTotal: Counter<'endpoint' | 'code'>;
  private readonly rateLimitedTotal: Counter<'endpoint' | 'limiter'>;
  private readonly toolDecisions: Counter<'endpoint' | 'tool' | 'decision'>;
  private readonly apiKeyRequests: Counter<'key_id'>;
  private readonly listResponses: Counter<'endpoint' | 'method' | 'result'>;
  private readonly listHidden: Counter<'endpoint' | 'method'>;
  private readonly listShown: Counter<'endpoint' | 'method'>;
  private readonly listWithheld: Counter<'endpoint' | 'reason'>;
  private readonly responseDurations: Record<ListTrace['form'], ReturnType<Histogram<'form'>['labels']>>;
  private readonly quotaRequests: Counter<'endpoint' | 'rule' | 'result'>;
  private readonly upstreamCache: Counter<'endpoint' | 'mode' | 'result'>;
  private readonly connectionEvents: Counter<'provider' | 'event'>;
  private readonly connectionRefreshes: Counter<'provider' | 'result'>;
  /** Per endpoint with a token mode, its cache series: looked up on every allow of it, so by name only. */
  private readonly upstreamCacheChildren = new Map<string, Record<(typeof UPSTREAM_CACHE_RESULTS)[number], Inc>>();
  private readonly children = new Map<string, Tally>();
  /** check_total's and tool_decisions_total's children as every Check finds them: by endpoint, then by a number or the tool, with no key string built per call. */
  private readonly checkChildren = new Map<string, Map<number, Inc>>();
  private readonly toolChildren = new Map<string, Map<string, { allow?: Inc; deny?: Inc }>>();
  private readonly tools = new Map<string, Set<string>>();
  private readonly issuers: Set<string>;
  private readonly keyIds = new Set<string>();

  /** `logSink`: the service log's sink, whose dropped lines are counted (absent: a logger of a test's own, which drops nothing). */
  constructor(
    registry: Registry,
    config: Pick<Config, 'endpoints' | 'oauth' | 'rateLimit'> &
      Partial<Pick<Config, 'tls' | 'bundles' | 'decision_logs' | 'stores' | 'shadow' | 'approvals'>>,
    logSink?: { readonly dropped?: DroppedLines },
  ) {
    const p = 'mcp_authz_';
    const registers = [registry];
    // The counters below are counted in Tallies; any of them being collected flushes them all.
    const collect = () => this.flush();
    const endpointNames = [...config.endpoints.map((e) => e.name), UNKNOWN_ENDPOINT];
    const authModes = new Map<string, EndpointConfig['auth'] | undefined>(
      config.endpoints.map((e) => [e.name, e.auth]),
    );
    for (const e of config.endpoints) this.tools.set(e.name, knownTools(e as EndpointConfig & { tools?: string[] }));
    this.issuers = new Set(config.oauth.issuers.map((i) => i.issuer));

    this.checkTotal = new Counter({
      name: `${p}check_total`,
      help: 'Check calls answered, by endpoint, decision and HTTP status.',
      labelNames: ['endpoint', 'decision', 'status'],
      registers,
      collect,
    });
    // Observed on every Check: series by index, no label object per call (label-histogram.ts).
    this.durations = new LabelHistogram(
      `${p}check_duration_seconds`,
      'Time to decide one Check call, from request decode to decision.',
      'decision',
      DECISIONS,
      LATENCY_BUCKETS,
      registers,
    );
    this.durationIndex = {
      allow: this.durations.indexOf('allow'),
      deny: this.durations.indexOf('deny'),
      answer: this.durations.indexOf('answer'),
    };
    this.authFailures = new Counter({
      name: `${p}auth_failures_total`,
      help: 'Failed authentications answered 401, by endpoint, credential kind, reason code and detail.',
      labelNames: ['endpoint', 'method', 'reason', 'detail'],
      registers,
      collect,
    });
    this.deniesTotal = new Counter({
      name: `${p}denies_total`,
      help: "Denies, by endpoint and decision code (docs/errors.md; a policy's own code is _policy).",
      labelNames: ['endpoint', 'code'],
      registers,
      collect,
    });
    this.rateLimitedTotal = new Counter({
      name: `${p}rate_limited_total`,
      help: 'Requests answered 429, by endpoint and limiter (failed_auth lockout, per_client rate).',
      labelNames: ['endpoint', 'limiter'],
      registers,
      collect,
    });
    this.toolDecisions = new Counter({
      name: `${p}tool_decisions_total`,
      help: 'tools/call requests decided after authentication, by endpoint, tool (known names, else _other) and decision.',
      labelNames: ['endpoint', 'tool', 'decision'],
      registers,
      collect,
    });
    this.quotaRequests = new Counter({
      name: `${p}quota_requests_total`,
      help: 'Requests a per-tool quota rule counted (allowed) or refused with 429 (exceeded), by endpoint and rule.',
      labelNames: ['endpoint', 'rule', 'result'],
      registers,
      collect,
    });
    this.upstreamCache = new Counter({
      name: `${p}upstream_token_cache_total`,
      help: 'Upstream credential tokens (endpoints[].upstream: tokenExchange, clientCredentials) looked up, by endpoint, mode and result: hit (cached), miss (fetched), joined (waited for a fetch in flight for the same caller).',
      labelNames: ['endpoint', 'mode', 'result'],
      registers,
      collect,
    });
    const upstreamRequests = new Counter({
      name: `${p}upstream_token_requests_total`,
      help: "Requests to an upstream credential's token endpoint (token exchanges, client credentials grants), by endpoint, mode and result: ok, or the deny code of the failure.",
      labelNames: ['endpoint', 'mode', 'result'],
      registers,
    });
    const connectionEvents = new Counter({
      name: `${p}upstream_connection_events_total`,
      help: "userConnections: users' upstream connections by provider and event: connected (at /connect), connect_failed, missing (a call found none and was sent to connect), unreadable (a stored record did not open: altered, or its key is gone), removed_after_refresh (the authorization server refused the refresh token), store_unavailable (the store did not answer).",
      labelNames: ['provider', 'event'],
      registers,
    });
    const connectionRefreshes = new Counter({
      name: `${p}upstream_connection_refreshes_total`,
      help: "userConnections: refreshes of users' upstream access tokens by provider and result: ok, joined (another replica or request refreshed it), invalid_grant (the connection is removed), or the deny code of a failure.",
      labelNames: ['provider', 'result'],
      registers,
    });
    for (const e of config.endpoints) {
      const u = e.upstream;
      if (u?.mode !== 'userConnections') continue;
      for (const ev of UPSTREAM_CONNECTION_EVENTS) connectionEvents.labels(u.provider, ev).inc(0);
      for (const r of UPSTREAM_CONNECTION_REFRESH_RESULTS) connectionRefreshes.labels(u.provider, r).inc(0);
    }
    this.connectionEvents = connectionEvents;
    this.connectionRefreshes = connectionRefreshes;
    this.apiKeyRequests = new Counter({
      name: `${p}api_key_requests_total`,
      help: 'Requests authenticated with an API key, by key id.',
      labelNames: ['key_id'],
      registers,
      collect,
    });

    const extProcStreams = new Counter({
      name: `${p}ext_proc_streams_total`,
      help: "ext_proc streams (one per HTTP request through Envoy's ext_proc filter), by how they ended: completed, denied (immediate response), failed (ended with a gRPC error), cancelled.",
      labelNames: ['result'],
      registers,
    });
    this.listResponses = new Counter({
      name: `${p}list_responses_total`,
      help: 'List responses processed through ext_proc, by endpoint, list method and result: filtered, withheld (replaced by a JSON-RPC error), aborted, unfiltered (Envoy never sent the body).',
      labelNames: ['endpoint', 'method', 'result'],
      registers,
      collect,
    });
    this.listHidden = new Counter({
      name: `${p}list_items_hidden_total`,
      help: 'Items removed from list responses (in dry-run: that would have been), by endpoint and list method.',
      labelNames: ['endpoint', 'method'],
      registers,
      collect,
    });
    this.listWithheld = new Counter({
      name: `${p}list_withheld_total`,
      help: 'List responses withheld and event streams ended because a list in them could not be filtered, by endpoint and reason (docs/errors.md, withheld list responses).',
      labelNames: ['endpoint', 'reason'],
      registers,
      collect,
    });
    this.listShown = new Counter({
      name: `${p}list_items_shown_total`,
      help: 'Items left in filtered list responses, by endpoint and list method.',
      labelNames: ['endpoint', 'method'],
      registers,
      collect,
    });
    const responseDuration = new Histogram({
      name: `${p}response_processing_duration_seconds`,
      help: "Time the service spent on one list response (parsing, the visibility rule, re-encoding), by form: json or sse (summed over the stream's chunks).",
      labelNames: ['form'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    for (const form of ['json', 'sse'] as const) responseDuration.zero({ form });
    this.responseDurations = { json: responseDuration.labels('json'), sse: responseDuration.labels('sse') };
    const policyEval = new Histogram({
      name: `${p}policy_eval_duration_seconds`,
      help: 'Time to evaluate the policy once.',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const policyReloads = new Counter({
      name: `${p}policy_reloads_total`,
      help: 'Policy bundle loads and reloads, by result.',
      labelNames: ['result'],
      registers,
    });
    const policyInfo = new Gauge({
      name: `${p}policy_info`,
      help: 'The revision of the policy in force (value 1).',
      labelNames: ['revision'],
      registers,
      aggregator: 'max',
    });
    const jwksRefresh = new Counter({
      name: `${p}jwks_refresh_total`,
      help: 'JWKS fetches, by issuer and result.',
      labelNames: ['issuer', 'result'],
      registers,
    });
    const dryRunDenies = new Counter({
      name: `${p}dry_run_denies_total`,
      help: 'Policy denies turned into allows by dry-run mode.',
      registers,
    });
    const pinsReloads = new Counter({
      name: `${p}pins_reloads_total`,
      help: 'Pins file loads and reloads (docs/pinning.md), by result.',
      labelNames: ['result'],
      registers,
    });
    const pinsLoaded = new Gauge({
      name: `${p}pins`,
      help: 'Pins in the pins file in force.',
      registers,
      aggregator: 'max',
    });
    const toolDrift = new Counter({
      name: `${p}tool_drift_total`,
      help: 'Listed definitions (tools, prompts, resource templates) that are not their pin, by endpoint, kind, change (changed, unpinned) and where it was seen (list, call) (docs/pinning.md).',
      labelNames: ['endpoint', 'kind', 'change', 'where'],
      registers,
    });
    const keysReloads = new Counter({
      name: `${p}api_keys_reloads_total`,
      help: 'API key registry loads and reloads, by result.',
      labelNames: ['result'],
      registers,
    });
    const keysLoaded = new Gauge({
      name: `${p}api_keys`,
      help: 'API keys in the registry in force.',
      registers,
      aggregator: 'max',
    });
    const storeUp = new Gauge({
      name: `${p}limiter_store_up`,
      help: '1 while rate limits use the shared Redis store, 0 while they fall back to local counters (minimum over workers).',
      labelNames: ['store'],
      registers,
      aggregator: 'min',
    });
    const storeFallbacks = new Counter({
      name: `${p}limiter_store_fallbacks_total`,
      help: 'Times the shared Redis limiter store became unreachable and limits fell back to local counters.',
      labelNames: ['store'],
      registers,
    });
    const keyStoreUp = new Gauge({
      name: `${p}key_store_up`,
      help: '1 while the API key store (PostgreSQL) is listening for changes with its cache resynced, 0 while it is not (minimum over workers).',
      labelNames: ['store'],
      registers,
      aggregator: 'min',
    });
    const keyStoreAnswers = new Counter({
      name: `${p}key_store_answers_total`,
      help: 'API key store lookups by where the answer came from: cache, database, stale_cache (database unreachable, answered from the cache within maxStaleSeconds), unavailable (refused with key_store_unavailable).',
      labelNames: ['source'],
      registers,
    });
    const keyStoreNotifications = new Counter({
      name: `${p}key_store_notifications_total`,
      help: 'Key change notifications received from the key store.',
      registers,
    });
    const endpointStoreUp = new Gauge({
      name: `${p}endpoint_store_up`,
      help: '1 while the endpoint store (PostgreSQL) is listening for changes, 0 while it is not and the last endpoint set keeps serving (minimum over workers).',
      labelNames: ['store'],
      registers,
      aggregator: 'min',
    });
    const endpointStoreUpdates = new Counter({
      name: `${p}endpoint_store_updates_total`,
      help: 'Changes of the endpoint store rows: applied (the new endpoint set in force) or rejected (a row the config rules refuse; the previous set keeps serving).',
      labelNames: ['result'],
      registers,
    });
    const keyStoreResyncs = new Counter({
      name: `${p}key_store_resyncs_total`,
      help: 'Times the key store read its cached keys again after (re)connecting.',
      registers,
    });
    const localAnswers = new Counter({
      name: `${p}limiter_local_answers_total`,
      help: 'Limiter calls the store that shares the count did not answer (redis: unreachable, timed out, cut; cluster: the primary did not answer in time), decided on local counters instead, by store and limiter.',
      labelNames: ['store', 'limiter'],
      registers,
    });
    const traceSpans = new Counter({
      name: `${p}trace_spans_exported_total`,
      help: 'Spans sent to the OTLP endpoint, by result (success, failure: dropped).',
      labelNames: ['result'],
      registers,
    });
    const bundleRequests = new Counter({
      name: `${p}bundle_requests_total`,
      help: 'Requests to the bundle service, by bundle and result: modified (a bundle came), not_modified (304), failure (no usable answer). Under --workers the primary asks once for all workers (the maximum over workers).',
      labelNames: ['bundle', 'result'],
      registers,
      aggregator: 'max',
    });
    const bundleLastSuccess = new Gauge({
      name: `${p}bundle_last_successful_request_timestamp_seconds`,
      help: 'When the bundle service last answered (200 or 304), by bundle (Unix time; the latest over workers).',
      labelNames: ['bundle'],
      registers,
      aggregator: 'max',
    });
    const bundleRefused = new Counter({
      name: `${p}bundle_refused_total`,
      help: 'Downloaded bundles refused before activation, by bundle and reason: unsigned, bad_signature, tampered, invalid. The previous policy stays in force (the maximum over workers: every worker verifies the same bundle).',
      labelNames: ['bundle', 'reason'],
      registers,
      aggregator: 'max',
    });
    const decisionLogEvents = new Counter({
      name: `${p}decision_log_events_total`,
      help: 'Decision-log events for the remote service, by result: sent, dropped (buffer full or upload refused).',
      labelNames: ['result'],
      registers,
    });
    const shadowDecisions = new Counter({
      name: `${p}shadow_decisions_total`,
      help: 'Checks decided by the shadow policy beside the policy in force (docs/shadow.md), by endpoint, the enforced policy decision and the shadow one: allow, deny, error (unavailable: no shadow policy loaded).',
      labelNames: ['endpoint', 'enforced', 'shadow'],
      registers,
    });
    const shadowDropped = new Counter({
      name: `${p}shadow_dropped_total`,
      help: 'Checks not compared with the shadow policy because its queue was full.',
      registers,
    });
    const shadowReloads = new Counter({
      name: `${p}shadow_policy_reloads_total`,
      help: 'Shadow policy loads and reloads, by result.',
      labelNames: ['result'],
      registers,
    });
    const counted: Record<LogKind, number> = { decision: 0, service: 0 };
    new Counter({
      name: `${p}log_lines_dropped_total`,
      help: 'Log lines dropped because stderr was not read fast enough (the log buffer was full), by log: decision or service.',
      labelNames: ['log'],
      registers,
      collect() {
        for (const log of LOG_KINDS) {
          const now = logSink?.dropped?.[log] ?? 0;
          this.labels(log).inc(now - counted[log]);
          counted[log] = now;
        }
      },
    });
    const tlsReloads = new Counter({
      name: `${p}tls_reloads_total`,
      help: 'TLS certificate, key and client CA loads and reloads (tls.*File), by result; a failure keeps the previous certificate serving.',
      labelNames: ['result'],
      registers,
    });
    const tlsNotAfter = new Gauge({
      name: `${p}tls_certificate_not_after_seconds`,
      help: 'When the TLS certificate in force expires, in seconds since the epoch (the earliest over workers).',
      registers,
      aggregator: 'min',
    });
    const tlsHandshakeFailures = new Counter({
      name: `${p}tls_handshake_failures_total`,
      help: 'TLS handshakes that failed, by port: no or an untrusted client certificate under mTLS, no common protocol or cipher.',
      labelNames: ['listener'],
      registers,
    });
    const approvals = new Counter({
      name: `${p}approvals_total`,
      help: 'Approvals of held calls, by event: requested (a call was held), granted, rejected, used (a held call went through on a grant), expired (no decision in time).',
      labelNames: ['event'],
      registers,
    });
    const buildInfo = new Gauge({
      name: `${p}build_info`,
      help: 'The running build (value 1): mcp-authz version and Node.js version.',
      labelNames: ['version', 'node'],
      registers,
      aggregator: 'max',
    });
    buildInfo.labels(packageVersion(), process.version).set(1);

    // Series that exist from start-up, so rate() and absent() behave from the first scrape.
    const zeroed = config.endpoints.length <= ZERO_SERIES_MAX_ENDPOINTS ? endpointNames : [UNKNOWN_ENDPOINT];
    for (const ep of zeroed) {
      this.checkChild(ep, 'allow', 200).inc(0);
      for (const s of COMMON_DENY_STATUSES) this.checkChild(ep, 'deny', s).inc(0);
      this.rateLimitedChild(ep, 'failed_auth').inc(0);
      this.rateLimitedChild(ep, 'per_client').inc(0);
      this.rateLimitedChild(ep, 'per_tool').inc(0);
      for (const code of [...DENY_CODES, POLICY_CODE]) this.denyChild(ep, code).inc(0);
      for (const [reason, detail] of authFailureSeries(ep === UNKNOWN_ENDPOINT ? undefined : authModes.get(ep))) {
        this.authFailureChild(ep, METHOD_BY_REASON.get(reason) ?? 'unknown', reason, detail).inc(0);
      }
      for (const tool of [...(this.tools.get(ep) ?? []), OTHER]) {
        this.toolChild(ep, tool, 'allow').inc(0);
        this.toolChild(ep, tool, 'deny').inc(0);
      }
      if (ep === UNKNOWN_ENDPOINT) continue;
      for (const method of LIST_METHODS) {
        for (const result of LIST_RESULTS) this.listChild(ep, method, result).inc(0);
        this.hiddenChild(ep, method).inc(0);
        this.shownChild(ep, method).inc(0);
      }
      for (const reason of WITHHELD_REASON_LABELS) this.withheldChild(ep, reason).inc(0);
    }
    for (const result of EXT_PROC_STREAM_RESULTS) extProcStreams.labels(result).inc(0);
    for (const e of config.endpoints) {
      for (const r of quotaRulesFor(e, config)) {
        this.quotaChild(e.name, r.name, 'allowed').inc(0);
        this.quotaChild(e.name, r.name, 'exceeded').inc(0);
      }
    }
    for (const e of config.endpoints) {
      const mode = e.upstream?.mode;
      if (mode === undefined || mode === 'static' || mode === 'userConnections') continue;
      this.upstreamCacheChildren.set(e.name, {
        hit: this.upstreamCacheChild(e.name, mode, 'hit'),
        miss: this.upstreamCacheChild(e.name, mode, 'miss'),
        joined: this.upstreamCacheChild(e.name, mode, 'joined'),
      });
      for (const r of UPSTREAM_TOKEN_RESULTS) upstreamRequests.labels(e.name, mode, r).inc(0);
    }
    policyReloads.labels('success').inc(0);
    policyReloads.labels('failure').inc(0);
    for (const iss of this.issuers) {
      jwksRefresh.labels(iss, 'success').inc(0);
      jwksRefresh.labels(iss, 'failure').inc(0);
    }
    keysReloads.labels('success').inc(0);
    keysReloads.labels('failure').inc(0);
    const keyAnswerChildren = new Map(KEY_STORE_ANSWER_SOURCES.map((src) => [src, keyStoreAnswers.labels(src)]));
    if (config.stores?.keys === 'postgres') {
      keyStoreUp.labels('postgres').set(0);
      for (const c of keyAnswerChildren.values()) c.inc(0);
      keyStoreNotifications.inc(0);
      keyStoreResyncs.inc(0);
    }
    if (config.stores?.endpoints === 'postgres') {
      endpointStoreUp.labels('postgres').set(0);
      endpointStoreUpdates.labels('applied').inc(0);
      endpointStoreUpdates.labels('rejected').inc(0);
    }
    if (config.rateLimit.redis) {
      storeUp.labels('redis').set(0);
      storeFallbacks.labels('redis').inc(0);
      for (const limiter of LIMITERS) localAnswers.labels('redis', limiter).inc(0);
    }
    for (const bundle of Object.keys(config.bundles ?? {})) {
      for (const result of ['modified', 'not_modified', 'failure'] as const)
        bundleRequests.labels(bundle, result).inc(0);
      for (const reason of ['unsigned', 'bad_signature', 'tampered', 'invalid'] as const)
        bundleRefused.labels(bundle, reason).inc(0);
    }
    if (config.decision_logs)
      for (const result of ['sent', 'dropped'] as const) decisionLogEvents.labels(result).inc(0);
    if (config.shadow) {
      for (const ep of zeroed)
        for (const enforced of ['allow', 'deny', 'error'] as const)
          for (const shadow of ['allow', 'deny', 'error', 'unavailable'] as const)
            shadowDecisions.labels(ep, enforced, shadow).inc(0);
      shadowDropped.inc(0);
      shadowReloads.labels('success').inc(0);
      shadowReloads.labels('failure').inc(0);
    }
    dryRunDenies.inc(0);
    // One child per event, made once: a granted call counts its use on every Check.
    const approvalChildren = new Map(APPROVAL_EVENTS.map((e) => [e, approvals.labels(e)]));
    if (config.approvals) for (const c of approvalChildren.values()) c.inc(0);
    traceSpans.labels('success').inc(0);
    traceSpans.labels('failure').inc(0);
    if (config.tls) {
      tlsReloads.labels('success').inc(0);
      tlsReloads.labels('failure').inc(0);
      for (const l of TLS_LISTENERS) tlsHandshakeFailures.labels(l).inc(0);
    }
    // Direct answers come before any endpoint is matched.
    this.checkChild(UNKNOWN_ENDPOINT, 'answer', 200).inc(0);

    const knownEndpoints = new Set(endpointNames);
    this.observer = {
      decided: (trace) => this.decided(trace),
      listed: (trace) => this.listed(trace),
      drifted: (d) =>
        toolDrift
          .labels(knownEndpoints.has(d.endpoint) ? d.endpoint : UNKNOWN_ENDPOINT, d.kind, d.change, d.where)
          .inc(),
    };
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
      approval: (event) => approvalChildren.get(event)!.inc(),
      jwksRefresh: (issuer, result) => jwksRefresh.labels(this.issuers.has(issuer) ? issuer : OTHER, result).inc(),
      pinsReload: (result, pins) => {
        pinsReloads.labels(result).inc();
        if (result === 'success') pinsLoaded.set(pins);
      },
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
        this.child(`k\0${label}`, () => this.apiKeyRequests.labels(label)).inc();
      },
      extProcStream: (result) => extProcStreams.labels(result).inc(),
      // Endpoints and rules come from the config: their series exist from start-up.
      quota: (endpoint, rule, result) => this.quotaChild(endpoint, rule, result).inc(),
      limiterStore: (state) => {
        if (state === storeState) return;
        if (state === 'local_fallback') storeFallbacks.labels('redis').inc();
        storeState = state;
        storeUp.labels('redis').set(state === 'shared' ? 1 : 0);
      },
      keyStore: (state) => keyStoreUp.labels('postgres').set(state === 'up' ? 1 : 0),
      keyStoreAnswer: (source) => keyAnswerChildren.get(source)!.inc(),
      keyStoreNotification: () => keyStoreNotifications.inc(),
      keyStoreResync: () => keyStoreResyncs.inc(),
      endpointStore: (state) => endpointStoreUp.labels('postgres').set(state === 'up' ? 1 : 0),
      endpointStoreUpdate: (result) => endpointStoreUpdates.labels(result).inc(),
      limiterLocalAnswer: (store, limiter) => localAnswers.labels(store, limiter).inc(),
      traceExport: (result, spans) => traceSpans.labels(result).inc(spans),
      bundleRequest: (bundle, result) => {
        bundleRequests.labels(bundle, result).inc();
        if (result !== 'failure') bundleLastSuccess.labels(bundle).set(Date.now() / 1000);
      },
      bundleRefused: (bundle, reason) => bundleRefused.labels(bundle, reason).inc(),
      decisionLogsShipped: (result, events) => decisionLogEvents.labels(result).inc(events),
      shadowDecision: (endpoint, enforced, shadow) => shadowDecisions.labels(endpoint, enforced, shadow).inc(),
      shadowDropped: () => shadowDropped.inc(),
      shadowPolicyReload: (result) => shadowReloads.labels(result).inc(),
      tlsReload: (result, notAfterSeconds) => {
        tlsReloads.labels(result).inc();
        if (notAfterSeconds !== undefined) tlsNotAfter.set(notAfterSeconds);
      },
      tlsHandshakeFailure: (listener) => tlsHandshakeFailures.labels(listener).inc(),
      // Endpoints and modes come from the config: their series exist from start-up.
      upstreamCache: (endpoint, mode, result) =>
        (this.upstreamCacheChildren.get(endpoint)?.[result] ?? this.upstreamCacheChild(endpoint, mode, result)).inc(),
      upstreamTokenRequest: (endpoint, mode, result) => upstreamRequests.labels(endpoint, mode, result).inc(),
      upstreamConnection: (provider, event) => this.connectionEvents.labels(provider, event).inc(),
      upstreamConnectionRefresh: (provider, result) => this.connectionRefreshes.labels(provider, result).inc(),
    };
  }

  private decided({ ctx, outcome, durationNs }: CheckTrace): void {
    const endpoint = ctx?.endpoint?.name ?? UNKNOWN_ENDPOINT;
    this.checkChild(endpoint, outcome.kind, outcome.status).inc();
    this.durations.observeAt(this.durationIndex[outcome.kind], Number(durationNs) / 1e9);
    if (outcome.kind === 'deny') {
      this.denyChild(endpoint, isDenyCode(outcome.code) ? outcome.code : POLICY_CODE).inc();
      const limiter = LIMITER_BY_CODE.get(outcome.code);
      if (limiter !== undefined) this.rateLimitedChild(endpoint, limiter).inc();
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

  private listed({ ctx, result, reason, methods, form, durationNs }: ListTrace): void {
    const endpoint = ctx.endpoint?.name ?? UNKNOWN_ENDPOINT;
    if (result === 'withheld' && reason !== undefined) this.withheldChild(endpoint, reason).inc();
    for (const m of methods) {
      this.listChild(endpoint, m.method, result).inc();
      if (m.hidden > 0) this.hiddenChild(endpoint, m.method).inc(m.hidden);
      if (m.shown > 0) this.shownChild(endpoint, m.method).inc(m.shown);
    }
    if (result !== 'unfiltered') this.responseDurations[form].observe(Number(durationNs) / 1e9);
  }

  private listChild(endpoint: string, method: ListMethod, result: ListTrace['result']): Inc {
    return this.child(`l\0${endpoint}\0${method}\0${result}`, () =>
      this.listResponses.labels(endpoint, method, result),
    );
  }

  private withheldChild(endpoint: string, reason: WithheldReason): Inc {
    return this.child(`w\0${endpoint}\0${reason}`, () => this.listWithheld.labels(endpoint, reason));
  }

  private hiddenChild(endpoint: string, method: ListMethod): Inc {
    return this.child(`h\0${endpoint}\0${method}`, () => this.listHidden.labels(endpoint, method));
  }

  private shownChild(endpoint: string, method: ListMethod): Inc {
    return this.child(`s\0${endpoint}\0${method}`, () => this.listShown.labels(endpoint, method));
  }

  private authFailed(endpoint: string, ctx: CheckContext): void {
    const { code, detail } = ctx.authFailure!;
    const reason = isDenyCode(code) && CODES[code].kind === 'auth' ? code : OTHER;
    const method =
      ctx.principal.method !== 'anonymous' ? ctx.principal.method : (METHOD_BY_REASON.get(code) ?? 'unknown');
    this.authFailureChild(endpoint, method, reason, Object.hasOwn(AUTH_FAILURE_DETAILS, detail) ? detail : OTHER).inc();
  }

  private checkChild(endpoint: string, decision: Outcome['kind'], status: number): Inc {
    const s = Number.isInteger(status) && status >= 100 && status <= 599 ? status : 0;
    let byEndpoint = this.checkChildren.get(endpoint);
    if (byEndpoint === undefined) {
      byEndpoint = new Map();
      this.checkChildren.set(endpoint, byEndpoint);
    }
    const k = s * 4 + KIND_INDEX[decision];
    let c = byEndpoint.get(k);
    if (c === undefined) {
      c = this.child(`c\0${endpoint}\0${decision}\0${s}`, () =>
        this.checkTotal.labels(endpoint, decision, s === 0 ? OTHER : String(s)),
      );
      byEndpoint.set(k, c);
    }
    return c;
  }

  private upstreamCacheChild(
    endpoint: string,
    mode: UpstreamTokenMode,
    result: (typeof UPSTREAM_CACHE_RESULTS)[number],
  ): Inc {
    return this.child(`u\0${endpoint}\0${mode}\0${result}`, () => this.upstreamCache.labels(endpoint, mode, result));
  }

  private quotaChild(endpoint: string, rule: string, result: 'allowed' | 'exceeded'): Inc {
    return this.child(`q\0${endpoint}\0${rule}\0${result}`, () => this.quotaRequests.labels(endpoint, rule, result));
  }

  private rateLimitedChild(endpoint: string, limiter: LimiterName): Inc {
    return this.child(`r\0${endpoint}\0${limiter}`, () => this.rateLimitedTotal.labels(endpoint, limiter));
  }

  private authFailureChild(endpoint: string, method: string, reason: string, detail: string): Inc {
    return this.child(`a\0${endpoint}\0${method}\0${reason}\0${detail}`, () =>
      this.authFailures.labels(endpoint, method, reason, detail),
    );
  }

  private denyChild(endpoint: string, code: string): Inc {
    return this.child(`d\0${endpoint}\0${code}`, () => this.deniesTotal.labels(endpoint, code));
  }

  private toolChild(endpoint: string, tool: string, decision: 'allow' | 'deny'): Inc {
    let byEndpoint = this.toolChildren.get(endpoint);
    if (byEndpoint === undefined) {
      byEndpoint = new Map();
      this.toolChildren.set(endpoint, byEndpoint);
    }
    let pair = byEndpoint.get(tool);
    if (pair === undefined) {
      pair = {};
      byEndpoint.set(tool, pair);
    }
    return (pair[decision] ??= this.child(`t\0${endpoint}\0${tool}\0${decision}`, () =>
      this.toolDecisions.labels(endpoint, tool, decision),
    ));
  }

  private child(key: string, make: () => Inc): Inc {
    let c = this.children.get(key);
    if (c === undefined) {
      c = new Tally(make());
      this.children.set(key, c);
    }
    return c;
  }

  private flush(): void {
    for (const c of this.children.values()) c.flush();
  }
}

/**
 * The (reason, detail) pairs an endpoint's failures can carry, whose series exist from
 * start-up: no credential, and its bad-credential code with each detail its mode can
 * produce (undefined: the unknown endpoint, which reads every credential).
 */
export function authFailureSeries(auth: EndpointConfig['auth'] | undefined): [AuthCode, AuthFailureDetail][] {
  const cookie = auth?.jwtCookie !== undefined;
  if (auth !== undefined && !auth.apiKey && !auth.oauth && !auth.mtls && !cookie) return [];
  const out: [AuthCode, AuthFailureDetail][] = [['authentication_required', 'credential_missing']];
  // A cross-site cookie is answered as a missing credential, never as a bad one.
  if (cookie) out.push(['authentication_required', 'cookie_cross_site']);
  const code = badCredentialCode(auth);
  for (const detail of Object.keys(AUTH_FAILURE_DETAILS) as AuthFailureDetail[]) {
    if (detail === 'cookie_cross_site') continue;
    const credential = AUTH_FAILURE_DETAILS[detail].credential;
    const reachable =
      credential === 'any' ||
      (credential === 'api_key' && (auth?.apiKey ?? true)) ||
      (credential === 'oauth' && ((auth?.oauth ?? true) || cookie)) ||
      (credential === 'cookie' && cookie) ||
      (credential === 'mtls' && auth?.mtls === true);
    if (reachable) out.push([code, detail]);
  }
  return out;
}
