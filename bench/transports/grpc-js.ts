// (a) grpc-js, as the product serves Check with `grpcServer: grpc-js`: its own server module from dist/.
import type { Product, Runtime, Served } from './serve.js';

export async function serveGrpcJs(m: Product, rt: Runtime, port: number): Promise<Served> {
  const health = new m.HealthState();
  health.set('SERVING');
  const server = m.createGrpcJsServer(
    { runtime: rt, health, reflection: false },
    m.maxCheckRequestBytes(rt.config.limits),
  );
  await server.bind(`127.0.0.1:${port}`);
  return { stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}
