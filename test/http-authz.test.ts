// Envoy's HTTP authorization service (ext_authz `http_service`) on listen.extAuthzHttp: the
// real service, called over HTTP/1.1 the way Envoy forwards a client's request (its method,
// path_prefix + path and query, the allowed headers, the body), and held to the same
// decisions as the gRPC Check on the same requests.
import test from 'ava';
import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { loadConfigFile } from '../src/config/load.js';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { startJwksServer } from './helpers/jwks-server.js';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  headerValue,
  rpc,
  startTestService,
  type TestService,
} from './helpers/service.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

const alice = mintKey({
  id: 'alice-laptop',
  name: 'Alice',
  userId: 'alice',
  role: 'user',
  permissions: ['tools:search'],
});
const shared = mintKey({ id: 'shared', name: 'Shared', role: 'user', permissions: ['*'] });
const RESOURCE = 'https://mcp.example.com/mcp/tokens';
const WEB = 'https://mcp.example.com/mcp/web';
const PREFIX = '/authz';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  body: string;
}

/** What Envoy's http_service sends: the client's method, path_prefix + path, the allowed headers (in order, repeats kept) and the body. */
function envoyForward(
  port: number,
  o: { method?: string; path: string; headers?: [string, string][]; body?: string | Buffer; prefix?: string },
): Promise<Answer> {
  const body = o.body === undefined ? Buffer.alloc(0) : Buffer.from(o.body);
  const headers: [string, string][] = [
    ['host', 'mcp.example.com'],
    ['x-forwarded-for', '203.0.113.7'],
    ...(o.headers ?? []),
    ['content-length', String(body.length)],
  ];
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: o.method ?? 'POST',
        path: `${o.prefix ?? PREFIX}${o.path}`,
        headers: headers.flat() as unknown as Record<string, string>,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

let svc: TestService;
let idp: Awaited<ReturnType<typeof startJwksServer>>;

test.before(async () => {
  idp = await startJwksServer();
  svc = await startTestService(
    {
      listen: { extAuthzHttp: 'any' },
      extAuthzHttp: { pathPrefix: PREFIX },
      clientAddress: { from: 'x-forwarded-for', trustedHops: 1 },
      apiKeys: { file: 'keys.yaml' },
      oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
      rateLimit: { failedAuth: { maxAttempts: 3, windowSeconds: 60 } },
      publicBaseUrl: 'https://mcp.example.com',
      endpoints: [
        { name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true, oauth: false } },
        {
          name: 'keysq',
          match: { pathPrefix: '/mcp/keysq' },
          auth: { apiKey: true, oauth: false, queryParamKeys: true },
        },
        { name: 'alice', match: { pathPrefix: '/mcp/alice' }, owner: 'alice', auth: { apiKey: true, oauth: false } },
        {
          name: 'tokens',
          match: { pathPrefix: '/mcp/tokens' },
          auth: { apiKey: true, oauth: true },
          resource: RESOURCE,
        },
        { name: 'lock', match: { pathPrefix: '/mcp/lock' }, auth: { apiKey: true, oauth: false } },
        {
          name: 'web',
          match: { pathPrefix: '/mcp/web' },
          auth: { apiKey: false, oauth: false, jwtCookie: 'mcp_session' },
          resource: WEB,
          allowedOrigins: ['https://dash.example.com'],
        },
      ],
    },
    { files: { 'keys.yaml': keysFile([alice, shared]) } },
  );
});
test.after.always(async () => {
  await svc?.stop();
  await idp?.stop();
});

const port = () => svc.extAuthzHttpPort;
const json = (a: Answer) => JSON.parse(a.body) as Record<string, unknown>;

