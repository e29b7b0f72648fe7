// The ext_proc session driven message by message, as any gRPC transport drives it, on a real
// runtime (the shipped policy compiled to WASM, real API keys): the request decided by the
// Check pipeline, list responses filtered (JSON and SSE, any chunking), and every way it
// fails closed.
import { Writable } from 'node:stream';
import test from 'ava';
import fc from 'fast-check';
import { pino } from 'pino';
import type { ListTrace } from '../src/decision/context.js';
import type { ProcessingResponse } from '../src/ext-proc/wire.js';
import { ExtProcSession, type SessionStep } from '../src/ext-proc/session.js';
import { fanOut } from '../src/pipeline/observers.js';
import type { Runtime } from '../src/pipeline/runtime.js';
import { mintKey } from './e2e/api-keys.js';
import {
  common,
  keyEntries,
  mutatedBody,
  requestBody,
  requestHeaders,
  responseBody,
  responseHeaders,
  setHeaders,
  testRuntime,
  type Pairs,
} from './helpers/ext-proc.js';
import { regoDir } from './helpers/policy.js';

const bob = mintKey({
  id: 'bob-cli',
  name: 'Bob',
  userId: 'bob',
  role: 'user',
  permissions: ['tools:search', 'prompts:summarize', 'resources:file:///docs/*'],
});
const alice = mintKey({ id: 'alice', name: 'Alice', userId: 'alice', role: 'user', permissions: ['*'] });
const publicKey = mintKey({ id: 'public', name: 'Public', role: 'user', permissions: ['*'] });

const ENDPOINTS = [
  { name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true, oauth: false, queryParamKeys: true } },
  { name: 'alice-notes', match: { pathPrefix: '/mcp/alice' }, owner: 'alice', auth: { apiKey: true, oauth: false } },
];

function config(extra: Record<string, unknown> = {}) {
  return { apiKeys: { keys: keyEntries([bob, alice, publicKey]) }, endpoints: ENDPOINTS, ...extra };
}

let rt: Runtime;
const listed: ListTrace[] = [];
const decisionIds = new Set<string>();

test.before(async () => {
  rt = await testRuntime(config());
  rt.observer = fanOut([rt.observer, { decided: (t) => decisionIds.add(t.decisionId), listed: (t) => listed.push(t) }]);
});
test.after.always(async () => rt?.close());

const rpc = (method: string, id: number | string = 1, params?: Record<string, unknown>) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) });
const TOOLS = [{ name: 'search', description: 'Search' }, { name: 'delete_repo' }, { name: 'read_file' }];
const toolsResult = (id: number | string = 1) => ({ jsonrpc: '2.0', id, result: { tools: TOOLS } });

/** A session through its request phase; returns the answers to headers and body. */
async function decided(
  r: Runtime,
  opts: { path?: string; key?: string; body?: string; headers?: Pairs; method?: string } = {},
) {
  const s = new ExtProcSession(r);
  const body = opts.body;
  const headers: Pairs = [...(opts.key ? ([['x-api-key', opts.key]] as Pairs) : []), ...(opts.headers ?? [])];
  const first = await s.onMessage(
    requestHeaders({
      path: opts.path ?? '/mcp/files',
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(opts.method ? { method: opts.method } : {}),
    }),
  );
  const second = body !== undefined ? await s.onMessage(requestBody(body)) : undefined;
  return { s, first, second, decision: second ?? first };
}

const only = (step: SessionStep): ProcessingResponse => {
  if (step.send.length !== 1) throw new Error(`expected one answer, got ${JSON.stringify(step)}`);
  return step.send[0]!;
};

test('an allowed request: headers answered with a body mode override, the body with the identity headers set and the key removed', async (t) => {
  const { first, second } = await decided(rt, { key: bob.key, body: rpc('tools/call', 1, { name: 'search' }) });
  t.deepEqual(only(first), {
    request_headers: { response: {} },
    mode_override: { request_body_mode: 'BUFFERED', response_header_mode: 'SEND' },
  });
  const m = common(only(second!))!.header_mutation!;
  t.truthy(only(second!).request_body);
  t.deepEqual(setHeaders(m), {
    'x-mcp-auth-method': 'api_key',
    'x-mcp-principal': 'bob-cli',
    'x-mcp-user-id': 'bob',
    'x-mcp-key-id': 'bob-cli',
  });
  t.true(
    m.set_headers!.every((o) => o.append.value === false),
    'identity headers replace any client copy',
  );
  t.deepEqual(m.remove_headers, ['x-api-key']);
});

