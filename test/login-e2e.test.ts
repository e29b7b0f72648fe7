// `mcp-authz login` end to end with real parts: the CLI in a child process, a real OpenID
// Provider (oidc-provider) on loopback, Debian's chromium signing in at the provider's pages,
// and the real mcp-authz behind the Envoy-like proxy as the MCP endpoint whose 401 starts the
// discovery. The token printed must verify against the provider's JWKS for the endpoint's
// resource, open the tools its scopes grant (through the proxy and through `check --bearer`)
// and no others; and every way a login fails ends with its own exit code.
import { spawn } from 'node:child_process';
import { chmodSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LOGIN_EXIT_CODES } from '../src/cli/login-exit-codes.js';
import { launchBrowser, type TestBrowser } from './helpers/browser.js';
import { ROOT } from './helpers/cli.js';
import { signInAtIdp, startOidcProvider, type OidcTestProvider } from './helpers/oidc-provider.js';
import { connectedClient } from './e2e/mcp-client.js';
import { startStack, type Stack } from './e2e/stack.js';

const BIN = join(ROOT, 'src', 'cli', 'bin.ts');
const SCOPES = ['tools:search', 'tools:read_file'];
const ALICE = { username: 'alice', password: 'alice-password', groups: ['engineering'] };
const NATIVE = {
  token_endpoint_auth_method: 'none',
  application_type: 'native',
  redirect_uris: ['http://127.0.0.1/callback'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
};
const CONFIDENTIAL_SECRET = 'the-right-secret-0123456789abcdef';
// --timeout for the logins a browser completes: a hang guard, not a measure (a cold start of the
// CLI under tsx on a loaded 2-core machine takes a long time).
const HANG_GUARD = '280';

let idp: OidcTestProvider;
let stack: Stack;
let resource: string;
let browser: TestBrowser;
let dir: string;
let checkConfig: string;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mcp-authz-login-'));
  idp = await startOidcProvider({
    users: [ALICE],
    clients: [
      { client_id: 'login-cli', ...NATIVE },
      {
        client_id: 'login-confidential',
        client_secret: CONFIDENTIAL_SECRET,
        ...NATIVE,
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
  });
  stack = await startStack({
    config: (proxyUrl) => {
      resource = `${proxyUrl}/mcp/docs`;
      return {
        publicBaseUrl: proxyUrl,
        oauth: { issuers: [{ issuer: idp.issuer }] },
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
  // The IdP issues tokens for this resource with more scopes than the endpoint advertises.
  idp.addResource(resource, { scopes: [...SCOPES, 'tools:delete_file'] });
  checkConfig = join(dir, 'check.yaml');
  writeFileSync(
    checkConfig,
    JSON.stringify({
      oauth: { issuers: [{ issuer: idp.issuer }] },
      endpoints: [
        {
          name: 'docs',
          match: { pathPrefix: '/mcp/docs' },
          auth: { apiKey: false, oauth: true },
          resource,
          scopes: SCOPES,
        },
      ],
    }),
  );
  browser = await launchBrowser();
});

test.after.always(async () => {
  await browser?.close();
  await stack?.stop();
  await idp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `browse` gets the authorization URL login prints, as a person would. */
function cli(
  args: string[],
  opts: { browse?: (url: string) => Promise<void>; stdin?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, BROWSER: '', ...opts.env },
    });
    let stdout = '';
    let stderr = '';
    let browsing: Promise<void> | undefined;
    let browseError: unknown;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      const url = /^ {2}(http\S+)$/m.exec(stderr)?.[1];
      if (url && opts.browse && !browsing) {
        browsing = opts.browse(url).catch((err: unknown) => {
          browseError = err;
          child.kill();
        });
      }
    });
    child.on('error', reject);
    child.on('close', async (code) => {
      await browsing;
      if (browseError) reject(new Error(`the browser step failed: ${(browseError as Error).message}\n${stderr}`));
      else resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

/** The browser opens the URL, signs in as alice and answers the consent page. */
async function signIn(url: string, consent: 'allow' | 'deny' = 'allow'): Promise<void> {
  await browser.context.clearCookies();
  const page = await browser.newPage();
  try {
    await page.goto(url);
    await signInAtIdp(page, ALICE, consent);
    await page.waitForSelector('#message');
  } finally {
    await page.close();
  }
}

async function verify(token: string) {
  return jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri)), { issuer: idp.issuer, audience: resource });
}

const rpcBody = (name: string) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name, arguments: { query: 'x', path: 'x' } },
  });

