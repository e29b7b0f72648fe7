// End to end with OAuth: the SDK's own parsers read mcp-authz's challenges and discovery
// documents through the Envoy-like proxy, and bearer JWTs from a real JWKS server on
// loopback reach the right tools — never the MCP server itself.
import test from 'ava';
import {
  discoverOAuthProtectedResourceMetadata,
  extractWWWAuthenticateParams,
} from '@modelcontextprotocol/sdk/client/auth.js';
import type { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startJwksServer } from './helpers/jwks-server.js';
import { connectedClient, jsonBody, mcpClient, recordingFetch } from './e2e/mcp-client.js';
import { startStack, type Stack } from './e2e/stack.js';

type Jwks = Awaited<ReturnType<typeof startJwksServer>>;
let jwks: Jwks;
let stack: Stack;
let resource: string;
let metadataUrl: string;
const SCOPES = ['tools:search', 'tools:read_file'];

test.before(async () => {
  jwks = await startJwksServer();
  stack = await startStack({
    config: (proxyUrl) => {
      resource = `${proxyUrl}/mcp/docs`;
      metadataUrl = `${proxyUrl}/.well-known/oauth-protected-resource/mcp/docs`;
      return {
        publicBaseUrl: proxyUrl,
        oauth: { issuers: [{ issuer: jwks.issuer, jwksUri: jwks.jwksUri }] },
        endpoints: [
          {
            name: 'docs',
            match: { pathPrefix: '/mcp/docs' },
            auth: { apiKey: false, oauth: true },
            resource,
            scopes: SCOPES,
          },
        ],
      };
    },
  });
});
test.after.always(async () => {
  await stack?.stop();
  await jwks?.stop();
});

async function token(claims: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return jwks.sign({
    iss: jwks.issuer,
    sub: 'carol',
    aud: resource,
    scope: 'tools:search',
    iat: now,
    exp: now + 300,
    ...claims,
  });
}

const sameIssuer = (a: string) => a.replace(/\/$/, '') === jwks.issuer.replace(/\/$/, '');

// Serial: it asserts the MCP server saw no request at all, which the other tests' calls would break.
test.serial(
  'without a credential the client gets a 401 Bearer challenge the SDK parses, and its resource_metadata resolves to this endpoint and issuer',
  async (t) => {
    const s = mcpClient(stack.url('/mcp/docs'));
    const err = await t.throwsAsync(s.connect());
    t.is((err as StreamableHTTPError).code, 401);
    const seen = s.http.last(401)!;
    t.is(jsonBody(seen).error, 'authentication_required');
    t.is(jsonBody(seen).error_description, 'Authentication required via OAuth bearer token');
    t.deepEqual(jsonBody(seen).supported_methods, ['Authorization header (Bearer token)']);

    const challenge = extractWWWAuthenticateParams(seen.response);
    t.is(challenge.resourceMetadataUrl?.href, metadataUrl);
    t.deepEqual(challenge.scope?.split(' ').sort(), [...SCOPES].sort());

    const viaHeader = await discoverOAuthProtectedResourceMetadata(stack.url('/mcp/docs'), {
      resourceMetadataUrl: challenge.resourceMetadataUrl!,
    });
    t.is(viaHeader.resource, resource);
    t.true(viaHeader.authorization_servers?.some(sameIssuer));
    t.deepEqual([...(viaHeader.scopes_supported ?? [])].sort(), [...SCOPES].sort());
    t.true(viaHeader.bearer_methods_supported?.includes('header'));

    t.deepEqual(
      stack.mcp.httpRequests.filter((r) => r.url.startsWith('/mcp/docs') || r.url.startsWith('/.well-known')),
      [],
      'the MCP server saw nothing',
    );
  },
);

test('without the header, the SDK finds the same protected-resource metadata by path-suffixed discovery through the proxy', async (t) => {
  const http = recordingFetch();
  const discovered = await discoverOAuthProtectedResourceMetadata(stack.url('/mcp/docs'), undefined, http.fetch);
  t.is(discovered.resource, resource);
  t.true(discovered.authorization_servers?.some(sameIssuer));
  t.is(http.seen[0]?.url, metadataUrl, 'the first, path-aware, location answers');
  t.is(http.seen[0]?.status, 200);
  const viaProxy = stack.proxy.requests.filter((r) => r.path === '/.well-known/oauth-protected-resource/mcp/docs');
  t.true(
    viaProxy.length > 0 && viaProxy.every((r) => r.checked && !r.forwarded),
    'answered by the service directly from Check',
  );
});

test('a token with scope tools:search calls search; the server sees the OAuth identity and never the token', async (t) => {
  const jwt = await token();
  const s = await connectedClient(stack.url('/mcp/docs'), { headers: { Authorization: `Bearer ${jwt}` } });
  t.teardown(() => s.close());
  const res = await s.client.callTool({ name: 'search', arguments: { query: 'roadmap' } });
  t.deepEqual(res.content, [{ type: 'text', text: 'results for roadmap' }]);

  const seen = stack.mcp.callsOf('search').find((c) => c.url.startsWith('/mcp/docs'));
  t.truthy(seen);
  t.is(seen!.headers['x-mcp-auth-method'], 'oauth');
  t.is(seen!.headers['x-mcp-user-id'], 'carol');
  t.is(seen!.headers.authorization, undefined);
  for (const r of stack.mcp.httpRequests) {
    t.false(
      Object.values(r.headers).some((v) => v.includes(jwt)),
      'the token never reaches the MCP server',
    );
  }
});

test('a call needing another scope gets the step-up 403 insufficient_scope the SDK reads, and the tool never runs', async (t) => {
  const s = await connectedClient(stack.url('/mcp/docs'), { headers: { Authorization: `Bearer ${await token()}` } });
  t.teardown(() => s.close());
  const err = await t.throwsAsync(s.client.callTool({ name: 'read_file', arguments: { path: 'secret.txt' } }));
  t.is((err as StreamableHTTPError).code, 403);
  const seen = s.http.last(403)!;
  const challenge = extractWWWAuthenticateParams(seen.response);
  t.is(challenge.error, 'insufficient_scope');
  t.is(challenge.scope, 'tools:read_file');
  t.is(challenge.resourceMetadataUrl?.href, metadataUrl);
  t.deepEqual(stack.mcp.callsOf('read_file'), [], 'the read_file handler never ran');
});

test('a token issued for another resource is 401 invalid_token with a Bearer error the SDK reads', async (t) => {
  const s = mcpClient(stack.url('/mcp/docs'), {
    headers: { Authorization: `Bearer ${await token({ sub: 'mallory', aud: 'https://other.example.com/mcp' })}` },
  });
  const err = await t.throwsAsync(s.connect());
  t.is((err as StreamableHTTPError).code, 401);
  const seen = s.http.last(401)!;
  t.is(jsonBody(seen).error, 'invalid_token');
  const challenge = extractWWWAuthenticateParams(seen.response);
  t.is(challenge.error, 'invalid_token');
  t.is(challenge.resourceMetadataUrl?.href, metadataUrl);
  t.false(
    stack.mcp.httpRequests.some((r) => r.headers['x-mcp-user-id'] === 'mallory'),
    'nothing of it reached the MCP server',
  );
});
