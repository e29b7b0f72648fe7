// End to end with API keys: SDK clients through the Envoy-like proxy and the real mcp-authz
// to a real MCP server. Each scenario asserts what the client saw and what the server saw.
import test from 'ava';
import { extractWWWAuthenticateParams, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { connectedClient, jsonBody, mcpClient } from './e2e/mcp-client.js';
import { startStack, type Stack } from './e2e/stack.js';

const alice = mintKey({
  id: 'alice-laptop',
  name: 'Alice laptop',
  userId: 'alice',
  role: 'user',
  permissions: ['tools:search', 'tools:read_*'],
});
const bob = mintKey({ id: 'bob-cli', name: 'Bob CLI', userId: 'bob', role: 'user', permissions: ['*'] });
const shared = mintKey({ id: 'shared-connector', name: 'Shared connector', role: 'user', permissions: ['*'] });
const LOCKOUT_AFTER = 3;

let stack: Stack;

test.before(async () => {
  stack = await startStack({
    files: { 'keys.yaml': keysFile([alice, bob, shared]) },
    config: () => ({
      apiKeys: { file: 'keys.yaml' },
      rateLimit: { failedAuth: { maxAttempts: LOCKOUT_AFTER, windowSeconds: 60 } },
      endpoints: [
        { name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true, oauth: false } },
        {
          name: 'alice-notes',
          match: { pathPrefix: '/mcp/alice' },
          owner: 'alice',
          auth: { apiKey: true, oauth: false },
        },
        { name: 'key-only', match: { pathPrefix: '/mcp/key-only' }, auth: { apiKey: true, oauth: false } },
        { name: 'vault', match: { pathPrefix: '/mcp/vault' }, auth: { apiKey: true, oauth: false } },
      ],
    }),
  });
});
test.after.always(async () => stack?.stop());

/** Every HTTP request the MCP server received on a path. */
const serverRequestsTo = (prefix: string) => stack.mcp.httpRequests.filter((r) => r.url.startsWith(prefix));
const secrets = [alice.key, bob.key, shared.key];

test('with an API key the SDK client initializes, lists tools and calls a granted tool; the server sees who, never the key', async (t) => {
  const s = await connectedClient(stack.url('/mcp/files'), { headers: { 'X-API-Key': alice.key } });
  t.teardown(() => s.close());
  const { tools } = await s.client.listTools();
  t.true(tools.some((x) => x.name === 'search'));

  const res = await s.client.callTool({ name: 'search', arguments: { query: 'budget' } });
  t.deepEqual(res.content, [{ type: 'text', text: 'results for budget' }]);
  const read = await s.client.callTool({ name: 'read_file', arguments: { path: 'a.txt' } });
  t.deepEqual(read.content, [{ type: 'text', text: 'contents of a.txt' }], 'tools:read_* grants read_file');

  const seen = stack.mcp
    .callsOf('search')
    .find((c) => c.url.startsWith('/mcp/files') && c.headers['x-mcp-key-id'] === 'alice-laptop');
  t.truthy(seen, 'the search handler ran with alice-laptop as the caller');
  t.is(seen!.headers['x-mcp-user-id'], 'alice');
  t.is(seen!.headers['x-mcp-auth-method'], 'api_key');
  t.is(seen!.headers['x-api-key'], undefined);
  for (const r of serverRequestsTo('/mcp/files')) {
    for (const v of Object.values(r.headers))
      t.false(
        secrets.some((k) => v.includes(k)),
        'no API key reaches the MCP server',
      );
  }
});

test('an API key sent as "Authorization: Bearer mcp_…" works and is removed before the MCP server', async (t) => {
  const s = await connectedClient(stack.url('/mcp/files'), { headers: { Authorization: `Bearer ${alice.key}` } });
  t.teardown(() => s.close());
  await s.client.callTool({ name: 'read_file', arguments: { path: 'bearer.txt' } });
  const seen = stack.mcp
    .callsOf('read_file')
    .find((c) => c.headers['x-mcp-key-id'] === 'alice-laptop' && c.url.startsWith('/mcp/files'));
  t.truthy(seen);
  t.is(seen!.headers.authorization, undefined);
  t.is(seen!.headers['x-mcp-auth-method'], 'api_key');
});

test('a tool the key is not granted is refused with 403 access_denied before the MCP server runs it', async (t) => {
  const s = await connectedClient(stack.url('/mcp/files'), { headers: { 'X-API-Key': alice.key } });
  t.teardown(() => s.close());
  const err = await t.throwsAsync(s.client.callTool({ name: 'delete_file', arguments: { path: '/important' } }));
  t.true(err instanceof StreamableHTTPError);
  t.is((err as StreamableHTTPError).code, 403);
  const seen = s.http.last(403)!;
  t.is(seen.headers.get('content-type'), 'application/json');
  t.is(jsonBody(seen).error, 'access_denied');
  t.is(seen.headers.get('www-authenticate'), null, 'no step-up challenge for an API key');
  t.deepEqual(stack.mcp.callsOf('delete_file'), [], 'the delete_file handler never ran');
});

test("a private endpoint's owner initializes and calls tools with her key", async (t) => {
  const s = await connectedClient(stack.url('/mcp/alice'), { headers: { 'X-API-Key': alice.key } });
  t.teardown(() => s.close());
  const res = await s.client.callTool({ name: 'search', arguments: { query: 'notes' } });
  t.deepEqual(res.content, [{ type: 'text', text: 'results for notes' }]);
  const seen = stack.mcp.callsOf('search').find((c) => c.url.startsWith('/mcp/alice'));
  t.is(seen?.headers['x-mcp-user-id'], 'alice');
});

