// The gRPC parity suite. Both servers the gRPC port can run on — the service's own on
// node:http2 (`grpcServer: lean`, the default) and grpc-js (`grpcServer: grpc-js`, the
// reference implementation) — answer alike, over real gRPC: Check, health, ext_proc's Process
// stream and reflection through the whole service; deadlines, the receive limit and GOAWAY on
// shutdown through the one GrpcServer interface both implement (src/grpc/server.ts).
// test/grpc-go-client.test.ts runs grpc-go's cases against both as well.
import { once } from 'node:events';
import { connect } from 'node:http2';
import test from 'ava';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { processExchange, requestBody, requestHeaders, responseBody, responseHeaders } from './helpers/ext-proc.js';
import { checkRequest, deniedBody, deniedStatus, rpc, startTestService, type TestService } from './helpers/service.js';
import { clientConstructors } from '../src/envoy/protos.js';
import { GrpcJsServer } from '../src/grpc/grpc-js-server.js';
import { H2GrpcServer } from '../src/grpc/h2-server.js';
import type { BytesCall, GrpcServer } from '../src/grpc/server.js';
import { frame, Status } from '../src/grpc/wire.js';
import { grpcListen } from './helpers/grpc-listen.js';

const bob = mintKey({ id: 'bob-cli', name: 'Bob', userId: 'bob', role: 'user', permissions: ['tools:search'] });
const SERVERS = ['lean', 'grpc-js'] as const;
const services = new Map<string, TestService>();

test.before(async () => {
  for (const grpcServer of SERVERS) {
    services.set(
      grpcServer,
      await startTestService(
        {
          grpcServer,
          reflection: true,
          apiKeys: { file: 'keys.yaml' },
          endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true, oauth: false } }],
        },
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
  const def = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', {
    includeDirs: [reflectionProtoDir],
    keepCase: true,
  });
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
    const allowed = await svc.check(
      checkRequest({
        path: '/mcp/files',
        headers: { 'x-api-key': bob.key, 'content-type': 'application/json' },
        body: rpc('tools/call', { name: 'search' }),
      }),
    );
    t.truthy(allowed.ok_response);
    const denied = await svc.check(
      checkRequest({
        path: '/mcp/files',
        headers: { 'x-api-key': bob.key, 'content-type': 'application/json' },
        body: rpc('tools/call', { name: 'delete_repo' }),
      }),
    );
    t.is(deniedStatus(denied), 403);
    t.is(deniedBody(denied).error, 'access_denied');

    const { Health } = clientConstructors();
    const health = new Health(`127.0.0.1:${svc.grpcPort}`, grpc.credentials.createInsecure()) as any;
    t.teardown(() => health.close());
    const res = await new Promise<any>((resolve, reject) =>
      health.Check({ service: '' }, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))),
    );
    t.is(res.status, 'SERVING');

    const names = await listServices(svc.grpcPort);
    for (const name of [
      'envoy.service.auth.v3.Authorization',
      'envoy.service.ext_proc.v3.ExternalProcessor',
      'grpc.health.v1.Health',
    ])
      t.true(names.includes(name), `${name} in ${names.join(', ')}`);
  });

  test(`grpcServer ${grpcServer}: ext_proc denies as Check does and filters a list response`, async (t) => {
    const address = `127.0.0.1:${services.get(grpcServer)!.grpcPort}`;
    const call = rpc('tools/call', { name: 'delete_repo' });
    const denied = await processExchange(address, [
      requestHeaders({ path: '/mcp/files', headers: [['x-api-key', bob.key]], body: call, source: '10.1.2.3:40000' }),
      requestBody(call),
    ]);
    t.is(denied.status.code, 0);
    t.is(JSON.parse(denied.answers.at(-1)!.immediate_response.body.toString('utf8')).error, 'access_denied');

    const list = rpc('tools/list', undefined, 3);
    const { answers, status } = await processExchange(address, [
      requestHeaders({ path: '/mcp/files', headers: [['x-api-key', bob.key]], body: list, source: '10.1.2.3:40000' }),
      requestBody(list),
      responseHeaders(200, [['content-type', 'application/json']]),
      responseBody(
        JSON.stringify({ jsonrpc: '2.0', id: 3, result: { tools: [{ name: 'search' }, { name: 'delete_repo' }] } }),
        true,
      ),
    ]);
    t.is(status.code, 0);
    t.deepEqual(JSON.parse(answers[3]!.response_body.response.body_mutation.body.toString('utf8')).result.tools, [
      { name: 'search' },
    ]);
  });
}

