// A stand-in for an OpenTelemetry Collector's OTLP/HTTP receiver on loopback: it takes
// POST /v1/traces (application/x-protobuf, gzip or not), decodes each
// ExportTraceServiceRequest into the official @opentelemetry/otlp-transformer shapes with
// proto-loader and the OTLP field numbers (test/fixtures/otlp), and keeps every span and
// every raw body for the tests to read. OtlpGrpcCollector is its OTLP/gRPC twin.
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { IAnyValue, IKeyValue } from '@opentelemetry/otlp-transformer/build/src/common/internal-types.js';
import type {
  IExportTraceServiceRequest,
  ISpan,
} from '@opentelemetry/otlp-transformer/build/src/trace/internal-types.js';

const definition = protoLoader.loadSync(join(import.meta.dirname, '..', 'fixtures', 'otlp', 'trace_service.proto'), {
  keepCase: false,
  longs: String,
  enums: Number,
  defaults: false, // a field is present only when it was on the wire: which AnyValue member was set is exact
  oneofs: false,
});
const exportMethod = (
  definition['opentelemetry.proto.collector.trace.v1.TraceService'] as protoLoader.ServiceDefinition
).Export!;

/** Decodes one OTLP/HTTP protobuf traces body. */
export function decodeTraces(body: Buffer): IExportTraceServiceRequest {
  return exportMethod.requestDeserialize(body) as IExportTraceServiceRequest;
}

/** A span as the tests read it: ids in hex, attributes as a plain object, with its resource's. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, unknown>;
  status: { code: number; message: string };
  resource: Record<string, unknown>;
  scope: string;
}

const hex = (b: string | Uint8Array | undefined) =>
  b === undefined ? '' : typeof b === 'string' ? b : Buffer.from(b).toString('hex');

function anyValue(v: IAnyValue | undefined): unknown {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(anyValue);
  return undefined;
}

export const attributesOf = (kvs: IKeyValue[] | undefined): Record<string, unknown> =>
  Object.fromEntries((kvs ?? []).map((kv) => [kv.key, anyValue(kv.value)]));

export function spansOf(req: IExportTraceServiceRequest): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = attributesOf(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of (ss.spans ?? []) as ISpan[]) {
        out.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          traceState: s.traceState ?? '',
          name: s.name,
          kind: s.kind ?? 0,
          startNs: BigInt(String(s.startTimeUnixNano)),
          endNs: BigInt(String(s.endTimeUnixNano)),
          attributes: attributesOf(s.attributes),
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
          resource,
          scope: ss.scope?.name ?? '',
        });
      }
    }
  }
  return out;
}

export class OtlpCollector {
  readonly spans: ReceivedSpan[] = [];
  /** Every request body as received (after gunzip), to search for what must never be sent. */
  readonly bodies: Buffer[] = [];
  readonly contentTypes: string[] = [];
  /** Each request's headers (the exporter's OTEL_EXPORTER_OTLP_HEADERS arrive here). */
  readonly requestHeaders: IncomingHttpHeaders[] = [];
  private readonly server: Server;
  private waiters: (() => void)[] = [];
  port = 0;

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        this.bodies.push(body);
        this.contentTypes.push(String(req.headers['content-type']));
        this.requestHeaders.push(req.headers);
        try {
          this.spans.push(...spansOf(decodeTraces(body)));
        } catch {
          res.writeHead(400).end();
          return;
        }
        // An empty ExportTraceServiceResponse: everything accepted.
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        const waiters = this.waiters;
        this.waiters = [];
        for (const w of waiters) w();
      });
    });
  }

  async start(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Resolves once the spans received satisfy `done`; rejects after `ms` (a deadline, not a timing assertion). */
  async waitFor(done: (spans: ReceivedSpan[]) => boolean, ms = 20_000): Promise<ReceivedSpan[]> {
    const deadline = Date.now() + ms;
    while (!done(this.spans)) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `the collector did not receive the expected spans; it has ${this.spans.length}: ${this.spans.map((s) => s.name).join(', ')}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.spans;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * The same stand-in on OTLP/gRPC (opentelemetry.proto.collector.trace.v1.TraceService/Export,
 * an OpenTelemetry Collector's port 4317): a real grpc-js server with the OTLP protos, which
 * decompresses gzip as a collector does; each call's metadata is kept.
 */
export class OtlpGrpcCollector {
  readonly spans: ReceivedSpan[] = [];
  readonly metadata: Record<string, unknown>[] = [];
  private readonly server = new grpc.Server();
  private waiters: (() => void)[] = [];
  port = 0;

  constructor() {
    const service = definition['opentelemetry.proto.collector.trace.v1.TraceService'] as protoLoader.ServiceDefinition;
    this.server.addService(service as unknown as grpc.ServiceDefinition, {
      Export: (call: grpc.ServerUnaryCall<IExportTraceServiceRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        this.metadata.push(call.metadata.getMap());
        this.spans.push(...spansOf(call.request));
        cb(null, {});
        const waiters = this.waiters;
        this.waiters = [];
        for (const w of waiters) w();
      },
    });
  }

  async start(): Promise<this> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
    return this;
  }

  /** The endpoint as OTEL_EXPORTER_OTLP_ENDPOINT names it: http:// for plaintext gRPC. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async waitFor(done: (spans: ReceivedSpan[]) => boolean, ms = 20_000): Promise<ReceivedSpan[]> {
    const deadline = Date.now() + ms;
    while (!done(this.spans)) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`the gRPC collector did not receive the expected spans; it has ${this.spans.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.spans;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.tryShutdown(() => resolve()));
  }
}