for (const [who, key, message] of [
  ["another user's key", bob, 'You can only access endpoints you own or public endpoints'],
  ['a public key', shared, 'Public API keys cannot access private endpoints'],
] as const) {
  test(`${who} cannot initialize on a private endpoint: 403 "${message}"`, async (t) => {
    const s = mcpClient(stack.url('/mcp/alice'), { headers: { 'X-API-Key': key.key } });
    const err = await t.throwsAsync(s.connect());
    t.is((err as StreamableHTTPError).code, 403);
    const seen = s.http.last(403)!;
    t.is(seen.headers.get('content-type'), 'application/json');
    t.is(jsonBody(seen).error_description, message);
    t.deepEqual(
      serverRequestsTo('/mcp/alice').filter((r) => r.headers['x-mcp-key-id'] === key.id),
      [],
      'nothing of it reached the MCP server',
    );
  });
}

test('an API-key-only endpoint answers a keyless client 401 without a Bearer challenge, so an OAuth-capable SDK client finds no OAuth flow to start', async (t) => {
  const provider = new RecordingOAuthProvider();
  const s = mcpClient(stack.url('/mcp/key-only'), { authProvider: provider });
  await t.throwsAsync(s.connect());

  const first = s.http.seen[0]!;
  t.is(first.status, 401);
  t.is(first.method, 'POST');
  const body = jsonBody(first);
  t.is(body.error, 'authentication_required');
  t.is(body.error_description, 'Authentication required via API key');
  t.true(body.supported_methods.includes('X-API-Key header'));
  t.false(
    body.supported_methods.includes('query parameter (api_key or apikey)'),
    'query keys are off on this endpoint',
  );
  t.false(/^\s*bearer/i.test(first.headers.get('www-authenticate') ?? ''), 'no Bearer challenge');
  t.deepEqual(extractWWWAuthenticateParams(first.response), {}, 'the SDK reads no resource_metadata, scope or error');

  // SDK 1.x probes discovery on any 401 when it has an auth provider; nothing it can find
  // advertises an authorization server, so no authorization is ever started.
  const advertised = s.http.seen.filter(
    (r) => r.status >= 200 && r.status < 300 && /"(authorization_servers|authorization_endpoint)"/.test(r.text ?? ''),
  );
  t.deepEqual(
    advertised.map((r) => r.url),
    [],
  );
  t.deepEqual(provider.redirects, [], 'no browser authorization was started');
  t.is(provider.savedTokens, 0);
  t.is(
    stack.proxy.requests.filter((r) => r.path === '/mcp/key-only' && r.method === 'POST').length,
    1,
    'one attempt, no retry loop',
  );
  t.deepEqual(serverRequestsTo('/mcp/key-only'), [], 'the MCP server saw nothing');
  t.deepEqual(
    stack.proxy.requests.filter((r) => r.forwarded && !r.path.startsWith('/mcp/')),
    [],
    'no discovery request was forwarded to the MCP server',
  );
});

test(`after ${LOCKOUT_AFTER} bad keys the client is locked out with 429 and Retry-After, even with a good key`, async (t) => {
  const statuses: number[] = [];
  const url = stack.url('/mcp/vault');
  for (let i = 0; i < LOCKOUT_AFTER; i++) {
    const wrong = mintKey({ id: `wrong-${i}`, name: 'wrong', role: 'user', permissions: [] });
    const s = mcpClient(url, { headers: { 'X-API-Key': wrong.key } });
    const err = await t.throwsAsync(s.connect());
    statuses.push((err as StreamableHTTPError).code ?? -1);
    t.is(jsonBody(s.http.seen[0]).error, 'invalid_api_key');
  }
  t.deepEqual(statuses, Array(LOCKOUT_AFTER).fill(401));

  for (const key of [mintKey({ id: 'wrong-again', name: 'wrong', role: 'user', permissions: [] }), alice]) {
    const s = mcpClient(url, { headers: { 'X-API-Key': key.key } });
    const err = await t.throwsAsync(s.connect());
    t.is((err as StreamableHTTPError).code, 429);
    const seen = s.http.last(429)!;
    t.is(jsonBody(seen).error, 'too_many_requests');
    t.is(jsonBody(seen).error_description, 'Too many failed authentication attempts. Please try again later.');
    const retryAfter = Number(seen.headers.get('retry-after'));
    t.true(
      Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 60,
      `Retry-After ${seen.headers.get('retry-after')}`,
    );
  }
  t.deepEqual(serverRequestsTo('/mcp/vault'), [], 'the MCP server saw nothing');
});

/** An OAuth-capable client's provider with nothing stored; records what the SDK asks of it. */
class RecordingOAuthProvider implements OAuthClientProvider {
  redirects: string[] = [];
  savedTokens = 0;
  get redirectUrl() {
    return 'http://127.0.0.1:9/callback';
  }
  get clientMetadata() {
    return { redirect_uris: ['http://127.0.0.1:9/callback'], client_name: 'e2e OAuth-capable client' };
  }
  clientInformation() {
    return undefined;
  }
  saveClientInformation() {}
  tokens() {
    return undefined;
  }
  saveTokens() {
    this.savedTokens++;
  }
  redirectToAuthorization(url: URL) {
    this.redirects.push(url.href);
  }
  saveCodeVerifier() {}
  codeVerifier() {
    return 'unused';
  }
}