test.serial(
  "login --resource: discovery from the endpoint's 401, a browser sign-in, and a token for that resource that opens exactly the granted tools",
  async (t) => {
    const run = await cli(
      ['login', '--resource', resource, '--client-id', 'login-cli', '--no-browser', '--json', '--timeout', HANG_GUARD],
      { browse: (url) => signIn(url) },
    );
    t.is(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout);
    t.deepEqual(Object.keys(out).sort(), [
      'access_token',
      'client_id',
      'expires_at',
      'expires_in',
      'issuer',
      'resource',
      'scopes',
      'token_type',
    ]);
    t.false('refresh_token' in out, 'never printed');
    t.is(out.issuer, idp.issuer);
    t.is(out.resource, resource);
    t.is(out.token_type, 'Bearer');
    t.deepEqual([...out.scopes].sort(), [...SCOPES].sort(), "the challenge's scopes were asked for");
    t.true(Date.parse(out.expires_at) > Date.now());
    t.regex(
      run.stderr,
      new RegExp(`metadata: ${resource.replace('/mcp/docs', '')}/\\.well-known/oauth-protected-resource/mcp/docs`),
    );

    const { payload } = await verify(out.access_token);
    t.is(payload.sub, 'alice');
    t.is(payload.aud, resource);
    t.is(payload.client_id, 'login-cli');
    t.deepEqual(payload.groups, ['engineering']);

    // Through the proxy and the real service, with the official SDK client.
    const session = await connectedClient(stack.url('/mcp/docs'), {
      headers: { authorization: `Bearer ${out.access_token}` },
    });
    try {
      const result = await session.client.callTool({ name: 'search', arguments: { query: 'q' } });
      t.deepEqual(result.content, [{ type: 'text', text: 'results for q' }]);
      const denied = await t.throwsAsync(session.client.callTool({ name: 'delete_file', arguments: { path: 'x' } }));
      t.is((denied as StreamableHTTPError).code, 403);
    } finally {
      await session.close();
    }
    t.is(stack.mcp.callsOf('delete_file').length, 0);

    // One line: the JSON login printed, piped into check.
    const allow = await cli(
      ['check', '--config', checkConfig, '--path', '/mcp/docs', '--body', rpcBody('search'), '--bearer', '-'],
      { stdin: run.stdout },
    );
    t.is(allow.code, 0, allow.stdout + allow.stderr);
    t.is(JSON.parse(allow.stdout).decision, 'allow');
    const deny = await cli(
      ['check', '--config', checkConfig, '--path', '/mcp/docs', '--body', rpcBody('delete_file'), '--bearer', '-'],
      { stdin: run.stdout },
    );
    t.is(deny.code, 3);
    t.is(JSON.parse(deny.stdout).status, 403);
    t.false(allow.stdout.includes(out.access_token), 'check never echoes the token');
  },
);

