// Attacks that were once allowed or answered as server faults, tried again through the real
// gRPC Check with the shipped policy. Each test states the class it closes.
import test from 'ava';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  modernRpc,
  rpc,
  startTestService,
  type TestService,
} from './helpers/service.js';
import { keysFile, makeKey } from './helpers/auth-fixtures.js';
import { startJwksServer } from './helpers/jwks-server.js';

const searcher = makeKey({
  id: 'searcher',
  userId: 'bob',
  permissions: ['tools:search', 'resources:file:///public/*'],
});
const alice = makeKey({ id: 'alice', userId: 'alice', permissions: ['*'] });

let svc: TestService;

test.before(async () => {
  svc = await startTestService(
    {
      apiKeys: { file: 'keys.yaml' },
      endpoints: [
        { name: 'public', match: { pathPrefix: '/mcp/public' } },
        { name: 'alice', match: { pathPrefix: '/mcp/alice' }, owner: 'alice' },
      ],
    },
    { files: { 'keys.yaml': keysFile([searcher, alice]) } },
  );
});
test.after.always(async () => svc?.stop());

const asSearcher = { 'x-api-key': searcher.key };

async function decide(sample: Parameters<typeof checkRequest>[0]) {
  const res = await svc.check(checkRequest(sample));
  return {
    allowed: res.ok_response !== undefined,
    status: res.ok_response ? 200 : deniedStatus(res),
    body: res.ok_response ? undefined : deniedBody(res),
    res,
  };
}

test('resources/read URIs cannot escape a folder grant with dot segments, plain or encoded', async (t) => {
  const inside = await decide({
    path: '/mcp/public',
    headers: asSearcher,
    body: rpc('resources/read', { uri: 'file:///public/readme.md' }),
  });
  t.true(inside.allowed, 'a URI inside the granted folder is allowed');
  for (const uri of [
    'file:///public/../secret/key.pem',
    'file:///public/%2e%2e/secret/key.pem',
    'file:///public/.%2E/secret/key.pem',
  ]) {
    const r = await decide({ path: '/mcp/public', headers: asSearcher, body: rpc('resources/read', { uri }) });
    t.false(r.allowed, uri);
    t.is(r.status, 403, `${uri} is normalized to file:///secret/key.pem and denied by the policy`);
    t.regex(r.body!.error_description, /resources:file:\/\/\/secret\/key\.pem/);
  }
  for (const uri of [
    'file:///public/%2f..%2fsecret',
    'file:///public//../secret',
    'file:///public/..;/secret',
    'FILE:///public\\..\\secret',
  ]) {
    const r = await decide({ path: '/mcp/public', headers: asSearcher, body: rpc('resources/read', { uri }) });
    t.is(r.status, 400, uri);
    t.is(r.body!.error, 'invalid_resource_uri', uri);
  }
});

test('a header-only named call without its name is 400, and never reaches the policy unnamed', async (t) => {
  const headers = { ...asSearcher, 'mcp-method': 'tools/call', 'mcp-protocol-version': '2026-07-28' };
  const r = await decide({ path: '/mcp/public', headers });
  t.is(r.status, 400);
  t.is(r.res.status?.message, 'mcp_header_mismatch');
  t.is(r.body!.error.code, -32020, 'a JSON-RPC HeaderMismatch, without an id: there is no body to take it from');
  t.false('id' in r.body!);
  t.regex(r.body!.error.message, /needs the Mcp-Name header/);
  const named = await decide({ path: '/mcp/public', headers: { ...headers, 'mcp-name': 'search' } });
  t.true(named.allowed, 'with Mcp-Name: search it is the granted tool');
  const other = await decide({ path: '/mcp/public', headers: { ...headers, 'mcp-name': 'delete_file' } });
  t.is(other.status, 403);
});

test('Mcp-Name is compared with params.uri for resources/read and params.name for tools/call', async (t) => {
  const base = { ...asSearcher, 'mcp-protocol-version': '2026-07-28' };
  const read = modernRpc('resources/read', { uri: 'file:///secret/key.pem', name: 'file:///public/x' });
  const r = await decide({
    path: '/mcp/public',
    headers: { ...base, 'mcp-method': 'resources/read', 'mcp-name': 'file:///public/x' },
    body: read,
  });
  t.is(r.status, 400, 'Mcp-Name matching params.name of a resources/read is a mismatch');
  t.is(r.res.status?.message, 'mcp_header_mismatch');
  t.is(r.body!.error.code, -32020);
  t.is(r.body!.error.data.header, 'Mcp-Name');
  const ok = await decide({
    path: '/mcp/public',
    headers: { ...base, 'mcp-method': 'resources/read', 'mcp-name': 'file:///public/x' },
    body: modernRpc('resources/read', { uri: 'file:///public/x' }),
  });
  t.true(ok.allowed);
  const tool = await decide({
    path: '/mcp/public',
    headers: { ...base, 'mcp-method': 'tools/call', 'mcp-name': 'search' },
    body: modernRpc('tools/call', { name: 'delete_file', uri: 'search' }),
  });
  t.is(tool.status, 400);
  t.is(tool.body!.error.data.bodyValue, 'delete_file', 'the offending pair is in data');
});