const IMPLEMENTATIONS: Record<(typeof SERVERS)[number], (maxReceiveMessageBytes: number) => GrpcServer> = {
  lean: (max) => new H2GrpcServer({ maxReceiveMessageBytes: max, listen: grpcListen }),
  'grpc-js': (max) => new GrpcJsServer({ maxReceiveMessageBytes: max }),
};

/** A server with two bytes methods: Echo answers at once, Hold keeps its calls for the test. */
async function startBare(grpcServer: (typeof SERVERS)[number], max = 1000) {
  const server = IMPLEMENTATIONS[grpcServer](max);
  const held: BytesCall[] = [];
  let echoed = 0;
  server.addBytesUnary('/test.Parity/Echo', (m, call) => {
    echoed++;
    call.reply(m);
  });
  server.addBytesUnary('/test.Parity/Hold', (_m, call) => void held.push(call));
  const port = await server.bind('127.0.0.1:0');
  return { server, port, held, echoed: () => echoed };
}

const same = (b: Buffer) => b;
function unary(
  client: grpc.Client,
  path: string,
  body: Buffer,
  options: grpc.CallOptions = {},
): Promise<grpc.ServiceError | Buffer> {
  return new Promise((resolve) =>
    client.makeUnaryRequest(path, same, same, body, new grpc.Metadata(), options, (err, res) => resolve(err ?? res!)),
  );
}

/** A raw HTTP/2 gRPC call: its grpc-status (from trailers, or a trailers-only answer). */
async function rawStatus(
  session: import('node:http2').ClientHttp2Session,
  path: string,
  body: Buffer,
  headers: Record<string, string> = {},
): Promise<number> {
  const req = session.request({
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
    ...headers,
  });
  let status: string | undefined;
  req.on('response', (h) => (status ??= h['grpc-status'] as string | undefined));
  req.on('trailers', (h) => (status = h['grpc-status'] as string));
  req.end(body);
  req.resume();
  await once(req, 'close');
  return Number(status);
}

async function waitFor(what: string, cond: () => boolean): Promise<void> {
  const end = Date.now() + 30_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

for (const grpcServer of SERVERS) {
  test(`grpcServer ${grpcServer}: a call past its grpc-timeout ends DEADLINE_EXCEEDED from the server`, async (t) => {
    const s = await startBare(grpcServer);
    t.teardown(() => s.server.forceShutdown());
    // A raw client, which enforces no deadline of its own: the status is the server's.
    const session = connect(`http://127.0.0.1:${s.port}`);
    t.teardown(() => session.close());
    t.is(
      await rawStatus(session, '/test.Parity/Hold', frame(Buffer.from('x')), { 'grpc-timeout': '200m' }),
      Status.DEADLINE_EXCEEDED,
    );
    t.is(s.held.length, 1);
  });

  test(`grpcServer ${grpcServer}: a message over the receive limit is RESOURCE_EXHAUSTED and never reaches the handler; one at the limit is answered`, async (t) => {
    const s = await startBare(grpcServer, 1000);
    t.teardown(() => s.server.forceShutdown());
    const client = new grpc.Client(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
    t.teardown(() => client.close());
    const over = await unary(client, '/test.Parity/Echo', Buffer.alloc(1001, 1));
    t.is((over as grpc.ServiceError).code, grpc.status.RESOURCE_EXHAUSTED);
    t.is(s.echoed(), 0);
    const at = await unary(client, '/test.Parity/Echo', Buffer.alloc(1000, 2));
    t.true(Buffer.isBuffer(at) && at.length === 1000);
    const unknown = await unary(client, '/test.Parity/Nope', Buffer.from('x'));
    t.is((unknown as grpc.ServiceError).code, grpc.status.UNIMPLEMENTED);
  });

  test(`grpcServer ${grpcServer}: shutdown sends GOAWAY, lets the call in flight answer, then calls back`, async (t) => {
    const s = await startBare(grpcServer);
    t.teardown(() => s.server.forceShutdown());
    const session = connect(`http://127.0.0.1:${s.port}`);
    t.teardown(() => session.destroy());
    const inFlight = rawStatus(session, '/test.Parity/Hold', frame(Buffer.from('x')));
    await waitFor('the held call', () => s.held.length === 1);
    const goaway = once(session, 'goaway');
    let shutDown = false;
    s.server.tryShutdown(() => (shutDown = true));
    await goaway;
    t.false(shutDown, 'the call in flight is still unanswered');
    s.held[0]!.reply(Buffer.from('late'));
    t.is(await inFlight, Status.OK);
    await waitFor('the shutdown callback', () => shutDown);
    t.pass();
  });
}
