import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { clientConstructors } from '../src/envoy/protos.js';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  headerValue,
  rpc,
  startTestService,
  type TestService,
} from './helpers/service.js';

let svc: TestService;

test.before(async () => {
  svc = await startTestService({
    limits: { maxBodyBytes: 4096, maxHeaders: 40, maxHeaderBytes: 4096 },
    endpoints: [
      { name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } },
      { name: 'open-deep', match: { pathPrefix: '/mcp/open/deep' }, auth: { apiKey: false, oauth: false } },
      { name: 'keyed', match: { pathPrefix: '/mcp/keyed' }, auth: { apiKey: true, oauth: false } },
    ],
  });
});
test.after.always(async () => svc?.stop());

const call = rpc('tools/call', { name: 'search', arguments: { q: 'x' } });

test('an auth-off endpoint allows, as the anonymous principal', async (t) => {
  const res = await svc.check(
    checkRequest({ path: '/mcp/open', body: call, headers: { 'content-type': 'application/json' } }),
  );
  t.is(res.status?.code ?? 0, 0);
  t.truthy(res.ok_response);
  const set = res.ok_response!.headers!;
  t.is(headerValue(set, 'x-mcp-auth-method'), 'anonymous');
  t.false(set.find((h) => h.header.key === 'x-mcp-auth-method')!.append!.value);
});

test('identity headers a client sent itself are removed on allow', async (t) => {
  const res = await svc.check(
    checkRequest({ path: '/mcp/open', body: call, headers: { 'x-mcp-user-id': 'admin', 'x-mcp-principal': 'root' } }),
  );
  const removed = res.ok_response!.headers_to_remove!;
  t.true(removed.includes('x-mcp-user-id'));
  t.true(removed.includes('x-mcp-principal'));
  t.true(removed.includes('x-mcp-key-id'));
});

test('the longest path prefix wins and matching is on whole segments', async (t) => {
  const deep = await svc.check(checkRequest({ method: 'GET', path: '/mcp/open/deep/x' }));
  t.truthy(deep.ok_response);
  const notPrefix = await svc.check(checkRequest({ method: 'GET', path: '/mcp/openx' }));
  t.is(deniedStatus(notPrefix), 401, 'an unknown endpoint is 401 to an unauthenticated caller');
});

test('endpoints match on the normalized path: percent-decoding and "//" collapse', async (t) => {
  const res = await svc.check(checkRequest({ method: 'GET', path: '//mcp/%6Fpen//tools?x=1' }));
  t.truthy(res.ok_response);
});

test('an endpoint that needs authentication is denied until a credential is checked', async (t) => {
  const res = await svc.check(checkRequest({ path: '/mcp/keyed', body: call }));
  t.is(deniedStatus(res), 401);
  t.is(res.status?.code, 16);
});

test('header_map requests (encode_raw_headers) are read, duplicates kept', async (t) => {
  const ok = await svc.check(
    checkRequest({
      path: '/mcp/open',
      body: call,
      headerList: [
        ['content-type', 'application/json'],
        ['x-dup', 'a'],
        ['x-dup', 'b'],
      ],
    }),
  );
  t.truthy(ok.ok_response);
  const bad = await svc.check(
    checkRequest({
      path: '/mcp/open',
      body: rpc('tools/call', { name: 'a' }),
      headerList: [
        ['mcp-method', 'tools/call'],
        ['mcp-method', 'tools/call'],
      ],
    }),
  );
  t.is(deniedStatus(bad), 400);
  t.is(bad.status?.message, 'mcp_header_mismatch');
  t.is(deniedBody(bad).error.code, -32020, 'a repeated Mcp-Method is a JSON-RPC HeaderMismatch');
});

test('raw_body requests (pack_as_bytes) are read', async (t) => {
  const ok = await svc.check(checkRequest({ path: '/mcp/open', rawBody: Buffer.from(call) }));
  t.truthy(ok.ok_response);
  const bad = await svc.check(checkRequest({ path: '/mcp/open', rawBody: Buffer.from('{"jsonrpc":') }));
  t.is(deniedStatus(bad), 400);
  t.is(deniedBody(bad).error, 'invalid_json');
});

