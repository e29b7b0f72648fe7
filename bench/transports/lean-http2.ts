// (c) A lean unary gRPC server on node:http2: only the Check method, and only what a unary
// call needs — the request decoded by proto-loader with the official protos, the answer
// encoded by the product's encoder. What it handles and what it leaves out (health,
// keepalive pings, ext_proc's streams …) is listed in bench/transports/README.md.
import { createServer, constants, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Product, Runtime, Served } from './serve.js';

const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
const MAX_MESSAGE_BYTES = 8 * 1024 * 1024; // as the product's grpc-js server
const GRPC = { OK: 0, DEADLINE_EXCEEDED: 4, RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, INTERNAL: 13 } as const;
const INTERNAL_DENY: Parameters<Product['encodeCheckResponse']>[0] = { kind: 'deny', allow: false, status: 503, grpc: 14, code: 'internal_error', description: 'internal error', headers: [] };
const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** grpc-timeout ("200m", "5S" …) in milliseconds, or undefined when absent or malformed. */
function timeoutMs(v: string | string[] | undefined): number | undefined {
  if (typeof v !== 'string' || v.length < 2 || v.length > 9) return undefined;
  const unit = TIMEOUT_UNIT_MS[v[v.length - 1]!];
  const n = Number(v.slice(0, -1));
  return unit === undefined || !Number.isInteger(n) ? undefined : n * unit;
}

/** A trailers-only answer: the call ends with a gRPC status and no message. */
function endWith(stream: ServerHttp2Stream, code: number, message: string): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message) }, { endStream: true });
}

export async function serveLeanHttp2(m: Product, rt: Runtime, port: number): Promise<Served> {
  const check = m.authorizationService().Check!;

  const onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => undefined); // a reset by the client ends the call; nothing to answer
    if (headers[':method'] !== 'POST' || headers[':path'] !== CHECK_PATH) return endWith(stream, GRPC.UNIMPLEMENTED, `unknown method ${headers[':path']}`);
    if (!String(headers['content-type'] ?? '').startsWith('application/grpc')) {
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const deadline = timeoutMs(headers['grpc-timeout']);
    const timer = deadline === undefined ? undefined : setTimeout(() => endWith(stream, GRPC.DEADLINE_EXCEEDED, 'deadline exceeded'), deadline);
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_MESSAGE_BYTES + 5) {
        clearTimeout(timer);
        endWith(stream, GRPC.RESOURCE_EXHAUSTED, `request larger than ${MAX_MESSAGE_BYTES} bytes`);
        stream.close(constants.NGHTTP2_CANCEL);
        return;
      }
      chunks.push(d);
    });
    stream.on('end', () => {
      if (stream.headersSent) return;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      // A unary request is one frame: compressed flag, big-endian length, the message.
      if (body.length < 5 || body.readUInt32BE(1) !== body.length - 5) {
        clearTimeout(timer);
        return endWith(stream, GRPC.INTERNAL, 'a unary request must carry exactly one message');
      }
      if (body[0] !== 0) {
        clearTimeout(timer);
        return endWith(stream, GRPC.UNIMPLEMENTED, 'compressed messages are not accepted');
      }
      let request: ReturnType<typeof check.requestDeserialize>;
      try {
        request = check.requestDeserialize(body.subarray(5));
      } catch (err) {
        clearTimeout(timer);
        return endWith(stream, GRPC.INTERNAL, `cannot decode the CheckRequest: ${(err as Error).message}`);
      }
      // runCheck never rejects; should it, the answer is still a deny (503), never a gRPC error.
      m.runCheck(rt, m.toRequest, request).then((trace) => trace.outcome, () => INTERNAL_DENY).then((outcome) => {
        clearTimeout(timer);
        if (stream.destroyed || stream.headersSent) return;
        const msg = m.encodeCheckResponse(outcome) ?? check.responseSerialize(m.toCheckResponse(outcome));
        const frame = Buffer.allocUnsafe(5 + msg.length);
        frame[0] = 0;
        frame.writeUInt32BE(msg.length, 1);
        msg.copy(frame, 5);
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(frame);
      });
    });
  };

  const server = createServer({ maxSessionMemory: 64 });
  server.on('stream', onStream);
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
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) s.close(); // GOAWAY; in-flight streams finish
      }),
  };
}
