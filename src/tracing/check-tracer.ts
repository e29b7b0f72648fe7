// Spans for Checks with OpenTelemetry: a SERVER span per Check continuing the caller's W3C
// trace, a child span per phase, exported over OTLP (HTTP with protobuf, or gRPC) in batches. Nothing is
// registered globally and no context manager is used: the parent of every span is passed
// explicitly, so nothing rides on async hooks. Attributes are bounded and never carry a
// credential or a raw header (docs/tracing.md).
import {
  createTraceState,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace as otelTrace,
  type Attributes,
  type Context,
  type HrTime,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import type { CheckTrace } from '../decision/context.js';
import type { CheckPhase, CheckSpan, CheckTracing } from '../decision/phases.js';
import type { EndpointConfig } from '../config/schema.js';
import { packageVersion } from '../config/version.js';
import { isDenyCode } from '../contracts/codes.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { knownTools, OTHER, POLICY_CODE, UNKNOWN_ENDPOINT } from '../metrics/service-metrics.js';
import type { SamplerSettings, TracingSettings } from './settings.js';

/** MCP methods named in the spans as they are; any other method is `_other`. */
const MCP_METHODS: ReadonlySet<string> = new Set([
  'initialize',
  'ping',
  'server/discover',
  'tools/list',
  'tools/call',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'completion/complete',
  'logging/setLevel',
  'roots/list',
  'sampling/createMessage',
  'elicitation/create',
  'tasks/get',
  'tasks/list',
  'tasks/result',
  'tasks/cancel',
  'notifications/initialized',
  'notifications/cancelled',
  'notifications/progress',
  'notifications/message',
  'notifications/roots/list_changed',
  'notifications/resources/list_changed',
  'notifications/resources/updated',
  'notifications/tools/list_changed',
  'notifications/prompts/list_changed',
  'notifications/tasks/status',
]);

/** Failed exports are logged at most this often; the metric counts every one. */
const EXPORT_FAILURE_LOG_INTERVAL_MS = 60_000;

export interface CheckTracerOptions {
  settings: TracingSettings;
  endpoints: readonly Pick<EndpointConfig, 'name' | 'scopes'>[];
  logger: Logger;
  events?: ServiceEvents;
  /** Where spans go (otlpExporter(settings)); the OTLP/HTTP exporter when absent. Tests pass an in-memory one. */
  exporter?: SpanExporter;
}

/** Tracing that is on: the SDK's tracer provider behind the pipeline's CheckTracing. */
export class CheckTracer implements CheckTracing {
  private readonly provider: TracerProvider;
  private readonly tracer: Tracer;
  /** Each endpoint's tools named in spans; others are `_other`, as in the metrics. */
  readonly tools: ReadonlyMap<string, ReadonlySet<string>>;
  /** process.hrtime.bigint() + this = nanoseconds since the epoch, fixed at start so every span shares one clock. */
  private readonly epochOffsetNs =
    BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)) - process.hrtime.bigint();

  constructor(opts: CheckTracerOptions) {
    const { settings } = opts;
    const exporter = new ObservedExporter(opts.exporter ?? httpExporter(settings), opts.logger, opts.events);
    this.provider = new TracerProvider({
      resource: resourceFromAttributes({
        ...settings.resourceAttributes,
        'service.name': settings.serviceName,
        'service.version': packageVersion(),
      }),
      sampler: sampler(settings.sampler),
      spanProcessors: [new BatchSpanProcessor({ exporter, ...settings.batch })],
    });
    this.tracer = this.provider.getTracer('mcp-authz', packageVersion());
    this.tools = new Map(opts.endpoints.map((e) => [e.name, knownTools(e)]));
  }

  start(trace: CheckTrace, startedNs: bigint): CheckSpan | undefined {
    // Tracing never decides a Check: whatever the SDK throws, the Check goes on untraced.
    try {
      const parent = trace.incoming ? remoteParent(trace.incoming) : ROOT_CONTEXT;
      const root = this.tracer.startSpan('Check', { kind: SpanKind.SERVER, startTime: this.hrTime(startedNs) }, parent);
      // An unsampled Check stops here: no phase spans, no attributes.
      if (!root.isRecording()) return undefined;
      return new RecordedCheck(this, this.tracer, root, trace, startedNs);
    } catch {
      return undefined;
    }
  }

  hrTime(ns: bigint): HrTime {
    const t = ns + this.epochOffsetNs;
    return [Number(t / 1_000_000_000n), Number(t % 1_000_000_000n)];
  }

  /** Exports every span ended so far (tests, and shutdown). */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  close(): Promise<void> {
    return this.provider.shutdown();
  }
}