test('each deciding answer carries the decision id in the ext_proc namespace, the id its decision is logged with', async (t) => {
  const metadata = (a: ProcessingResponse) =>
    (a.dynamic_metadata as { fields: Record<string, any> } | undefined)?.fields;
  const { first, second } = await decided(rt, { key: bob.key, body: rpc('tools/call', 1, { name: 'search' }) });
  t.is(metadata(only(first)), undefined, 'nothing is decided on headers with a body to come');
  const { decision } = await decided(rt, { path: '/mcp/alice', key: publicKey.key, body: rpc('tools/list') });
  const ids = [only(second!), only(decision)].map((a) => {
    const fields = metadata(a)!;
    t.deepEqual(Object.keys(fields), ['envoy.filters.http.ext_proc'], 'Envoy reads top-level fields as namespaces');
    return fields['envoy.filters.http.ext_proc'].structValue.fields.decision_id.stringValue as string;
  });
  t.truthy(only(decision).immediate_response, 'the second is a deny');
  t.not(ids[0], ids[1]);
  for (const id of ids) t.true(decisionIds.has(id), `${id} is a logged decision`);
});

test('a bodiless request is decided on its headers alone', async (t) => {
  const s = new ExtProcSession(rt);
  const step = await s.onMessage(
    requestHeaders({ method: 'DELETE', path: '/mcp/files', headers: [['x-api-key', bob.key]] }),
  );
  const answer = only(step);
  t.truthy(answer.request_headers);
  t.is(answer.mode_override, undefined);
  t.is(setHeaders(common(answer)!.header_mutation)['x-mcp-principal'], 'bob-cli');
});

test('a public key on a private endpoint is denied with the Check deny as an immediate response, before anything is listed', async (t) => {
  const { s, decision } = await decided(rt, { path: '/mcp/alice', key: publicKey.key, body: rpc('tools/list') });
  const im = only(decision).immediate_response!;
  t.is(im.status.code, 403);
  t.is(setHeaders(im.headers)['content-type'], 'application/json');
  const body = JSON.parse(im.body!.toString('utf8'));
  t.is(body.error, 'access_denied');
  t.is(body.error_description, 'Public API keys cannot access private endpoints');
  t.is(im.details, 'mcp_authz_access_denied');
  t.deepEqual(
    await s.onMessage(responseHeaders(200, [['content-type', 'application/json']])),
    { send: [] },
    'nothing after an immediate response',
  );
});

test('no credential is 401 with the Check deny body, supported methods included', async (t) => {
  const { decision } = await decided(rt, { body: rpc('tools/list') });
  const im = only(decision).immediate_response!;
  t.is(im.status.code, 401);
  const body = JSON.parse(im.body!.toString('utf8'));
  t.is(body.error, 'authentication_required');
  t.true(Array.isArray(body.supported_methods));
});

test("an API key in the query is removed by rewriting :path to what Envoy's ext_authz writes back: the other parameters, by name", async (t) => {
  const { decision } = await decided(rt, { path: `/mcp/files?z&x=1&api_key=${bob.key}&y=a%20b+c`, body: rpc('ping') });
  const m = common(only(decision))!.header_mutation!;
  t.is(setHeaders(m)[':path'], '/mcp/files?x=1&y=a%20b+c&z=');
  t.is(setHeaders(m)['x-mcp-principal'], 'bob-cli');
});

