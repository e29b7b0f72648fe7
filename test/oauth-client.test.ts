// The OAuth client behind `mcp-authz login`, piece by piece: the WWW-Authenticate reader
// (property-tested against the grammar), the well-known URLs in the MCP spec's order, what a
// protected-resource document may cover, the callback read strictly, the token file's rules.
import { chmodSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';
import { authorizationUrl, newPkce, readCallback, s256 } from '../src/oauth-client/authorization-code.js';
import { authorizationServerMetadataUrls, sameIssuer } from '../src/oauth-client/authorization-server.js';
import { clientMetadataUrlProblem } from '../src/oauth-client/client-registration.js';
import { assertTransport } from '../src/oauth-client/http.js';
import { LoginFailure } from '../src/oauth-client/login-failure.js';
import { protectedResourceUrls, resourceCovers } from '../src/oauth-client/protected-resource.js';
import { secretAuthMethod } from '../src/oauth-client/token-endpoint.js';
import { bearerChallenge, ChallengeSyntaxError, parseChallenges } from '../src/oauth-client/www-authenticate.js';
import { browserCommand } from '../src/cli/open-browser.js';
import { checkSaveTarget, readBearer, saveTokenFile } from '../src/cli/token-file.js';
import { LOGIN_EXIT_CODES, loginExitTable } from '../src/cli/login-exit-codes.js';
import { LOGIN_FAILURES } from '../src/oauth-client/login-failure.js';

const failureCode = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err instanceof LoginFailure ? err.code : `not a LoginFailure: ${(err as Error).message}`;
  }
  return 'no failure';
};

// ---- WWW-Authenticate

