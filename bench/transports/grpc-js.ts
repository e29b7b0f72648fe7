// (a) grpc-js, as the product serves Check today: its own server module from dist/.
import type { Product, Runtime, Served } from './serve.js';

export async function serveGrpcJs(m: Product, rt: Runtime, port: number): Promise<Served> {
  const health = new m.HealthState();
  health.set('SERVING');
  const server = m.createGrpcServer({ runtime: rt, health, reflection: false, inFlight: { add: () => undefined } });
  await m.bindGrpc(server, `127.0.0.1:${port}`);
  return { stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}