test('an allowed request is 200 with the identity headers to set and the credential and unset identity headers to remove', async (t) => {
  const a = await envoyForward(port(), {
    path: '/mcp/files',
    headers: [
      ['x-api-key', alice.key],
      ['content-type', 'application/json'],
    ],
    body: rpc('tools/call', { name: 'search' }),
  });
  t.is(a.status, 200, a.body);
  t.is(a.body, '');
  t.is(a.headers['x-mcp-user-id'], 'alice');
  t.is(a.headers['x-mcp-key-id'], 'alice-laptop');
  t.is(a.headers['x-mcp-auth-method'], 'api_key');
  const removed = String(a.headers['x-envoy-auth-headers-to-remove']).split(',');
  t.true(removed.includes('x-api-key'), 'no key passthrough');
  t.false(removed.includes('x-mcp-user-id'), 'a header set is not also removed');
  t.false(JSON.stringify(a.rawHeaders).includes(alice.key), 'the key is never echoed');
});

test('a public key leaves x-mcp-user-id to be removed, so a client cannot forge it', async (t) => {
  const a = await envoyForward(port(), {
    path: '/mcp/files',
    headers: [
      ['x-api-key', shared.key],
      ['x-mcp-user-id', 'alice'],
    ],
    body: rpc('tools/list'),
  });
  t.is(a.status, 200, a.body);
  t.is(a.headers['x-mcp-user-id'], undefined);
  t.true(String(a.headers['x-envoy-auth-headers-to-remove']).split(',').includes('x-mcp-user-id'));
});

test('denies carry their status, JSON body and headers for Envoy to send to the client', async (t) => {
  const none = await envoyForward(port(), { path: '/mcp/files', body: rpc('tools/list') });
  t.is(none.status, 401);
  t.is(none.headers['content-type'], 'application/json');
  t.is(json(none).error, 'authentication_required');
  t.is(none.headers['www-authenticate'], undefined, 'API-key-only endpoint: no Bearer challenge');

  const tool = await envoyForward(port(), {
    path: '/mcp/files',
    headers: [['x-api-key', alice.key]],
    body: rpc('tools/call', { name: 'delete_file' }),
  });
  t.is(tool.status, 403);
  t.is(json(tool).error, 'access_denied');

  const owner = await envoyForward(port(), {
    path: '/mcp/alice',
    headers: [['x-api-key', shared.key]],
    body: rpc('tools/list'),
  });
  t.is(owner.status, 403);

  const oauth = await envoyForward(port(), { path: '/mcp/tokens', body: rpc('tools/list') });
  t.is(oauth.status, 401);
  t.regex(
    String(oauth.headers['www-authenticate']),
    /^Bearer .*resource_metadata="https:\/\/mcp\.example\.com\/\.well-known\/oauth-protected-resource\/mcp\/tokens"/,
  );
});

test('a token is verified as on the gRPC service', async (t) => {
  const token = await idp.sign({ sub: 'alice', aud: RESOURCE, scope: 'tools:search' });
  const a = await envoyForward(port(), {
    path: '/mcp/tokens',
    headers: [['authorization', `Bearer ${token}`]],
    body: rpc('tools/call', { name: 'search' }),
  });
  t.is(a.status, 200, a.body);
  t.is(a.headers['x-mcp-auth-method'], 'oauth');
  t.true(String(a.headers['x-envoy-auth-headers-to-remove']).split(',').includes('authorization'));
});

test('a key in the query cannot be removed by Envoy over HTTP: 400 query_not_removable, while the same key in a header is allowed', async (t) => {
  const q = await envoyForward(port(), { path: `/mcp/keysq?api_key=${alice.key}`, body: rpc('tools/list') });
  t.is(q.status, 400);
  t.is(json(q).error, 'query_not_removable');
  t.false(q.body.includes(alice.key));
  // On the gRPC service the same request is an allow that removes the parameter.
  const grpc = await svc.check(checkRequest({ path: `/mcp/keysq?api_key=${alice.key}`, body: rpc('tools/list') }));
  t.deepEqual(grpc.ok_response?.query_parameters_to_remove, ['api_key']);
  const h = await envoyForward(port(), {
    path: '/mcp/keysq',
    headers: [['x-api-key', alice.key]],
    body: rpc('tools/list'),
  });
  t.is(h.status, 200);
});