test.serial(
  'a JSON tools/list is filtered to what the caller may call, marked private, its content-length dropped',
  async (t) => {
    listed.length = 0;
    const { s } = await decided(rt, { key: bob.key, body: rpc('tools/list', 7) });
    const head = only(
      await s.onMessage(
        responseHeaders(200, [
          ['content-type', 'application/json; charset=utf-8'],
          ['content-length', '120'],
          ['cache-control', 'public, max-age=60'],
        ]),
      ),
    );
    t.deepEqual(head.mode_override, { request_body_mode: 'BUFFERED', response_body_mode: 'BUFFERED' });
    const m = common(head)!.header_mutation!;
    t.deepEqual(m.remove_headers, ['content-length']);
    t.is(setHeaders(m)['cache-control'], 'private, max-age=60');
    const body = only(await s.onMessage(responseBody(JSON.stringify(toolsResult(7)), true)));
    t.deepEqual(JSON.parse(mutatedBody(body)!), {
      jsonrpc: '2.0',
      id: 7,
      result: { tools: [{ name: 'search', description: 'Search' }] },
    });
    t.true(await s.onEnd(), 'the stream ends with OK once the exchange is over');
    t.is(listed.length, 1);
    t.like(listed[0], { result: 'filtered', form: 'json', dryRun: false });
    t.deepEqual(listed[0]!.methods, [{ method: 'tools/list', shown: 1, hidden: 2 }]);
    t.is(listed[0]!.policy.length, 1, 'one policy evaluation for the whole list');
    t.is(listed[0]!.policy[0]!.items, 3);
  },
);

test('a principal granted everything sees every item', async (t) => {
  const { s } = await decided(rt, { path: '/mcp/alice', key: alice.key, body: rpc('tools/list') });
  await s.onMessage(responseHeaders(200, [['content-type', 'application/json']]));
  const original = JSON.stringify(toolsResult()) + '\n';
  const body = only(await s.onMessage(responseBody(original, true)));
  t.deepEqual(JSON.parse(mutatedBody(body) ?? original), toolsResult());
});

test('a call that lists nothing costs one response headers answer and no body', async (t) => {
  const { s } = await decided(rt, { key: bob.key, body: rpc('tools/call', 1, { name: 'search' }) });
  const head = only(await s.onMessage(responseHeaders(200, [['content-type', 'text/event-stream']])));
  t.deepEqual(head, { response_headers: { response: {} } });
  t.true(await s.onEnd());
});

test.serial(
  'prompts, resources and templates of one batch are filtered together, resource URIs compared normalized',
  async (t) => {
    listed.length = 0;
    const batch = JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'prompts/list' },
      { jsonrpc: '2.0', id: 2, method: 'resources/list' },
      { jsonrpc: '2.0', id: 3, method: 'resources/templates/list' },
    ]);
    const { s, decision } = await decided(rt, { key: bob.key, body: batch, headers: [['accept-encoding', 'gzip']] });
    t.deepEqual(
      common(only(decision))!.header_mutation!.remove_headers,
      ['x-api-key', 'accept-encoding'],
      'a list must come back uncompressed',
    );
    await s.onMessage(responseHeaders(200, [['content-type', 'application/json']]));
    const upstream = [
      { jsonrpc: '2.0', id: 1, result: { prompts: [{ name: 'summarize' }, { name: 'exfiltrate' }] } },
      {
        jsonrpc: '2.0',
        id: 2,
        result: {
          resources: [
            { uri: 'file:///docs/a.md', name: 'a' },
            { uri: 'FILE:///docs/%62.md', name: 'b' },
            { uri: 'file:///docs/../etc/passwd', name: 'escape' },
            { uri: 'file:///docs/%2e%2e/etc/shadow', name: 'encoded escape' },
            { uri: 'file:///etc/hosts', name: 'other' },
          ],
        },
      },
      {
        jsonrpc: '2.0',
        id: 3,
        result: {
          resourceTemplates: [
            { uriTemplate: 'file:///docs/{name}', name: 't1' },
            { uriTemplate: 'file:///{path}', name: 't2' },
          ],
        },
      },
    ];
    const out = JSON.parse(mutatedBody(only(await s.onMessage(responseBody(JSON.stringify(upstream), true))))!);
    t.deepEqual(
      out[0].result.prompts.map((p: { name: string }) => p.name),
      ['summarize'],
    );
    t.deepEqual(
      out[1].result.resources.map((r: { name: string }) => r.name),
      ['a', 'b'],
    );
    t.deepEqual(
      out[2].result.resourceTemplates.map((r: { name: string }) => r.name),
      ['t1'],
    );
    t.deepEqual(listed[0]!.methods, [
      { method: 'prompts/list', shown: 1, hidden: 1 },
      { method: 'resources/list', shown: 2, hidden: 3 },
      { method: 'resources/templates/list', shown: 1, hidden: 1 },
    ]);
    t.is(listed[0]!.policy.length, 1, 'one evaluation for every list of the batch');
  },
);

const progress = (n: number) =>
  JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p', progress: n } });
