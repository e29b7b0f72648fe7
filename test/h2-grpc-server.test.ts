// The service's own gRPC server (src/grpc/h2-server.ts) against real clients: grpc-js
// (the client every other test uses) for calls of every kind, and bare node:http2 sessions for
// what grpc-js will not send (compressed flags, bad timeouts, ping floods, two messages on a
// unary call). Methods here carry raw bytes (identity serializers), except where a real
// service definition is the point (ext_proc's Process stream, health).
import { once } from 'node:events';
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { MethodDefinition, ServiceDefinition } from '../src/grpc/server.js';
import { envoyIncludeDirs, loaderOptions } from '../src/envoy/protos.js';
import type { StreamCall } from '../src/grpc/calls.js';
import { H2GrpcServer, type DecodedUnaryCall as UnaryCall, type H2GrpcServerOptions } from '../src/grpc/h2-server.js';
import { grpcListen } from './helpers/grpc-listen.js';
import { FrameReader, frame, Status } from '../src/grpc/wire.js';
import { waitFor } from './helpers/wait.js';

const identity = (b: unknown) => b as Buffer;

function method(name: string, requestStream: boolean, responseStream: boolean): MethodDefinition {
  return {
    path: `/test.Raw/${name}`,
    originalName: name,
    requestStream,
    responseStream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

const RAW: ServiceDefinition = {
  Echo: method('Echo', false, false),
  Hang: method('Hang', false, false),
  Fail: method('Fail', false, false),
  Repeat: method('Repeat', false, true),
  Sum: method('Sum', true, false),
  Chat: method('Chat', true, true),
};

interface Harness {
  server: H2GrpcServer;
  port: number;
  client: grpc.Client;
  /** Calls seen by handlers, by method name. */
  seen: Record<string, (UnaryCall | StreamCall)[]>;
  stop(): Promise<void>;
}

type Handlers = Record<string, (...args: any[]) => void>;

async function start(handlers: Handlers, opts: Partial<H2GrpcServerOptions> = {}): Promise<Harness> {
  const server = new H2GrpcServer({ maxReceiveMessageBytes: 1024 * 1024, listen: grpcListen, ...opts });
  const seen: Harness['seen'] = {};
  const wrapped: Handlers = {};
  for (const [name, fn] of Object.entries(handlers)) {
    wrapped[name] = (call: UnaryCall | StreamCall, ...rest: unknown[]) => {
      (seen[name] ??= []).push(call);
      fn(call, ...rest);
    };
  }
  server.addService(RAW, wrapped);
  const port = await server.bind('127.0.0.1:0');
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return {
    server,
    port,
    client,
    seen,
    stop: async () => {
      client.close();
      server.forceShutdown();
    },
  };
}

function unary(client: grpc.Client, path: string, body: Buffer, options: grpc.CallOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, identity, identity, body, new grpc.Metadata(), options, (err, res) =>
      err ? reject(err) : resolve(res!),
    );
  });
}

async function rejection(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('the call succeeded');
}

const echo: Handlers = {
  Echo: (call: UnaryCall, cb: (e: null, v: Buffer) => void) => cb(null, call.request as Buffer),
};

test('a unary call answers its one message with status OK', async (t) => {
  const h = await start(echo);
  t.teardown(() => h.stop());
  const res = await unary(h.client, '/test.Raw/Echo', Buffer.from('hello'));
  t.is(res.toString(), 'hello');
});

test('an unknown method is UNIMPLEMENTED', async (t) => {
  const h = await start(echo);
  t.teardown(() => h.stop());
  const err = await rejection(unary(h.client, '/test.Raw/Nope', Buffer.from('x')));
  t.is(err.code, grpc.status.UNIMPLEMENTED);
  t.regex(err.details, /\/test\.Raw\/Nope/);
});

