// Both servers the gRPC port can run on — the service's own on node:http2 (`grpcServer: lean`,
// the default) and grpc-js (`grpcServer: grpc-js`, the reference implementation) — answer alike, over
// real gRPC: Check, health, ext_proc's Process stream and reflection.
import test from 'ava';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { processExchange, requestBody, requestHeaders, responseBody, responseHeaders } from './helpers/ext-proc.js';
import { checkRequest, deniedBody, deniedStatus, rpc, startTestService, type TestService } from './helpers/service.js';
import { clientConstructors } from '../src/envoy/protos.js';

const bob = mintKey({ id: 'bob-cli', name: 'Bob', userId: 'bob', role: 'user', permissions: ['tools:search'] });
const SERVERS = ['lean', 'grpc-js'] as const;
const services = new Map<string, TestService>();

test.before(async () => {
  for (const grpcServer of SERVERS) {
    services.set(
      grpcServer,
      await startTestService(
        { grpcServer, reflection: true, apiKeys: { file: 'keys.yaml' }, endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true, oauth: false } }] },
        { files: { 'keys.yaml': keysFile([bob]) } },
      ),
    );
  }
});
test.after.always(async () => {
  for (const s of services.values()) await s.stop();
});

const require = createRequire(import.meta.url);
const reflectionProtoDir = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');

function listServices(port: number): Promise<string[]> {
  const def = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', { includeDirs: [reflectionProtoDir], keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const client = new pkg.grpc.reflection.v1.ServerReflection(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise<string[]>((resolve, reject) => {
    const call = client.ServerReflectionInfo();
    call.on('data', (m: any) => {
      resolve(m.list_services_response.service.map((s: { name: string }) => s.name));
      call.end();
    });
    call.on('error', reject);
    call.write({ list_services: '*' });
  }).finally(() => client.close());
}

for (const grpcServer of SERVERS) {
  test(`grpcServer ${grpcServer}: Check allows and denies, health is SERVING, reflection lists every service`, async (t) => {
    const svc = services.get(grpcServer)!;
    const allowed = await svc.check(checkRequest({ path: '/mcp/files', headers: { 'x-api-key': bob.key, 'content-type': 'application/json' }, body: rpc('tools/call', { name: 'search' }) }));
    t.truthy(allowed.ok_response);
    const denied = await svc.check(checkRequest({ path: '/mcp/files', headers: { 'x-api-key': bob.key, 'content-type': 'application/json' }, body: rpc('tools/call', { name: 'delete_repo' }) }));
    t.is(deniedStatus(denied), 403);
    t.is(deniedBody(denied).error, 'access_denied');

    const { Health } = clientConstructors();
    const health = new Health(`127.0.0.1:${svc.grpcPort}`, grpc.credentials.createInsecure()) as any;
    t.teardown(() => health.close());
    const res = await new Promise<any>((resolve, reject) => health.Check({ service: '' }, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))));
    t.is(res.status, 'SERVING');

    const names = await listServices(svc.grpcPort);
    for (const name of ['envoy.service.auth.v3.Authorization', 'envoy.service.ext_proc.v3.ExternalProcessor', 'grpc.health.v1.Health']) t.true(names.includes(name), `${name} in ${names.join(', ')}`);
  });

  test(`grpcServer ${grpcServer}: ext_proc denies as Check does and filters a list response`, async (t) => {
    const address = `127.0.0.1:${services.get(grpcServer)!.grpcPort}`;
    const call = rpc('tools/call', { name: 'delete_repo' });
    const denied = await processExchange(address, [requestHeaders({ path: '/mcp/files', headers: [['x-api-key', bob.key]], body: call, source: '10.1.2.3:40000' }), requestBody(call)]);
    t.is(denied.status.code, 0);
    t.is(JSON.parse(denied.answers.at(-1)!.immediate_response.body.toString('utf8')).error, 'access_denied');

    const list = rpc('tools/list', undefined, 3);
    const { answers, status } = await processExchange(address, [
      requestHeaders({ path: '/mcp/files', headers: [['x-api-key', bob.key]], body: list, source: '10.1.2.3:40000' }),
      requestBody(list),
      responseHeaders(200, [['content-type', 'application/json']]),
      responseBody(JSON.stringify({ jsonrpc: '2.0', id: 3, result: { tools: [{ name: 'search' }, { name: 'delete_repo' }] } }), true),
    ]);
    t.is(status.code, 0);
    t.deepEqual(JSON.parse(answers[3]!.response_body.response.body_mutation.body.toString('utf8')).result.tools, [{ name: 'search' }]);
  });
}
