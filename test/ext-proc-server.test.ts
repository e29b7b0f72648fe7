// The ext_proc service of the real server, over real gRPC on the Check port: the same request
// gets the same decision through Check and through ext_proc — status, JSON body, headers for a
// deny; identity headers and removals for an allow — and both are counted and logged alike.
import test from 'ava';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { keysFile, mintKey } from './e2e/api-keys.js';
import {
  immediateStatus,
  processExchange,
  requestBody,
  requestHeaders,
  responseBody,
  responseHeaders,
  setHeaders,
  type Pairs,
} from './helpers/ext-proc.js';
import { sample } from './helpers/prometheus.js';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  rpc,
  startTestService,
  type CheckResponse,
  type TestService,
} from './helpers/service.js';

const bob = mintKey({ id: 'bob-cli', name: 'Bob', userId: 'bob', role: 'user', permissions: ['tools:search'] });
const publicKey = mintKey({ id: 'public', name: 'Public', role: 'user', permissions: ['*'] });

const PLANNER = 'spiffe://cluster.local/ns/agents/sa/planner';

let svc: TestService;
const lines: string[] = [];

test.before(async () => {
  svc = await startTestService(
    {
      apiKeys: { file: 'keys.yaml' },
      publicBaseUrl: 'https://mcp.example.com',
      oauth: { issuers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/certs' }] },
      endpoints: [
        {
          name: 'files',
          match: { pathPrefix: '/mcp/files' },
          auth: { apiKey: true, oauth: false, queryParamKeys: true },
          tools: ['search', 'delete_repo'],
        },
        { name: 'alice', match: { pathPrefix: '/mcp/alice' }, owner: 'alice', auth: { apiKey: true, oauth: false } },
        {
          name: 'tokens',
          match: { pathPrefix: '/mcp/tokens' },
          auth: { apiKey: true, oauth: true },
          resource: 'https://mcp.example.com/mcp/tokens',
        },
        {
          name: 'mesh',
          match: { pathPrefix: '/mcp/mesh' },
          auth: { apiKey: false, mtls: true },
          workloads: { [PLANNER]: ['tools:search'] },
        },
      ],
    },
    {
      files: { 'keys.yaml': keysFile([bob, publicKey]) },
      logger: pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) })),
    },
  );
});
test.after.always(async () => svc?.stop());

const address = () => `127.0.0.1:${svc.grpcPort}`;

interface Sample {
  path: string;
  method?: string;
  headers?: Pairs;
  body?: string;
}

/** The same request through ext_proc (request phase only). */
async function viaExtProc(s: Sample) {
  const messages = [
    requestHeaders({
      path: s.path,
      ...(s.method ? { method: s.method } : {}),
      headers: s.headers ?? [],
      ...(s.body !== undefined ? { body: s.body } : {}),
      source: '10.1.2.3:40000',
    }),
  ];
  if (s.body !== undefined) messages.push(requestBody(s.body));
  return processExchange(address(), messages);
}

/** The same request through Check, built as ext_authz would build it. */
function viaCheck(s: Sample): Promise<CheckResponse> {
  const headers = Object.fromEntries([
    ...(s.body !== undefined ? [['content-type', 'application/json']] : []),
    ...(s.headers ?? []),
    ['x-request-id', 'req-1'],
  ]);
  return svc.check(
    checkRequest({
      path: s.path,
      ...(s.method ? { method: s.method } : { method: s.body !== undefined ? 'POST' : 'GET' }),
      headers,
      ...(s.body !== undefined ? { body: s.body } : {}),
    }),
  );
}

const withoutTime = (b: Record<string, unknown>) => ({ ...b, timestamp: undefined });

const DENIES: [string, Sample, string][] = [
  ['no credential', { path: '/mcp/files', body: rpc('tools/list') }, 'authentication_required'],
  [
    'an unknown key',
    { path: '/mcp/files', body: rpc('tools/list'), headers: [['x-api-key', `mcp_${'x'.repeat(43)}`]] },
    'invalid_api_key',
  ],
  [
    'a public key on a private endpoint',
    { path: '/mcp/alice', body: rpc('tools/list'), headers: [['x-api-key', publicKey.key]] },
    'access_denied',
  ],
  [
    'a tool the key is not granted',
    { path: '/mcp/files', body: rpc('tools/call', { name: 'delete_repo' }), headers: [['x-api-key', bob.key]] },
    'access_denied',
  ],
  [
    'an OAuth endpoint without a token (challenge)',
    { path: '/mcp/tokens', body: rpc('tools/list') },
    'authentication_required',
  ],
  [
    'a body that is not JSON',
    { path: '/mcp/files', body: '{"jsonrpc":', headers: [['x-api-key', bob.key]] },
    'invalid_json',
  ],
  [
    'a path with dot segments',
    { path: '/mcp/files/../alice', body: rpc('ping'), headers: [['x-api-key', bob.key]] },
    'invalid_path',
  ],
];