test('a handler error reaches the client as grpc-status and a percent-encoded grpc-message', async (t) => {
  const details = 'ünïcödé 100% wrong\tline\n✓';
  const h = await start({
    Fail: (_call: UnaryCall, cb: (e: unknown) => void) => cb({ code: Status.INVALID_ARGUMENT, details }),
  });
  t.teardown(() => h.stop());
  const err = await rejection(unary(h.client, '/test.Raw/Fail', Buffer.from('x')));
  t.is(err.code, grpc.status.INVALID_ARGUMENT);
  t.is(err.details, details);
});

test('a call past its grpc-timeout is DEADLINE_EXCEEDED and the handler sees it cancelled', async (t) => {
  const h = await start({ Hang: () => undefined });
  t.teardown(() => h.stop());
  // A raw client, which enforces no deadline of its own (grpc-js's would cancel the call
  // itself, and on a busy machine before the server had even read it): the status is the server's.
  const s = await rawSession(h.port);
  t.teardown(() => s.close());
  const a = await rawCall(s, '/test.Raw/Hang', [frame(Buffer.from('x'))], { 'grpc-timeout': '300m' });
  t.is(statusOf(a), Status.DEADLINE_EXCEEDED);
  const call = h.seen.Hang![0]! as UnaryCall;
  if (!call.cancelled) await once(call, 'cancelled');
  t.true(call.cancelled);
});

test('a message larger than the receive limit is RESOURCE_EXHAUSTED and the handler never runs', async (t) => {
  const h = await start(echo, { maxReceiveMessageBytes: 1000 });
  t.teardown(() => h.stop());
  t.is((await unary(h.client, '/test.Raw/Echo', Buffer.alloc(1000, 1))).length, 1000, 'at the limit: answered');
  const err = await rejection(unary(h.client, '/test.Raw/Echo', Buffer.alloc(1001, 1)));
  t.is(err.code, grpc.status.RESOURCE_EXHAUSTED);
  t.regex(err.details, /1001 vs\. 1000/);
  t.is(h.seen.Echo!.length, 1);
});

// ---- what only a raw HTTP/2 client sends ----------------------------------------------------

interface RawAnswer {
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
  data: Buffer;
}

function rawCall(
  session: ClientHttp2Session,
  path: string,
  body: Buffer[],
  extra: Record<string, string> = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...extra,
    });
    let headers: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (headers = h));
    req.on('trailers', (tr) => (trailers = tr));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => resolve({ headers, trailers, data: Buffer.concat(chunks) }));
    req.on('error', reject);
    for (const b of body) req.write(b);
    req.end();
  });
}

/** grpc-status from a trailers-only answer (in the headers) or from the trailers. */
const statusOf = (a: RawAnswer) => Number(a.trailers['grpc-status'] ?? a.headers['grpc-status']);

async function rawSession(port: number): Promise<ClientHttp2Session> {
  const s = connect(`http://127.0.0.1:${port}`);
  await once(s, 'connect');
  return s;
}

test('a compressed message is refused with UNIMPLEMENTED, naming identity as the only encoding', async (t) => {
  const h = await start(echo);
  t.teardown(() => h.stop());
  const s = await rawSession(h.port);
  t.teardown(() => s.close());
  const compressed = frame(Buffer.from('x'));
  compressed[0] = 1;
  const a = await rawCall(s, '/test.Raw/Echo', [compressed], { 'grpc-encoding': 'gzip' });
  t.is(statusOf(a), Status.UNIMPLEMENTED);
  t.is(a.headers['grpc-accept-encoding'], 'identity');
  t.is(h.seen.Echo, undefined);
});

test('a unary call with two messages, or none, is INTERNAL', async (t) => {
  const h = await start(echo);
  t.teardown(() => h.stop());
  const s = await rawSession(h.port);
  t.teardown(() => s.close());
  t.is(
    statusOf(await rawCall(s, '/test.Raw/Echo', [frame(Buffer.from('a')), frame(Buffer.from('b'))])),
    Status.INTERNAL,
  );
  t.is(statusOf(await rawCall(s, '/test.Raw/Echo', [])), Status.INTERNAL);
  t.is(
    statusOf(await rawCall(s, '/test.Raw/Echo', [frame(Buffer.from('abc')).subarray(0, 6)])),
    Status.INTERNAL,
    'a truncated message',
  );
  t.is(h.seen.Echo, undefined);
});

