// The ceilings of this stack: servers that answer every Check with an allow at once, one per
// transport mcp-authz could serve on, so each transport's cost is seen without any work:
//   grpc-js  grpc-js serving envoy.service.auth.v3.Authorization/Check with the same official
//            protos as mcp-authz (decodes the request, encodes an OK CheckResponse);
//   http2    a unary gRPC answer on bare node:http2: reads the framed request, answers a fixed
//            OK CheckResponse frame and grpc-status 0 (no decode);
//   http1    Envoy's HTTP ext_authz shape on node:http: reads the forwarded request's body and
//            answers 200 with no body (an allow).
// Optionally several processes behind one port (node:cluster), like `mcp-authz serve --workers N`.
// Usage: tsx bench/null-server.ts --port P [--transport grpc-js|http2|http1] [--workers N]
// (prints "READY <port>" when listening)
import cluster from 'node:cluster';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttp2Server, type ServerHttp2Stream } from 'node:http2';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { authorizationService } from '../src/envoy/protos.js';

const TRANSPORTS = ['grpc-js', 'http2', 'http1'] as const;
type Transport = (typeof TRANSPORTS)[number];

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    workers: { type: 'string', default: '1' },
    transport: { type: 'string', default: 'grpc-js' },
  },
});
const port = Number(values.port);
const workers = Math.max(1, Number(values.workers));
const transport = values.transport as Transport;
if (!Number.isInteger(port) || port <= 0 || !TRANSPORTS.includes(transport)) {
  process.stderr.write(`null-server: --port P is required; --transport is one of ${TRANSPORTS.join(', ')}\n`);
  process.exit(2);
}

const OK = { status: { code: 0 }, ok_response: {} };
const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

function listening(): void {
  if (cluster.isWorker) process.send?.('listening');
  else process.stdout.write(`READY ${port}\n`);
}

function fail(err: Error): never {
  process.stderr.write(`null-server: ${err.message}\n`);
  process.exit(1);
}

function serveGrpcJs(): () => void {
  const server = new grpc.Server();
  server.addService(authorizationService(), {
    Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, OK),
  });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) =>
    err ? fail(err) : listening(),
  );
  return () => server.tryShutdown(() => process.exit(0));
}

function serveHttp2(): () => void {
  // The OK CheckResponse, serialized once with the official protos, in a gRPC frame.
  const msg = authorizationService().Check!.responseSerialize(OK);
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  msg.copy(frame, 5);
  const server = createHttp2Server();
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    if (headers[':path'] !== CHECK_PATH) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true });
      return;
    }
    stream.on('data', () => undefined);
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame);
    });
  });
  server.on('error', fail);
  server.listen(port, '127.0.0.1', listening);
  return () => server.close(() => process.exit(0));
}

function serveHttp1(): () => void {
  const server = createHttpServer((req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => res.writeHead(200, { 'content-length': '0' }).end());
  });
  server.keepAliveTimeout = 60_000;
  server.on('error', fail);
  server.listen(port, '127.0.0.1', listening);
  return () => server.close(() => process.exit(0));
}

function serve(): void {
  const stop = transport === 'grpc-js' ? serveGrpcJs() : transport === 'http2' ? serveHttp2() : serveHttp1();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (workers === 1 || cluster.isWorker) {
  serve();
} else {
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('message', (m) => {
      if (m === 'listening' && ++ready === workers) process.stdout.write(`READY ${port}\n`);
    });
  }
  cluster.on('exit', (_w, code) => {
    if (code !== 0) process.exit(1);
  });
  const stop = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
