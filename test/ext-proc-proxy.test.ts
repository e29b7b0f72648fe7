// The ext_proc test proxy against small processors over real gRPC, with real HTTP through the
// proxy to a real upstream: each test pins one behaviour of Envoy's ext_proc filter that the
// proxy reproduces (see the header of demo/envoy-stand-in/ext-proc-proxy.ts and docs/ext_proc.md).
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { filterJsonBody } from '../src/mcp-response/list-filter.js';
import { SseListRewriter } from '../src/mcp-response/sse-list-rewriter.js';
import {
  extProcService,
  startExtProcProxy,
  type ExtProcProxyOptions,
  type ProxyTimers,
} from '../demo/envoy-stand-in/ext-proc-proxy.js';
import { waitFor } from './helpers/wait.js';

// ---- a processor: one script per Process stream ------------------------------------------

interface Wire {
  [k: string]: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

interface StreamCtx {
  send(resp: Wire): void;
  /** Ends the stream with OK: Envoy then goes on without the processor. */
  end(): void;
  fail(code: grpc.status, details: string): void;
  /** Every message received on this stream so far. */
  seen: Wire[];
}

type Script = (msg: Wire, ctx: StreamCtx) => void | Promise<void>;

async function startProcessor(script: Script) {
  const { definition } = extProcService();
  const streams: Wire[][] = [];
  const events = new EventEmitter();
  const server = new grpc.Server();
  server.addService(definition, {
    Process(call: grpc.ServerDuplexStream<Wire, Wire>) {
      const seen: Wire[] = [];
      streams.push(seen);
      let ended = false;
      const ctx: StreamCtx = {
        seen,
        send: (r) => !ended && call.write(r),
        end: () => {
          ended = true;
          call.end();
        },
        fail: (code, details) => {
          ended = true;
          call.emit('error', { code, details });
        },
      };
      call.on('data', (msg: Wire) => {
        seen.push(msg);
        events.emit('message', msg);
        void Promise.resolve(script(msg, ctx)).catch((err: Error) => ctx.fail(grpc.status.INTERNAL, err.message));
      });
      call.on('end', () => !ended && ctx.end());
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    streams,
    /** Resolves once `n` messages of a kind have been received in all. */
    async received(kind: string, n = 1) {
      while (streams.flat().filter((m) => m.request === kind).length < n) await once(events, 'message');
    },
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

const headerList = (m: Wire): [string, string][] =>
  (m[m.request].headers.headers as Wire[]).map((h) => [
    h.key,
    h.raw_value ? Buffer.from(h.raw_value).toString() : h.value,
  ]);
const raw = (key: string, value: string, append?: boolean) => ({
  header: { key, raw_value: Buffer.from(value) },
  ...(append === undefined ? {} : { append: { value: append } }),
});
const cont = (phase: string, response: Wire = {}, extra: Wire = {}) => ({ [phase]: { response }, ...extra });

// ---- an upstream ------------------------------------------------------------------------------

const TOOLS = {
  jsonrpc: '2.0',
  id: 1,
  result: { tools: [{ name: 'search' }, { name: 'delete_repo' }, { name: 'read_file' }] },
};

async function startUpstream() {
  const requests: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
  /** Pieces of the /sse response; each after the gate before it opens. */
  let ssePieces: string[] = [];
  let gate: (i: number) => Promise<void> = async () => undefined;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString();
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (req.url === '/json') {
        const text = JSON.stringify(TOOLS);
        res
          .writeHead(200, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(text),
            'cache-control': 'public, max-age=60',
          })
          .end(text);
      } else if (req.url === '/sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.flushHeaders();
        for (let i = 0; i < ssePieces.length; i++) {
          await gate(i);
          res.write(ssePieces[i]);
        }
        res.end();
      } else {
        const text = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body });
        res
          .writeHead(200, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(text),
            'x-upstream': 'yes',
          })
          .end(text);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    sse(pieces: string[], before: (i: number) => Promise<void>) {
      ssePieces = pieces;
      gate = before;
    },
    stop: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---- harness ----------------------------------------------------------------------------------

/** A clock the test moves: timers fire only when the test says so. */
function manualTimers() {
  const pending = new Set<{ fn: () => void; ms: number }>();
  const timers: ProxyTimers & { fire(): void; armed(): number[] } = {
    set: (fn, ms) => {
      const h = { fn, ms };
      pending.add(h);
      return h;
    },
    clear: (h) => void pending.delete(h as { fn: () => void; ms: number }),
    fire: () => {
      for (const h of [...pending]) {
        pending.delete(h);
        h.fn();
      }
    },
    armed: () => [...pending].map((h) => h.ms),
  };
  return timers;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The connection broke before the response completed. */
  aborted: boolean;
}

function request(
  url: string,
  opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(opts.path ?? '/echo', url),
      { method: opts.method ?? 'GET', headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        let aborted = false;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('aborted', () => (aborted = true));
        res.on('error', () => (aborted = true));
        res.on('close', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            aborted: aborted || !res.complete,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function setup(script: Script, opts: ExtProcProxyOptions = {}) {
  const processor = await startProcessor(script);
  const upstream = await startUpstream();
  const proxy = await startExtProcProxy({ messageTimeoutMs: 30_000, ...opts });
  proxy.attach({ processor: processor.address, upstream: upstream.url });
  return {
    processor,
    upstream,
    proxy,
    stop: async () => {
      await proxy.stop();
      await upstream.stop();
      await processor.stop();
    },
  };
}

// ---- headers ------------------------------------------------------------------------------------

test('header mutations reach the upstream and the client; the processor gets pseudo-headers first and values in raw_value', async (t) => {
  const s = await setup((msg, ctx) => {
    if (msg.request === 'request_headers')
      ctx.send(
        cont('request_headers', {
          header_mutation: { set_headers: [raw('x-added', 'yes')], remove_headers: ['x-remove-me'] },
        }),
      );
    if (msg.request === 'response_headers')
      ctx.send(
        cont('response_headers', {
          header_mutation: { set_headers: [raw('x-resp', 'set')], remove_headers: ['x-upstream'] },
        }),
      );
  });
  const r = await request(s.proxy.url, {
    method: 'POST',
    headers: { 'x-remove-me': '1', 'content-type': 'application/json' },
    body: '{"a":1}',
  });
  t.is(r.status, 200);
  t.is(r.headers['x-resp'], 'set');
  t.is(r.headers['x-upstream'], undefined);
  const seen = JSON.parse(r.body).headers;
  t.is(seen['x-added'], 'yes');
  t.is(seen['x-remove-me'], undefined);

  const [reqHeaders, respHeaders] = s.processor.streams[0]!;
  t.deepEqual(
    headerList(reqHeaders!)
      .slice(0, 4)
      .map(([k]) => k),
    [':authority', ':path', ':method', ':scheme'],
  );
  t.deepEqual(
    headerList(reqHeaders!).find(([k]) => k === ':path'),
    [':path', '/echo'],
  );
  t.true(headerList(reqHeaders!).some(([k]) => k === 'x-request-id'));
  t.is(reqHeaders!.request_headers.headers.headers[0].value, undefined, 'values travel in raw_value only');
  t.false(reqHeaders!.request_headers.end_of_stream ?? false, 'a request with a body');
  t.is(respHeaders!.request, 'response_headers', 'no body message: body modes are NONE by default');
  t.deepEqual(headerList(respHeaders!)[0], [':status', '200']);
  t.deepEqual(s.proxy.exchanges[0]!.sent, ['request_headers', 'response_headers']);
  await s.stop();
});

test('append adds a value; unset or false replaces every value; append_action is ignored; routing and x-envoy headers stay', async (t) => {
  const s = await setup((msg, ctx) => {
    if (msg.request !== 'request_headers') return ctx.send(cont(msg.request));
    ctx.send(
      cont('request_headers', {
        header_mutation: {
          set_headers: [
            raw('x-a', 'second', true),
            raw('x-b', 'replaced', false),
            raw('x-c', 'replaced'),
            { ...raw('x-d', 'replaced'), append_action: 'APPEND_IF_EXISTS_OR_ADD' },
            { ...raw('x-new', 'only'), append_action: 'OVERWRITE_IF_EXISTS' },
            raw('host', 'evil.example'),
            raw(':authority', 'evil.example'),
            raw('x-envoy-original-path', '/admin'),
            raw(':path', '/echo?rewritten=1'),
          ],
          remove_headers: ['host', ':method'],
        },
      }),
    );
  });
  const r = await request(s.proxy.url, { headers: { 'x-a': 'first', 'x-b': 'one', 'x-c': 'one', 'x-d': 'one' } });
  const seen = JSON.parse(r.body);
  t.is(seen.headers['x-a'], 'first, second');
  t.is(seen.headers['x-b'], 'replaced');
  t.is(seen.headers['x-c'], 'replaced');
  t.is(seen.headers['x-d'], 'replaced', 'append_action is not honoured: unset append means overwrite');
  t.is(seen.headers['x-new'], 'only');
  t.is(seen.headers.host, new URL(s.proxy.url).host);
  t.is(seen.headers['x-envoy-original-path'], undefined);
  t.is(seen.method, 'GET');
  t.is(seen.url, '/echo?rewritten=1', ':path may be changed');
  await s.stop();
});

test('a mutation with value but no raw_value sets an empty header; with both, or with an invalid name, the request is 500', async (t) => {
  let mutation: Wire = {};
  const s = await setup((msg, ctx) =>
    ctx.send(cont(msg.request, msg.request === 'request_headers' ? { header_mutation: mutation } : {})),
  );
  mutation = { set_headers: [{ header: { key: 'x-v', value: 'lost' } }] };
  const r1 = await request(s.proxy.url);
  t.is(JSON.parse(r1.body).headers['x-v'], '');
  mutation = { set_headers: [{ header: { key: 'x-v', value: 'a', raw_value: Buffer.from('b') } }] };
  const r2 = await request(s.proxy.url);
  t.is(r2.status, 500);
  t.is(
    s.proxy.exchanges[1]!.localReply?.details,
    'Only one of value or raw_value in the HeaderValue message should be set.',
  );
  mutation = { set_headers: [raw('bad header', 'x')] };
  t.is((await request(s.proxy.url)).status, 500);
  t.is(s.upstream.requests.length, 1, 'refused requests never reach the upstream');
  await s.stop();
});

// ---- bodies -------------------------------------------------------------------------------------

test('a BUFFERED request body arrives whole with end_of_stream; a replaced body must match a content-length still present', async (t) => {
  let fixLength = false;
  const s = await setup(
    (msg, ctx) => {
      if (msg.request === 'request_body') {
        const header_mutation = fixLength ? { remove_headers: ['content-length'] } : undefined;
        return ctx.send(
          cont('request_body', { header_mutation, body_mutation: { body: Buffer.from('{"replaced":true}') } }),
        );
      }
      ctx.send(cont(msg.request));
    },
    { processingMode: { request_body_mode: 'BUFFERED' } },
  );
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', pad: 'x'.repeat(70_000) });
  const mismatch = await request(s.proxy.url, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
  });
  t.is(mismatch.status, 500);
  t.is(s.proxy.exchanges[0]!.localReply?.details, 'mismatch between content length and the length of the mutated body');
  const bodyMsg = s.processor.streams[0]!.find((m) => m.request === 'request_body')!;
  t.is(Buffer.from(bodyMsg.request_body.body).toString(), body, 'one message with the whole body');
  t.true(bodyMsg.request_body.end_of_stream);

  fixLength = true;
  const r = await request(s.proxy.url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  t.is(r.status, 200);
  t.is(JSON.parse(r.body).body, '{"replaced":true}');
  await s.stop();
});

test('mode_override in the answer to response headers buffers a JSON list, which the processor filters', async (t) => {
  const s = await setup(
    (msg, ctx) => {
      if (msg.request === 'response_headers') {
        // Content-length must go with a body that changes length.
        return ctx.send(
          cont(
            'response_headers',
            { header_mutation: { remove_headers: ['content-length'], set_headers: [raw('cache-control', 'private')] } },
            { mode_override: { response_body_mode: 'BUFFERED' } },
          ),
        );
      }
      if (msg.request === 'response_body') {
        const r = filterJsonBody(
          Buffer.from(msg.response_body.body).toString(),
          new Map([[1, 'tools/list']]),
          () => (i) => i.key !== 'delete_repo',
        );
        if (!r.ok) throw new Error(r.code);
        return ctx.send(cont('response_body', { body_mutation: { body: Buffer.from(r.body) } }));
      }
      ctx.send(cont(msg.request));
    },
    { allowModeOverride: true },
  );
  const r = await request(s.proxy.url, { path: '/json' });
  t.is(r.status, 200);
  t.deepEqual(
    JSON.parse(r.body).result.tools.map((x: { name: string }) => x.name),
    ['search', 'read_file'],
  );
  t.is(r.headers['cache-control'], 'private');
  t.is(r.headers['content-length'], String(Buffer.byteLength(r.body)));
  t.deepEqual(s.proxy.exchanges[0]!.sent, ['request_headers', 'response_headers', 'response_body']);
  await s.stop();
});

test('without allow_mode_override a mode_override is ignored and the body is never sent to the processor', async (t) => {
  const s = await setup((msg, ctx) =>
    ctx.send(
      cont(
        msg.request,
        {},
        msg.request === 'response_headers' ? { mode_override: { response_body_mode: 'BUFFERED' } } : {},
      ),
    ),
  );
  const r = await request(s.proxy.url, { path: '/json' });
  t.deepEqual(JSON.parse(r.body), TOOLS);
  t.deepEqual(s.proxy.exchanges[0]!.sent, ['request_headers', 'response_headers']);
  await s.stop();
});

test('a buffered body replaced while the upstream content-length stays is a 500', async (t) => {
  const s = await setup(
    (msg, ctx) => {
      if (msg.request === 'response_headers')
        return ctx.send(cont('response_headers', {}, { mode_override: { response_body_mode: 'BUFFERED' } }));
      if (msg.request === 'response_body')
        return ctx.send(cont('response_body', { body_mutation: { body: Buffer.from('{}') } }));
      ctx.send(cont(msg.request));
    },
    { allowModeOverride: true },
  );
  const r = await request(s.proxy.url, { path: '/json' });
  t.is(r.status, 500);
  t.is(r.body, '', 'nothing of the upstream body');
  await s.stop();
});

test('STREAMED: every chunk is answered in order and the SSE list event is rewritten while notifications pass', async (t) => {
  const progress = (n: number) =>
    `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: n } })}\n\n`;
  const list = `event: message\ndata: ${JSON.stringify(TOOLS)}\n\n`;
  const pieces = [progress(1), list.slice(0, 40), list.slice(40), progress(2)];
  let rewriter: SseListRewriter | undefined;
  const s = await setup(
    (msg, ctx) => {
      if (msg.request === 'response_headers') {
        rewriter = new SseListRewriter({
          calls: new Map([[1, 'tools/list']]),
          visibleFor: () => (i) => i.key !== 'delete_repo',
        });
        return ctx.send(cont('response_headers', {}, { mode_override: { response_body_mode: 'STREAMED' } }));
      }
      if (msg.request === 'response_body') {
        const step = msg.response_body.end_of_stream
          ? rewriter!.end()
          : rewriter!.push(Buffer.from(msg.response_body.body ?? []));
        if (!step.ok) return ctx.fail(grpc.status.INTERNAL, step.failure.code);
        return ctx.send(cont('response_body', { body_mutation: { body: step.out } }));
      }
      ctx.send(cont(msg.request));
    },
    { allowModeOverride: true },
  );
  // Each piece leaves the upstream only once the processor has had the one before: several chunks.
  s.upstream.sse(pieces, (i) => s.processor.received('response_body', i));
  const r = await request(s.proxy.url, { path: '/sse' });
  t.is(r.status, 200);
  t.false(r.aborted);
  const filtered = { ...TOOLS, result: { tools: [{ name: 'search' }, { name: 'read_file' }] } };
  t.is(r.body, progress(1) + `event: message\ndata: ${JSON.stringify(filtered)}\n\n` + progress(2));
  const bodies = s.processor.streams[0]!.filter((m) => m.request === 'response_body');
  t.is(bodies.length, pieces.length + 1, 'one message per chunk and an empty end_of_stream one');
  t.true(bodies.at(-1)!.response_body.end_of_stream);
  t.is(Buffer.from(bodies.at(-1)!.response_body.body ?? []).length, 0);
  t.is(r.headers['content-type'], 'text/event-stream');
  await s.stop();
});

// ---- immediate responses ----------------------------------------------------------------------

test('an immediate response replies with its status, headers and a text/plain body; the upstream is never reached', async (t) => {
  const s = await setup((_msg, ctx) =>
    ctx.send({
      immediate_response: {
        status: { code: 'Forbidden' },
        headers: { set_headers: [raw('www-authenticate', 'Bearer realm="mcp"')] },
        body: Buffer.from('{"error":"access_denied"}'),
        grpc_status: { status: 7 },
        details: 'denied_by_policy',
      },
    }),
  );
  const r = await request(s.proxy.url, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  t.is(r.status, 403);
  t.is(r.body, '{"error":"access_denied"}');
  t.is(r.headers['content-type'], 'text/plain', 'unless the processor sets content-type itself');
  t.is(r.headers['www-authenticate'], 'Bearer realm="mcp"');
  t.is(r.headers['grpc-status'], undefined, 'grpc_status only matters to gRPC requests');
  t.is(s.upstream.requests.length, 0);
  t.deepEqual(s.proxy.exchanges[0]!.localReply, { status: 403, details: 'denied_by_policy' });
  await s.stop();
});

test('an immediate response while a streamed body is under way resets the client stream', async (t) => {
  const s = await setup(
    (msg, ctx) => {
      if (msg.request === 'response_headers')
        return ctx.send(cont('response_headers', {}, { mode_override: { response_body_mode: 'STREAMED' } }));
      if (msg.request === 'response_body' && ctx.seen.filter((m) => m.request === 'response_body').length === 2)
        return ctx.send({ immediate_response: { status: { code: 500 } } });
      ctx.send(cont(msg.request));
    },
    { allowModeOverride: true },
  );
  s.upstream.sse(['data: one\n\n', 'data: two\n\n', 'data: three\n\n'], (i) =>
    s.processor.received('response_body', i),
  );
  const r = await request(s.proxy.url, { path: '/sse' });
  t.is(r.status, 200);
  t.true(r.aborted);
  t.is(r.body, 'data: one\n\n');
  t.true(s.proxy.exchanges[0]!.reset);
  await s.stop();
});

// ---- timeouts and failures ---------------------------------------------------------------------

test('no answer within message_timeout is 504; with failure_mode_allow the request goes on unprocessed', async (t) => {
  for (const failureModeAllow of [false, true]) {
    const timers = manualTimers();
    const s = await setup(() => undefined, { timers, messageTimeoutMs: 200, failureModeAllow });
    const pending = request(s.proxy.url);
    await s.processor.received('request_headers');
    await waitFor('the message timer', () => timers.armed().length === 1, 10_000, 5);
    t.deepEqual(timers.armed(), [200]);
    timers.fire();
    const r = await pending;
    if (failureModeAllow) {
      t.is(r.status, 200);
      t.is(s.upstream.requests.length, 1);
    } else {
      t.is(r.status, 504);
      t.is(s.proxy.exchanges[0]!.localReply?.details, 'ext_proc_error_per-message_timeout_exceeded');
      t.is(s.upstream.requests.length, 0);
    }
    await s.stop();
  }
});

test('override_message_timeout restarts the timer up to max_message_timeout, and is ignored when that is 0', async (t) => {
  for (const max of [10_000, 0]) {
    const timers = manualTimers();
    let answer: (() => void) | undefined;
    const s = await setup(
      (msg, ctx) => {
        if (msg.request !== 'request_headers') return ctx.send(cont(msg.request));
        ctx.send({ override_message_timeout: { seconds: 5 } });
        answer = () => ctx.send(cont('request_headers'));
      },
      { timers, messageTimeoutMs: 200, maxMessageTimeoutMs: max },
    );
    const pending = request(s.proxy.url);
    await waitFor(
      'the override',
      () => s.proxy.exchanges[0]?.received.includes('override_message_timeout') ?? false,
      10_000,
      5,
    );
    t.deepEqual(timers.armed(), max ? [5000] : [200]);
    if (max) answer!();
    else timers.fire();
    t.is((await pending).status, max ? 200 : 504);
    await s.stop();
  }
});

test('a gRPC error is 500, or status_on_error; an unreachable processor is 500 too', async (t) => {
  for (const statusOnError of [undefined, 503]) {
    const s = await setup(
      (_msg, ctx) => ctx.fail(grpc.status.INTERNAL, 'boom'),
      statusOnError ? { statusOnError } : {},
    );
    const r = await request(s.proxy.url);
    t.is(r.status, statusOnError ?? 500);
    t.is(s.proxy.exchanges[0]!.localReply?.details, `ext_proc_error_gRPC_error_${grpc.status.INTERNAL}`);
    t.is(s.upstream.requests.length, 0);
    await s.stop();
  }
  const s = await setup(() => undefined);
  await s.processor.stop();
  t.is((await request(s.proxy.url)).status, 500);
  t.is(s.upstream.requests.length, 0);
  await s.stop();
});

test('an answer out of order is a 500', async (t) => {
  const s = await setup((_msg, ctx) => ctx.send(cont('response_headers')));
  const r = await request(s.proxy.url);
  t.is(r.status, 500);
  t.is(s.proxy.exchanges[0]!.localReply?.details, 'spurious message');
  t.is(s.upstream.requests.length, 0);
  await s.stop();
});

test('a processor that closes its stream cleanly mid-response lets the rest through unmodified', async (t) => {
  const s = await setup(
    (msg, ctx) => {
      if (msg.request === 'response_headers')
        return ctx.send(cont('response_headers', {}, { mode_override: { response_body_mode: 'STREAMED' } }));
      if (msg.request === 'response_body') {
        if (ctx.seen.filter((m) => m.request === 'response_body').length === 1)
          return ctx.send(cont('response_body', { body_mutation: { body: Buffer.from('data: REWRITTEN\n\n') } }));
        return ctx.end();
      }
      ctx.send(cont(msg.request));
    },
    { allowModeOverride: true },
  );
  s.upstream.sse(['data: one\n\n', 'data: two\n\n', 'data: three\n\n'], (i) =>
    s.processor.received('response_body', i),
  );
  const r = await request(s.proxy.url, { path: '/sse' });
  t.false(r.aborted);
  t.is(
    r.body,
    'data: REWRITTEN\n\ndata: two\n\ndata: three\n\n',
    'Envoy goes on without the processor: this is why the service must never close cleanly mid-list',
  );
  await s.stop();
});

test('a gRPC error while a streamed body is under way resets the client stream', async (t) => {
  const s = await setup(
    (msg, ctx) => {
      if (msg.request === 'response_headers')
        return ctx.send(cont('response_headers', {}, { mode_override: { response_body_mode: 'STREAMED' } }));
      if (msg.request === 'response_body' && ctx.seen.filter((m) => m.request === 'response_body').length === 2)
        return ctx.fail(grpc.status.INTERNAL, 'cannot filter');
      ctx.send(cont(msg.request));
    },
    { allowModeOverride: true },
  );
  s.upstream.sse(['data: one\n\n', 'data: two\n\n', 'data: three\n\n'], (i) =>
    s.processor.received('response_body', i),
  );
  const r = await request(s.proxy.url, { path: '/sse' });
  t.true(r.aborted);
  t.is(r.body, 'data: one\n\n');
  t.true(s.proxy.exchanges[0]!.reset);
  await s.stop();
});

test('a buffered body over the buffer limit is 413 on the request and 500 on the response', async (t) => {
  const s = await setup(
    (msg, ctx) =>
      ctx.send(
        cont(
          msg.request,
          {},
          msg.request === 'response_headers'
            ? { mode_override: { request_body_mode: 'BUFFERED', response_body_mode: 'BUFFERED' } }
            : {},
        ),
      ),
    { allowModeOverride: true, bufferLimitBytes: 32, processingMode: { request_body_mode: 'BUFFERED' } },
  );
  const big = await request(s.proxy.url, { method: 'POST', body: 'x'.repeat(64) });
  t.is(big.status, 413);
  t.is(s.upstream.requests.length, 0);
  const r = await request(s.proxy.url, { path: '/json' });
  t.is(r.status, 500);
  t.is(s.proxy.exchanges[1]!.localReply?.details, 'response_payload_too_large');
  await s.stop();
});
