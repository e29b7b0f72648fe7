// End to end through the Envoy-like ext_proc filter (demo/envoy-stand-in/ext-proc-proxy.ts, set up as
// docs/ext_proc.md recommends): the official MCP SDK client → the proxy → mcp-authz's
// ext_proc service (real gRPC) → the SDK's MCP server, answering with JSON on /mcp/json and
// with SSE streams elsewhere. What each caller lists is exactly what it may call.
import test from 'ava';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { connectedClient, jsonBody, type McpSession } from './e2e/mcp-client.js';
import { EXPOSED } from './e2e/mcp-server.js';
import { RECOMMENDED_EXT_PROC, startExtProcStack, type ExtProcStack } from './e2e/stack.js';
import { sample } from './helpers/prometheus.js';
import { waitFor } from './helpers/wait.js';

const searcher = mintKey({
  id: 'searcher',
  name: 'Search only',
  userId: 'sam',
  role: 'user',
  permissions: ['tools:search'],
});
const reader = mintKey({
  id: 'reader',
  name: 'Reader',
  userId: 'rita',
  role: 'user',
  permissions: ['tools:read_*', 'prompts:summarize', 'resources:file:///docs/*', 'resources:file:///README.md'],
});
const alice = mintKey({ id: 'alice', name: 'Alice', userId: 'alice', role: 'user', permissions: ['*'] });
const publicKey = mintKey({ id: 'public', name: 'Public connector', role: 'user', permissions: ['*'] });

let stack: ExtProcStack;

test.before(async () => {
  stack = await startExtProcStack({
    files: { 'keys.yaml': keysFile([searcher, reader, alice, publicKey]) },
    server: { jsonResponse: (path) => path.startsWith('/mcp/json') },
    config: () => ({
      apiKeys: { file: 'keys.yaml' },
      endpoints: [
        { name: 'sse', match: { pathPrefix: '/mcp/sse' }, auth: { apiKey: true, oauth: false, queryParamKeys: true } },
        { name: 'json', match: { pathPrefix: '/mcp/json' }, auth: { apiKey: true, oauth: false } },
        { name: 'alice', match: { pathPrefix: '/mcp/alice' }, owner: 'alice', auth: { apiKey: true, oauth: false } },
      ],
    }),
  });
});
test.after.always(async () => stack?.stop());

async function session(path: string, key: string): Promise<McpSession> {
  return connectedClient(stack.url(path), { headers: { 'X-API-Key': key } });
}

async function everything(s: McpSession) {
  return {
    tools: (await s.client.listTools()).tools.map((x) => x.name).sort(),
    prompts: (await s.client.listPrompts()).prompts.map((x) => x.name).sort(),
    resources: (await s.client.listResources()).resources.map((x) => x.uri).sort(),
    resourceTemplates: (await s.client.listResourceTemplates()).resourceTemplates.map((x) => x.uriTemplate).sort(),
  };
}

const sorted = (o: typeof EXPOSED) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, [...v].sort()]));

for (const path of ['/mcp/json', '/mcp/sse']) {
  const form = path === '/mcp/json' ? 'JSON' : 'SSE';

  test(`${form}: a key granted tools:search lists exactly search, and no prompt or resource`, async (t) => {
    const s = await session(path, searcher.key);
    t.teardown(() => s.close());
    t.deepEqual(await everything(s), { tools: ['search'], prompts: [], resources: [], resourceTemplates: [] });
    const lists = s.http.seen.filter((r) => r.method === 'POST' && r.status === 200);
    t.true(lists.length >= 4);
    for (const r of lists.slice(1))
      t.is(r.headers.get('cache-control')?.split(',')[0], 'private', 'a filtered list is never shared by a cache');
    if (form === 'JSON') t.is(lists[1]!.headers.get('content-type'), 'application/json');
    else t.is(lists[1]!.headers.get('content-type'), 'text/event-stream');
  });

  test(`${form}: a * principal lists everything the server exposes`, async (t) => {
    const s = await session(path, publicKey.key);
    t.teardown(() => s.close());
    t.deepEqual(await everything(s), sorted(EXPOSED));
  });

  test(`${form}: what a key lists is exactly what it may call`, async (t) => {
    const s = await session(path, reader.key);
    t.teardown(() => s.close());
    const seen = await everything(s);
    t.deepEqual(seen, {
      tools: ['read_file'],
      prompts: ['summarize'],
      resources: ['file:///README.md'],
      resourceTemplates: ['file:///docs/{name}'],
    });
    for (const tool of EXPOSED.tools.filter((x) => x !== 'wait_for_release')) {
      const call = s.client.callTool({ name: tool, arguments: tool === 'search' ? { query: 'x' } : { path: 'a.txt' } });
      if (seen.tools.includes(tool)) await t.notThrowsAsync(call, tool);
      else t.is(((await t.throwsAsync(call)) as StreamableHTTPError).code, 403, tool);
    }
    for (const prompt of EXPOSED.prompts) {
      const get = s.client.getPrompt({ name: prompt, arguments: prompt === 'summarize' ? { path: 'a' } : {} });
      if (seen.prompts.includes(prompt)) await t.notThrowsAsync(get, prompt);
      else t.is(((await t.throwsAsync(get)) as StreamableHTTPError).code, 403, prompt);
    }
    for (const uri of EXPOSED.resources) {
      const read = s.client.readResource({ uri });
      if (seen.resources.includes(uri)) await t.notThrowsAsync(read, uri);
      else t.is(((await t.throwsAsync(read)) as StreamableHTTPError).code, 403, uri);
    }
    await t.notThrowsAsync(s.client.readResource({ uri: 'file:///docs/guide.md' }), 'the listed template is readable');
  });
}