test.serial(
  'without --client-id the client registers dynamically (RFC 7591); --save writes 0600 JSON with the refresh token, which check --bearer @file reads',
  async (t) => {
    const save = join(dir, 'token.json');
    const before = idp.requests.filter((r) => r.method === 'POST' && r.path === '/reg').length;
    const run = await cli(
      [
        'login',
        '--issuer',
        idp.issuer,
        '--resource',
        resource,
        '--scope',
        'tools:search',
        '--no-browser',
        '--save',
        save,
        '--timeout',
        HANG_GUARD,
      ],
      { browse: (url) => signIn(url) },
    );
    t.is(run.code, 0, run.stderr);
    t.is(idp.requests.filter((r) => r.method === 'POST' && r.path === '/reg').length, before + 1);
    t.regex(run.stderr, /dynamically registered client/);
    const token = run.stdout.trim();
    t.regex(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'without --json, standard output is the token alone');
    const { payload } = await verify(token);
    t.is(payload.scope, 'tools:search');
    t.not(payload.client_id, 'login-cli');

    t.is(lstatSync(save).mode & 0o777, 0o600);
    const saved = JSON.parse(readFileSync(save, 'utf8'));
    t.is(saved.access_token, token);
    t.is(typeof saved.refresh_token, 'string');
    t.is(saved.client_id, payload.client_id);
    t.false(run.stdout.includes(saved.refresh_token) || run.stderr.includes(saved.refresh_token));

    const allow = await cli([
      'check',
      '--config',
      checkConfig,
      '--path',
      '/mcp/docs',
      '--body',
      rpcBody('search'),
      '--bearer',
      `@${save}`,
    ]);
    t.is(allow.code, 0, allow.stdout + allow.stderr);
    const deny = await cli([
      'check',
      '--config',
      checkConfig,
      '--path',
      '/mcp/docs',
      '--body',
      rpcBody('read_file'),
      '--bearer',
      `@${save}`,
    ]);
    t.is(deny.code, 3, 'read_file was not asked for this time');
  },
);

test.serial(
  'a Client ID Metadata Document URL is the client_id: the provider fetches the document over HTTPS and the login completes',
  async (t) => {
    const cert = readFileSync(join(import.meta.dirname, 'fixtures', 'cimd', 'cert.pem'), 'utf8');
    const key = readFileSync(join(import.meta.dirname, 'fixtures', 'cimd', 'key.pem'), 'utf8');
    let fetched = 0;
    let clientId = '';
    const docServer = createHttpsServer({ cert, key }, (req, res) => {
      fetched++;
      if (req.url !== '/mcp-authz-client.json') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          client_id: clientId,
          client_name: 'mcp-authz login',
          redirect_uris: ['http://127.0.0.1/callback'],
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'none',
          application_type: 'native',
        }),
      );
    });
    await new Promise<void>((r) => docServer.listen(0, '127.0.0.1', r));
    t.teardown(() => docServer.close());
    clientId = `https://127.0.0.1:${(docServer.address() as AddressInfo).port}/mcp-authz-client.json`;
    const cimdIdp = await startOidcProvider({
      users: [ALICE],
      resources: { [resource]: { scopes: SCOPES } },
      registration: false,
      trustedCa: cert,
    });
    t.teardown(() => cimdIdp.stop());

    const run = await cli(
      [
        'login',
        '--issuer',
        cimdIdp.issuer,
        '--resource',
        resource,
        '--client-metadata-url',
        clientId,
        '--scope',
        'tools:search',
        '--no-browser',
        '--json',
        '--timeout',
        HANG_GUARD,
      ],
      { browse: (url) => signIn(url) },
    );
    t.is(run.code, 0, run.stderr);
    t.true(fetched > 0, 'the provider fetched the document');
    const out = JSON.parse(run.stdout);
    t.is(out.client_id, clientId);
    const { payload } = await jwtVerify(out.access_token, createRemoteJWKSet(new URL(cimdIdp.jwksUri)), {
      issuer: cimdIdp.issuer,
      audience: resource,
    });
    t.is(payload.client_id, clientId);
  },
);

// ---- failures, each with its exit code