test('a message split across DATA frames, even inside its header, is read whole', async (t) => {
  const h = await start(echo);
  t.teardown(() => h.stop());
  const s = await rawSession(h.port);
  t.teardown(() => s.close());
  const f = frame(Buffer.from('split across frames'));
  const a = await rawCall(s, '/test.Raw/Echo', [f.subarray(0, 2), f.subarray(2, 9), f.subarray(9)]);
  t.is(statusOf(a), Status.OK);
  t.is(a.data.subarray(5).toString(), 'split across frames');
});

test('a malformed grpc-timeout is INTERNAL; a non-gRPC content type is 415', async (t) => {
  const h = await start(echo);
  t.teardown(() => h.stop());
  const s = await rawSession(h.port);
  t.teardown(() => s.close());
  t.is(
    statusOf(await rawCall(s, '/test.Raw/Echo', [frame(Buffer.from('a'))], { 'grpc-timeout': '10x' })),
    Status.INTERNAL,
  );
  t.is(
    statusOf(await rawCall(s, '/test.Raw/Echo', [frame(Buffer.from('a'))], { 'grpc-timeout': '123456789S' })),
    Status.INTERNAL,
    'more than 8 digits',
  );
  t.is(statusOf(await rawCall(s, '/test.Raw/Echo', [frame(Buffer.from('a'))], { 'grpc-timeout': '5S' })), Status.OK);
  const a = await rawCall(s, '/test.Raw/Echo', [frame(Buffer.from('a'))], { 'content-type': 'application/json' });
  t.is(a.headers[':status'], 415);
});

test('pings with no calls between them, more than once a second, get GOAWAY ENHANCE_YOUR_CALM "too_many_pings"', async (t) => {
  const h = await start(echo);
  t.teardown(() => h.stop());
  const s = await rawSession(h.port);
  t.teardown(() => s.destroy());
  s.on('error', () => undefined); // the session ends with ENHANCE_YOUR_CALM
  const goaway = once(s, 'goaway');
  for (let i = 0; i < 5; i++) s.ping(() => undefined);
  const [code, , data] = (await goaway) as [number, number, Buffer];
  t.is(code, constants.NGHTTP2_ENHANCE_YOUR_CALM);
  t.is(data.toString(), 'too_many_pings');
});

test('pings between calls are answered and never end the connection', async (t) => {
  const h = await start(echo);
  t.teardown(() => h.stop());
  const s = await rawSession(h.port);
  t.teardown(() => s.close());
  let goaway = false;
  s.on('goaway', () => (goaway = true));
  for (let i = 0; i < 6; i++) {
    await new Promise<void>((resolve, reject) => s.ping((err) => (err ? reject(err) : resolve())));
    t.is(statusOf(await rawCall(s, '/test.Raw/Echo', [frame(Buffer.from('a'))])), Status.OK);
  }
  t.false(goaway);
});

