// Tracing is configured the OpenTelemetry way, by OTEL_* environment variables, and is off
// unless they ask for it. Everything read here is checked at start-up: a value the service
// would ignore or misread stops it with a message, as a bad config file does.
// docs/tracing.md lists every variable honoured.

export interface TracingSettings {
  /** OTLP over HTTP with protobuf (port 4318), or over gRPC (port 4317): OTEL_EXPORTER_OTLP_PROTOCOL. */
  protocol: OtlpProtocol;
  /** OTLP/HTTP: the traces URL (…/v1/traces). OTLP/gRPC: the collector's endpoint as given (http:// plaintext, https:// or host:port TLS). */
  url: string;
  serviceName: string;
  /** OTEL_RESOURCE_ATTRIBUTES, decoded. */
  resourceAttributes: Record<string, string>;
  sampler: SamplerSettings;
  batch: BatchSettings;
  exporter: ExporterSettings;
}

export interface ExporterSettings {
  timeoutMillis?: number;
  compression?: 'gzip' | 'none';
  /** OTEL_EXPORTER_OTLP_HEADERS then …_TRACES_HEADERS, decoded: often a vendor's token, never logged. */
  headers?: Record<string, string>;
}

export type SamplerSettings =
  | { kind: 'always_on' | 'always_off' | 'parentbased_always_on' | 'parentbased_always_off' }
  | { kind: 'traceidratio' | 'parentbased_traceidratio'; ratio: number };

export interface BatchSettings {
  scheduledDelayMillis?: number;
  exportTimeoutMillis?: number;
  maxQueueSize?: number;
  maxExportBatchSize?: number;
}

export class TracingConfigError extends Error {}

export type OtlpProtocol = 'http/protobuf' | 'grpc';
const PROTOCOLS: readonly OtlpProtocol[] = ['http/protobuf', 'grpc'];

type Env = Readonly<Record<string, string | undefined>>;

const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
const DEFAULT_ENDPOINT = 'http://localhost:4318';
const DEFAULT_GRPC_ENDPOINT = 'http://localhost:4317';
export const DEFAULT_SERVICE_NAME = 'mcp-authz';

/** An empty variable counts as unset, as the OpenTelemetry SDKs read them. */
function get(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
}

/**
 * The tracing settings the environment asks for, or undefined when tracing is off: no OTLP
 * endpoint and no OTEL_TRACES_EXPORTER=otlp, OTEL_TRACES_EXPORTER=none, or OTEL_SDK_DISABLED=true.
 */