test.serial(
  'a public key on a private endpoint is denied before anything is listed; the server never sees the request',
  async (t) => {
    const before = stack.mcp.httpRequests.filter((r) => r.url.startsWith('/mcp/alice')).length;
    const err = await t.throwsAsync(session('/mcp/alice', publicKey.key));
    t.true(err instanceof StreamableHTTPError);
    t.is((err as StreamableHTTPError).code, 403);
    t.is(stack.mcp.httpRequests.filter((r) => r.url.startsWith('/mcp/alice')).length, before);
    const exchange = stack.proxy.exchanges.filter((x) => x.path.startsWith('/mcp/alice')).at(-1)!;
    t.false(exchange.forwarded);
    t.is(exchange.localReply?.details, 'mcp_authz_access_denied');
  },
);

test('the owner lists everything on her private endpoint', async (t) => {
  const s = await session('/mcp/alice', alice.key);
  t.teardown(() => s.close());
  t.deepEqual((await everything(s)).tools, [...EXPOSED.tools].sort());
});

test('an SSE list with a progress notification before it arrives intact, the notification first, only the result filtered', async (t) => {
  const s = await session('/mcp/sse', searcher.key);
  t.teardown(() => s.close());
  const progress: { progress: number; message?: string }[] = [];
  let released = false;
  const listing = s.client.listTools(
    {},
    {
      onprogress: (p) => {
        progress.push({ progress: p.progress, message: p.message });
        // The server holds the result until this release: the notification reached the client first.
        released = true;
        stack.mcp.release();
      },
    },
  );
  const { tools } = await listing;
  t.true(released);
  t.deepEqual(progress, [{ progress: 1, message: 'listing' }]);
  t.deepEqual(
    tools.map((x) => x.name),
    ['search'],
  );
  const exchange = stack.proxy.exchanges
    .filter((x) => x.path.startsWith('/mcp/sse') && x.sent.includes('response_body'))
    .at(-1)!;
  t.true(
    exchange.sent.filter((k) => k === 'response_body').length >= 2,
    'the stream reached the service in several chunks',
  );
  t.false(exchange.reset);
});

test('a denied tool call is still 403 through ext_proc, and the server sees who called, never the key', async (t) => {
  const s = await session('/mcp/sse', searcher.key);
  t.teardown(() => s.close());
  const err = await t.throwsAsync(s.client.callTool({ name: 'delete_file', arguments: { path: '/x' } }));
  t.is((err as StreamableHTTPError).code, 403);
  t.is(jsonBody(s.http.last(403)).error, 'access_denied');
  await s.client.callTool({ name: 'search', arguments: { query: 'ext_proc' } });
  const seen = stack.mcp.callsOf('search').find((c) => c.headers['x-mcp-key-id'] === 'searcher');
  t.truthy(seen);
  t.is(seen!.headers['x-mcp-user-id'], 'sam');
  t.is(seen!.headers['x-api-key'], undefined);
  for (const r of stack.mcp.httpRequests) {
    for (const v of Object.values(r.headers))
      t.false([searcher.key, reader.key, alice.key, publicKey.key].some((k) => v.includes(k)));
  }
});

test('a key in the query reaches mcp-authz but not the server: ext_proc rewrites :path without it', async (t) => {
  const url = stack.url(`/mcp/sse?api_key=${searcher.key}&tenant=acme`);
  const s = await connectedClient(url);
  t.teardown(() => s.close());
  t.deepEqual(
    (await s.client.listTools()).tools.map((x) => x.name),
    ['search'],
  );
  const req = stack.mcp.httpRequests.filter((r) => r.url.startsWith('/mcp/sse?')).at(-1)!;
  t.is(req.url, '/mcp/sse?tenant=acme');
});

test('the lists are counted per endpoint and method', async (t) => {
  const s = await session('/mcp/json', searcher.key);
  t.teardown(() => s.close());
  await s.client.listTools();
  const m = (await stack.svc.http('/metrics')).text;
  t.true(
    sample(m, 'mcp_authz_list_responses_total', { endpoint: 'json', method: 'tools/list', result: 'filtered' })! >= 1,
  );
  t.true(sample(m, 'mcp_authz_list_items_hidden_total', { endpoint: 'json', method: 'tools/list' })! >= 3);
  t.is(sample(m, 'mcp_authz_list_responses_total', { endpoint: 'json', method: 'tools/list', result: 'withheld' }), 0);
});

test('a filter without allow_mode_override never sends the list body: the list passes, and is counted and logged as unfiltered', async (t) => {
  const misconfigured = await startExtProcStack({
    files: { 'keys.yaml': keysFile([searcher]) },
    proxy: { ...RECOMMENDED_EXT_PROC, allowModeOverride: false },
    config: () => ({
      apiKeys: { file: 'keys.yaml' },
      endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true, oauth: false } }],
    }),
  });
  t.teardown(() => misconfigured.stop());
  const s = await connectedClient(misconfigured.url('/mcp/files'), { headers: { 'X-API-Key': searcher.key } });
  t.teardown(() => s.close());
  t.is(
    (await s.client.listTools()).tools.length,
    EXPOSED.tools.length,
    'Envoy passes the list unfiltered (docs/ext_proc.md warns about this)',
  );
  let m = '';
  await waitFor(
    'the unfiltered list to be counted',
    async () => {
      m = (await misconfigured.svc.http('/metrics')).text;
      return (
        sample(m, 'mcp_authz_list_responses_total', {
          endpoint: 'files',
          method: 'tools/list',
          result: 'unfiltered',
        }) === 1
      );
    },
    15_000,
    0,
  );
  t.is(sample(m, 'mcp_authz_list_responses_total', { endpoint: 'files', method: 'tools/list', result: 'filtered' }), 0);
});