const SSE = Buffer.from(
  `: hello\n\nevent: message\nid: 1\ndata: ${progress(1)}\n\nid: 2\ndata: ${progress(2)}\r\n\r\nevent: message\nid: 3\ndata: ${JSON.stringify(toolsResult(5))}\n\n`,
  'utf8',
);
const SSE_FILTERED = SSE.toString('utf8').replace(
  JSON.stringify(toolsResult(5)),
  JSON.stringify({ jsonrpc: '2.0', id: 5, result: { tools: [{ name: 'search', description: 'Search' }] } }),
);

/** Runs an SSE response through a fresh session in these chunks; returns what Envoy would send on and how it ended. */
async function sse(
  chunks: Buffer[],
): Promise<{ out: string; fail?: SessionStep['fail']; okClose: boolean; head: ProcessingResponse }> {
  const { s } = await decided(rt, { key: bob.key, body: rpc('tools/list', 5) });
  const head = only(await s.onMessage(responseHeaders(200, [['content-type', 'text/event-stream']])));
  const out: string[] = [];
  const all = [...chunks, Buffer.alloc(0)];
  // Envoy sends STREAMED chunks without waiting for answers: all are in flight at once.
  const steps = await Promise.all(all.map((c, i) => s.onMessage(responseBody(c, i === all.length - 1))));
  let fail: SessionStep['fail'];
  for (const step of steps) {
    if (fail) break;
    for (const a of step.send) out.push(mutatedBody(a) ?? '');
    fail = step.fail;
  }
  return { out: out.join(''), ...(fail ? { fail } : {}), okClose: await s.onEnd(), head };
}

test('an SSE list is streamed: notifications pass byte for byte and in order, only the result event is rewritten', async (t) => {
  const r = await sse([SSE]);
  t.deepEqual(r.head.mode_override, { request_body_mode: 'BUFFERED', response_body_mode: 'STREAMED' });
  t.is(r.out, SSE_FILTERED);
  t.is(r.fail, undefined);
  t.true(r.okClose);
});

test('any split of an SSE response into chunks gives the same bytes out', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 1, max: SSE.length - 1 }), { maxLength: 12 }), async (cuts) => {
      const points = [0, ...cuts.sort((a, b) => a - b), SSE.length];
      const chunks = points.slice(1).map((end, i) => SSE.subarray(points[i], end));
      const r = await sse(chunks);
      return r.out === SSE_FILTERED && r.fail === undefined;
    }),
    { numRuns: 60 },
  );
  t.pass();
});

test.serial(
  'an SSE list that cannot be filtered mid-stream: checked bytes and an error event, then a gRPC error, never an OK close',
  async (t) => {
    listed.length = 0;
    const before = `id: 1\ndata: ${progress(1)}\n\n`;
    const bad = `data: {"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"search"},{"title":"nameless"}]}}\n\n`;
    const after = `data: ${JSON.stringify(toolsResult(9))}\n\n`;
    const r = await sse([Buffer.from(before + bad), Buffer.from(after)]);
    t.truthy(r.fail);
    t.not(r.fail!.code, 0);
    t.false(r.okClose, 'the transport must not end the stream with OK: Envoy would pass the rest unfiltered');
    t.true(r.out.startsWith(before));
    t.false(r.out.includes('nameless'));
    t.false(r.out.includes('delete_repo'), 'nothing after the failure passes');
    const error = JSON.parse(r.out.slice(before.length).split('data: ')[1]!);
    t.like(error, { jsonrpc: '2.0', id: 5, error: { code: -32603, data: { reason: 'malformed_list_result' } } });
    t.like(listed[0], { result: 'withheld', reason: 'malformed_list_result', form: 'sse' });
  },
);

test('an SSE stream that ends inside an event is closed with an error event instead of the partial bytes', async (t) => {
  const r = await sse([
    Buffer.from(`data: ${progress(1)}\n\ndata: {"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"delete_repo"}]}}`),
  ]);
  t.is(r.fail, undefined, 'at the end of the stream the error event closes it');
  t.false(r.out.includes('delete_repo'));
  t.like(JSON.parse(r.out.split('data: ').at(-1)!), { id: 5, error: { data: { reason: 'truncated_stream' } } });
});

