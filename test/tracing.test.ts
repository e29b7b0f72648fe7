// Tracing end to end: the real service over real gRPC, exporting OTLP/HTTP protobuf to a
// collector stand-in on loopback. Spans continue the caller's W3C trace, sampled or not as
// the caller and OTEL_TRACES_SAMPLER say, carry bounded attributes and never a credential;
// the decision log and Envoy's dynamic metadata name the same decision and trace.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { CheckTracer } from '../src/tracing/check-tracer.js';
import { createLogger } from '../src/log/logger.js';
import { tracingSettings, TracingConfigError, describeTracing } from '../src/tracing/settings.js';
import { makeKey, keysFile } from './helpers/auth-fixtures.js';
import {
  decodeTraces,
  OtlpCollector,
  OtlpGrpcCollector,
  spansOf,
  type ReceivedSpan,
} from './helpers/otlp-collector.js';
import { checkRequest, rpc, startTestService, type CheckResponse, type TestService } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

const KEY = makeKey({ id: 'tracer-key', userId: 'alice', permissions: ['tools:search'] });
const SERVER = 2;
const INTERNAL = 1;
const ERROR = 2;
const PHASES = ['decode', 'direct_answer', 'endpoint', 'limits', 'authenticate', 'body', 'authorize', 'respond'];

const config = {
  apiKeys: { file: 'keys.yaml' },
  endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, scopes: ['tools:search'] }],
};

let collector: OtlpCollector;
test.before(async () => {
  collector = await new OtlpCollector().start();
});
test.after.always(async () => {
  await collector.close();
});

async function tracedService(env: Record<string, string>, lines: string[] = []): Promise<TestService> {
  // The service's own logger shape (createLogger), whose decision lines carry one clock reading
  // for `time` and `ts`; a plain pino logger reads the clock again for `time`.
  const logger = createLogger('info', { sink: { write: (l) => lines.push(l), writeDecision: (l) => lines.push(l) } });
  return startTestService(config, {
    files: { 'keys.yaml': keysFile([KEY]) },
    logger,
    runtime: { env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint, ...env } },
  });
}

const flush = (svc: TestService) => (svc.runtime.tracing as CheckTracer).flush();

/** A fresh trace id per call, so tests sharing the collector never read each other's spans. */
function traceparent(sampled: boolean): { traceId: string; parent: string; header: string } {
  const traceId = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
  const parent = [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, '0')).join('');
  return { traceId, parent, header: `00-${traceId}-${parent}-${sampled ? '01' : '00'}` };
}

function toolCall(name: string, headers: Record<string, string>) {
  return checkRequest({
    path: '/mcp/files',
    body: rpc('tools/call', { name, arguments: { q: 'x' } }),
    headers: { 'x-api-key': KEY.key, ...headers },
  });
}

const decisionIdOf = (res: CheckResponse) =>
  (res.dynamic_metadata as { fields: Record<string, { stringValue?: string }> }).fields.decision_id?.stringValue;
const decisionLines = (lines: string[]) =>
  lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.log === 'decision');
const ofTrace = (traceId: string) => (spans: ReceivedSpan[]) => spans.filter((s) => s.traceId === traceId);

