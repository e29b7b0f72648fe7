// ext_proc's Process stream on the service's own gRPC server (src/ext-proc/process-stream.ts on
// src/grpc/h2-server.ts), under flow control: Envoy streams an SSE list response to the service
// chunk by chunk and may stop reading the answers. A bare HTTP/2 client plays Envoy here, since
// grpc-js's client reads ahead whatever its caller does; messages are the official protos.
import { once } from 'node:events';
import { connect } from 'node:http2';
import test from 'ava';
import { mintKey } from './e2e/api-keys.js';
import {
  keyEntries,
  requestBody,
  requestHeaders,
  responseBody,
  responseHeaders,
  testRuntime,
} from './helpers/ext-proc.js';
import { rpc } from './helpers/service.js';
import { extProcRoot, serviceDefinition } from '../src/envoy/proto-root.js';
import type { StreamCall } from '../src/grpc/calls.js';
import { FrameReader, frame } from '../src/grpc/wire.js';
import { processHandler, type DuplexCall } from '../src/ext-proc/process-stream.js';
import { H2GrpcServer } from '../src/grpc/h2-server.js';
import { grpcListen } from './helpers/grpc-listen.js';
import { waitFor } from './helpers/wait.js';

const bob = mintKey({ id: 'bob-cli', name: 'Bob', userId: 'bob', role: 'user', permissions: ['tools:search'] });
const PROCESS = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';

test('Envoy not reading the answers: the stream stops reading the chunks it sends, and every chunk is answered, in order, once it reads again', async (t) => {
  const rt = await testRuntime({
    apiKeys: { keys: keyEntries([bob]) },
    endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true, oauth: false } }],
  });
  t.teardown(() => rt.close());
  const server = new H2GrpcServer({ maxReceiveMessageBytes: 4 * 1024 * 1024, listen: grpcListen });
  const calls: StreamCall[] = [];
  const handler = processHandler(rt);
  server.addService(serviceDefinition(extProcRoot(), 'envoy.service.ext_proc.v3.ExternalProcessor'), {
    Process: (call: StreamCall) => {
      calls.push(call);
      handler(call as unknown as DuplexCall);
    },
  });
  const port = await server.bind('127.0.0.1:0');
  t.teardown(() => server.forceShutdown());
  const session = connect(`http://127.0.0.1:${port}`);
  await once(session, 'connect');
  t.teardown(() => session.close());

  const Request = extProcRoot().lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
  const Response = extProcRoot().lookupType('envoy.service.ext_proc.v3.ProcessingResponse');
  const encode = (m: object) => frame(Request.encode(Request.fromObject(m)).finish());
  const req = session.request({
    ':method': 'POST',
    ':path': PROCESS,
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  req.pause(); // Envoy stops reading the answers

  const body = rpc('tools/list', undefined, 3);
  // 400 progress notifications of 2 kB each (answered with the same bytes), then the result.
  const chunks = Array.from(
    { length: 400 },
    (_, i) =>
      `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't', progress: i, message: 'x'.repeat(2000) } })}\n\n`,
  );
  const messages = [
    requestHeaders({ path: '/mcp/files', headers: [['x-api-key', bob.key]], body, source: '10.1.2.3:40000' }),
    requestBody(body),
    responseHeaders(200, [['content-type', 'text/event-stream']]),
    ...chunks.map((c) => responseBody(c, false)),
    responseBody(
      `data: ${JSON.stringify({ jsonrpc: '2.0', id: 3, result: { tools: [{ name: 'search' }, { name: 'delete_repo' }] } })}\n\n`,
      true,
    ),
  ];
  for (const m of messages) req.write(encode(m));
  req.end();

  await waitFor('the Process call', () => calls.length === 1, 30_000, 0);
  const h2 = calls[0]!.http2Stream!;
  // The answers fill Envoy's window; the service then stops reading what Envoy sends.
  await waitFor('the service to stop reading', () => h2.isPaused(), 30_000, 0);

  const answers: Record<string, any>[] = [];
  const reader = new FrameReader(4 * 1024 * 1024);
  req.on('data', (d: Buffer) =>
    reader.push(d, (m) =>
      answers.push(Response.toObject(Response.decode(m), { enums: String, bytes: String }) as Record<string, any>),
    ),
  );
  const trailers = once(req, 'trailers');
  req.resume();
  const [tr] = (await trailers) as [Record<string, string>];
  t.is(tr['grpc-status'], '0', tr['grpc-message']);
  t.is(answers.length, 3 + chunks.length + 1, 'one answer per message');
  const bodies = answers
    .slice(3)
    .map((a) => Buffer.from(a.response_body?.response?.body_mutation?.body ?? '', 'base64').toString('utf8'));
  t.deepEqual(bodies.slice(0, chunks.length), chunks, 'each notification passed on as it came, in order');
  t.deepEqual(JSON.parse(bodies.at(-1)!.split('data: ')[1]!).result.tools, [{ name: 'search' }]);
});