test('a session cookie beside other cookies is refused (header_not_forwardable) when the filter is not declared to copy Cookie upstream, and removed whole when alone', async (t) => {
  // extAuthzHttp.upstreamHeaders is the default, ["x-mcp-*"]: Envoy would drop the rewritten
  // Cookie header and pass the client's, session JWT included.
  const token = await idp.sign({ sub: 'alice', aud: WEB, scope: 'tools:search' });
  const browser: [string, string][] = [
    ['origin', 'https://dash.example.com'],
    ['sec-fetch-site', 'same-site'],
  ];
  const mixed = await envoyForward(port(), {
    path: '/mcp/web',
    headers: [...browser, ['cookie', `theme=dark; mcp_session=${token}`]],
    body: rpc('tools/call', { name: 'search' }),
  });
  t.is(mixed.status, 500, mixed.body);
  t.is(json(mixed).error, 'header_not_forwardable');
  t.regex(String(json(mixed).error_description), /cookie/);
  t.false(mixed.body.includes(token));
  const alone = await envoyForward(port(), {
    path: '/mcp/web',
    headers: [...browser, ['cookie', `mcp_session=${token}`]],
    body: rpc('tools/call', { name: 'search' }),
  });
  t.is(alone.status, 200, alone.body);
  t.true(String(alone.headers['x-envoy-auth-headers-to-remove']).split(',').includes('cookie'));
  t.is(alone.headers.cookie, undefined);
});

test('extAuthzHttp.upstreamHeaders must cover the identity headers, in lower case', (t) => {
  const load = (upstreamHeaders: unknown) => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-http-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      stringify({
        listen: { extAuthzHttp: '127.0.0.1:0' },
        clientAddress: { from: 'x-forwarded-for', trustedHops: 1 },
        extAuthzHttp: { upstreamHeaders },
      }),
    );
    return () => loadConfigFile(file, {});
  };
  t.notThrows(load(['x-mcp-*', 'cookie', 'x-tenant']));
  t.throws(load(['cookie']), { message: /identity headers/ });
  t.throws(load(['x-mcp-user-id', 'x-mcp-principal']), { message: /identity headers/ });
  t.throws(load(['X-MCP-*']), { message: /lower-case/ });
});

test('a discovery document cannot be answered in place over HTTP: 404 discovery_not_routed', async (t) => {
  const a = await envoyForward(port(), { method: 'GET', path: '/.well-known/oauth-protected-resource/mcp/tokens' });
  t.is(a.status, 404);
  t.is(json(a).error, 'discovery_not_routed');
  // The HTTP port serves it.
  const doc = await svc.http('/.well-known/oauth-protected-resource/mcp/tokens');
  t.is(doc.status, 200);
});

test('a body over limits.maxBodyBytes is a 413 deny; bad UTF-8 a 400', async (t) => {
  const big = await envoyForward(port(), {
    path: '/mcp/files',
    headers: [['x-api-key', alice.key]],
    body: Buffer.alloc(1024 * 1024 + 1, 0x20),
  });
  t.is(big.status, 413);
  t.is(json(big).error, 'body_too_large');
  const bad = await envoyForward(port(), {
    path: '/mcp/files',
    headers: [['x-api-key', alice.key]],
    body: Buffer.from([0x7b, 0xff, 0x7d]),
  });
  t.is(bad.status, 400);
  t.is(json(bad).error, 'invalid_utf8');
});

test('a path outside the configured path_prefix is refused', async (t) => {
  const a = await envoyForward(port(), {
    path: '/mcp/files',
    prefix: '/other',
    headers: [['x-api-key', alice.key]],
    body: rpc('tools/list'),
  });
  t.is(a.status, 400);
  t.is(json(a).error, 'invalid_check_request');
});

test('several Host headers are refused: the upstream could route by another one than the policy saw', async (t) => {
  const a = await envoyForward(port(), {
    path: '/mcp/files',
    headers: [
      ['host', 'other.example.com'],
      ['x-api-key', alice.key],
    ],
    body: rpc('tools/list'),
  });
  t.is(a.status, 400);
  t.is(json(a).error, 'invalid_check_request');
});