test("a sampled Check continues the request's trace: a SERVER span under the caller's, a child span per phase", async (t) => {
  const lines: string[] = [];
  const svc = await tracedService(
    { OTEL_SERVICE_NAME: 'authz-under-test', OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test,team=platform' },
    lines,
  );
  t.teardown(() => svc.stop());
  const tp = traceparent(true);
  const res = await svc.check(toolCall('search', { traceparent: tp.header, tracestate: 'vendor=abc' }));
  t.truthy(res.ok_response);
  await flush(svc);
  const spans = ofTrace(tp.traceId)(
    await collector.waitFor((s) => ofTrace(tp.traceId)(s).some((x) => x.name === 'Check')),
  );

  const check = spans.find((s) => s.name === 'Check')!;
  t.is(check.parentSpanId, tp.parent, "the Check span is a child of the caller's span");
  t.is(check.kind, SERVER);
  t.is(check.traceState, 'vendor=abc');
  t.like(check.attributes, {
    'mcp_authz.endpoint': 'files',
    'mcp_authz.decision': 'allow',
    'mcp_authz.code': 'allowed',
    'http.response.status_code': 200,
    'mcp_authz.auth_method': 'api_key',
    'mcp.method.name': 'tools/call',
    'gen_ai.tool.name': 'search',
    'mcp_authz.decision_id': decisionIdOf(res),
  });
  t.like(check.resource, { 'service.name': 'authz-under-test', 'deployment.environment': 'test', team: 'platform' });
  t.is(typeof check.resource['service.version'], 'string');

  const children = spans.filter((s) => s.name !== 'Check');
  t.deepEqual(
    children.map((s) => s.name).sort(),
    [...PHASES, 'limits'].sort(),
    'every phase, limits before and after authentication',
  );
  for (const c of children) {
    t.is(c.parentSpanId, check.spanId, `${c.name} is a child of the Check span`);
    t.is(c.kind, INTERNAL);
    t.true(c.startNs >= check.startNs && c.endNs <= check.endNs, `${c.name} lies within the Check span`);
  }
  const authorize = children.find((s) => s.name === 'authorize')!;
  t.is(authorize.attributes['mcp_authz.policy.decision'], 'allow');
  t.regex(String(authorize.attributes['mcp_authz.policy.revision']), /^sha256-/);

  // The decision log names the same decision, trace and span.
  const line = decisionLines(lines).find((l) => l.decision_id === decisionIdOf(res))!;
  t.like(line, { trace_id: tp.traceId, span_id: check.spanId, request_id: '42', client_address: '10.1.2.3' });
  t.is(new Date(line.ts as string).getTime(), line.time, "ts is pino's time in ISO 8601");
});

test('a Check whose calls per-tool quotas count has a third limits span, between authorize and respond', async (t) => {
  const svc = await startTestService(
    { ...config, rateLimit: { perTool: [{ name: 'searches', match: 'tools:search', rps: 0.001, burst: 5 }] } },
    { files: { 'keys.yaml': keysFile([KEY]) }, runtime: { env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint } } },
  );
  t.teardown(() => svc.stop());
  const tp = traceparent(true);
  t.truthy((await svc.check(toolCall('search', { traceparent: tp.header }))).ok_response);
  await flush(svc);
  const spans = ofTrace(tp.traceId)(
    await collector.waitFor((s) => ofTrace(tp.traceId)(s).some((x) => x.name === 'Check')),
  );
  const named = (name: string) => spans.filter((s) => s.name === name);
  t.deepEqual(
    spans
      .map((s) => s.name)
      .filter((n) => n !== 'Check')
      .sort(),
    [...PHASES, 'limits', 'limits'].sort(),
  );
  const authorize = named('authorize')[0]!;
  const respond = named('respond')[0]!;
  t.true(
    named('limits').some((l) => l.startNs >= authorize.endNs && l.endNs <= respond.startNs),
    'the quota span lies between the policy and the answer',
  );
});

test("the trace context on the gRPC call (Envoy's ext_authz span) is the parent ahead of the request's", async (t) => {
  const lines: string[] = [];
  // Also: gzip and the exporter's headers, as a collector behind a vendor's gateway needs them.
  const svc = await tracedService(
    { OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip', OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-token=SECRET%20TOKEN' },
    lines,
  );
  t.teardown(() => svc.stop());
  const onCall = traceparent(true);
  const inRequest = traceparent(true);
  const metadata = new grpc.Metadata();
  metadata.set('traceparent', onCall.header);
  await new Promise<void>((resolve, reject) =>
    svc.client.Check(toolCall('search', { traceparent: inRequest.header }), metadata, (err: Error | null) =>
      err ? reject(err) : resolve(),
    ),
  );
  await flush(svc);
  const [check] = (await collector.waitFor((s) => ofTrace(onCall.traceId)(s).some((x) => x.name === 'Check'))).filter(
    (s) => s.traceId === onCall.traceId && s.name === 'Check',
  );
  t.is(check!.parentSpanId, onCall.parent);
  t.false(collector.spans.some((s) => s.traceId === inRequest.traceId));
  const sent = collector.requestHeaders.filter((h) => h['x-collector-token'] !== undefined);
  t.true(sent.length > 0);
  t.true(sent.every((h) => h['x-collector-token'] === 'SECRET TOKEN' && h['content-encoding'] === 'gzip'));
  t.false(
    lines.some((l) => l.includes('SECRET')),
    'the header value is never logged',
  );
});

test('an unsampled caller gets no spans; the decision log still names its trace', async (t) => {
  const lines: string[] = [];
  const svc = await tracedService({}, lines);
  t.teardown(() => svc.stop());
  const unsampled = traceparent(false);
  const sampled = traceparent(true);
  const quiet = await svc.check(toolCall('search', { traceparent: unsampled.header }));
  await svc.check(toolCall('search', { traceparent: sampled.header }));
  await flush(svc);
  // Spans leave in order: once the sampled Check's are in, the unsampled one's would be too.
  await collector.waitFor((s) => ofTrace(sampled.traceId)(s).some((x) => x.name === 'Check'));
  t.deepEqual(ofTrace(unsampled.traceId)(collector.spans), []);
  const line = decisionLines(lines).find((l) => l.decision_id === decisionIdOf(quiet))!;
  t.is(line.trace_id, unsampled.traceId);
  t.is(line.span_id, undefined, 'no span of its own was recorded');
});