test.serial('cancelling at the consent page is access_denied (exit 17), and the browser is told', async (t) => {
  const run = await cli(
    [
      'login',
      '--issuer',
      idp.issuer,
      '--resource',
      resource,
      '--scope',
      'tools:search',
      '--client-id',
      'login-cli',
      '--no-browser',
      '--timeout',
      HANG_GUARD,
    ],
    { browse: (url) => signIn(url, 'deny') },
  );
  t.is(run.code, LOGIN_EXIT_CODES.access_denied, run.stderr);
  t.regex(run.stderr, /refused the login \(access_denied/);
  t.is(run.stdout, '');
});

test.serial(
  'a redirect whose state was tampered with is discarded: state_mismatch (exit 16), no code exchanged',
  async (t) => {
    const tokenCalls = () => idp.requests.filter((r) => r.path === '/token').length;
    const before = tokenCalls();
    const run = await cli(
      [
        'login',
        '--issuer',
        idp.issuer,
        '--resource',
        resource,
        '--scope',
        'tools:search',
        '--client-id',
        'login-cli',
        '--no-browser',
        '--timeout',
        HANG_GUARD,
      ],
      {
        browse: async (url) => {
          await browser.context.clearCookies();
          const page = await browser.newPage();
          try {
            // The provider's redirect to the loopback listener, rewritten in flight. Playwright
            // routes only the first request of a redirect chain, so the consent form's POST is
            // routed and its chain (confirm → resume → callback) followed here, with the
            // context's cookies, up to the redirect to the listener.
            await page.route(new RegExp(`^${idp.issuer}/interaction/[^/]+/confirm$`), async (route) => {
              const confirmed = await route.fetch({ maxRedirects: 0 });
              const resume = new URL(confirmed.headers().location!, idp.issuer);
              const resumed = await browser.context.request.get(resume.href, { maxRedirects: 0 });
              const callback = new URL(resumed.headers().location!);
              t.truthy(callback.searchParams.get('code'), 'the provider issued a code');
              callback.searchParams.set('state', 'forged-state');
              await route.fulfill({ status: 303, headers: { location: callback.href } });
            });
            await page.goto(url);
            await signInAtIdp(page, ALICE, 'allow');
            await page.waitForSelector('#message');
            t.regex(await page.locator('#message').innerText(), /state/);
          } finally {
            await page.close();
          }
        },
      },
    );
    t.is(run.code, LOGIN_EXIT_CODES.state_mismatch, run.stderr);
    t.is(run.stdout, '');
    t.is(tokenCalls(), before, 'the code was not redeemed');
  },
);

test.serial('a wrong client secret: the token endpoint refuses the code, exchange_refused (exit 20)', async (t) => {
  const secret = join(dir, 'wrong-secret');
  writeFileSync(secret, 'not-the-secret\n', { mode: 0o600 });
  const run = await cli(
    [
      'login',
      '--issuer',
      idp.issuer,
      '--resource',
      resource,
      '--client-id',
      'login-confidential',
      '--client-secret-file',
      secret,
      '--scope',
      'tools:search',
      '--no-browser',
      '--timeout',
      HANG_GUARD,
    ],
    { browse: (url) => signIn(url) },
  );
  t.is(run.code, LOGIN_EXIT_CODES.exchange_refused, run.stderr);
  t.regex(run.stderr, /refused the authorization code: invalid_client/);
});

test.serial(
  'an error other than access_denied on the callback (an unknown resource: invalid_target) is authorization_error (exit 18)',
  async (t) => {
    const run = await cli(
      [
        'login',
        '--issuer',
        idp.issuer,
        '--resource',
        'https://unknown.example.com/mcp',
        '--client-id',
        'login-cli',
        '--no-browser',
        '--timeout',
        HANG_GUARD,
      ],
      {
        // The provider refuses before any sign-in: the browser only follows the redirect.
        browse: async (url) => {
          const page = await browser.newPage();
          try {
            await page.goto(url);
            await page.waitForSelector('#message');
          } finally {
            await page.close();
          }
        },
      },
    );
    t.is(run.code, LOGIN_EXIT_CODES.authorization_error, run.stderr);
    t.regex(run.stderr, /invalid_target/);
  },
);

test.serial(
  'no --scope and none discovered: the provider refuses a request without scope as access_denied (exit 17), and the message says to pass --scope',
  async (t) => {
    const run = await cli(
      [
        'login',
        '--issuer',
        idp.issuer,
        '--resource',
        resource,
        '--client-id',
        'login-cli',
        '--no-browser',
        '--timeout',
        HANG_GUARD,
      ],
      {
        // The consent page lists nothing; Allow grants nothing, and the provider answers access_denied.
        browse: (url) => signIn(url),
      },
    );
    t.is(run.code, LOGIN_EXIT_CODES.access_denied, run.stderr);
    t.regex(run.stderr, /No scope was asked for .*pass --scope/);
    const url = new URL(/^ {2}(http\S+)$/m.exec(run.stderr)![1]!);
    t.false(url.searchParams.has('scope'));
  },
);

test.serial(
  'without --no-browser the URL goes to $BROWSER (no shell between), and the login completes from there',
  async (t) => {
    const opened = join(dir, 'opened-url');
    const opener = join(dir, 'browser.sh');
    // The URL is one argument: written as given, "&" and all.
    writeFileSync(opener, `#!/bin/sh\nprintf '%s' "$1" > "${opened}.tmp" && mv "${opened}.tmp" "${opened}"\n`, {
      mode: 0o700,
    });
    const running = cli(
      [
        'login',
        '--issuer',
        idp.issuer,
        '--resource',
        resource,
        '--scope',
        'tools:search',
        '--client-id',
        'login-cli',
        '--json',
        '--timeout',
        HANG_GUARD,
      ],
      { env: { BROWSER: opener } },
    );
    // Polled with a generous deadline: the CLI's cold start is slow on a loaded machine.
    let url: string | undefined;
    for (const deadline = Date.now() + 240_000; url === undefined && Date.now() < deadline; ) {
      try {
        url = readFileSync(opened, 'utf8');
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    t.truthy(url, 'the opener was run with the URL');
    t.regex(url!, /&code_challenge_method=S256&/);
    await signIn(url!);
    const run = await running;
    t.is(run.code, 0, run.stderr);
    t.regex(run.stderr, /Opening the browser/);
    const { payload } = await verify(JSON.parse(run.stdout).access_token);
    t.is(payload.scope, 'tools:search');
  },
);

test('no browser ever comes back: timeout (exit 19) with a short --timeout', async (t) => {
  const run = await cli([
    'login',
    '--issuer',
    idp.issuer,
    '--client-id',
    'login-cli',
    '--no-browser',
    '--timeout',
    '2',
  ]);
  t.is(run.code, LOGIN_EXIT_CODES.timeout, run.stderr);
  t.regex(run.stderr, /did not finish within --timeout 2 s/);
});

async function serve(
  handler: Parameters<typeof createHttpServer>[1],
): Promise<{ url: string; server: Server; paths: string[] }> {
  const paths: string[] = [];
  const server = createHttpServer((req, res) => {
    paths.push(req.url ?? '');
    handler!(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, paths };
}

test('a taken --port: port_in_use (exit 15), before the authorization server is asked anything', async (t) => {
  const blocker = createHttpServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.teardown(() => blocker.close());
  const issuer = await serve((_req, res) => res.writeHead(404).end());
  t.teardown(() => issuer.server.close());
  // A day's --timeout: the command must end on the failure, not when its deadline passes.
  const run = await cli([
    'login',
    '--issuer',
    issuer.url,
    '--client-id',
    'login-cli',
    '--no-browser',
    '--timeout',
    '86400',
    '--port',
    String((blocker.address() as AddressInfo).port),
  ]);
  t.is(run.code, LOGIN_EXIT_CODES.port_in_use, run.stderr);
  t.regex(run.stderr, /is in use/);
  t.deepEqual(issuer.paths, [], 'nothing was asked of the issuer');
});

test('an issuer nobody answers at: unreachable (exit 10)', async (t) => {
  const closed = createHttpServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const run = await cli(['login', '--issuer', `http://127.0.0.1:${port}`, '--client-id', 'x', '--no-browser']);
  t.is(run.code, LOGIN_EXIT_CODES.unreachable, run.stderr);
  t.regex(run.stderr, /ECONNREFUSED/);
});

test('no metadata anywhere: metadata_missing (exit 11), for an issuer and for an MCP endpoint, after every URL the spec lists', async (t) => {
  const empty = await serve((_req, res) => res.writeHead(404).end());
  t.teardown(() => empty.server.close());
  const asRun = await cli(['login', '--issuer', `${empty.url}/tenant1`, '--client-id', 'x', '--no-browser']);
  t.is(asRun.code, LOGIN_EXIT_CODES.metadata_missing, asRun.stderr);
  t.deepEqual(empty.paths, [
    '/.well-known/oauth-authorization-server/tenant1',
    '/.well-known/openid-configuration/tenant1',
    '/tenant1/.well-known/openid-configuration',
  ]);

  empty.paths.length = 0;
  const prRun = await cli(['login', '--resource', `${empty.url}/mcp/files`, '--client-id', 'x', '--no-browser']);
  t.is(prRun.code, LOGIN_EXIT_CODES.metadata_missing, prRun.stderr);
  t.deepEqual(empty.paths, [
    '/mcp/files',
    '/.well-known/oauth-protected-resource/mcp/files',
    '/.well-known/oauth-protected-resource',
  ]);
  t.regex(prRun.stderr, /--issuer/);
});

test('metadata without PKCE S256 is refused: metadata_invalid (exit 12)', async (t) => {
  const doc = JSON.parse(await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).text());
  const noPkce = await serve((_req, res) =>
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ ...doc, issuer: noPkceUrl, code_challenge_methods_supported: undefined })),
  );
  const noPkceUrl = noPkce.url;
  t.teardown(() => noPkce.server.close());
  const run = await cli(['login', '--issuer', noPkceUrl, '--client-id', 'x', '--no-browser']);
  t.is(run.code, LOGIN_EXIT_CODES.metadata_invalid, run.stderr);
  t.regex(run.stderr, /S256/);
});

test("the real provider's metadata served from another origin names another issuer: issuer_mismatch (exit 13)", async (t) => {
  const doc = await (await fetch(`${idp.issuer}/.well-known/oauth-authorization-server`)).text();
  const mirror = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(doc));
  t.teardown(() => mirror.server.close());
  const run = await cli(['login', '--issuer', mirror.url, '--client-id', 'x', '--no-browser']);
  t.is(run.code, LOGIN_EXIT_CODES.issuer_mismatch, run.stderr);
  t.regex(run.stderr, new RegExp(`is for issuer ${idp.issuer}`));
});

