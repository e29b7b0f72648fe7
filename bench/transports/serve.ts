// The transport study: mcp-authz's real Check pipeline (runCheck from the compiled dist/,
// the runtime built by buildRuntime from the benchmark's config, as `--in-process` builds it)
// served on one of four transports, one process, so `npm run bench -- --transports` can
// measure what each transport costs around the same work:
//   grpc-js     the product's own gRPC server (dist/server/grpc-server.js);
//   connect     @connectrpc/connect-node serving the gRPC protocol on node:http2;
//   lean-http2  a unary gRPC server of this study's own on node:http2;
//   http1       Envoy's HTTP ext_authz (`http_service`) shape on node:http.
// Experiments only: nothing here is part of the product.
// Usage: tsx bench/transports/serve.ts --transport T --config FILE --port P --metrics-port M
// (prints "READY <port> <metrics port>" when listening; a port of 0 has the kernel pick a free
// one as it binds, and READY says which: a port looked up free beforehand and bound later can be
// taken meanwhile by any other process, a connection's local port included)
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { product } from '../lib/in-process.js';
import { serveConnect } from './connect.js';
import { serveGrpcJs } from './grpc-js.js';
import { serveHttpExtAuthz } from './http-ext-authz.js';
import { serveLeanHttp2 } from './lean-http2.js';

export const TRANSPORTS = ['grpc-js', 'connect', 'lean-http2', 'http1'] as const;
export type TransportName = (typeof TRANSPORTS)[number];

/** What every transport is handed: the product's modules and the runtime built from the config. */
export type Product = Awaited<ReturnType<typeof product>>;
export type Runtime = Awaited<ReturnType<Product['buildRuntime']>>;

/** A listening transport: the port it bound (asked for 0: the kernel's pick); stop() closes it gracefully. */
export interface Served {
  port: number;
  stop(): Promise<void>;
}

const { values } = parseArgs({
  options: {
    transport: { type: 'string' },
    config: { type: 'string' },
    port: { type: 'string' },
    'metrics-port': { type: 'string' },
  },
});
const transport = values.transport as TransportName;
const port = Number(values.port);
const metricsPort = Number(values['metrics-port']);
if (!TRANSPORTS.includes(transport) || !values.config || !Number.isInteger(port) || !Number.isInteger(metricsPort)) {
  process.stderr.write(
    `transports/serve: --transport (${TRANSPORTS.join('|')}), --config, --port and --metrics-port are required\n`,
  );
  process.exit(2);
}

const m = await product();
const metrics = new Registry();
const rt = await m.buildRuntime(m.loadConfigFile(values.config), m.createLogger(), metrics, {
  watch: false,
  sharedLimits: false,
});
const serve = { 'grpc-js': serveGrpcJs, connect: serveConnect, 'lean-http2': serveLeanHttp2, http1: serveHttpExtAuthz }[
  transport
];
const served = await serve(m, rt, port);

// The runtime's own counters (mcp_authz_check_total …), so the benchmark can count decisions.
const metricsServer = createServer((_req, res) => {
  metrics.metrics().then(
    (body) => res.writeHead(200, { 'content-type': metrics.contentType }).end(body),
    (err: Error) => res.writeHead(500).end(err.message),
  );
});
metricsServer.listen(metricsPort, '127.0.0.1', () => {
  const bound = (metricsServer.address() as { port: number }).port;
  process.stdout.write(`READY ${served.port} ${bound}\n`);
});

const stop = async () => {
  await served.stop();
  metricsServer.close();
  await rt.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