test('without a traceparent a Check starts a trace (parent-based, always on for roots); with ratio 0 roots are dropped and callers still followed', async (t) => {
  const lines: string[] = [];
  const svc = await tracedService({}, lines);
  t.teardown(() => svc.stop());
  const res = await svc.check(toolCall('search', {}));
  await flush(svc);
  const id = decisionIdOf(res);
  const spans = await collector.waitFor((s) => s.some((x) => x.attributes['mcp_authz.decision_id'] === id));
  const root = spans.find((x) => x.attributes['mcp_authz.decision_id'] === id)!;
  t.is(root.parentSpanId, '');
  t.is(decisionLines(lines).find((l) => l.decision_id === id)!.trace_id, root.traceId);

  const ratioLines: string[] = [];
  const ratio = await tracedService(
    { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' },
    ratioLines,
  );
  t.teardown(() => ratio.stop());
  const dropped = await ratio.check(toolCall('search', {}));
  const followed = traceparent(true);
  await ratio.check(toolCall('search', { traceparent: followed.header }));
  await flush(ratio);
  await collector.waitFor((s) => ofTrace(followed.traceId)(s).some((x) => x.name === 'Check'));
  t.false(collector.spans.some((s) => s.attributes['mcp_authz.decision_id'] === decisionIdOf(dropped)));
  t.is(
    decisionLines(ratioLines).find((l) => l.decision_id === decisionIdOf(dropped))!.trace_id,
    undefined,
    'no trace, no trace_id',
  );
});

test('attributes stay bounded and secret-free: unknown tools and methods are _other, keys and headers never leave', async (t) => {
  const svc = await tracedService({});
  t.teardown(() => svc.stop());
  const denied = traceparent(true);
  const odd = traceparent(true);
  const bad = traceparent(true);
  const secretHeader = 'Bearer eyJhbGciOiJSUzI1NiJ9.SECRET.TOKEN';
  await svc.check(
    toolCall('delete_everything_' + 'x'.repeat(50), { traceparent: denied.header, cookie: 'session=SECRETCOOKIE' }),
  );
  await svc.check(
    checkRequest({
      path: '/mcp/files',
      body: rpc('vendor/custom-' + Math.random()),
      headers: { 'x-api-key': KEY.key, traceparent: odd.header },
    }),
  );
  await svc.check(
    checkRequest({
      path: '/mcp/files',
      body: rpc('tools/list'),
      headers: { 'x-api-key': 'mcp_' + 'A'.repeat(43) + 'WRONG', authorization: secretHeader, traceparent: bad.header },
    }),
  );
  await flush(svc);
  const spans = await collector.waitFor((s) =>
    [denied, odd, bad].every((tp) => ofTrace(tp.traceId)(s).some((x) => x.name === 'Check')),
  );
  const check = (tp: { traceId: string }) => spans.find((s) => s.traceId === tp.traceId && s.name === 'Check')!;

  t.like(check(denied).attributes, {
    'mcp_authz.decision': 'deny',
    'mcp_authz.code': 'access_denied',
    'http.response.status_code': 403,
    'gen_ai.tool.name': '_other',
  });
  t.is(check(odd).attributes['mcp.method.name'], '_other');
  t.like(check(bad).attributes, { 'mcp_authz.decision': 'deny', 'http.response.status_code': 401 });
  t.regex(String(check(bad).attributes['mcp_authz.code']), /^invalid_/);
  t.regex(String(check(bad).attributes['mcp_authz.auth_detail']), /^[a-z_]+$/);
  t.is(check(denied).status.code, 0, 'a deny is the service working, not an error');

  const allowedKeys = new Set([
    'mcp_authz.decision_id',
    'mcp_authz.endpoint',
    'mcp_authz.decision',
    'mcp_authz.code',
    'http.response.status_code',
    'mcp_authz.auth_method',
    'mcp_authz.auth_detail',
    'mcp.method.name',
    'gen_ai.tool.name',
    'mcp_authz.batch_size',
    'mcp_authz.policy.decision',
    'mcp_authz.policy.revision',
  ]);
  for (const s of spans)
    for (const k of Object.keys(s.attributes)) t.true(allowedKeys.has(k), `unexpected attribute ${k} on ${s.name}`);
  const wire = Buffer.concat(collector.bodies).toString('latin1');
  for (const secret of [KEY.key, 'SECRET.TOKEN', 'SECRETCOOKIE', 'WRONG', 'delete_everything', 'vendor/custom']) {
    t.false(wire.includes(secret), `${secret} never reaches the collector`);
  }
  t.true(collector.contentTypes.every((c) => c === 'application/x-protobuf'));
});

test('a 503 is an error on its span', async (t) => {
  const svc = await tracedService({});
  t.teardown(() => svc.stop());
  svc.runtime.authorizer = {
    authorize() {
      throw new Error('policy engine exploded');
    },
  };
  const tp = traceparent(true);
  await svc.check(toolCall('search', { traceparent: tp.header }));
  await flush(svc);
  const check = (await collector.waitFor((s) => ofTrace(tp.traceId)(s).some((x) => x.name === 'Check'))).find(
    (s) => s.traceId === tp.traceId && s.name === 'Check',
  )!;
  t.like(check.status, { code: ERROR, message: 'internal_error' });
  t.is(check.attributes['http.response.status_code'], 503);
});

test('spans the endpoint refuses are counted as failed exports, and the Checks are answered all the same', async (t) => {
  const lines: string[] = [];
  const closed = new OtlpCollector();
  await closed.start();
  const deadEndpoint = closed.endpoint;
  await closed.close(); // nothing listens there now
  const svc = await tracedService(
    { OTEL_EXPORTER_OTLP_ENDPOINT: deadEndpoint, OTEL_EXPORTER_OTLP_TIMEOUT: '300' },
    lines,
  );
  t.teardown(() => svc.stop());
  const res = await svc.check(toolCall('search', { traceparent: traceparent(true).header }));
  t.truthy(res.ok_response);
  await flush(svc).catch(() => undefined); // the flush itself reports the failed export
  const failed = async () =>
    Number(
      /mcp_authz_trace_spans_exported_total\{result="failure"\} (\d+)/.exec((await svc.http('/metrics')).text)?.[1],
    );
  await waitFor('the lost spans to be counted', async () => (await failed()) >= PHASES.length + 2, 10_000, 20);
  t.is(await failed(), PHASES.length + 2, 'the Check span and its nine phase spans');
  t.true(lines.some((l) => l.includes('spans could not be exported')));
});

test('OTEL_EXPORTER_OTLP_PROTOCOL=grpc exports the spans over OTLP/gRPC (the headers as metadata; gzip accepted) and the HTTP collector gets none', async (t) => {
  const grpcCollector = await new OtlpGrpcCollector().start();
  t.teardown(() => grpcCollector.close());
  const lines: string[] = [];
  const logger = createLogger('info', { sink: { write: (l) => lines.push(l), writeDecision: (l) => lines.push(l) } });
  const svc = await startTestService(config, {
    files: { 'keys.yaml': keysFile([KEY]) },
    logger,
    runtime: {
      env: {
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_ENDPOINT: grpcCollector.endpoint,
        OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
        OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=blue%20team',
      },
    },
  });
  t.teardown(() => svc.stop());
  const tp = traceparent(true);
  t.truthy((await svc.check(toolCall('search', { traceparent: tp.header }))).ok_response);
  await flush(svc);
  const spans = ofTrace(tp.traceId)(
    await grpcCollector.waitFor((s) => ofTrace(tp.traceId)(s).some((x) => x.name === 'Check')),
  );
  const check = spans.find((s) => s.name === 'Check')!;
  t.is(check.parentSpanId, tp.parent);
  t.like(check.attributes, {
    'mcp_authz.endpoint': 'files',
    'mcp_authz.decision': 'allow',
    'gen_ai.tool.name': 'search',
  });
  t.deepEqual(
    spans
      .filter((s) => s.name !== 'Check')
      .map((s) => s.name)
      .sort(),
    [...PHASES, 'limits'].sort(),
  );
  t.like(grpcCollector.metadata.at(-1), { 'x-tenant': 'blue team' });
  t.is(collector.spans.filter((s) => s.traceId === tp.traceId).length, 0, 'nothing went over OTLP/HTTP');
  t.true(lines.some((l) => l.includes(`tracing: OTLP/gRPC to ${grpcCollector.endpoint}`)));
  const m = (await svc.http('/metrics')).text;
  t.regex(m, /mcp_authz_trace_spans_exported_total\{result="success"\} [1-9]/);
});

test('the stand-in collector decodes what the official OTLP serializer writes', async (t) => {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'x' }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
  });
  const span = provider
    .getTracer('t')
    .startSpan('probe', { kind: SpanKind.SERVER, attributes: { s: 'v', n: 7, f: 1.5, b: true } });
  span.setStatus({ code: SpanStatusCode.ERROR, message: 'm' });
  span.end();
  await provider.forceFlush();
  const [decoded] = spansOf(
    decodeTraces(Buffer.from(ProtobufTraceSerializer.serializeRequest(memory.getFinishedSpans())!)),
  );
  const original = memory.getFinishedSpans()[0]!;
  t.like(decoded, {
    name: 'probe',
    kind: SERVER,
    traceId: original.spanContext().traceId,
    spanId: original.spanContext().spanId,
    status: { code: ERROR, message: 'm' },
    scope: 't',
  });
  t.deepEqual(decoded!.attributes, { s: 'v', n: 7, f: 1.5, b: true });
  t.is(decoded!.resource['service.name'], 'x');
  t.true(decoded!.endNs >= decoded!.startNs);
});