test('a JSON list that cannot be read is replaced by a JSON-RPC error for each list call, sent as JSON', async (t) => {
  for (const [body, reason] of [
    ['{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"Tools":[]}}', 'duplicate_json_key'],
    ['{"jsonrpc":"2.0","id":"1","result":{"tools":[{"name":"delete_repo"}]}}', 'ambiguous_response'],
    ['{"jsonrpc":"2.0","id":1,"result":{"tools":"delete_repo"}}', 'malformed_list_result'],
    ['<html>oops</html>', 'invalid_json'],
    [Buffer.from([0x7b, 0xff, 0x7d]), 'invalid_json'],
  ] as const) {
    const { s } = await decided(rt, { key: bob.key, body: rpc('tools/list') });
    await s.onMessage(responseHeaders(200, [['content-type', 'application/json']]));
    const a = only(await s.onMessage(responseBody(body, true)));
    t.like(
      JSON.parse(mutatedBody(a)!),
      { jsonrpc: '2.0', id: 1, error: { code: -32603, data: { reason } } },
      String(body),
    );
    t.is(setHeaders(common(a)!.header_mutation)['content-type'], 'application/json');
  }
});

test('a compressed list response is replaced at once, without waiting for its body', async (t) => {
  const { s } = await decided(rt, { key: bob.key, body: rpc('tools/list') });
  const a = only(
    await s.onMessage(
      responseHeaders(200, [
        ['content-type', 'application/json'],
        ['content-encoding', 'gzip'],
        ['content-length', '40'],
      ]),
    ),
  );
  const c = common(a)!;
  t.is(c.status, 'CONTINUE_AND_REPLACE');
  t.is(a.mode_override, undefined);
  t.deepEqual(c.header_mutation!.remove_headers, ['content-length', 'content-encoding']);
  t.like(JSON.parse(mutatedBody(a)!), { id: 1, error: { data: { reason: 'encoded_response' } } });
});

test('an error page answering a list call passes untouched; a 2xx of another type is read as JSON and withheld', async (t) => {
  const { s } = await decided(rt, { key: bob.key, body: rpc('tools/list') });
  t.deepEqual(only(await s.onMessage(responseHeaders(502, [['content-type', 'text/plain']]))), {
    response_headers: { response: {} },
  });
  const other = await decided(rt, { key: bob.key, body: rpc('tools/list') });
  const head = only(await other.s.onMessage(responseHeaders(200, [['content-type', 'text/plain']])));
  t.truthy(head.mode_override);
  t.like(JSON.parse(mutatedBody(only(await other.s.onMessage(responseBody('search delete_repo', true))))!), {
    error: { data: { reason: 'invalid_json' } },
  });
});

test('a resumed stream (Last-Event-ID) is not resumed: the header is removed so no unmatched list result is replayed', async (t) => {
  const { decision } = await decided(rt, {
    key: bob.key,
    method: 'GET',
    headers: [
      ['last-event-id', 'stream-1:42'],
      ['accept', 'text/event-stream'],
    ],
  });
  t.true(common(only(decision))!.header_mutation!.remove_headers!.includes('last-event-id'));
});

test('Envoy sending the response before the request body, or the body in pieces, is refused with an immediate 500', async (t) => {
  const s = new ExtProcSession(rt);
  await s.onMessage(requestHeaders({ path: '/mcp/files', body: rpc('tools/list'), headers: [['x-api-key', bob.key]] }));
  const a = only(await s.onMessage(responseHeaders(200, [['content-type', 'application/json']])));
  t.is(a.immediate_response!.status.code, 500);
  t.is(JSON.parse(a.immediate_response!.body!.toString()).error, 'invalid_processing_request');

  const p = new ExtProcSession(rt);
  await p.onMessage(requestHeaders({ path: '/mcp/files', body: rpc('tools/list'), headers: [['x-api-key', bob.key]] }));
  const b = only(await p.onMessage(requestBody('{"jsonrpc":"2.0",', false)));
  t.is(b.immediate_response!.status.code, 500);
});

test.serial(
  'a list response body that never comes is reported as unfiltered (the filter lacks allow_mode_override)',
  async (t) => {
    listed.length = 0;
    const { s } = await decided(rt, { key: bob.key, body: rpc('tools/list') });
    await s.onMessage(responseHeaders(200, [['content-type', 'application/json']]));
    await s.onEnd();
    t.like(listed[0], { result: 'unfiltered' });
  },
);