test('no client id and a provider that offers neither registration nor client metadata documents: client_registration (exit 14)', async (t) => {
  const closedIdp = await startOidcProvider({ registration: false, clientIdMetadataDocument: false });
  t.teardown(() => closedIdp.stop());
  const run = await cli(['login', '--issuer', closedIdp.issuer, '--no-browser']);
  t.is(run.code, LOGIN_EXIT_CODES.client_registration, run.stderr);
  t.regex(run.stderr, /pass --client-id/);
});

test('--save to a file others can read is refused before the login starts: save_refused (exit 21)', async (t) => {
  const wide = join(dir, 'wide.json');
  writeFileSync(wide, '{}');
  chmodSync(wide, 0o644);
  const issuer = await serve((_req, res) => res.writeHead(404).end());
  t.teardown(() => issuer.server.close());
  const run = await cli(['login', '--issuer', issuer.url, '--client-id', 'login-cli', '--no-browser', '--save', wide]);
  t.is(run.code, LOGIN_EXIT_CODES.save_refused, run.stderr);
  t.regex(run.stderr, /mode 0644/);
  t.deepEqual(issuer.paths, [], 'nothing was asked of the issuer');
  t.is(readFileSync(wide, 'utf8'), '{}');
});

test('usage mistakes are exit 2 with the reason: nothing to log in to, two client identities, a bad port', async (t) => {
  for (const [args, why] of [
    [[], /--resource .* or --issuer/],
    [['--issuer', idp.issuer, '--client-id', 'a', '--client-metadata-url', 'https://e.com/c.json'], /give one/],
    [['--issuer', idp.issuer, '--port', '70000'], /--port/],
    [['--issuer', idp.issuer, '--client-metadata-url', 'http://e.com/c.json'], /https/],
    [['--issuer', idp.issuer, '--client-secret-file', 'x'], /goes with --client-id/],
  ] as const) {
    const run = await cli(['login', ...args]);
    t.is(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    t.regex(run.stderr, why);
  }
});