test('a ping after each message the server sends is never a strike, however close together (grpc-go measures bandwidth so)', async (t) => {
  const h = await start({
    Chat: (call: StreamCall) => {
      call.on('data', (b: Buffer) => call.write(b));
      call.on('end', () => call.end());
    },
  });
  t.teardown(() => h.stop());
  const s = await rawSession(h.port);
  t.teardown(() => s.destroy());
  let goaway = false;
  s.on('goaway', () => (goaway = true));
  const req = s.request({
    ':method': 'POST',
    ':path': '/test.Raw/Chat',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  for (let i = 0; i < 10; i++) {
    const echoed = once(req, 'data');
    req.write(frame(Buffer.from(`message ${i}`)));
    await echoed;
    await new Promise<void>((resolve, reject) => s.ping((err) => (err ? reject(err) : resolve())));
  }
  req.end();
  req.resume();
  await once(req, 'close');
  t.false(goaway, 'no GOAWAY on one stream with a ping after every answer');
  // With nothing sent between them but their acknowledgements, pings are strikes again,
  // each awaited (its ACK written before the next ping) as much as all at once.
  const calm = once(s, 'goaway');
  s.on('error', () => undefined);
  for (let i = 0; i < 5 && !s.closed && !s.destroyed; i++)
    await new Promise<void>((resolve) => s.ping(() => resolve()));
  const [code] = (await calm) as [number];
  t.is(code, constants.NGHTTP2_ENHANCE_YOUR_CALM);
});

test('the server pings a connection every keepaliveTimeMs', async (t) => {
  const h = await start(echo, { keepaliveTimeMs: 50, keepaliveTimeoutMs: 5000 });
  t.teardown(() => h.stop());
  const s = await rawSession(h.port);
  t.teardown(() => s.close());
  await once(s, 'ping');
  await once(s, 'ping');
  t.false(s.closed);
});

// ---- streams ---------------------------------------------------------------------------------

test('a server-streaming call sends every message, then status OK', async (t) => {
  const h = await start({
    Repeat: (call: StreamCall) => {
      const n = (call.request as Buffer)[0]!;
      for (let i = 0; i < n; i++) call.write(Buffer.from([i]));
      call.end();
    },
  });
  t.teardown(() => h.stop());
  const stream = h.client.makeServerStreamRequest('/test.Raw/Repeat', identity, identity, Buffer.from([5]));
  const got: number[] = [];
  stream.on('data', (b: Buffer) => got.push(b[0]!));
  const status = await new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
  t.is(status.code, grpc.status.OK);
  t.deepEqual(got, [0, 1, 2, 3, 4]);
});

test('a client-streaming call reads every message before answering once', async (t) => {
  const h = await start({
    Sum: (call: StreamCall, cb: (e: null, v: Buffer) => void) => {
      let sum = 0;
      call.on('data', (b: Buffer) => (sum += b[0]!));
      call.on('end', () => cb(null, Buffer.from([sum])));
    },
  });
  t.teardown(() => h.stop());
  const answer = new Promise<Buffer>((resolve, reject) => {
    const call = h.client.makeClientStreamRequest('/test.Raw/Sum', identity, identity, (err, res) =>
      err ? reject(err) : resolve(res!),
    );
    for (const n of [1, 2, 3, 4]) call.write(Buffer.from([n]));
    call.end();
  });
  t.is((await answer)[0], 10);
});

test('a bidirectional stream answers messages as they come, in order, and ends when both sides have', async (t) => {
  const h = await start({
    Chat: (call: StreamCall) => {
      call.on('data', (b: Buffer) => call.write(Buffer.concat([Buffer.from('re:'), b])));
      call.on('end', () => call.end());
    },
  });
  t.teardown(() => h.stop());
  const call = h.client.makeBidiStreamRequest('/test.Raw/Chat', identity, identity);
  const replies: string[] = [];
  // Each reply arrives before the next message is sent: the stream is interactive, not batched.
  for (const m of ['one', 'two', 'three']) {
    call.write(Buffer.from(m));
    const [reply] = (await once(call, 'data')) as [Buffer];
    replies.push(reply.toString());
  }
  call.end();
  const status = (await once(call, 'status')) as [grpc.StatusObject];
  t.is(status[0].code, grpc.status.OK);
  t.deepEqual(replies, ['re:one', 're:two', 're:three']);
});

/** The call's final status (events.once would reject on the 'error' grpc-js also emits). */
function finalStatus(call: grpc.ClientDuplexStream<Buffer, Buffer>): Promise<grpc.StatusObject> {
  call.on('error', () => undefined);
  return new Promise((resolve) => call.on('status', resolve));
}

test('a bidirectional stream past its grpc-timeout ends DEADLINE_EXCEEDED after the messages already sent, and the handler sees it cancelled', async (t) => {
  // The handler answers each message and never ends the call: only the server's deadline can.
  const h = await start({ Chat: (call: StreamCall) => call.on('data', (b: Buffer) => call.write(b)) });
  t.teardown(() => h.stop());
  // A raw client, which enforces no deadline of its own: the status can only be the server's.
  const s = await rawSession(h.port);
  t.teardown(() => s.close());
  const a = await rawCall(s, '/test.Raw/Chat', [frame(Buffer.from('first'))], { 'grpc-timeout': '200m' });
  t.is(statusOf(a), Status.DEADLINE_EXCEEDED);
  const messages: string[] = [];
  new FrameReader(1000).push(a.data, (m) => messages.push(m.toString()));
  t.deepEqual(messages, ['first']);
  const server = h.seen.Chat![0]! as StreamCall;
  if (!server.cancelled) await once(server, 'cancelled');
  t.true(server.cancelled);
});

test('on a stream, a message larger than the receive limit is RESOURCE_EXHAUSTED and never reaches the handler; the ones before it do', async (t) => {
  const got: number[] = [];
  const h = await start(
    { Chat: (call: StreamCall) => call.on('data', (b: Buffer) => got.push(b.length)) },
    { maxReceiveMessageBytes: 1000 },
  );
  t.teardown(() => h.stop());
  const call = h.client.makeBidiStreamRequest('/test.Raw/Chat', identity, identity);
  const ended = finalStatus(call);
  call.write(Buffer.alloc(1000, 1));
  call.write(Buffer.alloc(1001, 1));
  const status = await ended;
  t.is(status.code, grpc.status.RESOURCE_EXHAUSTED);
  t.deepEqual(got, [1000]);
});

test('on a stream that has answered, a message over the limit still ends it with RESOURCE_EXHAUSTED in trailers, not a reset', async (t) => {
  const h = await start(
    { Chat: (call: StreamCall) => call.on('data', (b: Buffer) => call.write(b.subarray(0, 1))) },
    { maxReceiveMessageBytes: 1000 },
  );
  t.teardown(() => h.stop());
  const call = h.client.makeBidiStreamRequest('/test.Raw/Chat', identity, identity);
  const ended = finalStatus(call);
  const answered = once(call, 'data');
  call.write(Buffer.alloc(1000, 1));
  await answered;
  call.write(Buffer.alloc(1001, 1));
  const status = await ended;
  t.is(status.code, grpc.status.RESOURCE_EXHAUSTED, status.details);
});

test('a stream the handler ends with an error sends its messages, then the status and message in trailers', async (t) => {
  const h = await start({
    Chat: (call: StreamCall) => {
      call.on('data', (b: Buffer) => {
        call.write(b);
        call.emit('error', { code: Status.INTERNAL, details: 'the response cannot be filtered: 100% closed' });
      });
    },
  });
  t.teardown(() => h.stop());
  const call = h.client.makeBidiStreamRequest('/test.Raw/Chat', identity, identity);
  const ended = finalStatus(call);
  const data: string[] = [];
  call.on('data', (b: Buffer) => data.push(b.toString()));
  call.write(Buffer.from('only'));
  const status = await ended;
  t.is(status.code, grpc.status.INTERNAL);
  t.is(status.details, 'the response cannot be filtered: 100% closed');
  t.deepEqual(data, ['only']);
});

/** The HTTP/2 stream under a call (private to the server; flow control is what these tests prove). */
const h2Of = (call: StreamCall) => call.http2Stream!;

test('inbound backpressure: a handler that stops reading closes the HTTP/2 window, and reads everything, in order, once it reads again', async (t) => {
  const size = 16 * 1024;
  const total = 200;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const h = await start({
    Chat: (call: StreamCall) => {
      call.pause();
      let got = 0;
      void released.then(() => {
        call.on('data', (b: Buffer) => {
          if (b.length !== size || b[0] !== got % 256) t.fail(`message ${got} out of order or cut`);
          got++;
        });
        call.resume();
      });
      call.on('end', () => {
        call.write(Buffer.from(String(got)));
        call.end();
      });
    },
  });
  t.teardown(() => h.stop());
  const call = h.client.makeBidiStreamRequest('/test.Raw/Chat', identity, identity);
  for (let i = 0; i < total; i++) call.write(Buffer.alloc(size, i % 256)); // 3.2 MB, buffered by the client as needed
  call.end();
  await waitFor('the handler', () => h.seen.Chat?.length === 1, 10_000, 0);
  const server = h.seen.Chat![0]! as StreamCall;
  // The server stops taking data: its window closes, so the client holds the rest.
  await waitFor('the server window to close', () => h2Of(server).state.localWindowSize === 0, 10_000, 0);
  t.true(server.readableLength <= 32, `${server.readableLength} messages buffered in the server`);
  release();
  const [reply] = (await once(call, 'data')) as [Buffer];
  t.is(Number(reply.toString()), total);
});

test('outbound backpressure: writes wait while the client does not read, and all arrive once it does', async (t) => {
  const size = 16 * 1024;
  const total = 300;
  let writes = 0;
  const h = await start({
    Repeat: (call: StreamCall) => {
      const more = () => {
        while (writes < total) {
          writes++;
          if (!call.write(Buffer.alloc(size, writes % 256))) {
            call.once('drain', more);
            return;
          }
        }
        call.end();
      };
      more();
    },
  });
  t.teardown(() => h.stop());
  // A bare HTTP/2 client that does not read (grpc-js's client reads ahead into its own buffer whatever its caller does).
  const s = await rawSession(h.port);
  t.teardown(() => s.close());
  const req = s.request({
    ':method': 'POST',
    ':path': '/test.Raw/Repeat',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  req.pause();
  req.end(frame(Buffer.from([0])));
  await waitFor('the handler', () => h.seen.Repeat?.length === 1, 10_000, 0);
  const server = h.seen.Repeat![0]! as StreamCall;
  // The client's window closes; the handler is held at write() instead of buffering 4.8 MB.
  await waitFor(
    'the server to hold data it cannot send',
    () => server.writableNeedDrain && h2Of(server).writableLength > 0,
    10_000,
    0,
  );
  t.true(writes < total, `held back after ${writes} of ${total} writes`);
  let got = 0;
  const reader = new FrameReader(1024 * 1024);
  req.on('data', (d: Buffer) => reader.push(d, () => got++));
  const trailers = once(req, 'trailers');
  req.resume();
  const [tr] = (await trailers) as [Record<string, string>];
  t.is(tr['grpc-status'], '0');
  t.is(got, total);
});

test('a client that cancels a stream: the handler sees cancelled, and its later writes go nowhere', async (t) => {
  const h = await start({ Chat: (call: StreamCall) => call.on('data', () => undefined) });
  t.teardown(() => h.stop());
  const call = h.client.makeBidiStreamRequest('/test.Raw/Chat', identity, identity);
  call.on('error', () => undefined);
  call.write(Buffer.from('x'));
  await new Promise<void>((resolve) => {
    const poll = () => (h.seen.Chat?.length ? resolve() : setImmediate(poll));
    poll();
  });
  const server = h.seen.Chat![0]! as StreamCall;
  call.cancel();
  if (!server.cancelled) await once(server, 'cancelled');
  t.true(server.cancelled);
  t.notThrows(() => server.write(Buffer.from('late')));
});

test("ext_proc's Process stream, from the official protos, runs on this server with a grpc-js client", async (t) => {
  const def = protoLoader.loadSync('envoy/service/ext_proc/v3/external_processor.proto', {
    ...loaderOptions,
    includeDirs: envoyIncludeDirs,
  });
  const Client = (grpc.loadPackageDefinition(def) as any).envoy.service.ext_proc.v3
    .ExternalProcessor as grpc.ServiceClientConstructor;
  const server = new H2GrpcServer({ maxReceiveMessageBytes: 1024 * 1024, listen: grpcListen });
  server.addService(Client.service as unknown as ServiceDefinition, {
    Process: (call: StreamCall) => {
      call.on('data', (m: Record<string, unknown>) => {
        const phase = m.request_headers ? 'request_headers' : m.response_headers ? 'response_headers' : undefined;
        if (phase) call.write({ [phase]: { response: { status: 'CONTINUE' } } });
      });
      call.on('end', () => call.end());
    },
  });
  const port = await server.bind('127.0.0.1:0');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as any;
  t.teardown(() => {
    client.close();
    server.forceShutdown();
  });
  const call = client.Process();
  call.write({
    request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/mcp') }] }, end_of_stream: true },
  });
  const [first] = (await once(call, 'data')) as [Record<string, any>];
  t.is(first.request_headers.response.status, 'CONTINUE');
  call.write({ response_headers: { headers: { headers: [] } } });
  const [second] = (await once(call, 'data')) as [Record<string, any>];
  t.is(second.response_headers.response.status, 'CONTINUE');
  call.end();
  const [status] = (await once(call, 'status')) as [grpc.StatusObject];
  t.is(status.code, grpc.status.OK);
});

test('shutdown: calls in flight finish, the connection gets GOAWAY, new calls are refused, then the callback runs', async (t) => {
  let answer!: () => void;
  const h = await start({
    Hang: (_call: UnaryCall, cb: (e: null, v: Buffer) => void) => {
      answer = () => cb(null, Buffer.from('late but whole'));
    },
  });
  t.teardown(() => h.stop());
  const inFlight = unary(h.client, '/test.Raw/Hang', Buffer.from('x'));
  await new Promise<void>((resolve) => {
    const poll = () => (answer ? resolve() : setImmediate(poll));
    poll();
  });
  let shutDown = false;
  const stopped = new Promise<void>((resolve) =>
    h.server.tryShutdown(() => {
      shutDown = true;
      resolve();
    }),
  );
  const s = connect(`http://127.0.0.1:${h.port}`);
  const refused = await new Promise<boolean>((resolve) => {
    s.once('error', () => resolve(true));
    s.once('connect', () => resolve(false));
  });
  s.destroy();
  t.true(refused, 'the listener is closed');
  t.false(shutDown, 'still draining: a call is in flight');
  answer();
  t.is((await inFlight).toString(), 'late but whole');
  await stopped;
  t.true(shutDown);
});

test("a client's GOAWAY NO_ERROR is answered with GOAWAY NO_ERROR naming the call in flight, which is still answered", async (t) => {
  let answer: (() => void) | undefined;
  const h = await start({
    Hang: (_call: UnaryCall, cb: (e: null, v: Buffer) => void) => {
      answer = () => cb(null, Buffer.from('after the GOAWAY'));
    },
  });
  t.teardown(() => h.stop());
  const s = await rawSession(h.port);
  t.teardown(() => s.destroy());
  const inFlight = rawCall(s, '/test.Raw/Hang', [frame(Buffer.from('x'))]);
  await waitFor('the held call', () => answer !== undefined, 60_000, 0);
  const goaway = once(s, 'goaway');
  s.goaway(constants.NGHTTP2_NO_ERROR, 0);
  const [code, lastStreamID] = (await goaway) as [number, number];
  t.is(code, constants.NGHTTP2_NO_ERROR);
  t.is(lastStreamID, 1, 'the call in flight was taken: a client must not send it again');
  answer!();
  const a = await inFlight;
  t.is(statusOf(a), Status.OK);
  t.is(a.data.subarray(5).toString(), 'after the GOAWAY');
});
