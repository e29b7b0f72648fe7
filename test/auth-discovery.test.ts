// RFC 9728 discovery, answered directly from Check and on the HTTP port, and challenges
// built from the request when no publicBaseUrl is configured.
import test from 'ava';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  headerValue,
  startTestService,
  type TestService,
} from './helpers/service.js';

const ISSUER = 'https://idp.example.com/realms/acme';
const endpoints = [
  {
    name: 'files',
    match: { pathPrefix: '/mcp/files' },
    auth: { apiKey: true, oauth: true },
    resource: 'https://mcp.example.com/mcp/files',
    scopes: ['tools:read_file'],
  },
  {
    name: 'search',
    match: { pathPrefix: '/mcp/search' },
    auth: { apiKey: false, oauth: true },
    resource: 'https://mcp.example.com/mcp/search',
    scopes: ['tools:search'],
  },
  { name: 'keyed', match: { pathPrefix: '/mcp/keyed' }, auth: { apiKey: true, oauth: false } },
];

let svc: TestService;
let bare: TestService;

test.before(async () => {
  // jwksUri given so nothing is fetched: these tests never present a token.
  const oauth = { issuers: [{ issuer: ISSUER, jwksUri: `${ISSUER}/certs` }] };
  svc = await startTestService({ publicBaseUrl: 'https://mcp.example.com/', oauth, endpoints });
  bare = await startTestService({ realm: 'acme "mcp"', oauth, endpoints });
});
test.after.always(async () => {
  await svc?.stop();
  await bare?.stop();
});

const get = (s: TestService, path: string, host?: string) =>
  s.check(checkRequest({ method: 'GET', path, ...(host ? { host } : {}) }));

test('the root document is a direct 200 JSON answer from Check', async (t) => {
  const res = await get(svc, '/.well-known/oauth-protected-resource');
  t.is(deniedStatus(res), 200);
  t.is(headerValue(res.denied_response!.headers, 'content-type'), 'application/json');
  t.deepEqual(JSON.parse(res.denied_response!.body!), {
    resource: 'https://mcp.example.com',
    authorization_servers: [ISSUER],
    scopes_supported: ['tools:read_file', 'tools:search'],
    bearer_methods_supported: ['header'],
  });
});

test('each OAuth endpoint has its path-suffixed document with its own resource and scopes', async (t) => {
  const res = await get(svc, '/.well-known/oauth-protected-resource/mcp/files');
  t.is(deniedStatus(res), 200);
  t.deepEqual(JSON.parse(res.denied_response!.body!), {
    resource: 'https://mcp.example.com/mcp/files',
    authorization_servers: [ISSUER],
    scopes_supported: ['tools:read_file'],
    bearer_methods_supported: ['header'],
    resource_name: 'files',
  });
});

test('an unknown suffix, and an API-key-only endpoint, have no document: 404', async (t) => {
  for (const path of [
    '/.well-known/oauth-protected-resource/mcp/nope',
    '/.well-known/oauth-protected-resource/mcp/keyed',
  ]) {
    const res = await get(svc, path);
    t.is(deniedStatus(res), 404, path);
    t.is(deniedBody(res).error, 'not_found');
  }
});

test('the documents are served on the HTTP port too', async (t) => {
  const root = await svc.http('/.well-known/oauth-protected-resource');
  t.is(root.status, 200);
  t.is(JSON.parse(root.text).resource, 'https://mcp.example.com');
  const files = await svc.http('/.well-known/oauth-protected-resource/mcp/search');
  t.is(files.status, 200);
  t.is(JSON.parse(files.text).resource, 'https://mcp.example.com/mcp/search');
  t.is((await svc.http('/.well-known/oauth-protected-resource/mcp/nope')).status, 404);
});