test('a repeated X-API-Key header is refused as on the gRPC service', async (t) => {
  const a = await envoyForward(port(), {
    path: '/mcp/files',
    headers: [
      ['x-api-key', alice.key],
      ['x-api-key', shared.key],
    ],
    body: rpc('tools/list'),
  });
  t.is(a.status, 401);
  t.is(json(a).error, 'invalid_api_key');
});

test('the failed-authentication lockout counts the client named by X-Forwarded-For, not Envoy', async (t) => {
  const from = (addr: string, key: string) =>
    envoyForward(port(), {
      path: '/mcp/lock',
      headers: [
        ['x-forwarded-for', addr],
        ['x-api-key', key],
      ],
      body: rpc('tools/list'),
    });
  const bad = 'mcp_notakey';
  for (let i = 0; i < 3; i++) t.is((await from('198.51.100.1', bad)).status, 401);
  t.is((await from('198.51.100.1', alice.key)).status, 429, 'locked out, even with a good key');
  t.is((await from('198.51.100.2', alice.key)).status, 200, 'another client is not');
});

test('property: over HTTP and over gRPC the same request gets the same decision, status, error and identity', async (t) => {
  const keyChoice = fc.constantFrom<string | undefined>(undefined, alice.key, shared.key, 'mcp_wrong');
  const bodies = fc.constantFrom(
    rpc('tools/list'),
    rpc('tools/call', { name: 'search' }),
    rpc('tools/call', { name: 'delete_file' }),
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Name":"x"}}',
    'not json',
    '',
  );
  const paths = fc.constantFrom(
    '/mcp/files',
    '/mcp/alice',
    '/mcp/tokens',
    '/mcp/nowhere',
    '/mcp/files/../alice',
    '/mcp//files',
  );
  const methods = fc.constantFrom('POST', 'GET', 'DELETE');
  // A client of its own per run: two failed attempts (one per service) stay under the lockout.
  let run = 0;
  await fc.assert(
    fc.asyncProperty(keyChoice, bodies, paths, methods, async (key, body, path, method) => {
      const headers: [string, string][] = key ? [['x-api-key', key]] : [];
      run++;
      const source = `10.9.${run >> 8}.${run & 255}`;
      const overHttp = await envoyForward(port(), {
        method,
        path,
        headers: [['x-forwarded-for', source], ...headers],
        body,
      });
      const sample = {
        method,
        path,
        host: 'mcp.example.com',
        source,
        headers: Object.fromEntries([['x-forwarded-for', source], ...headers]),
        ...(body ? { body } : {}),
      };
      const overGrpc = await svc.check(checkRequest(sample));
      const grpcStatus = overGrpc.ok_response ? 200 : deniedStatus(overGrpc);
      t.is(overHttp.status, grpcStatus, `${method} ${path} ${body}`);
      if (overGrpc.ok_response) {
        for (const name of ['x-mcp-user-id', 'x-mcp-key-id', 'x-mcp-principal', 'x-mcp-auth-method'])
          t.is(overHttp.headers[name], headerValue(overGrpc.ok_response.headers, name));
        t.deepEqual(
          String(overHttp.headers['x-envoy-auth-headers-to-remove'] ?? '')
            .split(',')
            .filter(Boolean)
            .sort(),
          [...(overGrpc.ok_response.headers_to_remove ?? [])].sort(),
        );
      } else {
        t.is(json(overHttp).error, deniedBody(overGrpc).error);
      }
    }),
    { numRuns: 60 },
  );
});

test('listen.extAuthzHttp with the source address as client address is refused at load, saying why', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-httpsvc-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, stringify({ listen: { extAuthzHttp: '127.0.0.1:9192' }, endpoints: [] }));
  const err = t.throws(() => loadConfigFile(file, {}));
  t.regex(err!.message, /clientAddress\.from.*x-forwarded-for/s);
});