export function tracingSettings(env: Env): TracingSettings | undefined {
  if (get(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return undefined;
  const exporters = (get(env, 'OTEL_TRACES_EXPORTER') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = exporters.filter((e) => e !== 'otlp' && e !== 'none');
  if (unknown.length > 0) {
    throw new TracingConfigError(
      `OTEL_TRACES_EXPORTER: mcp-authz exports traces with OTLP only ("otlp", or "none" for no traces); got ${JSON.stringify(unknown.join(','))}`,
    );
  }
  if (exporters.includes('none')) return undefined;
  const specific = get(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const general = get(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (specific === undefined && general === undefined && !exporters.includes('otlp')) return undefined;

  let protocol: OtlpProtocol = 'http/protobuf';
  const asked = either(env, 'PROTOCOL');
  if (asked) {
    if (!(PROTOCOLS as readonly string[]).includes(asked[1])) {
      throw new TracingConfigError(
        `${asked[0]}: mcp-authz exports traces over OTLP/HTTP with protobuf ("http/protobuf", a collector's port 4318) or OTLP/gRPC ("grpc", port 4317); got ${JSON.stringify(asked[1])}`,
      );
    }
    protocol = asked[1] as OtlpProtocol;
  }
  let url: string;
  if (protocol === 'grpc') {
    // OTLP/gRPC: either endpoint is the collector's address, used as given.
    url =
      specific !== undefined
        ? checkGrpcEndpoint('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', specific)
        : checkGrpcEndpoint('OTEL_EXPORTER_OTLP_ENDPOINT', general ?? DEFAULT_GRPC_ENDPOINT);
    for (const name of ['OTEL_EXPORTER_OTLP_TRACES_INSECURE', 'OTEL_EXPORTER_OTLP_INSECURE']) {
      const v = get(env, name)?.toLowerCase();
      if (v !== undefined && v !== 'true' && v !== 'false')
        throw new TracingConfigError(`${name}: "true" or "false"; got ${JSON.stringify(get(env, name))}`);
    }
  } else {
    // OTLP/HTTP: the signal's own endpoint is the full URL; the general one gets /v1/traces appended.
    url =
      specific !== undefined
        ? checkUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', specific)
        : `${checkUrl('OTEL_EXPORTER_OTLP_ENDPOINT', general ?? DEFAULT_ENDPOINT).replace(/\/$/, '')}/v1/traces`;
  }

  const resourceAttributes = keyValues(env, 'OTEL_RESOURCE_ATTRIBUTES');
  return {
    protocol,
    url,
    serviceName: get(env, 'OTEL_SERVICE_NAME') ?? resourceAttributes['service.name'] ?? DEFAULT_SERVICE_NAME,
    resourceAttributes,
    sampler: sampler(env),
    exporter: exporter(env),
    batch: {
      ...positiveInt(env, 'OTEL_BSP_SCHEDULE_DELAY', 'scheduledDelayMillis'),
      ...positiveInt(env, 'OTEL_BSP_EXPORT_TIMEOUT', 'exportTimeoutMillis'),
      ...positiveInt(env, 'OTEL_BSP_MAX_QUEUE_SIZE', 'maxQueueSize'),
      ...positiveInt(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 'maxExportBatchSize'),
    },
  };
}

function checkUrl(name: string, value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new TracingConfigError(`${name}: not a URL: ${JSON.stringify(value)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new TracingConfigError(`${name}: an http:// or https:// URL is needed; got ${JSON.stringify(value)}`);
  if (u.username !== '' || u.password !== '')
    throw new TracingConfigError(
      `${name}: credentials in the URL are not accepted; pass them in OTEL_EXPORTER_OTLP_HEADERS`,
    );
  return value;
}

/**
 * An OTLP/gRPC endpoint: http://host:port (plaintext), https://host:port, or host:port (TLS
 * unless OTEL_EXPORTER_OTLP_INSECURE=true), as the OpenTelemetry specification reads it.
 */
function checkGrpcEndpoint(name: string, value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[^\s:/@]+):\d{1,5}$/.test(value))
      throw new TracingConfigError(
        `${name}: for OTLP/gRPC, http://host:port (plaintext), https://host:port or host:port (TLS); got ${JSON.stringify(value)}`,
      );
    return value;
  }
  checkUrl(name, value);
  const u = new URL(value);
  if (u.pathname !== '' && u.pathname !== '/')
    throw new TracingConfigError(
      `${name}: an OTLP/gRPC endpoint has no path (the service is named by gRPC); got ${JSON.stringify(value)}`,
    );
  if (u.search !== '')
    throw new TracingConfigError(`${name}: an OTLP/gRPC endpoint has no query; got ${JSON.stringify(value)}`);
  return value;
}

function sampler(env: Env): SamplerSettings {
  const name = get(env, 'OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on';
  if (!(SAMPLERS as readonly string[]).includes(name)) {
    throw new TracingConfigError(`OTEL_TRACES_SAMPLER: one of ${SAMPLERS.join(', ')}; got ${JSON.stringify(name)}`);
  }
  const kind = name as (typeof SAMPLERS)[number];
  if (kind !== 'traceidratio' && kind !== 'parentbased_traceidratio') return { kind };
  const arg = get(env, 'OTEL_TRACES_SAMPLER_ARG');
  const ratio = arg === undefined ? 1 : Number(arg);
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    throw new TracingConfigError(
      `OTEL_TRACES_SAMPLER_ARG: the fraction of traces sampled, from 0 to 1; got ${JSON.stringify(arg)}`,
    );
  }
  return { kind, ratio };
}

/** The signal's own variable wins over the general one. */
function either(env: Env, suffix: string): [string, string] | undefined {
  for (const name of [`OTEL_EXPORTER_OTLP_TRACES_${suffix}`, `OTEL_EXPORTER_OTLP_${suffix}`]) {
    const v = get(env, name);
    if (v !== undefined) return [name, v];
  }
  return undefined;
}

function exporter(env: Env): ExporterSettings {
  const out: ExporterSettings = {};
  const timeout = either(env, 'TIMEOUT');
  if (timeout) {
    const n = Number(timeout[1]);
    if (!Number.isInteger(n) || n <= 0)
      throw new TracingConfigError(
        `${timeout[0]}: milliseconds, a whole number above 0; got ${JSON.stringify(timeout[1])}`,
      );
    out.timeoutMillis = n;
  }
  const compression = either(env, 'COMPRESSION');
  if (compression) {
    if (compression[1] !== 'gzip' && compression[1] !== 'none')
      throw new TracingConfigError(`${compression[0]}: "gzip" or "none"; got ${JSON.stringify(compression[1])}`);
    out.compression = compression[1];
  }
  const headers = {
    ...keyValues(env, 'OTEL_EXPORTER_OTLP_HEADERS'),
    ...keyValues(env, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'),
  };
  if (Object.keys(headers).length > 0) out.headers = headers;
  return out;
}

function positiveInt<K extends keyof BatchSettings>(env: Env, name: string, key: K): Partial<Record<K, number>> {
  const v = get(env, name);
  if (v === undefined) return {};
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0)
    throw new TracingConfigError(`${name}: a whole number above 0; got ${JSON.stringify(v)}`);
  return { [key]: n } as Partial<Record<K, number>>;
}

/**
 * `key=value,key2=value2`, each part percent-decoded (the W3C Baggage format these variables
 * use). An error names the variable and the entry's key, never a value: header values are secrets.
 */
function keyValues(env: Env, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  const raw = get(env, name);
  if (raw === undefined) return out;
  for (const part of raw.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0)
      throw new TracingConfigError(`${name}: each entry is key=value; entry ${Object.keys(out).length + 1} is not`);
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(part.slice(0, eq).trim());
      value = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      throw new TracingConfigError(`${name}: a bad %-escape in entry ${JSON.stringify(part.slice(0, eq).trim())}`);
    }
    out[key] = value;
  }
  return out;
}

/** One line for the start-up log and `serve --check-config`: where spans go and how many. Never a header value. */
export function describeTracing(s: TracingSettings | undefined): string {
  if (!s) return 'tracing: off (set OTEL_EXPORTER_OTLP_ENDPOINT to export spans; docs/tracing.md)';
  const ratio = 'ratio' in s.sampler ? ` ${s.sampler.ratio}` : '';
  if (s.protocol === 'grpc')
    return `tracing: OTLP/gRPC to ${s.url}, service.name ${s.serviceName}, sampler ${s.sampler.kind}${ratio}`;
  const url = new URL(s.url);
  url.search = ''; // a query string may carry a vendor's token
  return `tracing: OTLP/HTTP protobuf to ${url.href}, service.name ${s.serviceName}, sampler ${s.sampler.kind}${ratio}`;
}
