// The MCP request headers through the real gRPC Check (docs/mcp-protocol.md): what reaches
// the policy, and the JSON-RPC errors Envoy sends back, with the shipped policy and with a
// policy that decides on headerParams.
import test from 'ava';
import { keysFile, makeKey } from './helpers/auth-fixtures.js';
import { encodeHeaderValue } from './helpers/mcp-header-encoding.js';
import { regoDir } from './helpers/policy.js';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  headerValue,
  modernHeaders,
  modernRpc,
  rpc,
  startTestService,
  type TestService,
} from './helpers/service.js';

const searcher = makeKey({ id: 'searcher', userId: 'bob', permissions: ['tools:search', 'tools:résumé', 'prompts:*'] });
const asSearcher = { 'x-api-key': searcher.key };

let svc: TestService;
let regional: TestService;

test.before(async () => {
  svc = await startTestService(
    { apiKeys: { file: 'keys.yaml' }, endpoints: [{ name: 'public', match: { pathPrefix: '/mcp/public' } }] },
    { files: { 'keys.yaml': keysFile([searcher]) } },
  );
  // A policy that trusts a tool call only in one region, read from the Mcp-Param-Region header.
  const rego = regoDir({
    'p.rego': [
      'package mcp.authz',
      'default decision := {"allow": false, "status": 403, "error": "access_denied", "error_description": "not in us-west1"}',
      'decision := {"allow": true} if { input.mcp.calls[0].headerParams.region == "us-west1" }',
      'decision := {"allow": true} if { input.mcp.calls[0].method != "tools/call" }',
    ].join('\n'),
  });
  regional = await startTestService({
    policy: { rego },
    endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
  });
});
test.after.always(async () => {
  await svc?.stop();
  await regional?.stop();
});

async function decide(s: TestService, sample: Parameters<typeof checkRequest>[0]) {
  const res = await s.check(checkRequest(sample));
  return {
    allowed: res.ok_response !== undefined,
    status: res.ok_response ? 200 : deniedStatus(res),
    body: res.ok_response ? undefined : deniedBody(res),
    res,
  };
}

test('a Base64-encoded Mcp-Name is decoded before it is compared: the granted tool passes, another is a -32020 with the id', async (t) => {
  const body = modernRpc('tools/call', { name: 'résumé' }, 'call-7');
  const ok = await decide(svc, {
    path: '/mcp/public',
    headers: { ...asSearcher, ...modernHeaders('tools/call', encodeHeaderValue('résumé')) },
    body,
  });
  t.true(ok.allowed, JSON.stringify(ok.body));
  const other = await decide(svc, {
    path: '/mcp/public',
    headers: { ...asSearcher, ...modernHeaders('tools/call', encodeHeaderValue('resume')) },
    body,
  });
  t.is(other.status, 400);
  t.is(other.res.status?.message, 'mcp_header_mismatch');
  t.like(other.body, {
    jsonrpc: '2.0',
    id: 'call-7',
    error: {
      code: -32020,
      data: { header: 'Mcp-Name', headerValue: 'resume', bodyField: 'params.name', bodyValue: 'résumé' },
    },
  });
});

test('an encoded header name that decodes to a granted tool cannot smuggle another tool in the body', async (t) => {
  const r = await decide(svc, {
    path: '/mcp/public',
    headers: { ...asSearcher, ...modernHeaders('tools/call', '=?base64?c2VhcmNo?=') },
    body: modernRpc('tools/call', { name: 'delete_file' }),
  });
  t.is(r.status, 400);
  t.is(r.body!.error.code, -32020);
});

test('header names in any case are the same header; a value in another case is a different value', async (t) => {
  const body = modernRpc('tools/call', { name: 'search' });
  const mixed = await decide(svc, {
    path: '/mcp/public',
    headers: { ...asSearcher, 'MCP-Protocol-Version': '2026-07-28', 'MCP-METHOD': 'tools/call', 'mcp-NAME': 'search' },
    body,
  });
  t.true(mixed.allowed);
  const upper = await decide(svc, {
    path: '/mcp/public',
    headers: { ...asSearcher, ...modernHeaders('tools/call', 'SEARCH') },
    body,
  });
  t.is(upper.status, 400);
});

test('an invalid encoding is a 400 -32020 before the policy runs, whatever the grants', async (t) => {
  for (const name of ['=?base64?c2VhcmNo?=x', '=?base64?c2VhcmNo=?=', '=?base64?/w==?=']) {
    const r = await decide(svc, {
      path: '/mcp/public',
      headers: { ...asSearcher, ...modernHeaders('tools/call', name) },
      body: modernRpc('tools/call', { name: 'search' }),
    });
    t.is(r.status, 400, name);
    t.true(['mcp_header_mismatch', 'mcp_header_invalid'].includes(r.res.status!.message!), name);
    t.is(r.body!.error.code, -32020);
  }
});