test('a path with a ";" dot segment does not reach another endpoint', async (t) => {
  const r = await decide({
    method: 'POST',
    path: '/mcp/public/..;/alice',
    headers: asSearcher,
    body: rpc('tools/call', { name: 'search' }),
  });
  t.is(r.status, 400);
  t.is(r.body!.error, 'invalid_path');
});

test('a body that was declared but not sent is denied whatever the method, with a message for the operator', async (t) => {
  const call = rpc('tools/call', { name: 'delete_file' });
  for (const [method, headers] of [
    ['PUT', { 'content-length': '120' }],
    ['PATCH', { 'content-length': '7' }],
    ['POST', { 'transfer-encoding': 'chunked' }],
    ['PUT', { 'transfer-encoding': 'chunked' }],
    ['GET', { 'content-length': String(call.length) }],
  ] as const) {
    const r = await decide({ method, path: '/mcp/public', headers: { ...asSearcher, ...headers } });
    t.false(r.allowed, `${method} ${JSON.stringify(headers)}`);
    t.is(r.status, 413);
    t.is(r.body!.error, 'body_truncated');
    t.regex(r.body!.error_description, /with_request_body/);
  }
  const noBody = await decide({ method: 'POST', path: '/mcp/public', headers: asSearcher });
  t.is(noBody.status, 400, 'a POST whose body never arrived, with nothing declared (HTTP/2), is refused');
  t.is(noBody.body!.error, 'missing_body');
  t.regex(noBody.body!.error_description, /with_request_body/);
  const get = await decide({ method: 'GET', path: '/mcp/public', headers: asSearcher });
  t.true(get.allowed, 'the SSE GET carries no body and needs none');
  const sent = await decide({
    method: 'PUT',
    path: '/mcp/public',
    headers: asSearcher,
    body: rpc('tools/call', { name: 'search' }),
  });
  t.true(sent.allowed, 'a body that arrived whole is read, whatever the method');
});

test('a CheckRequest far above maxBodyBytes is the 413 deny, never a gRPC error that failure_mode_allow could turn into an allow', async (t) => {
  const big = Buffer.alloc(9 * 1024 * 1024, 0x20);
  const r = await decide({ path: '/mcp/public', headers: asSearcher, rawBody: big });
  t.is(r.status, 413);
  t.is(r.body!.error, 'body_too_large');
  t.is(r.res.status?.code, 3, 'a deny with INVALID_ARGUMENT in the CheckResponse, not a failed call');
});

test('beyond maxBodyBytes + 16 MiB the call fails as RESOURCE_EXHAUSTED, the documented bound', async (t) => {
  const small = await startTestService({
    limits: { maxBodyBytes: 1024 },
    endpoints: [{ name: 'open', match: { pathPrefix: '/' }, auth: { apiKey: false, oauth: false } }],
  });
  t.teardown(() => small.stop());
  const justUnder = await small.check(
    checkRequest({ path: '/', rawBody: Buffer.alloc(16 * 1024 * 1024 - 4096, 0x20) }),
  );
  t.is(deniedStatus(justUnder), 413);
  const err = await t.throwsAsync(
    small.check(checkRequest({ path: '/', rawBody: Buffer.alloc(16 * 1024 * 1024 + 2048, 0x20) })),
  );
  t.is((err as { code?: number }).code, 8);
});

test('identity and credential headers spelled with underscores are removed, as CGI and WSGI servers read them as the dashed names', async (t) => {
  const r = await decide({
    path: '/mcp/public',
    headers: {
      ...asSearcher,
      x_mcp_user_id: 'alice',
      'x-mcp_principal': 'root',
      x_mcp_auth_method: 'oauth',
      x_api_key: 'mcp_forged',
      x_other_header: 'kept',
    },
    body: rpc('tools/call', { name: 'search' }),
  });
  t.true(r.allowed);
  const removed = r.res.ok_response!.headers_to_remove!;
  for (const name of ['x_mcp_user_id', 'x-mcp_principal', 'x_mcp_auth_method', 'x_api_key', 'x-api-key'])
    t.true(removed.includes(name), name);
  t.false(removed.includes('x_other_header'));
});