test('a batch is read element by element', async (t) => {
  const batch = `[${rpc('tools/list', undefined, 1)},${rpc('tools/call', { name: 'a' }, 2)}]`;
  const ok = await svc.check(checkRequest({ path: '/mcp/open', body: batch }));
  t.truthy(ok.ok_response);
  const bad = await svc.check(checkRequest({ path: '/mcp/open', body: `[${rpc('tools/list')}, 7]` }));
  t.is(deniedStatus(bad), 400);
  t.regex(deniedBody(bad).error_description, /Batch element 1/);
});

const badInputs: [string, Parameters<typeof checkRequest>[0], number, string][] = [
  ['invalid JSON', { path: '/mcp/open', body: '{not json' }, 400, 'invalid_json'],
  [
    'duplicate keys',
    {
      path: '/mcp/open',
      body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"delete"}}',
    },
    400,
    'duplicate_json_key',
  ],
  [
    'duplicate top-level keys',
    { path: '/mcp/open', body: '{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}' },
    400,
    'duplicate_json_key',
  ],
  [
    'a compressed body',
    { path: '/mcp/open', body: call, headers: { 'content-encoding': 'gzip' } },
    415,
    'unsupported_content_encoding',
  ],
  [
    'a body Envoy marked partial',
    { path: '/mcp/open', body: call, headers: { 'x-envoy-auth-partial-body': 'true' } },
    413,
    'body_truncated',
  ],
  [
    'content-length above the body length',
    { path: '/mcp/open', body: call, headers: { 'content-length': '999999' } },
    413,
    'body_truncated',
  ],
  [
    'a POST whose body Envoy did not send',
    { path: '/mcp/open', headers: { 'content-length': '120' } },
    413,
    'body_truncated',
  ],
  [
    'a body above limits.maxBodyBytes',
    { path: '/mcp/open', body: rpc('tools/call', { name: 'a', arguments: { x: 'y'.repeat(5000) } }) },
    413,
    'body_too_large',
  ],
  ['a ".." segment', { method: 'GET', path: '/mcp/open/../admin' }, 400, 'invalid_path'],
  ['an encoded "/"', { method: 'GET', path: '/mcp/open%2F..%2Fadmin' }, 400, 'invalid_path'],
  ['an encoded "\\"', { method: 'GET', path: '/mcp/open%5cadmin' }, 400, 'invalid_path'],
  ['an encoded NUL', { method: 'GET', path: '/mcp/open%00' }, 400, 'invalid_path'],
  [
    'a tools/call without a name',
    { path: '/mcp/open', body: rpc('tools/call', { arguments: {} }) },
    400,
    'invalid_jsonrpc',
  ],
  ['a body that is not JSON-RPC', { path: '/mcp/open', body: '{"hello":"world"}' }, 400, 'invalid_jsonrpc'],
];

for (const [what, sample, status, code] of badInputs) {
  test(`bad input is denied with ${status} ${code}: ${what}`, async (t) => {
    const res = await svc.check(checkRequest(sample));
    t.falsy(res.ok_response);
    t.is(deniedStatus(res), status);
    const body = deniedBody(res);
    t.is(body.error, code);
    t.is(typeof body.error_description, 'string');
    t.regex(body.timestamp, /^\d{4}-\d\d-\d\dT/);
    t.is(headerValue(res.denied_response!.headers, 'content-type'), 'application/json');
    t.not(res.status?.code ?? 0, 0);
  });
}

// MCP clients read these as JSON-RPC errors (docs/mcp-protocol.md): the code is the gRPC
// status message, the metric and the log reason; the body is the JSON-RPC error response.
const headerMismatches: [string, Parameters<typeof checkRequest>[0], string, number][] = [
  [
    'Mcp-Name that disagrees with the body',
    { path: '/mcp/open', body: call, headers: { 'mcp-method': 'tools/call', 'mcp-name': 'delete' } },
    'mcp_header_mismatch',
    -32020,
  ],
  [
    'Mcp-Method that disagrees with the body',
    { path: '/mcp/open', body: call, headers: { 'mcp-method': 'tools/list' } },
    'mcp_header_mismatch',
    -32020,
  ],
  [
    'an Mcp-Name that is not canonical Base64',
    { path: '/mcp/open', body: call, headers: { 'mcp-method': 'tools/call', 'mcp-name': '=?base64?YQ?=' } },
    'mcp_header_invalid',
    -32020,
  ],
  [
    'a protocol revision the service does not read',
    { path: '/mcp/open', body: call, headers: { 'mcp-protocol-version': '2099-01-01' } },
    'unsupported_protocol_version',
    -32022,
  ],
];

