// End to end, userConnections: the official MCP SDK client → the Envoy-like proxy (ext_authz
// over gRPC) → mcp-authz → the SDK's MCP server, with a real OpenID Provider (oidc-provider)
// as the upstream's authorization server, a real redis-server as the connection store and
// Debian's chromium connecting the user's account on /connect/<provider>.
//
// A user without a connection gets the URL elicitation (-32042) and nothing reaches the MCP
// server; after connecting in the browser, the retried call reaches it with that user's own
// upstream token (issued by the provider for the upstream, sub = the user who signed in) and
// never the caller's credential. A token near expiry is refreshed (fake clock) once, even
// when two replicas need it at the same moment; an altered record, a refused refresh token
// and `mcp-authz connections revoke` each send the user back to connect.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import test from 'ava';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { Redis } from 'ioredis';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { KeyRing } from '../src/upstream/connections-keys.js';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { connectedClient } from './e2e/mcp-client.js';
import { startExtProcStack, startStack, type Stack } from './e2e/stack.js';
import { launchBrowser, type TestBrowser } from './helpers/browser.js';
import { ROOT } from './helpers/cli.js';
import { signInAtIdp, startOidcProvider, type OidcTestProvider } from './helpers/oidc-provider.js';
import { startRedis, type TestRedis } from './helpers/redis.js';
import { checkRequest, deniedStatus, headerValue, rpc, startTestService, type TestService } from './helpers/service.js';

const UPSTREAM = 'https://tracker-mcp.internal.example';
const CLIENT_SECRET = `secret-${randomBytes(16).toString('hex')}`;
const ENC_KEYS = `k2 ${randomBytes(32).toString('base64')}\n`;
const alice = mintKey({ id: 'alice-key', name: 'Alice', userId: 'alice', role: 'user', permissions: ['*'] });
const bob = mintKey({ id: 'bob-key', name: 'Bob', userId: 'bob', role: 'user', permissions: ['*'] });
const ALICE_IDP = { username: 'alice', password: 'alice-password' };
const FILES = { 'keys.yaml': keysFile([alice, bob]), 'client-secret': CLIENT_SECRET, 'connection-keys': ENC_KEYS };

let idp: OidcTestProvider;
let redis: TestRedis;
let stack: Stack;
let browser: TestBrowser;
let proxyUrl: string;
/** The services' fake clock: real time plus this. */
let clockOffsetMs = 0;
const clock = () => Date.now() + clockOffsetMs;
/**
 * Requests to the provider's token endpoint so far. Between a connection (its code exchange)
 * and the next, every one is a refresh grant.
 */
const tokenRequests = () => idp.requests.filter((r) => r.method === 'POST' && r.path === '/token').length;
/** The access tokens' lifetime at the provider (its default). */
const TOKEN_TTL_MS = 3600_000;

const config = (proxy: string) => ({
  publicBaseUrl: proxy,
  apiKeys: { file: 'keys.yaml' },
  endpoints: [
    {
      name: 'tracker',
      match: { pathPrefix: '/mcp/tracker' },
      auth: { apiKey: true, oauth: false },
      upstream: {
        mode: 'userConnections',
        provider: 'tracker',
        issuer: idp.issuer,
        client: { id: 'gateway', secretFile: 'client-secret' },
        scope: ['tickets:read'],
        resource: UPSTREAM,
        encryptionKeyFile: 'connection-keys',
        store: { redis: { url: redis.url, keyPrefix: 'e2e', commandTimeoutMs: 30_000 } },
        expirySkewSeconds: 60,
        timeoutMs: 30_000,
      },
    },
  ],
});

test.before(async () => {
  redis = await startRedis();
  idp = await startOidcProvider({ users: [ALICE_IDP, { username: 'bob', password: 'bob-password' }] });
  idp.addResource(UPSTREAM, { scopes: ['tickets:read'] });
  stack = await startStack({ config, files: FILES, runtime: { upstreamClock: clock } });
  proxyUrl = stack.url('/').origin;
  await idp.addClient({
    client_id: 'gateway',
    client_secret: CLIENT_SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: [`${proxyUrl}/connect/tracker/callback`],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  });
  browser = await launchBrowser();
});

test.after.always(async () => {
  await browser?.close();
  await stack?.stop();
  await idp?.stop();
  await redis?.stop();
});

const jwks = () => createRemoteJWKSet(new URL(idp.jwksUri));