for (const [what, s, code] of DENIES) {
  test(`${what}: the ext_proc immediate response is the Check deny`, async (t) => {
    const [{ answers, status }, check] = await Promise.all([viaExtProc(s), viaCheck(s)]);
    t.is(status.code, 0);
    const im = answers.at(-1)!.immediate_response;
    t.truthy(im, JSON.stringify(answers));
    t.is(deniedBody(check).error, code);
    t.is(immediateStatus(im), deniedStatus(check));
    t.deepEqual(withoutTime(JSON.parse(im.body.toString('utf8'))), withoutTime(deniedBody(check)));
    const checkHeaders = Object.fromEntries(
      (check.denied_response!.headers ?? []).map((h) => [h.header.key, h.header.value]),
    );
    t.deepEqual(setHeaders(im.headers), checkHeaders);
    t.is(im.details, `mcp_authz_${deniedBody(check).error}`);
  });
}

test('a discovery document is answered directly with status 200, as through Check', async (t) => {
  const s: Sample = { path: '/.well-known/oauth-protected-resource/mcp/tokens' };
  const [{ answers }, check] = await Promise.all([viaExtProc(s), viaCheck(s)]);
  const im = answers[0]!.immediate_response;
  t.is(immediateStatus(im), 200);
  t.deepEqual(JSON.parse(im.body.toString('utf8')), JSON.parse(check.denied_response!.body!));
});

test('an allow sets the identity headers and removes the same headers as the Check allow; a query key is cut from :path', async (t) => {
  const s: Sample = {
    path: `/mcp/files?q=1&api_key=${bob.key}`,
    body: rpc('tools/call', { name: 'search' }),
    headers: [
      ['x-mcp-user-id', 'forged'],
      ['x_mcp_principal', 'forged'],
    ],
  };
  const [{ answers, status }, check] = await Promise.all([viaExtProc(s), viaCheck(s)]);
  t.is(status.code, 0);
  const m = answers[1]!.request_body.response.header_mutation;
  const ok = check.ok_response!;
  const { ':path': path, ...identity } = setHeaders(m);
  t.deepEqual(identity, Object.fromEntries((ok.headers ?? []).map((h) => [h.header.key, h.header.value])));
  t.deepEqual([...m.remove_headers].sort(), [...(ok.headers_to_remove ?? [])].sort());
  t.deepEqual(ok.query_parameters_to_remove, ['api_key']);
  t.is(path, '/mcp/files?q=1');
});

test('a list response is filtered over real gRPC, and the stream, the decision and the list are counted and logged', async (t) => {
  const body = rpc('tools/list', undefined, 3);
  const { answers, status } = await processExchange(address(), [
    requestHeaders({ path: '/mcp/files', headers: [['x-api-key', bob.key]], body, source: '10.1.2.3:40000' }),
    requestBody(body),
    responseHeaders(200, [['content-type', 'application/json']]),
    responseBody(
      JSON.stringify({ jsonrpc: '2.0', id: 3, result: { tools: [{ name: 'search' }, { name: 'delete_repo' }] } }),
      true,
    ),
  ]);
  t.is(status.code, 0);
  t.is(answers[2]!.mode_override.response_body_mode, 'BUFFERED');
  t.deepEqual(JSON.parse(answers[3]!.response_body.response.body_mutation.body.toString('utf8')).result.tools, [
    { name: 'search' },
  ]);

  const m = (await svc.http('/metrics')).text;
  t.true(sample(m, 'mcp_authz_ext_proc_streams_total', { result: 'completed' })! >= 1);
  t.true(sample(m, 'mcp_authz_ext_proc_streams_total', { result: 'denied' })! >= 1);
  t.true(
    sample(m, 'mcp_authz_list_responses_total', { endpoint: 'files', method: 'tools/list', result: 'filtered' })! >= 1,
  );
  t.true(sample(m, 'mcp_authz_list_items_hidden_total', { endpoint: 'files', method: 'tools/list' })! >= 1);
  t.true(sample(m, 'mcp_authz_response_processing_duration_seconds_count', { form: 'json' })! >= 1);
  t.true(
    sample(m, 'mcp_authz_check_total', { endpoint: 'files', decision: 'allow', status: '200' })! >= 1,
    'the request decision is counted as a Check is',
  );

  const log = lines.map((l) => JSON.parse(l)).filter((l) => l.log === 'decision');
  const line = log.find(
    (l) => l.msg === 'decision' && l.endpoint === 'files' && l.mcp_method === 'tools/list' && l.allow === true,
  );
  t.truthy(line);
  t.is(
    line.client_address,
    '10.1.2.3',
    'the source.address attribute survives the wire (a protobuf Value decodes as stringValue)',
  );
  const list = log.find((l) => l.msg === 'list' && l.endpoint === 'files' && l.result === 'filtered');
  t.like(list, { principal: 'bob-cli', form: 'json', lists: [{ method: 'tools/list', shown: 1, hidden: 1 }] });
  t.false(
    lines.some((l) => l.includes(bob.key)),
    'the key is never logged',
  );
});

