// (a) grpc-js, as the product serves Check with `grpcServer: grpc-js`: its own server module from dist/.
import type { Product, Runtime, Served } from './serve.js';

export async function serveGrpcJs(m: Product, rt: Runtime, port: number): Promise<Served> {
  const health = new m.HealthState();
  health.set('SERVING');
  const server = await m.createGrpcServer({
    runtime: { ...rt, config: { ...rt.config, grpcServer: 'grpc-js' } },
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