/** Connects as `key` and calls search; the SDK's error when the gateway answers with one. */
async function callSearch(key: string, query: string): Promise<unknown> {
  const s = await connectedClient(stack.url('/mcp/tracker'), { headers: { 'X-API-Key': key } });
  try {
    return await s.client.callTool({ name: 'search', arguments: { query } });
  } finally {
    await s.close();
  }
}

/** The URL elicitation the SDK surfaces for `key`'s call. */
async function elicitationFor(key: string): Promise<{ url: string; elicitationId: string; message: string }> {
  const err = await callSearch(key, 'anything').then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof McpError)) throw new Error(`expected the URL elicitation, got ${String(err)}`);
  if (err.code !== -32042) throw new Error(`expected -32042, got ${err.code}: ${err.message}`);
  const data = err.data as { elicitations: { mode: string; url: string; elicitationId: string; message: string }[] };
  if (data.elicitations.length !== 1 || data.elicitations[0]!.mode !== 'url') throw new Error('one URL elicitation');
  return data.elicitations[0]!;
}

/** The user's browser opens the link, confirms, signs in at the provider and allows access. */
async function connectInBrowser(url: string, user: { username: string; password: string }): Promise<string> {
  // A new visit: no session left at the provider from an earlier sign-in.
  await browser.context.clearCookies();
  const page = await browser.newPage();
  try {
    await page.goto(url);
    await page.locator('#connect').click();
    await signInAtIdp(page, user);
    await page.locator('#connected').waitFor({ timeout: 120_000 });
    return (await page.locator('#connected').textContent()) ?? '';
  } finally {
    await page.close();
  }
}

const searchesOf = (userId: string) =>
  stack.mcp.callsOf('search').filter((c) => c.url.startsWith('/mcp/tracker') && c.headers['x-mcp-user-id'] === userId);

/** The Authorization the MCP server received on the last search of `userId`. */
function lastUpstreamToken(userId: string): string {
  const seen = searchesOf(userId).at(-1);
  if (!seen) throw new Error(`no search of ${userId} reached the MCP server`);
  return seen.headers.authorization!.replace(/^Bearer /, '');
}

const metric = async (svc: TestService, name: string, labels: string) => {
  const line = (await svc.http('/metrics')).text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
};

test.serial(
  'no connection: the SDK gets the URL elicitation for /connect/tracker, and nothing reaches the MCP server',
  async (t) => {
    const before = stack.mcp.httpRequests.length;
    const e = await elicitationFor(alice.key);
    t.true(e.url.startsWith(`${proxyUrl}/connect/tracker?link=`), e.url);
    t.regex(e.message, /Connect your tracker account/);
    t.regex(e.elicitationId, /^[0-9a-f-]{36}$/);
    t.is(stack.mcp.httpRequests.length, before, 'nothing went upstream');
    t.false(e.url.includes(alice.key), 'the link does not carry the caller credential');
  },
);

test.serial(
  'connect in the browser, retry: the MCP server receives the token the provider issued for alice, never her API key',
  async (t) => {
    const e = await elicitationFor(alice.key);
    const shown = await connectInBrowser(e.url, ALICE_IDP);
    t.regex(shown, /alice-key/, 'the page names the principal the connection is for');

    const res = (await callSearch(alice.key, 'roadmap')) as { content: unknown };
    t.deepEqual(res.content, [{ type: 'text', text: 'results for roadmap' }]);
    const token = lastUpstreamToken('alice');
    const { payload } = await jwtVerify(token, jwks(), { issuer: idp.issuer, audience: UPSTREAM });
    t.is(payload.sub, 'alice', 'the user who signed in at the provider');
    t.true(String(payload.scope).split(' ').includes('tickets:read'));
    for (const r of stack.mcp.httpRequests)
      t.false(
        Object.values(r.headers).some((v) => v.includes(alice.key) || v.includes(bob.key)),
        'no caller credential reaches the MCP server',
      );

    // The link is single-use: opening it again does not connect anything.
    const page = await browser.newPage();
    t.teardown(() => page.close());
    await page.goto(e.url);
    await page.locator('#connect').click();
    await page.locator('text=has been used already').waitFor();

    // The record in Redis is sealed: neither token is in it.
    const r = new Redis(redis.url);
    t.teardown(() => r.quit());
    const keys = await r.keys('e2e:connection:tracker:*');
    t.is(keys.length, 1);
    const stored = (await r.get(keys[0]!))!;
    t.regex(stored, /^v1\.k2\./);
    t.false(stored.includes(token.split('.')[1]!), 'no access token in the clear');
  },
);

