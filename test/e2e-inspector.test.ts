// The real MCP Inspector CLI (docs/clients.md "MCP Inspector") through the Envoy-like proxy
// and the real mcp-authz to a real MCP server, on an API-key-only endpoint: with the key it
// works; without it, it starts OAuth (as it does on any 401), finds no authorization server
// — every discovery probe is a 404 that names the X-API-Key header, none a 401 — and stops
// with the service's own words, without a browser window, a token or a retry loop.
import test from 'ava';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { inspectorCli, inspectorError } from './e2e/inspector.js';
import { startStack, type Stack } from './e2e/stack.js';

const key = mintKey({ id: 'inspector', name: 'Inspector', userId: 'dev', role: 'user', permissions: ['tools:search'] });
let stack: Stack;

test.before(async () => {
  stack = await startStack({
    files: { 'keys.yaml': keysFile([key]) },
    config: () => ({
      apiKeys: { file: 'keys.yaml' },
      rateLimit: { failedAuth: { maxAttempts: 2, windowSeconds: 60 } },
      endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true, oauth: false } }],
    }),
  });
});
test.after.always(async () => stack?.stop());

const url = () => stack.url('/mcp/files').href;

test.serial('with --header "X-API-Key: mcp_…" the Inspector CLI lists tools and calls a granted one', async (t) => {
  const list = await inspectorCli([
    url(),
    '--transport',
    'http',
    '--method',
    'tools/list',
    '--header',
    `X-API-Key: ${key.key}`,
  ]);
  t.is(list.code, 0, list.stderr);
  t.true((JSON.parse(list.stdout).tools as { name: string }[]).some((x) => x.name === 'search'));
  const call = await inspectorCli([
    url(),
    '--transport',
    'http',
    '--method',
    'tools/call',
    '--tool-name',
    'search',
    '--tool-arg',
    'query=budget',
    '--header',
    `X-API-Key: ${key.key}`,
  ]);
  t.is(call.code, 0, call.stderr);
  t.deepEqual(JSON.parse(call.stdout).content, [{ type: 'text', text: 'results for budget' }]);
  const seen = stack.mcp.callsOf('search').at(-1)!;
  t.is(seen.headers['x-mcp-key-id'], 'inspector');
  t.is(seen.headers['x-api-key'], undefined, 'the key never reaches the MCP server');
});

test.serial('the key also works as --header "Authorization: Bearer mcp_…"', async (t) => {
  const run = await inspectorCli([
    url(),
    '--transport',
    'http',
    '--method',
    'tools/list',
    '--header',
    `Authorization: Bearer ${key.key}`,
  ]);
  t.is(run.code, 0, run.stderr);
});

test.serial('a granted key cannot call a tool it is not granted: the Inspector reports the 403', async (t) => {
  const run = await inspectorCli([
    url(),
    '--transport',
    'http',
    '--method',
    'tools/call',
    '--tool-name',
    'delete_file',
    '--tool-arg',
    'path=/x',
    '--header',
    `X-API-Key: ${key.key}`,
  ]);
  t.not(run.code, 0);
  t.regex(run.stderr, /access_denied/);
  t.deepEqual(stack.mcp.callsOf('delete_file'), []);
});

test.serial(
  'without a key the Inspector tries OAuth, meets only 404s naming the X-API-Key header, and stops with the 401 body',
  async (t) => {
    stack.proxy.requests.length = 0;
    // MCP_AUTO_OPEN_ENABLED stands in for the terminal a user runs it from: it lets the CLI start its OAuth flow.
    const run = await inspectorCli([url(), '--transport', 'http', '--method', 'tools/list'], {
      MCP_AUTO_OPEN_ENABLED: 'true',
    });
    t.is(run.code, 3, run.stderr);
    const report = inspectorError(run);
    t.is(report.error.code, 'auth_required');
    t.regex(report.error.message, /authentication_required/);
    t.regex(report.error.message, /X-API-Key header/, 'what the user sees names the header to send');

    const seen = stack.proxy.requests.map((r) => `${r.method} ${r.path} ${r.status}`);
    const probes = stack.proxy.requests.filter((r) => r.path.startsWith('/.well-known/'));
    t.true(probes.length >= 3, seen.join('\n'));
    for (const p of probes) t.is(p.status, 404, `${p.path}: a discovery probe is never 401\n${seen.join('\n')}`);
    t.true(
      probes.some((p) => p.path === '/.well-known/oauth-authorization-server'),
      seen.join('\n'),
    );
    t.false(
      stack.proxy.requests.some((r) => r.path.startsWith('/authorize') || r.path.startsWith('/token')),
      'no authorization request, no token request',
    );
    t.true(
      stack.proxy.requests.every((r) => !r.forwarded),
      'nothing reached the MCP server',
    );

    // A missing key is not a failed authentication: it never locks the user out (maxAttempts is 2 here).
    const again = await inspectorCli([
      url(),
      '--transport',
      'http',
      '--method',
      'tools/list',
      '--header',
      `X-API-Key: ${key.key}`,
    ]);
    t.is(again.code, 0, again.stderr);
  },
);

test.serial('in CI (--stored-auth-only) a missing key is reported with the 401 body at once', async (t) => {
  stack.proxy.requests.length = 0;
  const run = await inspectorCli([url(), '--transport', 'http', '--method', 'tools/list', '--stored-auth-only']);
  t.is(run.code, 3);
  t.regex(
    inspectorError(run).error.message,
    /"error":"authentication_required","error_description":"Authentication required via API key","supported_methods":\["X-API-Key header"\]/,
  );
  t.deepEqual(
    stack.proxy.requests.map((r) => r.status),
    [401],
    'one request, no discovery',
  );
});