test('a policy without a visibility rule still decides requests, and its lists are withheld', async (t) => {
  const dir = regoDir({ 'authz.rego': 'package mcp.authz\n\ndecision := {"allow": true}\n' });
  const r = await testRuntime(config({ policy: { rego: dir } }));
  t.teardown(() => r.close());
  const { s, decision } = await decided(r, { key: bob.key, body: rpc('tools/list') });
  t.truthy(common(only(decision))?.header_mutation, 'the request is allowed');
  await s.onMessage(responseHeaders(200, [['content-type', 'application/json']]));
  t.like(JSON.parse(mutatedBody(only(await s.onMessage(responseBody(JSON.stringify(toolsResult()), true))))!), {
    error: { data: { reason: 'visibility_unavailable' } },
  });
});

test('a visibility rule that answers anything but one boolean per item withholds the list', async (t) => {
  const dir = regoDir({ 'authz.rego': 'package mcp.authz\n\ndecision := {"allow": true}\n\nvisible := [true]\n' });
  const r = await testRuntime(config({ policy: { rego: dir } }));
  t.teardown(() => r.close());
  const { s } = await decided(r, { key: bob.key, body: rpc('tools/list') });
  await s.onMessage(responseHeaders(200, [['content-type', 'application/json']]));
  t.like(JSON.parse(mutatedBody(only(await s.onMessage(responseBody(JSON.stringify(toolsResult()), true))))!), {
    error: { data: { reason: 'visibility_error' } },
  });
});

test('dry-run hides nothing and counts what it would have hidden', async (t) => {
  const r = await testRuntime(config({ policy: { dryRun: true } }));
  const seen: ListTrace[] = [];
  r.observer = fanOut([r.observer, { decided: () => undefined, listed: (x) => seen.push(x) }]);
  t.teardown(() => r.close());
  const { s } = await decided(r, { key: bob.key, body: rpc('tools/list') });
  await s.onMessage(responseHeaders(200, [['content-type', 'application/json']]));
  const a = only(await s.onMessage(responseBody(JSON.stringify(toolsResult()), true)));
  t.deepEqual(JSON.parse(mutatedBody(a)!), toolsResult(), 'every item is shown');
  t.like(seen[0], { dryRun: true, result: 'filtered' });
  t.deepEqual(seen[0]!.methods, [{ method: 'tools/list', shown: 1, hidden: 2 }]);
});

test('messages are answered in the order they arrive, however long each takes', async (t) => {
  const { s } = await decided(rt, { key: bob.key, body: rpc('tools/list', 5) });
  await s.onMessage(responseHeaders(200, [['content-type', 'text/event-stream']]));
  const pieces = SSE.toString('utf8')
    .match(/[\s\S]{1,7}/g)!
    .map((p) => Buffer.from(p));
  const order: number[] = [];
  await Promise.all(pieces.map((p, i) => s.onMessage(responseBody(p, false)).then(() => order.push(i))));
  t.deepEqual(
    order,
    pieces.map((_, i) => i),
  );
});

test('filter settings that would leave requests undecided or limits shared are logged once, naming the setting', async (t) => {
  const lines: string[] = [];
  const r = await testRuntime(
    config(),
    pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) })),
  );
  t.teardown(() => r.close());
  for (let i = 0; i < 2; i++) {
    const s = new ExtProcSession(r);
    const denied = await s.onMessage({
      ...requestHeaders({ path: '/mcp/alice', headers: [['x-api-key', publicKey.key]] }),
      observability_mode: true,
    });
    t.truthy(only(denied).immediate_response);
    t.deepEqual(await s.onMessage(responseHeaders(200, [['content-type', 'application/json']])), { send: [] });
  }
  const errors = lines
    .map((l) => JSON.parse(l))
    .filter((l) => l.level === 50)
    .map((l) => l.msg as string);
  t.is(errors.filter((m) => m.includes('observability_mode')).length, 1);
  t.is(errors.filter((m) => m.includes('disable_immediate_response')).length, 1);
  t.is(errors.filter((m) => m.includes('request_attributes: [source.address]')).length, 1);
  const withSource = await testRuntime(
    config(),
    pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) })),
  );
  t.teardown(() => withSource.close());
  const before = lines.length;
  await new ExtProcSession(withSource).onMessage(
    requestHeaders({ path: '/mcp/files', headers: [['x-api-key', bob.key]], source: '10.0.0.7:5555' }),
  );
  t.false(lines.slice(before).some((l) => l.includes('source.address')));
});

