// End to end, auth-off endpoint (the first row of README "Authentication modes"): the SDK client talks to the real
// MCP server through the Envoy-like proxy and the real mcp-authz, as the anonymous principal.
import test from 'ava';
import { connectedClient } from './e2e/mcp-client.js';
import { startStack, type Stack } from './e2e/stack.js';

let stack: Stack;

test.before(async () => {
  stack = await startStack({
    config: () => ({
      endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
    }),
  });
});
test.after.always(async () => stack?.stop());

test('an SDK client initializes, lists tools and calls one through the proxy on an auth-off endpoint', async (t) => {
  const s = await connectedClient(stack.url('/mcp/open'));
  t.teardown(() => s.close());
  t.is(s.client.getServerVersion()?.name, 'e2e-files');

  const { tools } = await s.client.listTools();
  t.deepEqual(tools.map((x) => x.name).sort(), ['delete_file', 'read_file', 'search', 'wait_for_release']);

  const before = stack.mcp.callsOf('search').length;
  const res = await s.client.callTool({ name: 'search', arguments: { query: 'quarterly report' } });
  t.deepEqual(res.content, [{ type: 'text', text: 'results for quarterly report' }]);

  const calls = stack.mcp.callsOf('search');
  t.is(calls.length, before + 1, 'the handler ran exactly once');
  const seen = calls.at(-1)!;
  t.is(seen.headers['x-mcp-auth-method'], 'anonymous');
  t.is(seen.headers['x-mcp-user-id'], undefined);
  t.is(seen.headers['x-mcp-principal'], undefined);
  t.is(seen.url, '/mcp/open', 'the server is reached at the path the client used');
  t.regex(seen.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/, 'the request id the proxy generated is forwarded');
});

test('identity headers a client forges never reach the MCP server', async (t) => {
  const s = await connectedClient(stack.url('/mcp/open'), {
    headers: {
      'X-MCP-User-Id': 'admin',
      'X-MCP-Principal': 'root',
      'X-MCP-Key-Id': 'stolen',
      'X-MCP-Auth-Method': 'api_key',
    },
  });
  t.teardown(() => s.close());
  await s.client.callTool({ name: 'read_file', arguments: { path: '/etc/motd' } });

  const seen = stack.mcp.callsOf('read_file').at(-1)!;
  t.is(seen.headers['x-mcp-auth-method'], 'anonymous', 'replaced, not appended');
  t.is(seen.headers['x-mcp-user-id'], undefined);
  t.is(seen.headers['x-mcp-principal'], undefined);
  t.is(seen.headers['x-mcp-key-id'], undefined);
});

test('an SSE tool response is streamed through the proxy as it is produced, not buffered', async (t) => {
  t.timeout(
    15_000,
    'a buffering proxy would hold the progress notification until the tool finished, which waits for it',
  );
  const s = await connectedClient(stack.url('/mcp/open'));
  t.teardown(() => s.close());
  const progress: string[] = [];
  const result = await s.client.callTool({ name: 'wait_for_release', arguments: {} }, undefined, {
    onprogress: (p) => {
      progress.push(p.message ?? '');
      stack.mcp.release(); // the tool finishes only after the client saw its progress
    },
  });
  t.deepEqual(progress, ['started']);
  t.deepEqual(result.content, [{ type: 'text', text: 'released' }]);
  const post = s.http.seen.filter((r) => r.method === 'POST' && r.status === 200).at(-1)!;
  t.is(post.headers.get('content-type'), 'text/event-stream');
  t.is(stack.mcp.callsOf('wait_for_release').at(-1)!.headers['x-mcp-auth-method'], 'anonymous');
});

test('prompts and resources pass on an auth-off endpoint', async (t) => {
  const s = await connectedClient(stack.url('/mcp/open'));
  t.teardown(() => s.close());
  const prompt = await s.client.getPrompt({ name: 'summarize', arguments: { path: 'a.txt' } });
  t.deepEqual(prompt.messages[0]?.content, { type: 'text', text: 'Summarize a.txt' });
  const resource = await s.client.readResource({ uri: 'file:///README.md' });
  t.is((resource.contents[0] as { text?: string }).text, '# hello');
  t.is(stack.mcp.callsOf('summarize').at(-1)!.headers['x-mcp-auth-method'], 'anonymous');
  t.is(stack.mcp.callsOf('file:///README.md').at(-1)!.headers['x-mcp-auth-method'], 'anonymous');
});

test('a path no endpoint owns is refused by the service and never reaches the MCP server', async (t) => {
  const before = stack.mcp.httpRequests.length;
  const res = await fetch(stack.url('/mcp/elsewhere'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  });
  t.is(res.status, 401, 'unauthenticated callers cannot tell unknown endpoints from protected ones');
  t.is(res.headers.get('content-type'), 'application/json');
  t.is(stack.mcp.httpRequests.length, before);
});