test.serial("bob, who has not connected, still gets the elicitation: alice's connection is hers alone", async (t) => {
  const e = await elicitationFor(bob.key);
  t.true(e.url.startsWith(`${proxyUrl}/connect/tracker?link=`));
  const page = await browser.newPage();
  t.teardown(() => page.close());
  await page.goto(e.url);
  t.regex((await page.content()) ?? '', /bob-key/);
});

test.serial(
  "through ext_proc (another replica on the same store): the header mutation carries alice's token, the elicitation reaches the SDK",
  async (t) => {
    const ep = await startExtProcStack({ config, files: FILES, runtime: { upstreamClock: clock } });
    t.teardown(() => ep.stop());
    const s = await connectedClient(ep.url('/mcp/tracker'), { headers: { 'X-API-Key': alice.key } });
    t.teardown(() => s.close());
    await s.client.callTool({ name: 'search', arguments: { query: 'via-ext-proc' } });
    const seen = ep.mcp
      .callsOf('search')
      .filter((c) => c.headers['x-mcp-user-id'] === 'alice')
      .at(-1);
    t.truthy(seen);
    t.is(
      seen!.headers.authorization,
      `Bearer ${lastUpstreamToken('alice')}`,
      'the same connection, shared through Redis',
    );
    for (const r of ep.mcp.httpRequests)
      t.false(
        Object.values(r.headers).some((v) => v.includes(alice.key)),
        'the API key never reaches the MCP server',
      );

    const err = await connectedClient(ep.url('/mcp/tracker'), { headers: { 'X-API-Key': bob.key } }).then(
      (b) => b.close().then(() => undefined),
      (e: unknown) => e,
    );
    t.true(err instanceof McpError && err.code === -32042, String(err));
  },
);

test.serial('near expiry (fake clock), the token is refreshed once; the next calls use the new token', async (t) => {
  const first = lastUpstreamToken('alice');
  const before = tokenRequests();
  await callSearch(alice.key, 'still-fresh');
  t.is(tokenRequests(), before, 'a fresh token is not refreshed');
  t.is(lastUpstreamToken('alice'), first);

  clockOffsetMs += TOKEN_TTL_MS - 59_000; // within the 60 s skew of the token's expiry
  await callSearch(alice.key, 'refreshed');
  t.is(tokenRequests(), before + 1, 'one refresh grant at the provider');
  const second = lastUpstreamToken('alice');
  t.not(second, first);
  const { payload } = await jwtVerify(second, jwks(), { issuer: idp.issuer, audience: UPSTREAM });
  t.is(payload.sub, 'alice');
  await callSearch(alice.key, 'again');
  t.is(tokenRequests(), before + 1, 'the refreshed token is used until it nears expiry in turn');
  t.is(lastUpstreamToken('alice'), second);
});

test.serial(
  'two replicas needing the refresh at the same moment: one refresh grant, both send the same new token',
  async (t) => {
    const second = await startTestService(config(proxyUrl), { files: FILES, runtime: { upstreamClock: clock } });
    t.teardown(() => second.stop());
    clockOffsetMs += TOKEN_TTL_MS; // past expiry for both
    const before = tokenRequests();
    const check = () =>
      checkRequest({
        path: '/mcp/tracker',
        headers: {
          'x-api-key': alice.key,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-11-25',
        },
        body: rpc('tools/call', { name: 'search', arguments: { query: 'x' } }),
      });
    const answers = await Promise.all([
      stack.svc.check(check()),
      second.check(check()),
      stack.svc.check(check()),
      second.check(check()),
    ]);
    const tokens = answers.map((a) => headerValue(a.ok_response?.headers, 'authorization'));
    for (const tk of tokens) t.truthy(tk, 'allowed with a token');
    t.is(new Set(tokens).size, 1, 'every answer carries the same token');
    t.is(tokenRequests() - before, 1, 'one refresh grant at the provider for both replicas');
    const joined =
      ((await metric(
        stack.svc,
        'mcp_authz_upstream_connection_refreshes_total',
        'provider="tracker",result="joined"',
      )) ?? 0) +
      ((await metric(second, 'mcp_authz_upstream_connection_refreshes_total', 'provider="tracker",result="joined"')) ??
        0);
    t.true(joined >= 1, 'the others joined the one refresh');
  },
);