/** OTLP/HTTP with protobuf. */
function httpExporter(settings: TracingSettings): SpanExporter {
  const { compression, ...exporterSettings } = settings.exporter;
  return new OTLPTraceExporter({
    url: settings.url,
    ...exporterSettings,
    ...(compression !== undefined
      ? { compression: compression === 'gzip' ? CompressionAlgorithm.GZIP : CompressionAlgorithm.NONE }
      : {}),
  });
}

/**
 * The exporter the settings ask for. OTLP/gRPC's exporter (and grpc-js) is loaded only when
 * chosen; it reads OTEL_EXPORTER_OTLP_CERTIFICATE, …_CLIENT_KEY, …_CLIENT_CERTIFICATE and
 * …_INSECURE itself, as the HTTP exporter reads its certificates.
 */
export async function otlpExporter(settings: TracingSettings): Promise<SpanExporter> {
  if (settings.protocol !== 'grpc') return httpExporter(settings);
  const [{ OTLPTraceExporter: GrpcTraceExporter }, { Metadata }] = await Promise.all([
    import('@opentelemetry/exporter-trace-otlp-grpc'),
    import('@grpc/grpc-js'),
  ]);
  const { compression, headers, timeoutMillis } = settings.exporter;
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(headers ?? {})) metadata.set(k, v);
  return new GrpcTraceExporter({
    url: settings.url,
    metadata,
    ...(timeoutMillis !== undefined ? { timeoutMillis } : {}),
    ...(compression !== undefined
      ? { compression: compression === 'gzip' ? CompressionAlgorithm.GZIP : CompressionAlgorithm.NONE }
      : {}),
  });
}

function remoteParent(incoming: NonNullable<CheckTrace['incoming']>): Context {
  return otelTrace.setSpanContext(ROOT_CONTEXT, {
    traceId: incoming.traceId,
    spanId: incoming.parentSpanId,
    traceFlags: incoming.sampled ? 1 : 0,
    isRemote: true,
    ...(incoming.traceState !== undefined ? { traceState: createTraceState(incoming.traceState) } : {}),
  });
}

function sampler(s: SamplerSettings): Sampler {
  switch (s.kind) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(s.ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(s.ratio) });
  }
}

/** One sampled Check: its span, the phase in progress, and the decision's attributes at the end. */
class RecordedCheck implements CheckSpan {
  readonly traceId: string;
  readonly spanId: string;
  private readonly parent: Context;
  private current: Span | undefined;
  private currentPhase: CheckPhase | undefined;

  constructor(
    private readonly owner: CheckTracer,
    private readonly tracer: Tracer,
    private readonly root: Span,
    private readonly trace: CheckTrace,
    startedNs: bigint,
  ) {
    const sc = root.spanContext();
    this.traceId = sc.traceId;
    this.spanId = sc.spanId;
    this.parent = otelTrace.setSpan(ROOT_CONTEXT, root);
    // Decoding happened before the trace context could be read: its span is written after the fact.
    tracer
      .startSpan('decode', { startTime: owner.hrTime(startedNs) }, this.parent)
      .end(owner.hrTime(process.hrtime.bigint()));
  }