for (const [what, sample, code, rpcCode] of headerMismatches) {
  test(`bad MCP headers are a 400 JSON-RPC error ${rpcCode} with the request's id: ${what}`, async (t) => {
    const res = await svc.check(checkRequest(sample));
    t.is(deniedStatus(res), 400);
    t.is(res.status?.code, 3);
    t.is(res.status?.message, code);
    t.is(headerValue(res.denied_response!.headers, 'content-type'), 'application/json');
    const body = deniedBody(res);
    t.deepEqual(Object.keys(body).sort(), ['error', 'id', 'jsonrpc']);
    t.is(body.jsonrpc, '2.0');
    t.is(body.id, JSON.parse(call).id);
    t.is(body.error.code, rpcCode);
    t.regex(body.error.message, /^(Header mismatch|Unsupported protocol version)/);
  });
}

test('too many headers are 431', async (t) => {
  const headers: Record<string, string> = {};
  for (let i = 0; i < 50; i++) headers[`x-h${i}`] = 'v';
  const res = await svc.check(checkRequest({ method: 'GET', path: '/mcp/open', headers }));
  t.is(deniedStatus(res), 431);
  t.is(deniedBody(res).error, 'headers_too_large');
});

test('a CheckRequest without attributes.request.http is 400', async (t) => {
  const res = await svc.check({ attributes: { source: {} } });
  t.is(deniedStatus(res), 400);
  t.is(deniedBody(res).error, 'invalid_check_request');
  t.is(res.status?.code, 3);
  const empty = await svc.check({});
  t.is(deniedStatus(empty), 400);
});

test('the Mcp-Method header alone is trusted only from protocol 2026-07-28', async (t) => {
  const old = await svc.check(
    checkRequest({
      method: 'GET',
      path: '/mcp/open',
      headers: { 'mcp-method': 'tools/call', 'mcp-name': 'x', 'mcp-protocol-version': '2025-06-18' },
    }),
  );
  t.truthy(old.ok_response);
  const fresh = await svc.check(
    checkRequest({
      method: 'GET',
      path: '/mcp/open',
      headers: { 'mcp-method': 'tools/call', 'mcp-name': 'x', 'mcp-protocol-version': '2026-07-28' },
    }),
  );
  t.truthy(fresh.ok_response);
});

test('gRPC health is SERVING while the service runs', async (t) => {
  const { Health } = clientConstructors();
  const client = new Health(`127.0.0.1:${svc.grpcPort}`, grpc.credentials.createInsecure()) as any;
  const res = await new Promise<any>((resolve, reject) =>
    client.Check({ service: '' }, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))),
  );
  t.is(res.status, 'SERVING');
  const named = await new Promise<any>((resolve, reject) =>
    client.Check({ service: 'envoy.service.auth.v3.Authorization' }, (e: Error | null, r: unknown) =>
      e ? reject(e) : resolve(r),
    ),
  );
  t.is(named.status, 'SERVING');
  client.close();
});

test('/healthz, /readyz and /metrics answer on the HTTP port', async (t) => {
  t.is((await svc.http('/healthz')).status, 200);
  const ready = await svc.http('/readyz');
  t.is(ready.status, 200);
  const metrics = await svc.http('/metrics');
  t.is(metrics.status, 200);
  t.regex(metrics.text, /process_cpu_user_seconds_total/);
  t.is((await svc.http('/nope')).status, 404);
});

test('health turns NOT_SERVING when shutdown starts', async (t) => {
  const other = await startTestService({
    endpoints: [{ name: 'open', match: { pathPrefix: '/' }, auth: { apiKey: false, oauth: false } }],
  });
  const { Health } = clientConstructors();
  const client = new Health(`127.0.0.1:${other.grpcPort}`, grpc.credentials.createInsecure()) as any;
  const seen: string[] = [];
  const watch = client.Watch({ service: '' });
  const notServing = new Promise<void>((resolve) => {
    watch.on('data', (m: { status: string }) => {
      seen.push(m.status);
      if (m.status === 'NOT_SERVING') resolve();
    });
    watch.on('error', () => resolve());
  });
  await new Promise<void>((resolve) => watch.once('data', () => resolve()));
  const closing = other.stop();
  await notServing;
  await closing;
  client.close();
  t.deepEqual(seen, ['SERVING', 'NOT_SERVING']);
  t.is(other.health.current, 'NOT_SERVING');
});
