// MCP 2026-07-28 end to end: the v2 TypeScript SDK client, pinned to 2026-07-28 (the 1.x SDK
// the other e2e tests use speaks 2025-11-25 at most), through the Envoy-like proxy and the real
// mcp-authz to a real 2026-07-28 SDK server. A conforming client works — server/discover,
// Mcp-Method, Mcp-Name, Mcp-Param-Region all pass — and a client whose headers disagree with
// its body gets the -32020 HeaderMismatch the SDK reads as a ProtocolError; the server never
// sees that request.
import test from 'ava';
import { Client, ProtocolError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { startModernMcpServer, type ModernMcpServer } from './e2e/modern-mcp-server.js';
import { startStack, type Stack } from './e2e/stack.js';

const analyst = mintKey({
  id: 'analyst',
  name: 'Analyst',
  userId: 'ana',
  role: 'user',
  permissions: ['tools:execute_sql'],
});
let stack: Stack<ModernMcpServer>;

test.before(async () => {
  stack = await startStack({
    upstream: startModernMcpServer,
    files: { 'keys.yaml': keysFile([analyst]) },
    config: () => ({
      apiKeys: { file: 'keys.yaml' },
      endpoints: [{ name: 'sql', match: { pathPrefix: '/mcp/sql' }, auth: { apiKey: true, oauth: false } }],
    }),
  });
});
test.after.always(async () => stack?.stop());

/** A 2026-07-28 client; `rewrite` changes the headers of its requests as a non-conforming client would. */
async function modernClient(rewrite?: (h: Headers) => void): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(stack.url('/mcp/sql'), {
    requestInit: { headers: { 'X-API-Key': analyst.key } },
    fetch: async (url, init) => {
      const headers = new Headers(init?.headers);
      rewrite?.(headers);
      return fetch(url, { ...init, headers });
    },
  });
  const client = new Client(
    { name: 'e2e-2026', version: '1.0.0' },
    { versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  await client.connect(transport);
  return client;
}

test.serial(
  'a 2026-07-28 client discovers, lists and calls a tool whose argument is mirrored in Mcp-Param-Region; every header is checked and passes',
  async (t) => {
    const client = await modernClient();
    t.teardown(() => client.close());
    const { tools } = await client.listTools();
    t.true(tools.some((x) => x.name === 'execute_sql'));
    const res = await client.callTool({ name: 'execute_sql', arguments: { region: 'us-west1', query: 'SELECT 1' } });
    t.deepEqual(res.content, [{ type: 'text', text: 'us-west1: SELECT 1' }]);

    const call = stack.mcp.requests.find((r) => r.headers['mcp-method'] === 'tools/call')!;
    t.is(call.headers['mcp-protocol-version'], '2026-07-28');
    t.is(call.headers['mcp-name'], 'execute_sql');
    t.is(
      call.headers['mcp-param-region'],
      'us-west1',
      'the SDK mirrored the argument, and mcp-authz forwarded the header',
    );
    t.is(call.headers['x-mcp-key-id'], 'analyst');
    t.is(call.headers['x-api-key'], undefined);
    t.true(
      stack.mcp.requests.some((r) => r.headers['mcp-method'] === 'server/discover'),
      'server/discover needs endpoint access only',
    );
  },
);

test.serial("a tool the key is not granted is still the policy's 403, before the server", async (t) => {
  const client = await modernClient();
  t.teardown(() => client.close());
  await t.throwsAsync(client.callTool({ name: 'drop_table', arguments: { table: 'users' } }), {
    message: /403|access_denied/,
  });
  t.false(stack.mcp.requests.some((r) => r.body.includes('drop_table') && r.headers['mcp-method'] === 'tools/call'));
});

test.serial(
  'an Mcp-Param-Region header that disagrees with the argument is the -32020 HeaderMismatch the SDK reads, naming the pair',
  async (t) => {
    const before = stack.mcp.sqlCalls.length;
    const client = await modernClient((h) => {
      if (h.has('mcp-param-region')) h.set('mcp-param-region', 'eu-central1');
    });
    t.teardown(() => client.close());
    await client.listTools(); // the client learns which argument the tool mirrors (x-mcp-header)
    const err = await t.throwsAsync(
      client.callTool({ name: 'execute_sql', arguments: { region: 'us-west1', query: 'DELETE FROM t' } }),
    );
    t.true(err instanceof ProtocolError, String(err));
    t.is((err as ProtocolError).code, -32020);
    t.deepEqual((err as ProtocolError).data, {
      header: 'Mcp-Param-region',
      headerValue: 'eu-central1',
      bodyField: 'params.arguments.region',
      bodyValue: 'us-west1',
    });
    t.is(stack.mcp.sqlCalls.length, before, 'the tool never ran');
    t.false(
      stack.mcp.requests.some((r) => r.headers['mcp-param-region'] === 'eu-central1'),
      'the disagreeing request never reached the server',
    );
  },
);

test.serial(
  "an argument mirrored without its header passes mcp-authz, which cannot see the tool's schema, and the server refuses it",
  async (t) => {
    const before = stack.mcp.sqlCalls.length;
    const client = await modernClient((h) => h.delete('mcp-param-region'));
    t.teardown(() => client.close());
    await client.listTools();
    const err = await t.throwsAsync(
      client.callTool({ name: 'execute_sql', arguments: { region: 'us-west1', query: 'SELECT 2' } }),
    );
    t.is((err as ProtocolError).code, -32020, "the server's own HeaderMismatch: the header is missing");
    const reached = stack.mcp.requests.filter(
      (r) => r.headers['mcp-method'] === 'tools/call' && r.body.includes('SELECT 2'),
    );
    t.true(reached.length >= 1, 'forwarded: without the schema the gateway cannot know the header is required');
    t.is(stack.mcp.sqlCalls.length, before, 'the tool never ran');
  },
);

test.serial(
  'an Mcp-Name that names another tool than the body is -32020, matched by the SDK to its call by id; the server never sees it',
  async (t) => {
    const before = stack.mcp.sqlCalls.length;
    const client = await modernClient((h) => {
      if (h.get('mcp-method') === 'tools/call') h.set('mcp-name', 'read_only_query');
    });
    t.teardown(() => client.close());
    const err = await t.throwsAsync(
      client.callTool({ name: 'execute_sql', arguments: { region: 'us-west1', query: 'SELECT 1' } }),
    );
    t.true(err instanceof ProtocolError, String(err));
    t.is((err as ProtocolError).code, -32020);
    t.like((err as ProtocolError).data, {
      header: 'Mcp-Name',
      headerValue: 'read_only_query',
      bodyValue: 'execute_sql',
    });
    t.is(stack.mcp.sqlCalls.length, before);
  },
);

test.serial(
  'by hand: a request for a revision the gateway does not read is -32022 with the supported versions and the id',
  async (t) => {
    const res = await fetch(stack.url('/mcp/sql'), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'x-api-key': analyst.key,
        'mcp-protocol-version': '2099-01-01',
        'mcp-method': 'tools/list',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 'v',
        method: 'tools/list',
        params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } },
      }),
    });
    t.is(res.status, 400);
    t.deepEqual(await res.json(), {
      jsonrpc: '2.0',
      id: 'v',
      error: {
        code: -32022,
        message:
          'Unsupported protocol version "2099-01-01": this gateway reads MCP 2026-07-28, 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05.',
        data: {
          supported: ['2026-07-28', '2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'],
          requested: '2099-01-01',
        },
      },
    });
  },
);
