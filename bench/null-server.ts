// The ceiling of this stack: grpc-js serving envoy.service.auth.v3.Authorization/Check
// with the same official protos as mcp-authz, answering OK at once. Optionally several
// processes behind one port (node:cluster), like `mcp-authz serve --workers N`.
// Usage: tsx bench/null-server.ts --port P [--workers N]   (prints "READY <port>" when listening)
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { authorizationService } from '../src/envoy/protos.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, workers: { type: 'string', default: '1' } } });
const port = Number(values.port);
const workers = Math.max(1, Number(values.workers));
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('null-server: --port is required\n');
  process.exit(2);
}

const OK = { status: { code: 0 }, ok_response: {} };

function serve(): void {
  const server = new grpc.Server();
  server.addService(authorizationService(), {
    Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, OK),
  });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) {
      process.stderr.write(`null-server: ${err.message}\n`);
      process.exit(1);
    }
    if (cluster.isWorker) process.send?.('listening');
    else process.stdout.write(`READY ${port}\n`);
  });
  const stop = () => server.tryShutdown(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (workers === 1 || cluster.isWorker) {
  serve();
} else {
  let listening = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('message', (m) => {
      if (m === 'listening' && ++listening === workers) process.stdout.write(`READY ${port}\n`);
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
