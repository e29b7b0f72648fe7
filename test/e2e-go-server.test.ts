// End to end with a Go MCP server (mcp-go, stateless Streamable HTTP) behind the Envoy-like
// proxy and the real mcp-authz. Go's encoding/json reads "Name" as "name", and the last of
// two such keys wins: these bodies show the policy one tool and would run another.
import test from 'ava';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { startGoMcpServer, type GoMcpServer } from './e2e/go-mcp-server.js';
import { startStack, type Stack } from './e2e/stack.js';

const searcher = mintKey({ id: 'searcher', name: 'Search only', role: 'user', permissions: ['tools:search'] });

let stack: Stack<GoMcpServer>;

test.before(async () => {
  stack = await startStack({
    upstream: startGoMcpServer,
    files: { 'keys.yaml': keysFile([searcher]) },
    proxy: { packAsBytes: true },
    config: () => ({
      apiKeys: { file: 'keys.yaml' },
      endpoints: [{ name: 'go', match: { pathPrefix: '/mcp/go' }, auth: { apiKey: true, oauth: false } }],
    }),
  });
});
test.after.always(async () => stack?.stop());

async function post(body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(stack.url('/mcp/go'), {
    method: 'POST',
    headers: {
      'x-api-key': searcher.key,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body,
  });
  return { status: res.status, text: await res.text() };
}

const call = (params: string, envelope = '"method":"tools/call"') =>
  `{"jsonrpc":"2.0","id":7,${envelope},"params":${params}}`;

test.serial('a granted tool runs on the Go server through the proxy', async (t) => {
  const before = (await stack.mcp.toolsRun()).filter((x) => x === 'search').length;
  const res = await post(call('{"name":"search","arguments":{"query":"budget"}}'));
  t.is(res.status, 200, res.text);
  t.regex(res.text, /search ran/);
  t.is((await stack.mcp.toolsRun()).filter((x) => x === 'search').length, before + 1);
});

test.serial('a tool the key is not granted is 403 and does not run', async (t) => {
  const res = await post(call('{"name":"delete_file","arguments":{"path":"/important"}}'));
  t.is(res.status, 403);
  t.false((await stack.mcp.toolsRun()).includes('delete_file'));
});

const attacks: [string, string][] = [
  ['"Name" beside "name"', call('{"name":"search","Name":"delete_file","arguments":{"path":"/important"}}')],
  ['"NAME" beside "name"', call('{"name":"search","NAME":"delete_file","arguments":{"path":"/important"}}')],
  ['"nAme" beside "name"', call('{"name":"search","nAme":"delete_file","arguments":{"path":"/important"}}')],
  [
    '"Method" beside "method"',
    call('{"name":"delete_file","arguments":{"path":"/important"}}', '"method":"tools/list","Method":"tools/call"'),
  ],
  [
    '"paramſ" beside "params"',
    `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search"},"paramſ":{"name":"delete_file","arguments":{"path":"/important"}}}`,
  ],
];

for (const [what, body] of attacks) {
  test.serial(`a key granted only tools:search never runs delete_file on the Go server with ${what}`, async (t) => {
    const res = await post(body);
    t.is(res.status, 400, res.text);
    t.is(JSON.parse(res.text).error, 'ambiguous_json_key');
    t.false((await stack.mcp.toolsRun()).includes('delete_file'), 'delete_file never ran');
  });
}
