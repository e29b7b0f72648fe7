// (c) The product's own gRPC server on node:http2 (src/grpc/h2-server.ts, the default
// `grpcServer: lean`), from dist/, as `serve` builds it.
import type { Product, Runtime, Served } from './serve.js';

export async function serveLeanHttp2(m: Product, rt: Runtime, port: number): Promise<Served> {
  const health = new m.HealthState();
  health.set('SERVING');
  const server = await m.createGrpcServer({
    runtime: { ...rt, config: { ...rt.config, grpcServer: 'lean' } },
    health,
    reflection: false,
    listen: { socketMode: 0o660 },
  });
  const bound = await server.bind(`127.0.0.1:${port}`);
  return {
    port: bound,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