test('tracing is off unless asked for, and every OTEL_* value it reads is checked', (t) => {
  t.is(tracingSettings({}), undefined);
  t.is(tracingSettings({ OTEL_SERVICE_NAME: 'x' }), undefined, 'a service name alone does not turn tracing on');
  t.is(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }), undefined);
  t.is(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }), undefined);
  t.like(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' }), {
    url: 'http://c:4318/v1/traces',
    serviceName: 'mcp-authz',
    sampler: { kind: 'parentbased_always_on' },
  });
  t.like(
    tracingSettings({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://t.example/custom',
    }),
    { url: 'https://t.example/custom' },
  );
  t.like(tracingSettings({ OTEL_TRACES_EXPORTER: 'otlp' }), {
    protocol: 'http/protobuf',
    url: 'http://localhost:4318/v1/traces',
  });
  // OTLP/gRPC (the OpenTelemetry specification's OTEL_EXPORTER_OTLP_PROTOCOL=grpc): the endpoint as given, no /v1/traces.
  t.like(tracingSettings({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), {
    protocol: 'grpc',
    url: 'http://localhost:4317',
  });
  t.like(
    tracingSettings({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'https://c:4317',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    }),
    { protocol: 'grpc', url: 'https://c:4317' },
  );
  t.like(
    tracingSettings({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'c:4317',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_INSECURE: 'true',
    }),
    { protocol: 'grpc', url: 'c:4317' },
  );
  t.regex(
    describeTracing(
      tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }),
    ),
    /^tracing: OTLP\/gRPC to http:\/\/c:4317,/,
  );
  t.like(
    tracingSettings({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_TRACES_SAMPLER: 'traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_BSP_MAX_QUEUE_SIZE: '4096',
    }),
    { sampler: { kind: 'traceidratio', ratio: 0.25 }, batch: { maxQueueSize: 4096 } },
  );

  const refused: [Record<string, string>, RegExp][] = [
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' },
      /OTEL_EXPORTER_OTLP_PROTOCOL.*"http\/protobuf".*"grpc".*http\/json/,
    ],
    [
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      },
      /TRACES_PROTOCOL/,
    ],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317/v1/traces', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
      /OTLP\/gRPC endpoint has no path/,
    ],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'c', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, /http:\/\/host:port \(plaintext\)/],
    [
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'c:4317',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_INSECURE: 'yes',
      },
      /OTEL_EXPORTER_OTLP_INSECURE/,
    ],
    [{ OTEL_TRACES_EXPORTER: 'zipkin' }, /OTEL_TRACES_EXPORTER.*zipkin/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'c:4318' }, /OTEL_EXPORTER_OTLP_ENDPOINT/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://user:pw@c:4318' }, /credentials/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER: 'sometimes' }, /OTEL_TRACES_SAMPLER: one of/],
    [
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
        OTEL_TRACES_SAMPLER: 'traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '2',
      },
      /OTEL_TRACES_SAMPLER_ARG/,
    ],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_BSP_SCHEDULE_DELAY: '-1' }, /OTEL_BSP_SCHEDULE_DELAY/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_RESOURCE_ATTRIBUTES: 'novalue' }, /OTEL_RESOURCE_ATTRIBUTES/],
  ];
  for (const [env, message] of refused) {
    const err = t.throws(() => tracingSettings(env), { instanceOf: TracingConfigError }, JSON.stringify(env));
    t.regex(err!.message, message);
  }
  const line = describeTracing(
    tracingSettings({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://t.example/v1/traces?token=SECRET',
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer SECRET',
    }),
  );
  t.regex(line, /https:\/\/t\.example\/v1\/traces/);
  t.false(line.includes('SECRET'), 'neither a query string nor a header value is printed');
});
