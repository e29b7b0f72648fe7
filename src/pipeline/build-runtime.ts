// Wires the real phases from the config. `serve`, `check` and the tests all build the
// runtime here, so the CLI explains exactly what the server decides.
import cluster from 'node:cluster';
import type { Registry } from 'prom-client';
import { ModeAuthenticator } from '../auth/authenticator.js';
import type { KeyLookup } from '../auth/key-registry.js';
import { KeySource } from '../auth/key-source.js';
import { SubjectPrincipals } from '../auth/subject-principals.js';
import { createTokenVerifier } from '../auth/oauth/jwt-verifier.js';
import { OAuthDiscovery } from '../auth/oauth-discovery.js';
import type { Observer } from '../decision/phases.js';
import type { LoadedConfig } from '../config/load.js';
import { SHIPPED_BUNDLE } from '../config/paths.mjs';
import { OriginCheck } from '../endpoints/origin-check.js';
import { EndpointRegistry } from '../endpoints/registry.js';
import { clientAddressResolver } from '../limits/client-address.js';
import { LocalFailureCounter, type FailureCounter } from '../limits/failure-counter.js';
import type { LocalStore } from '../limits/limiter-store.js';
import { LockoutTable } from '../limits/lockouts.js';
import { RateLimits } from '../limits/rate-limits.js';
import { buildApprovals } from '../approvals/build-approvals.js';
import type { RedisLimiterStore } from '../limits/redis-store.js';
import { MemoryBuckets, type BucketStore } from '../limits/token-bucket.js';
import { RemoteService } from '../config/remote-service.js';
import { packageVersion } from '../config/version.js';
import { DecisionLog } from '../log/decision-log.js';
import { DecisionLogShipper, instanceLabels } from '../log/decision-log-shipper.js';
import { childLogger, logSinkOf, type Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { ServiceMetrics } from '../metrics/service-metrics.js';
import { needsSqlParser, sqlWithoutDialect } from '../policy/argument-views.js';
import { PolicyAuthorizer } from '../policy/policy-authorizer.js';
import { InputBuilder, policyView } from '../policy/policy-input.js';
import { pinGuardFromConfig } from '../pins/pin-guard.js';
import { PolicySource, PolicyView } from '../policy/policy-source.js';
import { StatusReporter } from '../policy/status-reporter.js';
import type { CheckTracer } from '../tracing/check-tracer.js';
import { describeTracing, tracingSettings } from '../tracing/settings.js';
import { loadPostgresParser } from '../request/sql-parser.js';
import { UpstreamCredentialBroker } from '../upstream/upstream-credentials.js';
import { ConnectPages } from '../upstream/connections-pages.js';
import { ShadowEvaluator } from '../shadow/shadow-evaluator.js';
import { fanOut } from './observers.js';
import { LiveRuntime } from './live-runtime.js';
import type { Runtime } from './runtime.js';

export interface BuildOptions {
  /** Extra listeners for the phases' events (tests); the service's metrics always listen. */
  events?: ServiceEvents;
  /** Watch keys and policy for changes (serve: yes; the one-shot `check` command: no). */
  watch?: boolean;
  /** Phases to use instead of the real ones (tests put a test double here; everything else stays real). */
  overrides?: Partial<
    Pick<
      Runtime,
      | 'authenticator'
      | 'authorizer'
      | 'directResponder'
      | 'limiter'
      | 'clientAddress'
      | 'upstreamCredentials'
      | 'approvals'
    >
  >;
  /** Where limits count when there is no Redis (or while it is away): default "cluster" in a worker, else "memory". */
  localLimiterStore?: LocalStore;
  /** Connect to the configured Redis (default true; `mcp-authz check` has no use for it). */
  sharedLimits?: boolean;
  /** The running lockouts; a cluster worker's table is shared with its siblings through the primary. */
  lockouts?: LockoutTable;
  /** Where failed authentications are counted without Redis; a cluster worker's counter asks the primary. */
  failureCounter?: (max: number, windowSeconds: number, events: ServiceEvents) => FailureCounter;
  /** The rate and quota buckets without Redis (or while it is away); a cluster worker's ask the primary. Default: this process's memory. */
  buckets?: BucketStore;
  /** Trace Checks when the OTEL_* variables ask for it (default true; the one-shot CLI commands: no). */
  tracing?: boolean;
  /** Fetch the MCP servers' own credentials (default true; `mcp-authz check` decides without calling token endpoints). */
  upstreamCredentials?: boolean;
  /** The clock upstream credentials read token expiries with (tests: a fake clock). */
  upstreamClock?: () => number;
  /** Where the OTEL_* variables are read (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** A cluster worker: the configured remote bundle comes from the primary, which polls the service (src/server/cluster-bundles.ts). */
  bundleFromPrimary?: boolean;
  /** The clock approvals compare expiry times with (tests); default Date.now. */
  now?: () => number;
  /** Hands the policy source to the caller (a cluster worker feeds it the primary's bundles). */
  onPolicySource?: (source: PolicySource, events: ServiceEvents) => void;
}

/** The keys file (and apiKeys.keys), or the PostgreSQL store (stores.keys), which connects before the service answers. */
async function keySource(
  config: LoadedConfig['config'],
  logger: Logger,
  events: ServiceEvents,
  watch: boolean,
): Promise<{ readonly current: KeyLookup; close(): Promise<void> }> {
  if (config.stores.keys === 'file')
    return new KeySource({
      file: config.apiKeys.file,
      inline: config.apiKeys.keys,
      pollIntervalMs: config.apiKeys.pollIntervalMs,
      logger,
      events,
      watch,
      listen: config.listen,
    });
  // pg is loaded only where a store uses it.
  const { openPostgresKeyStore } = await import('../stores/open.js');
  return openPostgresKeyStore(config, logger, events);
}

export async function buildRuntime(
  loaded: LoadedConfig,
  logger: Logger,
  metrics: Registry,
  opts: BuildOptions = {},
): Promise<Runtime> {
  const { config } = loaded;
  const watch = opts.watch ?? true;
  // Read first: a tracing variable the service cannot honour stops it before anything starts.
  const traceSettings = opts.tracing === false ? undefined : tracingSettings(opts.env ?? process.env);
  const serviceMetrics = new ServiceMetrics(metrics, config, logSinkOf(logger));
  const events = opts.events ? mergeEvents(serviceMetrics.events, opts.events) : serviceMetrics.events;
  // Limits: failed-auth lockout and per-client rate, shared through Redis when configured.
  const redisCfg = opts.sharedLimits === false ? undefined : config.rateLimit.redis;
  // ioredis is loaded only where Redis is configured (it is the largest module the service could load).
  const redis: RedisLimiterStore | undefined = redisCfg
    ? new (await import('../limits/redis-store.js')).RedisLimiterStore({
        url: redisCfg.url,
        cluster: redisCfg.cluster,
        nodes: redisCfg.nodes,
        commandTimeoutMs: redisCfg.commandTimeoutMs,
        logger,
        onState: (s) => events.limiterStore?.(s),
      })
    : undefined;
  const local = opts.localLimiterStore ?? (cluster.isWorker ? 'cluster' : 'memory');
  // Made once: counters keyed by endpoint name outlive a live change of the endpoint set.
  const limits: LimitState = {
    store: {
      local,
      ...(redis && redisCfg ? { redis: { store: redis, keyPrefix: redisCfg.keyPrefix } } : {}),
      buckets: opts.buckets ?? new MemoryBuckets(),
      logger,
      onLocalAnswer: (store, limiter) => events.limiterLocalAnswer?.(store, limiter),
    },
    // Workers share lockouts through the primary, so none asks it before every authentication.
    lockouts: opts.lockouts ?? new LockoutTable(),
    failures: shareFirst(
      opts.failureCounter ?? (local === 'memory' ? (max, window) => new LocalFailureCounter(max, window) : undefined),
    ),
  };

  // Authentication: the API key registry and the OAuth token verifier.
  const keys = await keySource(config, logger, events, watch);
  const verifier = config.oauth.issuers.length > 0 ? createTokenVerifier(config.oauth, { logger, events }) : undefined;

  // Authorization: the policy bundle, evaluated in-process as WASM.
  const policy = config.policy ?? {
    entrypoint: 'mcp/authz/decision',
    visibleEntrypoint: 'mcp/authz/visible',
    dryRun: false,
    maxMemoryPages: 1024,
    rawCredentials: false,
    data: {},
  };
  const shared: SharedParts = { events, logger, keys, verifier, limits, policy };
  const first = await endpointParts(config, shared);
  // A bundle service (OPA's services/bundles/keys), its status reports and remote decision logs.
  const services = new Map(Object.entries(config.services).map(([name, s]) => [name, new RemoteService(name, s)]));
  const labels = instanceLabels(packageVersion(), config.labels);
  const [bundleName, bundleConfig] = Object.entries(config.bundles)[0] ?? [];
  const statusReporter =
    watch && config.status && !opts.bundleFromPrimary
      ? new StatusReporter({
          service: services.get(config.status.service)!,
          labels,
          logger,
          decisionLogs: config.decision_logs !== undefined,
        })
      : undefined;
  const source = new PolicySource(
    {
      ...(bundleName !== undefined && bundleConfig
        ? {
            remote: {
              name: bundleName,
              config: bundleConfig,
              keys: config.keys,
              ...(opts.bundleFromPrimary ? {} : { service: services.get(bundleConfig.service)! }),
              ...(statusReporter ? { onStatus: (s) => statusReporter.update(s) } : {}),
            },
          }
        : policy.rego !== undefined
          ? { rego: policy.rego }
          : { bundle: policy.bundle ?? SHIPPED_BUNDLE }),
      entrypoint: policy.entrypoint,
      visibleEntrypoint: policy.visibleEntrypoint,
      maxMemoryPages: policy.maxMemoryPages,
      data: first.policyData,
    },
    logger,
    events,
  );
  opts.onPolicySource?.(source, events);
  // A policy that fails to load leaves the service NOT_SERVING (every Check a 503 deny) until a good one appears.
  await source.load();
  if (watch) source.watch();

  // The MCP servers' own credentials: secret files read now, tokens fetched on first use.
  const upstreamCredentials =
    opts.upstreamCredentials === false
      ? undefined
      : await UpstreamCredentialBroker.create({
          endpoints: config.endpoints,
          publicBaseUrl: config.publicBaseUrl,
          logger,
          events,
          watch,
          ...(opts.upstreamClock ? { now: opts.upstreamClock } : {}),
        });

  // The shadow policy (docs/shadow.md): loaded like the policy in force, evaluated off the Check path.
  let shadowSource: PolicySource | undefined;
  let shadow: ShadowEvaluator | undefined;
  if (config.shadow) {
    const s = config.shadow;
    shadowSource = new PolicySource(
      {
        ...(s.remote
          ? {
              remote: { name: 'shadow', config: s.remote, keys: config.keys, service: services.get(s.remote.service)! },
            }
          : s.rego !== undefined
            ? { rego: s.rego }
            : { bundle: s.bundle! }),
        entrypoint: policy.entrypoint,
        maxMemoryPages: policy.maxMemoryPages,
        data: first.policyData,
      },
      childLogger(logger, { policy_role: 'shadow' }),
      {
        // Its loads are the shadow's own series: the policy in force's stay its own.
        policyReload: (r) => events.shadowPolicyReload?.(r),
        bundleRequest: (_b, r) => events.bundleRequest?.('shadow', r),
        bundleRefused: (_b, r) => events.bundleRefused?.('shadow', r),
      },
    );
    // A shadow policy that does not load never stops the service: it is reported and compared as unavailable.
    await shadowSource.load();
    if (watch) shadowSource.watch();
    shadow = new ShadowEvaluator({
      shadow: shadowSource,
      enforced: source,
      // The input as the endpoint set in force builds it.
      rebuild: (ctx, envoy, grants) => input.build(ctx, envoy, false, grants),
      envoyInput: policy.envoyInput,
      grantsInput: policy.grantsInput,
      queueSize: s.queueSize,
      shadowNotReady: () => shadowSource?.notReady()[0],
      events,
      logger,
    });
  }

  // Calls the policy holds for a person's approval (docs/approvals.md).
  const approvals = await buildApprovals(config, {
    logger,
    events,
    shared: opts.sharedLimits !== false,
    ...(opts.now ? { now: opts.now } : {}),
  });

  // Tool-definition pins: a bad pins file stops start-up, as a bad keys file does.
  let observer: Observer | undefined;
  const pins = pinGuardFromConfig(config, {
    logger,
    events,
    watch,
    observer: () => observer!,
    sharedState: opts.sharedLimits !== false,
  });

  // The shadow evaluator comes first: it marks the trace the decision-log shipper keeps.
  const observers: Observer[] = shadow ? [shadow, serviceMetrics.observer] : [serviceMetrics.observer];
  if (config.decisionLog.enabled)
    observers.push(new DecisionLog(logger, { sampleRate: config.decisionLog.sampleRate }));
  const shipper =
    watch && config.decision_logs
      ? new DecisionLogShipper({
          service: services.get(config.decision_logs.service)!,
          config: config.decision_logs,
          labels,
          path: policy.entrypoint,
          bundleName: bundleName ?? 'local',
          shipped: (r, n) => events.decisionLogsShipped?.(r, n),
          logger,
        })
      : undefined;
  if (shipper) observers.push(shipper);
  // The OpenTelemetry SDK is loaded only when tracing is on: off, it costs no start-up time.
  let tracing: CheckTracer | undefined;
  if (traceSettings) {
    const { CheckTracer, otlpExporter } = await import('../tracing/check-tracer.js');
    tracing = new CheckTracer({
      settings: traceSettings,
      endpoints: config.endpoints,
      logger,
      events,
      exporter: await otlpExporter(traceSettings),
    });
  }
  if (opts.tracing !== false) logger.info(describeTracing(traceSettings));
  observer = fanOut(observers, (err) => logger.warn({ err }, 'a decision observer failed'));

  let input = first.input;
  const runtime: Runtime = {
    ...phasesOf(first, source, shared),
    ...(upstreamCredentials ? { upstreamCredentials } : {}),
    ...(upstreamCredentials && upstreamCredentials.connections.size > 0
      ? {
          pages: new ConnectPages({
            providers: upstreamCredentials.connections,
            logger,
            events,
            ...(opts.upstreamClock ? { now: opts.upstreamClock } : {}),
          }),
        }
      : {}),
    ...(approvals ? { approvals } : {}),
    clientAddress: clientAddressResolver(config.clientAddress),
    observer,
    ...(pins ? { pins } : {}),
    ...(tracing ? { tracing } : {}),
    events,
    logger,
    ...(shadow ? { shadow } : {}),
    subjects: new SubjectPrincipals(keys, config.oauth),
    notReady: () => source.notReady(),
    onReadinessChange: (l) => source.onLoad(l),
    close: async () => {
      statusReporter?.close();
      shadow?.close();
      await Promise.allSettled([
        endpointStore?.close(),
        keys.close(),
        verifier?.close(),
        source.close(),
        shadowSource?.close(),
        redis?.close(),
        tracing?.close(),
        shipper?.close(),
        upstreamCredentials?.close(),
        approvals?.store.close(),
        pins?.close(),
      ]);
    },
    ...opts.overrides,
  };

  // Endpoints from PostgreSQL, applied live: each change builds the endpoint parts and the
  // policy with the new data.endpoints off to the side, then swaps them in one step.
  let endpointStore: { close(): Promise<void> } | undefined;
  if (watch && config.stores.endpoints === 'postgres') {
    const live = new LiveRuntime(runtime);
    runtime.live = live;
    const { watchStoreEndpoints } = await import('../stores/postgres-endpoints.js');
    endpointStore = await watchStoreEndpoints(loaded, {
      logger,
      events,
      apply: async (next) => {
        const parts = await endpointParts(next.config, shared);
        const [policyNow, shadowNow] = await Promise.all([
          source.rebuildWith(parts.policyData),
          shadowSource?.rebuildWith(parts.policyData),
        ]);
        // One synchronous step: a Check reads the old set or the new one, never a mix.
        source.useData(parts.policyData, policyNow);
        shadowSource?.useData(parts.policyData, shadowNow);
        input = parts.input;
        live.current = { ...live.current, ...phasesOf(parts, source, shared), ...opts.overrides };
        return live.current.endpoints.all.length;
      },
    });
  }
  return runtime;
}

/** What the endpoint parts are built with: the same for every endpoint set. */
interface SharedParts {
  events: ServiceEvents;
  logger: Logger;
  keys: { readonly current: KeyLookup };
  verifier: ReturnType<typeof createTokenVerifier> | undefined;
  limits: LimitState;
  policy: NonNullable<LoadedConfig['config']['policy']>;
}

/** Where the limits count: made once, so an endpoint set built later counts on in the same place. */
interface LimitState {
  store: ConstructorParameters<typeof RateLimits>[2];
  lockouts: LockoutTable;
  failures: BuildOptions['failureCounter'];
}

/** What follows the endpoint set: built at start, and again for each live change of it. */
type EndpointPhases = Pick<
  Runtime,
  'config' | 'endpoints' | 'origins' | 'limiter' | 'authenticator' | 'directResponder'
>;
interface EndpointParts extends EndpointPhases {
  input: InputBuilder;
  /** The policy's data document with this set's data.endpoints. */
  policyData: Record<string, unknown>;
}

async function endpointParts(config: LoadedConfig['config'], s: SharedParts): Promise<EndpointParts> {
  const endpoints = new EndpointRegistry(config.endpoints);
  // PostgreSQL's parser (WASM) is loaded only where a rule reads an SQL argument.
  if (needsSqlParser(endpoints.all)) await loadPostgresParser();
  for (const name of sqlWithoutDialect(endpoints.all)) {
    s.logger.warn(
      { endpoint: name },
      'sql: select-only names no SQL dialect: only the portable subset passes (docs/policies.md "SQL read-only"); name the database, e.g. sql: {dialect: postgresql}',
    );
  }
  const origins = new OriginCheck(endpoints.all, config.publicBaseUrl);
  const { events, keys, verifier, limits, policy } = s;
  return {
    config,
    endpoints,
    origins,
    limiter: new RateLimits(config, endpoints.all, limits.store, limits.lockouts, events, limits.failures),
    authenticator: new ModeAuthenticator({ config, endpoints, keys, verifier, events, origins }),
    directResponder: new OAuthDiscovery(config, endpoints),
    input: new InputBuilder(endpoints.all, {
      envoyInput: policy.envoyInput,
      grantsInput: policy.grantsInput,
      publicBaseUrl: config.publicBaseUrl,
      keyHeader: config.apiKeys.header,
      keyQueryParams: config.apiKeys.queryParams,
    }),
    // The service's own view wins over static data: a policy always sees the real endpoints.
    policyData: {
      ...policy.data,
      endpoints: Object.fromEntries(endpoints.all.map(({ metadataPath: _m, ...e }) => [e.name, policyView(e)])),
    },
  };
}

/** The runtime's phases for one endpoint set: its parts, and the policy as that set sees it. */
function phasesOf(
  parts: EndpointParts,
  source: PolicySource,
  s: SharedParts,
): EndpointPhases & Pick<Runtime, 'authorizer'> {
  const { input, policyData, ...phases } = parts;
  const authorizer = new PolicyAuthorizer({
    policy: new PolicyView(source, policyData),
    input,
    events: s.events,
    logger: s.logger,
    rawCredentials: s.policy.rawCredentials,
  });
  return { ...phases, authorizer };
}

/** The first counter the factory makes, for every later call: a rebuilt limiter counts on in it. */
function shareFirst<A extends unknown[], R>(make: ((...args: A) => R) | undefined): ((...args: A) => R) | undefined {
  if (!make) return undefined;
  let made: { value: R } | undefined;
  return (...args) => (made ??= { value: make(...args) }).value;
}

/** Both listeners hear every event. */
function mergeEvents(a: ServiceEvents, b: ServiceEvents): ServiceEvents {
  const out: ServiceEvents = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof ServiceEvents>) {
    const fa = a[k] as ((...args: unknown[]) => void) | undefined;
    const fb = b[k] as ((...args: unknown[]) => void) | undefined;
    (out as Record<string, unknown>)[k] = (...args: unknown[]) => {
      fa?.(...args);
      fb?.(...args);
    };
  }
  return out;
}
