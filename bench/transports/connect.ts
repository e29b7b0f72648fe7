// (b) @connectrpc/connect-node serving the gRPC protocol (only) on node:http2.
//
// Connect decodes and encodes with @bufbuild/protobuf and has no hook for another codec, so
// it is handed the official service and method names with opaque messages (no fields): it
// keeps every field of the request as raw bytes, which are joined back into the
// CheckRequest's wire bytes and decoded by proto-loader with the official protos, exactly as
// grpc-js does; the answer is encoded by the product's encoder and handed to Connect as raw
// top-level fields, which it writes back unchanged. So Connect's own cost is its HTTP/2
// handling, framing and routing, as for the other transports, around the same codec.
import { createServer, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { create, createFileRegistry, type DescMessage, type DescService } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { Product, Runtime, Served } from './serve.js';

const MAX_MESSAGE_BYTES = 8 * 1024 * 1024; // as the product's grpc-js server

/** envoy.service.auth.v3.Authorization/Check with opaque request and response messages. */
function opaqueAuthorizationService(): { service: DescService; request: DescMessage; response: DescMessage } {
  const file = create(FileDescriptorProtoSchema, {
    name: 'mcp_authz_bench/opaque_external_auth.proto',
    package: 'envoy.service.auth.v3',
    syntax: 'proto3',
    messageType: [{ name: 'CheckRequest' }, { name: 'CheckResponse' }],
    service: [
      {
        name: 'Authorization',
        method: [
          {
            name: 'Check',
            inputType: '.envoy.service.auth.v3.CheckRequest',
            outputType: '.envoy.service.auth.v3.CheckResponse',
          },
        ],
      },
    ],
  });
  const registry = createFileRegistry(file, () => undefined);
  return {
    service: registry.getService('envoy.service.auth.v3.Authorization')!,
    request: registry.getMessage('envoy.service.auth.v3.CheckRequest')!,
    response: registry.getMessage('envoy.service.auth.v3.CheckResponse')!,
  };
}

interface UnknownField {
  no: number;
  wireType: WireType;
  data: Uint8Array;
}

/** The wire bytes of a message whose every field was kept unknown: each field's tag, then its bytes. */
function joinFields(fields: readonly UnknownField[] | undefined): Buffer {
  const w = new BinaryWriter();
  for (const f of fields ?? []) w.tag(f.no, f.wireType).raw(f.data);
  const bytes = w.finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Top-level fields of an encoded message, as unknown fields (the encoder writes only length-delimited ones). */
function splitFields(buf: Buffer): UnknownField[] {
  const fields: UnknownField[] = [];
  let pos = 0;
  const varint = () => {
    let n = 0;
    let shift = 0;
    for (;;) {
      const b = buf[pos++]!;
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return n;
      shift += 7;
    }
  };
  while (pos < buf.length) {
    const tag = varint();
    const wireType = tag & 7;
    if (wireType !== WireType.LengthDelimited)
      throw new Error(`unexpected wire type ${wireType} at the top level of a CheckResponse`);
    const start = pos;
    const len = varint();
    pos += len;
    fields.push({ no: tag >>> 3, wireType, data: buf.subarray(start, pos) });
  }
  return fields;
}

export async function serveConnect(m: Product, rt: Runtime, port: number): Promise<Served> {
  const check = m.authorizationService().Check!;
  const { service, response } = opaqueAuthorizationService();
  const routes = (router: ConnectRouter) =>
    router.service(service, {
      async check(req: { $unknown?: UnknownField[] }) {
        const trace = await m.runCheck(rt, m.toRequest, check.requestDeserialize(joinFields(req.$unknown)));
        const bytes = m.encodeCheckResponse(trace.outcome) ?? check.responseSerialize(m.toCheckResponse(trace.outcome));
        return { $typeName: response.typeName, $unknown: splitFields(bytes) } as never;
      },
    } as never);
  const handler = connectNodeAdapter({
    routes,
    grpc: true,
    grpcWeb: false,
    connect: false,
    readMaxBytes: MAX_MESSAGE_BYTES,
  });
  const server: Http2Server = createServer(handler);
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as { port: number }).port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) s.close(); // GOAWAY; in-flight streams finish
      }),
  };
}