test('a 2026-07-28 request without Mcp-Method, or whose MCP-Protocol-Version disagrees with its _meta, is -32020', async (t) => {
  const noMethod = await decide(svc, {
    path: '/mcp/public',
    headers: { ...asSearcher, 'mcp-protocol-version': '2026-07-28' },
    body: modernRpc('tools/list', {}, 4),
  });
  t.like(noMethod.body, { id: 4, error: { code: -32020, data: { header: 'Mcp-Method' } } });
  const older = await decide(svc, {
    path: '/mcp/public',
    headers: { ...asSearcher, ...modernHeaders('tools/list'), 'mcp-protocol-version': '2025-11-25' },
    body: modernRpc('tools/list', {}, 5),
  });
  t.like(older.body, {
    id: 5,
    error: { code: -32020, data: { header: 'MCP-Protocol-Version', headerValue: '2025-11-25' } },
  });
});

test('an unsupported protocol version is a 400 -32022 listing the supported versions; authentication still comes first', async (t) => {
  const r = await decide(svc, {
    path: '/mcp/public',
    headers: { ...asSearcher, 'mcp-protocol-version': '2099-01-01' },
    body: rpc('tools/list', undefined, 11),
  });
  t.is(r.status, 400);
  t.is(r.res.status?.message, 'unsupported_protocol_version');
  t.deepEqual(r.body, {
    jsonrpc: '2.0',
    id: 11,
    error: {
      code: -32022,
      message: r.body!.error.message,
      data: {
        supported: ['2026-07-28', '2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'],
        requested: '2099-01-01',
      },
    },
  });
  const anonymous = await decide(svc, {
    path: '/mcp/public',
    headers: { 'mcp-protocol-version': '2099-01-01' },
    body: rpc('tools/list'),
  });
  t.is(anonymous.status, 401, 'without a key it is the documented 401, not a protocol error');
  t.is(anonymous.body!.error, 'authentication_required');
});

test('older revisions are read as before: a 2025-06-18 request without Mcp-Method passes, a batch is denied whole', async (t) => {
  const old = await decide(svc, {
    path: '/mcp/public',
    headers: { ...asSearcher, 'mcp-protocol-version': '2025-06-18' },
    body: rpc('tools/call', { name: 'search' }),
  });
  t.true(old.allowed);
  const batch = await decide(svc, {
    path: '/mcp/public',
    headers: { ...asSearcher, 'mcp-protocol-version': '2025-03-26' },
    body: `[${rpc('tools/call', { name: 'search' }, 1)},${rpc('tools/call', { name: 'delete_file' }, 2)}]`,
  });
  t.is(batch.status, 403);
  const none = await decide(svc, {
    path: '/mcp/public',
    headers: asSearcher,
    body: rpc('tools/call', { name: 'search' }),
  });
  t.true(none.allowed, 'no MCP-Protocol-Version: read as 2025-03-26');
});

test('the policy sees Mcp-Param headers as headerParams only when they agree with the arguments', async (t) => {
  const body = (region: unknown) =>
    modernRpc('tools/call', { name: 'execute_sql', arguments: { region, query: 'SELECT 1' } });
  const headers = (region: string) => ({ ...modernHeaders('tools/call', 'execute_sql'), 'Mcp-Param-Region': region });
  t.true((await decide(regional, { path: '/mcp/open', headers: headers('us-west1'), body: body('us-west1') })).allowed);
  const lied = await decide(regional, { path: '/mcp/open', headers: headers('us-west1'), body: body('eu-central1') });
  t.is(lied.status, 400, 'a header that disagrees with the body never reaches the policy');
  t.like(lied.body, {
    error: {
      code: -32020,
      data: {
        header: 'Mcp-Param-region',
        headerValue: 'us-west1',
        bodyField: 'params.arguments.region',
        bodyValue: 'eu-central1',
      },
    },
  });
  const unchecked = await decide(regional, {
    path: '/mcp/open',
    headers: headers('us-west1'),
    body: modernRpc('tools/call', { name: 'execute_sql', arguments: { query: 'SELECT 1' } }),
  });
  t.is(unchecked.status, 403, 'a header with no argument to check it against is not shown to the policy');
  t.true(
    (await decide(regional, { path: '/mcp/open', headers: headers('=?base64?dXMtd2VzdDE=?='), body: body('us-west1') }))
      .allowed,
    'an encoded value is decoded first',
  );
});

test('without a body a 2026-07-28 tools/call is its headers: the policy sees every Mcp-Param, decoded', async (t) => {
  const headers = { ...modernHeaders('tools/call', 'execute_sql'), 'mcp-param-region': '=?base64?dXMtd2VzdDE=?=' };
  t.true((await decide(regional, { path: '/mcp/open', headers })).allowed);
  const elsewhere = await decide(regional, {
    path: '/mcp/open',
    headers: { ...headers, 'mcp-param-region': 'eu-central1' },
  });
  t.is(elsewhere.status, 403);
  const legacy = await decide(regional, {
    path: '/mcp/open',
    headers: { ...headers, 'mcp-protocol-version': '2025-11-25' },
  });
  t.is(legacy.status, 400, 'before 2026-07-28 headers alone are not trusted: a POST without a body is refused');
  t.is(legacy.body!.error, 'missing_body');
});

test("a JSON-RPC error keeps the deny's content type and gRPC code: Envoy sends it as any other 400", async (t) => {
  const r = await decide(svc, {
    path: '/mcp/public',
    headers: { ...asSearcher, ...modernHeaders('tools/call', 'x') },
    body: modernRpc('tools/call', { name: 'search' }),
  });
  t.is(headerValue(r.res.denied_response!.headers, 'content-type'), 'application/json');
  t.is(r.res.status?.code, 3);
});