test('the challenge points at the endpoint document the service serves', async (t) => {
  const res = await svc.check(checkRequest({ path: '/mcp/files', body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' }));
  const challenge = headerValue(res.denied_response!.headers, 'www-authenticate')!;
  const url = /resource_metadata="([^"]+)"/.exec(challenge)![1]!;
  t.is(url, 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp/files');
  const doc = await get(svc, new URL(url).pathname);
  t.is(JSON.parse(doc.denied_response!.body!).resource, 'https://mcp.example.com/mcp/files');
});

test('without publicBaseUrl, challenge and root document use the request scheme and host', async (t) => {
  const res = await bare.check(checkRequest({ method: 'GET', path: '/mcp/search', host: 'mcp.internal:8443' }));
  t.is(
    headerValue(res.denied_response!.headers, 'www-authenticate'),
    'Bearer realm="acme \\"mcp\\"", resource_metadata="https://mcp.internal:8443/.well-known/oauth-protected-resource/mcp/search", scope="tools:search"',
  );
  const root = await get(bare, '/.well-known/oauth-protected-resource', 'mcp.internal:8443');
  t.is(JSON.parse(root.denied_response!.body!).resource, 'https://mcp.internal:8443');
});

test('other methods and look-alike paths are not discovery requests', async (t) => {
  const post = await svc.check(
    checkRequest({ method: 'POST', path: '/.well-known/oauth-protected-resource', body: '{}' }),
  );
  t.is(deniedStatus(post), 401, 'a POST goes through the pipeline (unknown endpoint)');
  const lookalike = await get(svc, '/.well-known/oauth-protected-resourcex');
  t.is(deniedStatus(lookalike), 401);
});

// Clients that start OAuth on any 401 (the MCP Inspector) probe these documents: they are
// answered 404 before authentication with how the endpoint authenticates, never 401.
test('authorization server documents are 404 before authentication, at the root, inserted (RFC 8414) and appended (OpenID)', async (t) => {
  const keyed = await startTestService({
    endpoints: [{ name: 'keyed', match: { pathPrefix: '/mcp/keyed' }, auth: { apiKey: true, oauth: false } }],
  });
  t.teardown(() => keyed.stop());
  for (const path of [
    '/.well-known/oauth-authorization-server',
    '/.well-known/openid-configuration',
    '/.well-known/oauth-authorization-server/',
    '/.well-known/oauth-protected-resource',
  ]) {
    const res = await get(keyed, path);
    t.is(deniedStatus(res), 404, path);
    const body = deniedBody(res);
    t.is(body.error, 'not_found', path);
    t.deepEqual(body.supported_methods, ['X-API-Key header'], path);
    t.regex(body.error_description, /do not use OAuth: send an API key in the X-API-Key header/, path);
    t.is(
      headerValue(res.denied_response!.headers, 'www-authenticate'),
      undefined,
      'nothing that invites an OAuth flow',
    );
  }
  for (const path of [
    '/.well-known/oauth-authorization-server/mcp/keyed',
    '/.well-known/openid-configuration/mcp/keyed',
    '/mcp/keyed/.well-known/openid-configuration',
    '/.well-known/oauth-protected-resource/mcp/keyed',
  ]) {
    const res = await get(keyed, path);
    t.is(deniedStatus(res), 404, path);
    t.deepEqual(deniedBody(res).supported_methods, ['X-API-Key header'], path);
    t.regex(
      deniedBody(res).error_description,
      /The MCP endpoint \/mcp\/keyed authenticates with an API key, not OAuth/,
      path,
    );
  }
  const http = await keyed.http('/.well-known/oauth-authorization-server');
  t.is(http.status, 404, 'the HTTP port answers the same');
  t.deepEqual(JSON.parse(http.text).supported_methods, ['X-API-Key header']);
});

test('endpoints that take only mTLS workloads or a session cookie: the 404s name those methods, never "no credential" or "an API key"', async (t) => {
  const other = await startTestService({
    oauth: { issuers: [{ issuer: ISSUER, jwksUri: `${ISSUER}/certs` }] },
    endpoints: [
      { name: 'mesh', match: { pathPrefix: '/mcp/mesh' }, auth: { apiKey: false, mtls: true } },
      {
        name: 'dash',
        match: { pathPrefix: '/mcp/dash' },
        auth: { apiKey: false, jwtCookie: 'mcp_session' },
        resource: 'https://mcp.example.com/mcp/dash',
        allowedOrigins: ['https://dash.example.com'],
      },
    ],
  });
  t.teardown(() => other.stop());
  const MTLS = 'mTLS client certificate (SPIFFE ID)';
  const COOKIE = 'Cookie mcp_session (JWT, from a page on an allowed origin)';
  const root = deniedBody(await get(other, '/.well-known/oauth-authorization-server'));
  t.deepEqual([...root.supported_methods].sort(), [COOKIE, MTLS]);
  t.is(
    root.error_description.split('. ').pop(),
    `The MCP endpoints here do not use OAuth: they authenticate with ${root.supported_methods.join(' or ')}.`,
  );
  for (const [path, method] of [
    ['/mcp/mesh', MTLS],
    ['/mcp/dash', COOKIE],
  ] as const) {
    const res = deniedBody(await get(other, `/.well-known/openid-configuration${path}`));
    t.is(
      res.error_description.split('. ').pop(),
      `The MCP endpoint ${path} does not use OAuth: it authenticates with ${method}.`,
      path,
    );
  }
});

test('on a host with OAuth endpoints the 404 points at their protected resource metadata', async (t) => {
  const root = deniedBody(await get(svc, '/.well-known/oauth-authorization-server'));
  t.deepEqual(root.supported_methods, ['Authorization header (Bearer token)', 'X-API-Key header']);
  t.regex(
    root.error_description,
    /protected resource metadata \(\/\.well-known\/oauth-protected-resource<endpoint path>\)/,
  );
  const files = deniedBody(await get(svc, '/.well-known/openid-configuration/mcp/files'));
  t.deepEqual(files.supported_methods, ['Authorization header (Bearer token)', 'X-API-Key header']);
  t.regex(
    files.error_description,
    /https:\/\/mcp\.example\.com\/\.well-known\/oauth-protected-resource\/mcp\/files\), or an API key/,
  );
});

test('every other unknown path without a credential is still 401, the OAuth registration and authorization endpoints included', async (t) => {
  for (const [method, path] of [
    ['POST', '/register'],
    ['GET', '/authorize'],
    ['POST', '/token'],
    ['GET', '/.well-known/other'],
    ['GET', '/.well-known/oauth-authorization-serverx'],
    ['POST', '/.well-known/openid-configuration'],
  ] as const) {
    const res = await svc.check(checkRequest({ method, path, ...(method === 'POST' ? { body: '{}' } : {}) }));
    t.is(deniedStatus(res), 401, `${method} ${path}`);
  }
});

test('an MCP server that is its own authorization server serves its documents through endpoints declared at their paths', async (t) => {
  const own = await startTestService({
    endpoints: [
      { name: 'mcp', match: { pathPrefix: '/mcp' }, auth: { apiKey: true, oauth: false } },
      {
        name: 'as-metadata',
        match: { pathPrefix: '/.well-known/oauth-authorization-server' },
        auth: { apiKey: false, oauth: false },
      },
      { name: 'well-known', match: { pathPrefix: '/mcp/.well-known' }, auth: { apiKey: false, oauth: false } },
    ],
  });
  t.teardown(() => own.stop());
  const as = await get(own, '/.well-known/oauth-authorization-server');
  t.truthy(as.ok_response, 'forwarded to the MCP server');
  t.is(headerValue(as.ok_response!.headers, 'x-mcp-auth-method'), 'anonymous');
  t.truthy((await get(own, '/.well-known/oauth-authorization-server/mcp')).ok_response);
  t.truthy((await get(own, '/mcp/.well-known/openid-configuration')).ok_response);
  t.is(
    deniedStatus(await get(own, '/.well-known/openid-configuration')),
    404,
    'a document not declared is still answered 404',
  );
  t.is(
    deniedStatus(await own.check(checkRequest({ method: 'GET', path: '/mcp' }))),
    401,
    'the MCP endpoint itself still needs its key',
  );
});