test('with two OAuth issuers, user "alice" at the second IdP does not own alice\'s private endpoint', async (t) => {
  const home = await startJwksServer({ discovery: 'none' });
  const partner = await startJwksServer({ discovery: 'none' });
  const resource = 'https://mcp.example.com/mcp/alice';
  const two = await startTestService({
    oauth: {
      issuers: [
        { issuer: home.issuer, jwksUri: home.jwksUri },
        { issuer: partner.issuer, jwksUri: partner.jwksUri },
      ],
    },
    endpoints: [
      {
        name: 'alice',
        match: { pathPrefix: '/mcp/alice' },
        owner: 'alice',
        auth: { apiKey: false, oauth: true },
        resource,
      },
    ],
  });
  t.teardown(async () => {
    await two.stop();
    await Promise.all([home.stop(), partner.stop()]);
  });
  const body = rpc('tools/call', { name: 'search' });
  const impostor = await two.check(
    checkRequest({
      path: '/mcp/alice',
      body,
      headers: {
        authorization: `Bearer ${await partner.sign({ sub: 'alice', aud: resource, scope: 'tools:search' })}`,
      },
    }),
  );
  t.is(deniedStatus(impostor), 403, 'by default with several issuers, user ids are namespaced by issuer');
  t.regex(deniedBody(impostor).error_description, /only access endpoints you own/);
  const homeAlice = await two.check(
    checkRequest({
      path: '/mcp/alice',
      body,
      headers: { authorization: `Bearer ${await home.sign({ sub: 'alice', aud: resource, scope: 'tools:search' })}` },
    }),
  );
  t.is(deniedStatus(homeAlice), 403, 'namespacing applies to every issuer unless one is declared shared');

  const shared = await startTestService({
    oauth: {
      issuers: [
        { issuer: home.issuer, jwksUri: home.jwksUri, userIds: 'shared' },
        { issuer: partner.issuer, jwksUri: partner.jwksUri },
      ],
    },
    endpoints: [
      {
        name: 'alice',
        match: { pathPrefix: '/mcp/alice' },
        owner: 'alice',
        auth: { apiKey: false, oauth: true },
        resource,
      },
      {
        name: 'partner-alice',
        match: { pathPrefix: '/mcp/p-alice' },
        owner: `${partner.issuer}#alice`,
        auth: { apiKey: false, oauth: true },
        resource: 'https://mcp.example.com/mcp/p-alice',
      },
    ],
  });
  t.teardown(() => shared.stop());
  const ok = await shared.check(
    checkRequest({
      path: '/mcp/alice',
      body,
      headers: { authorization: `Bearer ${await home.sign({ sub: 'alice', aud: resource, scope: 'tools:search' })}` },
    }),
  );
  t.truthy(ok.ok_response, 'the issuer declared shared owns plain user ids');
  const stillNot = await shared.check(
    checkRequest({
      path: '/mcp/alice',
      body,
      headers: {
        authorization: `Bearer ${await partner.sign({ sub: 'alice', aud: resource, scope: 'tools:search' })}`,
      },
    }),
  );
  t.is(deniedStatus(stillNot), 403);
  const own = await shared.check(
    checkRequest({
      path: '/mcp/p-alice',
      body,
      headers: {
        authorization: `Bearer ${await partner.sign({ sub: 'alice', aud: 'https://mcp.example.com/mcp/p-alice', scope: 'tools:search' })}`,
      },
    }),
  );
  t.truthy(own.ok_response, 'a namespaced user owns an endpoint whose owner names the namespaced id');
});

test('a token issued in the future is 401', async (t) => {
  const idp = await startJwksServer({ discovery: 'none' });
  const resource = 'https://mcp.example.com/mcp/o';
  const one = await startTestService({
    oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
    endpoints: [{ name: 'o', match: { pathPrefix: '/mcp/o' }, auth: { apiKey: false, oauth: true }, resource }],
  });
  t.teardown(async () => {
    await one.stop();
    await idp.stop();
  });
  const token = await idp.sign({
    sub: 'alice',
    aud: resource,
    scope: 'tools:search',
    iat: Math.floor(Date.now() / 1000) + 86_400,
  });
  const r = await one.check(
    checkRequest({
      path: '/mcp/o',
      body: rpc('tools/call', { name: 'search' }),
      headers: { authorization: `Bearer ${token}` },
    }),
  );
  t.is(deniedStatus(r), 401);
  t.is(deniedBody(r).error, 'invalid_token');
});