test('the source.address attribute is the client address of the limits: one client locked out, another not', async (t) => {
  const r = await testRuntime(config({ rateLimit: { failedAuth: { maxAttempts: 2, windowSeconds: 60 } } }));
  t.teardown(() => r.close());
  const attempt = async (source: string, key: string) => {
    const s = new ExtProcSession(r);
    const body = rpc('tools/list');
    await s.onMessage(requestHeaders({ path: '/mcp/files', headers: [['x-api-key', key]], body, source }));
    return only(await s.onMessage(requestBody(body))).immediate_response?.status.code ?? 200;
  };
  const wrong = `mcp_${'z'.repeat(43)}`;
  for (let i = 0; i < 3; i++) await attempt('10.0.0.1:1000', wrong);
  t.is(await attempt('10.0.0.1:2000', bob.key), 429, 'the same address on another port is the same client');
  t.is(await attempt('10.0.0.2:1000', bob.key), 200);
});

test.serial(
  'a GET event stream is read as it streams: notifications and server requests pass byte for byte, a list result on it is withheld, an endpoint event ends it',
  async (t) => {
    listed.length = 0;
    // An ordinary Streamable HTTP GET stream: asked for STREAMED, passed through unchanged.
    const plain = await decided(rt, { key: bob.key, method: 'GET', headers: [['accept', 'text/event-stream']] });
    const head = only(
      await plain.s.onMessage(
        responseHeaders(200, [
          ['content-type', 'text/event-stream'],
          ['content-length', '100'],
        ]),
      ),
    );
    t.deepEqual(head.mode_override, { request_body_mode: 'BUFFERED', response_body_mode: 'STREAMED' });
    t.deepEqual(common(head)!.header_mutation!.remove_headers, ['content-length']);
    const events = `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' })}\n\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'roots/list' })}\n\n`;
    const passed = only(await plain.s.onMessage(responseBody(events, false)));
    t.is(Buffer.from(common(passed)!.body_mutation!.body).toString(), events);
    t.true(await plain.s.onEnd());
    t.is(listed.length, 0, 'a stream with nothing withheld is not reported');

    // A list result on a GET stream answers no request the service saw: withheld, the stream failed.
    const sneaky = await decided(rt, { key: bob.key, method: 'GET' });
    only(await sneaky.s.onMessage(responseHeaders(200, [['content-type', 'text/event-stream; charset=utf-8']])));
    const step = await sneaky.s.onMessage(responseBody(`data: ${JSON.stringify(toolsResult(3))}\n\n`, false));
    t.truthy(step.fail);
    t.false(
      Buffer.from(common(only(step))!.body_mutation!.body)
        .toString()
        .includes('delete_repo'),
    );
    t.like(listed.at(-1), { result: 'withheld', reason: 'unmatched_response' });

    // The 2024-11-05 HTTP+SSE transport: the endpoint event never leaves.
    const legacy = await decided(rt, { key: bob.key, method: 'GET', path: '/mcp/files/sse' });
    only(await legacy.s.onMessage(responseHeaders(200, [['content-type', 'text/event-stream']])));
    const end = await legacy.s.onMessage(
      responseBody('event: endpoint\ndata: /mcp/files/messages?sessionId=1\n\n', false),
    );
    t.regex(end.fail!.details, /legacy_sse_transport/);
    t.is(Buffer.from(common(only(end))!.body_mutation!.body).length, 0);
    t.like(listed.at(-1), { result: 'withheld', reason: 'legacy_sse_transport', methods: [] });

    // Other GET answers, and streams of POSTs without list calls, are not read.
    const json = await decided(rt, { key: bob.key, method: 'GET' });
    t.is(
      only(await json.s.onMessage(responseHeaders(405, [['content-type', 'application/json']]))).mode_override,
      undefined,
    );
    const call = await decided(rt, { key: bob.key, body: rpc('tools/call', 1, { name: 'search' }) });
    t.is(
      only(await call.s.onMessage(responseHeaders(200, [['content-type', 'text/event-stream']]))).mode_override,
      undefined,
    );
  },
);