  phase(phase: CheckPhase): void {
    if (phase === this.currentPhase) return;
    try {
      const now = this.owner.hrTime(process.hrtime.bigint());
      this.endCurrent(now);
      this.currentPhase = phase;
      this.current = this.tracer.startSpan(phase, { startTime: now }, this.parent);
    } catch {
      // a span lost, never the Check
    }
  }

  end(): void {
    try {
      this.finish();
    } catch {
      // as above: runCheck never throws, tracing included
    }
  }

  private finish(): void {
    const now = this.owner.hrTime(process.hrtime.bigint());
    this.endCurrent(now);
    const { outcome, ctx } = this.trace;
    const endpoint = ctx?.endpoint?.name ?? UNKNOWN_ENDPOINT;
    const attrs: Attributes = {
      'mcp_authz.decision_id': this.trace.decisionId,
      'mcp_authz.endpoint': endpoint,
      'mcp_authz.decision': outcome.kind,
      'mcp_authz.code':
        outcome.kind === 'allow'
          ? outcome.reason
          : isDenyCode(outcome.code) || outcome.kind === 'answer'
            ? outcome.code
            : POLICY_CODE,
      'http.response.status_code': outcome.status,
    };
    if (ctx) {
      attrs['mcp_authz.auth_method'] = ctx.principal.method;
      if (ctx.authFailure) attrs['mcp_authz.auth_detail'] = ctx.authFailure.detail;
      const calls = ctx.mcp.calls;
      const first = calls[0];
      if (first !== undefined && first.method !== '') {
        attrs['mcp.method.name'] = MCP_METHODS.has(first.method) ? first.method : OTHER;
        if (first.method === 'tools/call') {
          attrs['gen_ai.tool.name'] =
            first.name !== undefined && this.owner.tools.get(endpoint)?.has(first.name) ? first.name : OTHER;
        }
      }
      if (calls.length > 1) attrs['mcp_authz.batch_size'] = calls.length;
    }
    this.root.setAttributes(attrs);
    // Server spans are errors for the service's own failures, not for the denies it is there to make.
    if (outcome.kind === 'deny' && outcome.status >= 500)
      this.root.setStatus({ code: SpanStatusCode.ERROR, message: outcome.code });
    this.root.end(now);
  }

  private endCurrent(now: HrTime): void {
    if (!this.current) return;
    if (this.currentPhase === 'authorize' && this.trace.policy) {
      this.current.setAttributes({
        'mcp_authz.policy.decision': this.trace.policy.decision,
        'mcp_authz.policy.revision': this.trace.policy.revision,
      });
      if (this.trace.policy.failed)
        this.current.setStatus({ code: SpanStatusCode.ERROR, message: 'policy evaluation failed' });
    }
    this.current.end(now);
    this.current = undefined;
    this.currentPhase = undefined;
  }
}

/** The exporter, with each batch's result counted and failures logged (rate-limited). */
class ObservedExporter implements SpanExporter {
  private lastLogged = 0;
  private failedSinceLog = 0;

  constructor(
    private readonly inner: SpanExporter,
    private readonly logger: Logger,
    private readonly events: ServiceEvents | undefined,
  ) {}

  export(spans: ReadableSpan[], done: Parameters<SpanExporter['export']>[1]): void {
    this.inner.export(spans, (result) => {
      const ok = result.code === 0;
      this.events?.traceExport?.(ok ? 'success' : 'failure', spans.length);
      if (!ok) this.failed(spans.length, result.error);
      done(result);
    });
  }

  private failed(spans: number, err: Error | undefined): void {
    this.failedSinceLog += spans;
    const now = Date.now();
    if (now - this.lastLogged < EXPORT_FAILURE_LOG_INTERVAL_MS) return;
    this.lastLogged = now;
    this.logger.warn(
      { err: err?.message, spans_lost: this.failedSinceLog },
      'tracing: spans could not be exported to the OTLP endpoint; they are dropped',
    );
    this.failedSinceLog = 0;
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}