test.serial(
  'an altered stored record is no connection: the elicitation again, counted as unreadable, no crash',
  async (t) => {
    const r = new Redis(redis.url);
    t.teardown(() => r.quit());
    const [key] = await r.keys('e2e:connection:tracker:*');
    const good = (await r.get(key!))!;
    const parts = good.split('.');
    const ct = Buffer.from(parts[3]!, 'base64url');
    ct[5] ^= 0x01;
    await r.set(key!, [...parts.slice(0, 3), ct.toString('base64url')].join('.'));
    const before =
      (await metric(
        stack.svc,
        'mcp_authz_upstream_connection_events_total',
        'provider="tracker",event="unreadable"',
      )) ?? 0;
    const e = await elicitationFor(alice.key);
    t.true(e.url.startsWith(`${proxyUrl}/connect/tracker?link=`));
    t.is(
      await metric(stack.svc, 'mcp_authz_upstream_connection_events_total', 'provider="tracker",event="unreadable"'),
      before + 1,
    );
    await r.set(key!, good);
    await callSearch(alice.key, 'restored');
    t.pass();
  },
);

test.serial('`mcp-authz connections list` and `revoke`: the next call asks the user to connect again', async (t) => {
  const cli = (args: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          join(ROOT, 'src', 'cli', 'bin.ts'),
          'connections',
          ...args,
          '--config',
          stack.svc.configFile,
        ],
        { cwd: ROOT },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  const list = await cli(['list', '--json']);
  t.is(list.status, 0, list.stderr);
  t.deepEqual(JSON.parse(list.stdout), [{ provider: 'tracker', user: 'alice-key' }]);
  const revoked = await cli(['revoke', '--provider', 'tracker', '--user', 'alice-key']);
  t.is(revoked.status, 0, revoked.stderr);
  t.regex(revoked.stdout, /revoked/);
  await elicitationFor(alice.key);
  t.is((await cli(['revoke', '--provider', 'tracker', '--user', 'alice-key'])).status, 3, 'nothing left to revoke');
});

test.serial(
  'a refresh token the provider refuses (invalid_grant) removes the connection; the next call gets the elicitation',
  async (t) => {
    const e = await elicitationFor(alice.key);
    await connectInBrowser(e.url, ALICE_IDP);
    await callSearch(alice.key, 'connected-again');
    const r = new Redis(redis.url);
    t.teardown(() => r.quit());
    await forgetStoredRefreshToken(r);
    clockOffsetMs += TOKEN_TTL_MS;
    const before =
      (await metric(
        stack.svc,
        'mcp_authz_upstream_connection_refreshes_total',
        'provider="tracker",result="invalid_grant"',
      )) ?? 0;
    await elicitationFor(alice.key);
    t.is(
      await metric(
        stack.svc,
        'mcp_authz_upstream_connection_refreshes_total',
        'provider="tracker",result="invalid_grant"',
      ),
      before + 1,
    );
    t.deepEqual(await r.keys('e2e:connection:tracker:*'), [], 'the connection is removed');
  },
);

test.serial(
  'ext_authz deny for a request that cannot carry an elicitation (a notification) names the connect link',
  async (t) => {
    const res = await stack.svc.check(
      checkRequest({
        path: '/mcp/tracker',
        headers: {
          'x-api-key': bob.key,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      }),
    );
    t.is(deniedStatus(res), 403);
    const body = JSON.parse(res.denied_response!.body!);
    t.is(body.error, 'upstream_not_connected');
    t.true(String(body.connect_url).startsWith(`${proxyUrl}/connect/tracker?link=`));
  },
);

/** The provider forgets the refresh token of the stored connection (read with the test's own key): refreshing it is invalid_grant. */
async function forgetStoredRefreshToken(r: Redis): Promise<void> {
  const [key] = await r.keys('e2e:connection:tracker:*');
  const rec = JSON.parse(KeyRing.parse(ENC_KEYS).open('connection\ntracker\nalice-key', (await r.get(key!))!)) as {
    rt: string;
  };
  const token = await idp.provider.RefreshToken.find(rec.rt);
  if (!token) throw new Error('the provider does not know the stored refresh token');
  await token.destroy();
}
