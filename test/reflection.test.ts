import test from 'ava';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { startTestService } from './helpers/service.js';

const require = createRequire(import.meta.url);
const reflectionProtoDir = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');

function listServices(port: number): Promise<string[] | Error> {
  const def = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', {
    includeDirs: [reflectionProtoDir],
    keepCase: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const client = new pkg.grpc.reflection.v1.ServerReflection(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    const call = client.ServerReflectionInfo();
    call.on('data', (m: any) => {
      resolve(m.list_services_response.service.map((s: { name: string }) => s.name));
      call.end();
    });
    call.on('error', (e: Error) => resolve(e));
    call.write({ list_services: '*' });
  }).finally(() => client.close()) as Promise<string[] | Error>;
}

const endpoints = [{ name: 'open', match: { pathPrefix: '/' }, auth: { apiKey: false, oauth: false } }];

test('reflection lists the Authorization and Health services when enabled', async (t) => {
  const svc = await startTestService({ reflection: true, endpoints });
  t.teardown(() => svc.stop());
  const names = await listServices(svc.grpcPort);
  t.false(names instanceof Error, String(names));
  t.true((names as string[]).includes('envoy.service.auth.v3.Authorization'));
  t.true((names as string[]).includes('grpc.health.v1.Health'));
});

test('reflection is off by default', async (t) => {
  const svc = await startTestService({ endpoints });
  t.teardown(() => svc.stop());
  const res = await listServices(svc.grpcPort);
  t.true(res instanceof Error);
  t.is((res as grpc.ServiceError).code, grpc.status.UNIMPLEMENTED);
});