test('a Bearer challenge as mcp-authz sends it: realm, resource_metadata and scope read back', (t) => {
  const h =
    'Bearer realm="mcp", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp/files", scope="tools:search tools:read_file"';
  const p = bearerChallenge(h)!;
  t.is(p.get('resource_metadata'), 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp/files');
  t.is(p.get('scope'), 'tools:search tools:read_file');
  t.is(p.get('realm'), 'mcp');
});

test('several challenges in one header: the Bearer one is found after a token68 and after params of another scheme', (t) => {
  const cs = parseChallenges(
    'Basic dXNlcjpwYXNz==, Newauth realm="apps", type=1, title="Login to \\"apps\\"", Bearer resource_metadata="https://a/x", error="invalid_token"',
  );
  t.deepEqual(
    cs.map((c) => c.scheme),
    ['basic', 'newauth', 'bearer'],
  );
  t.is(cs[0]!.token68, 'dXNlcjpwYXNz==');
  t.is(cs[1]!.params.get('title'), 'Login to "apps"');
  t.is(cs[1]!.params.get('type'), '1');
  t.is(cs[2]!.params.get('error'), 'invalid_token');
  t.is(bearerChallenge('Basic realm="x"'), undefined);
  t.is(bearerChallenge(null), undefined);
});

test('a parameter given twice in one challenge makes the header unreadable instead of picking one', (t) => {
  t.throws(() => parseChallenges('Bearer resource_metadata="https://a/1", resource_metadata="https://evil/2"'), {
    instanceOf: ChallengeSyntaxError,
  });
  t.throws(() => parseChallenges('Bearer Scope="a", scope="b"'), { instanceOf: ChallengeSyntaxError });
  t.throws(() => parseChallenges('Bearer realm="unterminated'), { instanceOf: ChallengeSyntaxError });
});

const tokenArb = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
const valueArb = fc.string({ maxLength: 40, unit: fc.constantFrom(...' abc"\\,=;:/xyz09-é'.split('')) });
const quote = (v: string) => `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;

test('property: any challenges written by the grammar (quoted values with escapes, odd spacing) read back exactly', (t) => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          scheme: tokenArb,
          params: fc.uniqueArray(fc.tuple(tokenArb, valueArb), { maxLength: 4, selector: ([k]) => k.toLowerCase() }),
        }),
        { minLength: 1, maxLength: 3 },
      ),
      fc.constantFrom(',', ' ,', ', ', ' , ', ',\t'),
      fc.constantFrom('=', ' = ', '= '),
      (challenges, comma, eq) => {
        const header = challenges
          .map((c) =>
            c.params.length ? `${c.scheme} ${c.params.map(([k, v]) => `${k}${eq}${quote(v)}`).join(comma)}` : c.scheme,
          )
          .join(comma);
        const parsed = parseChallenges(header);
        t.is(parsed.length, challenges.length, header);
        parsed.forEach((p, i) => {
          t.is(p.scheme, challenges[i]!.scheme.toLowerCase());
          t.deepEqual(
            [...p.params],
            challenges[i]!.params.map(([k, v]) => [k.toLowerCase(), v]),
          );
        });
      },
    ),
  );
});

test('property: arbitrary header text never crashes the reader: it parses or throws ChallengeSyntaxError', (t) => {
  fc.assert(
    fc.property(
      fc.string({ maxLength: 80, unit: fc.constantFrom(...'Bearer realm="a\\",=, \t b68+/=x'.split('')) }),
      (h) => {
        try {
          parseChallenges(h);
        } catch (err) {
          t.true(err instanceof ChallengeSyntaxError, String(err));
        }
      },
    ),
  );
});

test('property: where the MCP SDK finds a resource_metadata in a well-formed Bearer challenge, this reader finds the same URL', (t) => {
  const urlArb = fc.webUrl({ withQueryParameters: false, withFragments: false }).filter((u) => !/["\\]/.test(u));
  fc.assert(
    fc.property(
      urlArb,
      fc.option(fc.stringMatching(/^[a-z:_]{1,10}( [a-z:_]{1,10}){0,2}$/), { nil: undefined }),
      (url, scope) => {
        const header = `Bearer realm="mcp", resource_metadata="${url}"${scope ? `, scope="${scope}"` : ''}`;
        const sdk = extractWWWAuthenticateParams(
          new Response(null, { status: 401, headers: { 'www-authenticate': header } }),
        );
        const ours = bearerChallenge(header)!;
        t.is(new URL(ours.get('resource_metadata')!).href, sdk.resourceMetadataUrl?.href);
        t.is(ours.get('scope'), sdk.scope);
      },
    ),
  );
});

// ---- discovery URLs and documents

test('protected resource metadata URLs: path-suffixed first, then the root; only the root for an endpoint at /', (t) => {
  t.deepEqual(
    protectedResourceUrls(new URL('https://mcp.example.com/public/mcp/')).map((u) => u.url),
    [
      'https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp',
      'https://mcp.example.com/.well-known/oauth-protected-resource',
    ],
  );
  t.deepEqual(
    protectedResourceUrls(new URL('https://mcp.example.com')).map((u) => u.url),
    ['https://mcp.example.com/.well-known/oauth-protected-resource'],
  );
});

test('authorization server metadata URLs in the MCP 2025-11-25 order: OAuth inserted, OpenID inserted, OpenID appended', (t) => {
  t.deepEqual(authorizationServerMetadataUrls(new URL('https://auth.example.com/tenant1')), [
    'https://auth.example.com/.well-known/oauth-authorization-server/tenant1',
    'https://auth.example.com/.well-known/openid-configuration/tenant1',
    'https://auth.example.com/tenant1/.well-known/openid-configuration',
  ]);
  t.deepEqual(authorizationServerMetadataUrls(new URL('https://auth.example.com/')), [
    'https://auth.example.com/.well-known/oauth-authorization-server',
    'https://auth.example.com/.well-known/openid-configuration',
  ]);
});

test('a protected resource document covers its own URL and the paths below it on the same origin, nothing else', (t) => {
  const ep = new URL('https://mcp.example.com/mcp/files');
  t.true(resourceCovers('https://mcp.example.com/mcp/files', ep));
  t.true(resourceCovers('https://MCP.example.com:443/mcp/files/', ep));
  t.true(resourceCovers('https://mcp.example.com/mcp', ep));
  t.true(resourceCovers('https://mcp.example.com', ep));
  t.false(resourceCovers('https://mcp.example.com/mcp/fil', ep), 'not a segment prefix');
  t.false(resourceCovers('https://mcp.example.com/mcp/files/more', ep));
  t.false(resourceCovers('https://evil.example.com/mcp/files', ep));
  t.false(resourceCovers('http://mcp.example.com/mcp/files', ep));
  t.false(resourceCovers('https://mcp.example.com:8443/mcp/files', ep));
  t.false(resourceCovers('not a url', ep));
});

test('issuers compare as identical, forgiving only a trailing slash', (t) => {
  t.true(sameIssuer('https://idp.example.com/', 'https://idp.example.com'));
  t.true(sameIssuer('https://idp.example.com/realms/a', 'https://idp.example.com/realms/a/'));
  t.false(sameIssuer('https://IDP.example.com', 'https://idp.example.com'));
  t.false(sameIssuer('https://idp.example.com/realms/b', 'https://idp.example.com/realms/a'));
});

test('plain http is refused off loopback unless allowed; other schemes always', (t) => {
  t.notThrows(() => assertTransport('http://127.0.0.1:8080/x', 'x', false));
  t.notThrows(() => assertTransport('http://localhost/x', 'x', false));
  t.notThrows(() => assertTransport('http://[::1]:9/x', 'x', false));
  t.is(
    failureCode(() => assertTransport('http://idp.corp/x', 'x', false)),
    'metadata_invalid',
  );
  t.notThrows(() => assertTransport('http://idp.corp/x', 'x', true));
  t.is(
    failureCode(() => assertTransport('javascript:alert(1)', 'x', true)),
    'metadata_invalid',
  );
  t.is(
    failureCode(() => assertTransport('http://127.0.0.1.evil.com/x', 'x', false)),
    'metadata_invalid',
  );
});

test('Client ID Metadata Document URLs must be https with a path, no fragment, credentials or dot segments', (t) => {
  t.is(clientMetadataUrlProblem('https://example.com/mcp-authz.json'), undefined);
  t.regex(clientMetadataUrlProblem('http://example.com/c.json')!, /https/);
  t.regex(clientMetadataUrlProblem('https://example.com/')!, /path/);
  t.regex(clientMetadataUrlProblem('https://example.com/c.json#x')!, /fragment/);
  t.regex(clientMetadataUrlProblem('https://u:p@example.com/c.json')!, /credentials/);
  t.regex(clientMetadataUrlProblem('https://example.com/a/../c.json')!, /segments/);
  t.regex(clientMetadataUrlProblem('https://example.com/a/%2e%2E/c.json')!, /segments/);
});

test('a client secret is sent as client_secret_basic unless the server lists only client_secret_post', (t) => {
  t.is(secretAuthMethod(['client_secret_basic', 'client_secret_post']), 'client_secret_basic');
  t.is(secretAuthMethod(['client_secret_post', 'none']), 'client_secret_post');
  t.is(secretAuthMethod(['private_key_jwt']), 'client_secret_basic');
});

// ---- the authorization request and the callback

test('PKCE: a 43-character verifier and its S256 challenge (RFC 7636 appendix B vector)', (t) => {
  t.is(s256('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'), 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  const p = newPkce();
  t.regex(p.verifier, /^[A-Za-z0-9_-]{43}$/);
  t.is(p.challenge, s256(p.verifier));
  t.not(newPkce().verifier, p.verifier);
});

test("the authorization URL keeps the endpoint's own query and carries every parameter once", (t) => {
  const u = new URL(
    authorizationUrl({
      authorizationEndpoint: 'https://idp.example.com/authorize?tenant=a&state=x',
      clientId: 'c',
      redirectUri: 'http://127.0.0.1:5/callback',
      pkce: { verifier: 'v', challenge: 'ch' },
      state: 's',
      scopes: ['a', 'b'],
      resource: 'https://mcp.example.com/mcp',
    }),
  );
  const q = u.searchParams;
  t.is(q.get('tenant'), 'a');
  t.deepEqual(q.getAll('state'), ['s']);
  t.is(q.get('response_type'), 'code');
  t.is(q.get('code_challenge_method'), 'S256');
  t.is(q.get('code_challenge'), 'ch');
  t.is(q.get('scope'), 'a b');
  t.is(q.get('resource'), 'https://mcp.example.com/mcp');
  t.false(q.has('code_verifier'));
  const bare = new URL(
    authorizationUrl({
      authorizationEndpoint: 'https://idp/a',
      clientId: 'c',
      redirectUri: 'r',
      pkce: { verifier: 'v', challenge: 'ch' },
      state: 's',
      scopes: [],
    }),
  );
  t.false(bare.searchParams.has('scope'));
  t.false(bare.searchParams.has('resource'));
});

const expect = { state: 'S', issuer: 'https://idp.example.com', issRequired: true };

test('the callback: state is checked before anything else, then iss, then error, then code', (t) => {
  t.is(readCallback('code=C&state=S&iss=https%3A%2F%2Fidp.example.com', expect), 'C');
  t.is(
    failureCode(() => readCallback('code=C&state=T&iss=https%3A%2F%2Fidp.example.com', expect)),
    'state_mismatch',
  );
  t.is(
    failureCode(() => readCallback('code=C&iss=https%3A%2F%2Fidp.example.com', expect)),
    'state_mismatch',
  );
  t.is(
    failureCode(() => readCallback('error=access_denied&state=T', expect)),
    'state_mismatch',
    'an error with the wrong state is not ours either',
  );
  t.is(
    failureCode(() => readCallback('code=C&state=S&iss=https%3A%2F%2Fevil.example.com', expect)),
    'issuer_mismatch',
  );
  t.is(
    failureCode(() => readCallback('code=C&state=S', expect)),
    'issuer_mismatch',
    'iss required when advertised',
  );
  t.is(readCallback('code=C&state=S', { ...expect, issRequired: false }), 'C');
  t.is(
    failureCode(() => readCallback('error=access_denied&state=S&iss=https%3A%2F%2Fidp.example.com', expect)),
    'access_denied',
  );
  t.is(
    failureCode(() =>
      readCallback('error=invalid_scope&error_description=nope&state=S&iss=https%3A%2F%2Fidp.example.com', expect),
    ),
    'authorization_error',
  );
  t.is(
    failureCode(() => readCallback('state=S&iss=https%3A%2F%2Fidp.example.com', expect)),
    'authorization_error',
  );
});

test('a callback parameter given twice is refused, whichever copy would match', (t) => {
  for (const q of [
    'code=C&state=S&state=S',
    'code=C&state=X&state=S',
    'code=C&code=D&state=S',
    'code=C&state=S&iss=a&iss=b',
    'error=a&error=b&state=S',
  ]) {
    t.is(
      failureCode(() => readCallback(q, { ...expect, issRequired: false })),
      'state_mismatch',
      q,
    );
  }
});

// ---- exit codes

test('every login failure has its own exit code, none of them 0-3, and login --help lists each', (t) => {
  const codes = Object.values(LOGIN_EXIT_CODES);
  t.is(new Set(codes).size, codes.length);
  t.true(codes.every((c) => c > 3 && c < 126));
  t.deepEqual(Object.keys(LOGIN_EXIT_CODES).sort(), Object.keys(LOGIN_FAILURES).sort());
  const table = loginExitTable();
  for (const [code, n] of Object.entries(LOGIN_EXIT_CODES)) t.regex(table, new RegExp(`^ *${n}  ${code}: `, 'm'));
});

test('docs/login.md lists the same exit codes, each once', (t) => {
  const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'login.md'), 'utf8');
  const rows = [...doc.matchAll(/^\| (\d+) \| `(\w+)`/gm)].map((m) => [m[2], Number(m[1])]);
  t.deepEqual(Object.fromEntries(rows), LOGIN_EXIT_CODES);
  t.is(rows.length, Object.keys(LOGIN_EXIT_CODES).length);
});

// ---- the browser opener

test("the browser opener: $BROWSER first, else the platform's, and the URL is one argument no shell reads", (t) => {
  const url = 'https://idp/a?x=1&y=2;z';
  t.deepEqual(browserCommand(url, { BROWSER: 'firefox' }, 'linux'), ['firefox', [url]]);
  t.deepEqual(browserCommand(url, { BROWSER: 'firefox --new-window' }, 'linux'), ['firefox', ['--new-window', url]]);
  t.deepEqual(browserCommand(url, { BROWSER: 'w3m:lynx' }, 'linux'), ['w3m', [url]]);
  t.deepEqual(browserCommand(url, { BROWSER: 'links -g %s -x' }, 'linux'), ['links', ['-g', url, '-x']]);
  t.deepEqual(browserCommand(url, { BROWSER: ' ' }, 'linux'), ['xdg-open', [url]]);
  t.deepEqual(browserCommand(url, {}, 'linux'), ['xdg-open', [url]]);
  t.deepEqual(browserCommand(url, {}, 'darwin'), ['open', [url]]);
  t.deepEqual(browserCommand(url, {}, 'win32'), ['rundll32', ['url.dll,FileProtocolHandler', url]]);
});

// ---- token files

function scratch(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-token-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('--save writes mode 0600 and replaces a 0600 file of the same user', (t) => {
  const dir = scratch(t);
  const f = join(dir, 'token.json');
  saveTokenFile(f, { access_token: 'a' });
  t.is(lstatSync(f).mode & 0o777, 0o600);
  t.is(JSON.parse(readFileSync(f, 'utf8')).access_token, 'a');
  saveTokenFile(f, { access_token: 'b' });
  t.is(JSON.parse(readFileSync(f, 'utf8')).access_token, 'b');
  t.is(lstatSync(f).mode & 0o777, 0o600);
});

test('--save refuses a file others can read, a symlink (even to a 0600 file), a folder, and a missing folder', (t) => {
  const dir = scratch(t);
  const wide = join(dir, 'wide.json');
  writeFileSync(wide, 'old', { mode: 0o644 });
  chmodSync(wide, 0o644);
  t.is(
    failureCode(() => checkSaveTarget(wide)),
    'save_refused',
  );
  t.is(
    failureCode(() => saveTokenFile(wide, { access_token: 'x' })),
    'save_refused',
  );
  t.is(readFileSync(wide, 'utf8'), 'old', 'left alone');
  const target = join(dir, 'target.json');
  writeFileSync(target, 'old', { mode: 0o600 });
  const link = join(dir, 'link.json');
  symlinkSync(target, link);
  t.is(
    failureCode(() => saveTokenFile(link, { access_token: 'x' })),
    'save_refused',
  );
  t.is(readFileSync(target, 'utf8'), 'old');
  t.is(
    failureCode(() => checkSaveTarget(dir)),
    'save_refused',
  );
  t.is(
    failureCode(() => checkSaveTarget(join(dir, 'nope', 'token.json'))),
    'save_refused',
  );
});

test("--bearer reads a raw token, login's JSON, or a saved file, and warns about an expired one", (t) => {
  const dir = scratch(t);
  t.is(readBearer('eyJ.abc-_.x~+/=').token, 'eyJ.abc-_.x~+/=');
  t.is(readBearer('-', () => '  tok123\n').token, 'tok123');
  t.is(readBearer('@-', () => JSON.stringify({ access_token: 'tok', token_type: 'Bearer' })).token, 'tok');
  const f = join(dir, 't.json');
  writeFileSync(
    f,
    JSON.stringify({
      access_token: 'tok',
      token_type: 'bearer',
      expires_at: '2000-01-01T00:00:00Z',
      refresh_token: 'r',
    }),
  );
  const b = readBearer(`@${f}`);
  t.is(b.token, 'tok');
  t.regex(b.warning!, /expired/);
  t.is(readBearer(`@${f}`, undefined, Date.parse('1999-01-01')).warning, undefined);
  t.throws(() => readBearer('two words'), { message: /not a bearer token/ });
  t.throws(() => readBearer('-', () => '{"token":"x"}'), { message: /no access_token/ });
  t.throws(() => readBearer('-', () => '{"access_token":"x","token_type":"DPoP"}'), { message: /DPoP/ });
  t.throws(() => readBearer('-', () => '{oops'), { message: /not JSON/ });
  t.throws(() => readBearer('-', () => '\n'), { message: /empty/ });
});
