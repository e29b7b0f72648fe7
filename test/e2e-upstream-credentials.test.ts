// End to end, upstream credentials: the official MCP SDK client → the Envoy-like proxy
// (ext_authz over gRPC, and ext_proc) → mcp-authz → the SDK's MCP server, with a real RFC
// 8693 token service (test/sts on zitadel/oidc) and a real JWKS server. The MCP server gets
// a token issued for it (audience = the upstream) on every request of the session, never the
// caller's own; API-key callers reach it with the service's own token and their identity in
// a header the proxy sets; a token service that fails is a deny the SDK sees.
import test from 'ava';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { connectedClient, jsonBody, mcpClient } from './e2e/mcp-client.js';
import type { TestMcpServer } from './e2e/mcp-server.js';
import { startExtProcStack, startStack } from './e2e/stack.js';
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js';
import { startSts, type Sts } from './helpers/sts.js';

const UPSTREAM = 'https://files-mcp.internal.example';
const reporter = mintKey({ id: 'reporter', name: 'Reporter', userId: 'rita', role: 'user', permissions: ['*'] });

let idp: JwksServer;
let sts: Sts;
interface Running {
  mcp: TestMcpServer;
  url(path: string): URL;
  stop(): Promise<void>;
}
const stacks: [string, Running][] = [];

const config = (proxyUrl: string) => ({
  publicBaseUrl: proxyUrl,
  apiKeys: { file: 'keys.yaml' },
  oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
  endpoints: [
    {
      name: 'files',
      match: { pathPrefix: '/mcp/files' },
      auth: { apiKey: false, oauth: true },
      resource: `${proxyUrl}/mcp/files`,
      scopes: ['tools:search'],
      upstream: {
        mode: 'tokenExchange',
        tokenEndpoint: sts.tokenEndpoint,
        client: { id: 'mcp-authz', secretFile: 'sts-secret' },
        audience: UPSTREAM,
        scope: ['files:read'],
        timeoutMs: 30_000,
      },
    },
    {
      name: 'reports',
      match: { pathPrefix: '/mcp/reports' },
      auth: { apiKey: true, oauth: false },
      upstream: {
        mode: 'clientCredentials',
        tokenEndpoint: sts.tokenEndpoint,
        client: { id: 'mcp-authz', secretFile: 'sts-secret' },
        audience: UPSTREAM,
        identityHeader: 'x-forwarded-user',
        timeoutMs: 30_000,
      },
    },
  ],
});

test.before(async () => {
  idp = await startJwksServer();
  sts = await startSts(idp);
  const files = { 'keys.yaml': keysFile([reporter]), 'sts-secret': sts.clientSecret };
  stacks.push(['ext_authz', await startStack({ config, files })]);
  stacks.push(['ext_proc', await startExtProcStack({ config, files })]);
});
test.after.always(async () => {
  await Promise.all(stacks.map(([, s]) => s.stop()));
  await sts?.stop();
  await idp?.stop();
});

const token = (sub: string, s: Running) => idp.sign({ sub, aud: s.url('/mcp/files').href, scope: 'tools:search' });
let n = 0;

for (const [i, name] of ['ext_authz', 'ext_proc'].entries()) {
  const stack = () => stacks[i]![1];

  test.serial(
    `${name}: an OAuth client calls search; every request the MCP server gets carries a token issued for it, never the caller's`,
    async (t) => {
      const sub = `carol-${++n}`;
      const jwt = await token(sub, stack());
      const before = (await sts.stats()).exchange;
      const s = await connectedClient(stack().url('/mcp/files'), { headers: { Authorization: `Bearer ${jwt}` } });
      t.teardown(() => s.close());
      const res = await s.client.callTool({ name: 'search', arguments: { query: 'roadmap' } });
      t.deepEqual(res.content, [{ type: 'text', text: 'results for roadmap' }]);

      const seen = stack()
        .mcp.callsOf('search')
        .find((c) => c.url.startsWith('/mcp/files') && c.headers['x-mcp-user-id'] === sub);
      t.truthy(seen, 'the tool ran for this caller');
      const upstreamToken = seen!.headers.authorization!.replace(/^Bearer /, '');
      const claims = await sts.verify(upstreamToken);
      t.deepEqual([claims.aud].flat(), [UPSTREAM], 'audience = the upstream');
      t.is(claims.sub, sub);
      t.is(claims.iss, sts.issuer);

      const mine = stack().mcp.httpRequests.filter(
        (r) => r.url.startsWith('/mcp/files') && r.headers['x-mcp-user-id'] === sub,
      );
      t.true(mine.length >= 3, 'initialize, initialized, tools/call');
      for (const r of mine) t.is(r.headers.authorization, `Bearer ${upstreamToken}`, `${r.method} ${r.url}`);
      for (const r of stack().mcp.httpRequests)
        t.false(
          Object.values(r.headers).some((v) => v.includes(jwt)),
          "the caller's token never reaches the MCP server",
        );
      t.is((await sts.stats()).exchange - before, 1, 'one exchange for the whole session');
    },
  );

  test.serial(
    `${name}: an API-key client reaches the MCP server with the service's own token and its identity in x-forwarded-user, a forged one replaced`,
    async (t) => {
      const s = await connectedClient(stack().url('/mcp/reports'), {
        headers: { 'X-API-Key': reporter.key, 'X-Forwarded-User': 'admin' },
      });
      t.teardown(() => s.close());
      await s.client.callTool({ name: 'search', arguments: { query: 'q3' } });
      const seen = stack()
        .mcp.callsOf('search')
        .filter((c) => c.url.startsWith('/mcp/reports'))
        .at(-1)!;
      t.is(seen.headers['x-forwarded-user'], 'reporter');
      const claims = await sts.verify(seen.headers.authorization!.replace(/^Bearer /, ''));
      t.is(claims.sub, 'mcp-authz');
      t.deepEqual([claims.aud].flat(), [UPSTREAM]);
      for (const r of stack().mcp.httpRequests)
        t.false(
          Object.values(r.headers).some((v) => v.includes(reporter.key)),
          'the API key never reaches the MCP server',
        );
    },
  );

  test.serial(
    `${name}: a token service that answers garbage is a 502 upstream_token_invalid the SDK sees; the MCP server sees nothing of that caller`,
    async (t) => {
      await sts.setMode('garbage');
      t.teardown(() => sts.setMode('normal'));
      const sub = `dora-${++n}`;
      const s = mcpClient(stack().url('/mcp/files'), {
        headers: { Authorization: `Bearer ${await token(sub, stack())}` },
      });
      const err = await t.throwsAsync(s.connect());
      t.is((err as StreamableHTTPError).code, 502);
      t.is(jsonBody(s.http.last(502)).error, 'upstream_token_invalid');
      t.deepEqual(
        stack().mcp.httpRequests.filter((r) => r.headers['x-mcp-user-id'] === sub),
        [],
      );
    },
  );
}
