// End to end: a hidden prompt's or template's own handlers. The SDK client completes arguments
// and subscribes through the Envoy-like proxy and the real mcp-authz to a real MCP server
// (the SDK's McpServer): a key not granted the prompt, template or resource is refused before
// the server's completion or subscription handler runs — so a completion can neither confirm
// that a hidden prompt exists nor return its values — and a key granted it gets the values.
import test from 'ava';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { connectedClient, jsonBody } from './e2e/mcp-client.js';
import { startMcpServer, type TestMcpServer } from './e2e/mcp-server.js';
import { startStack, type Stack } from './e2e/stack.js';

const agent = mintKey({
  id: 'agent',
  name: 'Agent',
  userId: 'agent',
  role: 'user',
  permissions: ['prompts:summarize', 'resources:file:///docs/*', 'resources:file:///README.md'],
});
const hr = mintKey({
  id: 'hr',
  name: 'HR',
  userId: 'hr',
  role: 'user',
  permissions: ['prompts:payroll_lookup', 'resources:file:///hr/*'],
});

let stack: Stack<TestMcpServer>;

test.before(async () => {
  stack = await startStack({
    upstream: () => startMcpServer({ completions: true }),
    files: { 'keys.yaml': keysFile([agent, hr]) },
    config: () => ({
      apiKeys: { file: 'keys.yaml' },
      endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true, oauth: false } }],
    }),
  });
});
test.after.always(async () => stack?.stop());

const completionsOf = (item: string) => stack.mcp.calls.filter((c) => c.kind === 'completion' && c.name === item);
const subscriptionsTo = (uri: string) => stack.mcp.calls.filter((c) => c.kind === 'subscription' && c.name === uri);

async function refused(t: any, p: Promise<unknown>): Promise<void> {
  const err = await t.throwsAsync(p);
  t.true(err instanceof StreamableHTTPError, String(err));
  t.is((err as StreamableHTTPError).code, 403);
}

test('completing an argument of a prompt the key is not granted is 403 before the server completes it; the granted key gets the values', async (t) => {
  const s = await connectedClient(stack.url('/mcp/files'), { headers: { 'X-API-Key': agent.key } });
  t.teardown(() => s.close());
  const ask = () =>
    s.client.complete({
      ref: { type: 'ref/prompt', name: 'payroll_lookup' },
      argument: { name: 'employee', value: 'al' },
    });
  await refused(t, ask());
  t.is(jsonBody(s.http.last(403)).error_description, 'This API key is not granted prompts:payroll_lookup');
  t.deepEqual(
    completionsOf('payroll_lookup'),
    [],
    'the completion handler never ran: nothing confirms the prompt exists',
  );

  const h = await connectedClient(stack.url('/mcp/files'), { headers: { 'X-API-Key': hr.key } });
  t.teardown(() => h.close());
  const { completion } = await h.client.complete({
    ref: { type: 'ref/prompt', name: 'payroll_lookup' },
    argument: { name: 'employee', value: 'al' },
  });
  t.deepEqual(completion.values, ['alice', 'alex']);
  t.is(completionsOf('payroll_lookup').length, 1);
});

test('completing an argument of a template outside the grant is 403; a glob covering the template grants it', async (t) => {
  const s = await connectedClient(stack.url('/mcp/files'), { headers: { 'X-API-Key': agent.key } });
  t.teardown(() => s.close());
  await refused(
    t,
    s.client.complete({
      ref: { type: 'ref/resource', uri: 'file:///hr/{employee}' },
      argument: { name: 'employee', value: 'b' },
    }),
  );
  t.is(jsonBody(s.http.last(403)).error_description, 'This API key is not granted resources:file:///hr/{employee}');
  t.deepEqual(completionsOf('file:///hr/{employee}'), []);

  const h = await connectedClient(stack.url('/mcp/files'), { headers: { 'X-API-Key': hr.key } });
  t.teardown(() => h.close());
  const { completion } = await h.client.complete({
    ref: { type: 'ref/resource', uri: 'file:///hr/{employee}' },
    argument: { name: 'employee', value: 'b' },
  });
  t.deepEqual(completion.values, ['bob']);
});

test('subscribing to a resource the key may not read is 403 before the server subscribes; a readable one is subscribed', async (t) => {
  const s = await connectedClient(stack.url('/mcp/files'), { headers: { 'X-API-Key': agent.key } });
  t.teardown(() => s.close());
  await refused(t, s.client.subscribeResource({ uri: 'file:///secrets/keys.txt' }));
  await refused(t, s.client.unsubscribeResource({ uri: 'file:///secrets/keys.txt' }));
  t.deepEqual(subscriptionsTo('file:///secrets/keys.txt'), [], 'the subscription handler never ran');
  await s.client.subscribeResource({ uri: 'file:///README.md' });
  t.is(subscriptionsTo('file:///README.md').length, 1);
  t.is(subscriptionsTo('file:///README.md')[0]!.headers['x-mcp-key-id'], 'agent');
});