test('a list that fails mid-stream ends the gRPC stream with an error, not OK', async (t) => {
  const body = rpc('tools/list', undefined, 3);
  const { answers, status } = await processExchange(address(), [
    requestHeaders({ path: '/mcp/files', headers: [['x-api-key', bob.key]], body }),
    requestBody(body),
    responseHeaders(200, [['content-type', 'text/event-stream']]),
    responseBody('data: {"jsonrpc":"2.0","id":3,"result":{"tools":[{"nom":"x"}]}}\n\n', false),
  ]);
  t.not(status.code, 0);
  t.regex(status.details, /withheld \(malformed_list_result\)/);
  t.like(JSON.parse(answers[3]!.response_body.response.body_mutation.body.toString('utf8').split('data: ')[1]), {
    id: 3,
    error: { data: { reason: 'malformed_list_result' } },
  });
});

test('an mTLS workload is identified by the peer URI SAN Envoy sends as an attribute, never by a header', async (t) => {
  const call = (name: string, extra: { peerUriSan?: string; headers?: Pairs } = {}) => {
    const body = rpc('tools/call', { name });
    return processExchange(address(), [
      requestHeaders({ path: '/mcp/mesh', body, source: '10.9.9.9:4000', ...extra }),
      requestBody(body),
    ]);
  };
  const allowed = await call('search', { peerUriSan: PLANNER });
  t.is(allowed.status.code, 0);
  t.truthy(allowed.answers[1]?.request_body, 'the granted tool of the workload goes on upstream');
  t.falsy(allowed.answers.some((a) => a.immediate_response));
  const ungranted = await call('delete_repo', { peerUriSan: PLANNER });
  t.is(immediateStatus(ungranted.answers.find((a) => a.immediate_response)!.immediate_response), 403);
  const other = await call('search', { peerUriSan: 'spiffe://cluster.local/ns/agents/sa/other' });
  t.is(immediateStatus(other.answers.find((a) => a.immediate_response)!.immediate_response), 403);
  const none = await call('search', {
    headers: [
      ['x-forwarded-client-cert', `URI=${PLANNER}`],
      ['x-spiffe-id', PLANNER],
    ],
  });
  t.is(
    immediateStatus(none.answers.find((a) => a.immediate_response)!.immediate_response),
    401,
    'a header never names the workload',
  );
});

test('a list call whose id servers would echo as another value (1e400, read as Infinity and echoed as null) is refused as a JSON-RPC Invalid Request', async (t) => {
  for (const id of ['1e400', '-1e400', '9007199254740993', '1e300']) {
    const body = `{"jsonrpc":"2.0","id":${id},"method":"tools/list"}`;
    const { answers } = await viaExtProc({ path: '/mcp/files', body, headers: [['x-api-key', bob.key]] });
    const im = answers.at(-1)!.immediate_response;
    t.truthy(im, `${id}: ${JSON.stringify(answers)}`);
    t.is(immediateStatus(im), 400, id);
    t.like(JSON.parse(im.body.toString('utf8')), { jsonrpc: '2.0', error: { code: -32600 } }, id);
    t.is(im.details, 'mcp_authz_invalid_request_id');
    const check = await viaCheck({ path: '/mcp/files', body, headers: [['x-api-key', bob.key]] });
    t.is(deniedStatus(check), 400, `${id} through Check`);
  }
  // Ids every reader echoes as the same value still pass.
  for (const id of ['9007199254740991', '-0', '1.0', '1e2', '"1e400"']) {
    const body = `{"jsonrpc":"2.0","id":${id},"method":"tools/list"}`;
    const { answers } = await viaExtProc({ path: '/mcp/files', body, headers: [['x-api-key', bob.key]] });
    t.falsy(
      answers.some((a) => a.immediate_response),
      id,
    );
  }
});

test('a list result the filter cannot match to a list call of the request (a null id, another id) is withheld and counted by reason', async (t) => {
  const metric = async () =>
    sample((await svc.http('/metrics')).text, 'mcp_authz_list_withheld_total', {
      endpoint: 'files',
      reason: 'unmatched_response',
    }) ?? 0;
  const before = await metric();
  for (const echoed of ['null', '4', '"3 "']) {
    const body = rpc('tools/list', undefined, 3);
    const { answers, status } = await processExchange(address(), [
      requestHeaders({ path: '/mcp/files', headers: [['x-api-key', bob.key]], body }),
      requestBody(body),
      responseHeaders(200, [['content-type', 'application/json']]),
      responseBody(
        `{"jsonrpc":"2.0","id":${echoed},"result":{"tools":[{"name":"search"},{"name":"delete_repo"}]}}`,
        true,
      ),
    ]);
    t.is(status.code, 0);
    const sent = answers[3]!.response_body.response.body_mutation.body.toString('utf8');
    t.false(sent.includes('delete_repo'), echoed);
    t.like(
      JSON.parse(sent),
      {
        id: 3,
        error: { code: -32603, data: { reason: echoed === '"3 "' ? 'ambiguous_response' : 'unmatched_response' } },
      },
      echoed,
    );
  }
  t.is(await metric(), before + 2);
});
