import test from 'ava';
import { ConfigError, validateConfig } from '../src/config/load.js';

const v = (raw: unknown, env: Record<string, string> = {}) => validateConfig(raw, 'test.yaml', '/etc/mcp-authz', env);

test('an empty config gets the documented defaults', (t) => {
  const c = v({});
  t.is(c.listen.grpc, '0.0.0.0:9191');
  t.is(c.listen.http, '0.0.0.0:9090');
  t.is(c.apiKeys.header, 'x-api-key');
  t.deepEqual(c.apiKeys.queryParams, ['api_key', 'apikey']);
  t.deepEqual(c.rateLimit.failedAuth, { maxAttempts: 20, windowSeconds: 60 });
  t.deepEqual(c.rateLimit.perClient, { rps: 0, burst: 0 });
  t.is(c.clientAddress.from, 'source');
  t.is(c.oauth.clockToleranceSeconds, 30);
});

test('relative file paths resolve against the config folder', (t) => {
  const c = v({ apiKeys: { file: 'keys.yaml' }, policy: { bundle: '../bundle.tar.gz' } });
  t.is(c.apiKeys.file, '/etc/mcp-authz/keys.yaml');
  t.is(c.policy!.bundle, '/etc/bundle.tar.gz');
});

test('the environment variables override the file', (t) => {
  const c = v(
    {
      endpoints: [
        { name: 'a', match: { pathPrefix: '/a' }, auth: { oauth: true }, resource: 'https://mcp.example.com/a' },
      ],
    },
    {
      MCP_OAUTH_ISSUER: 'https://idp.example.com',
      MCP_OAUTH_AUDIENCE: 'mcp-a, mcp-b',
      MCP_OAUTH_JWKS_URI: 'https://idp.example.com/jwks',
      MCP_RATE_LIMIT_RPS: '5',
    },
  );
  t.is(c.oauth.issuers[0]!.issuer, 'https://idp.example.com');
  t.deepEqual(c.oauth.issuers[0]!.audiences, ['mcp-a', 'mcp-b']);
  t.is(c.oauth.issuers[0]!.jwksUri, 'https://idp.example.com/jwks');
  t.deepEqual(c.rateLimit.perClient, { rps: 5, burst: 5 });
});

test('a bad environment value is a config error, not a silent default', (t) => {
  const err = t.throws(() => v({}, { MCP_RATE_LIMIT_RPS: 'fast' }));
  t.true(err instanceof ConfigError);
  t.regex(err!.message, /MCP_RATE_LIMIT_RPS/);
});

test('symmetric and none algorithms are refused at load', (t) => {
  for (const alg of ['HS256', 'HS512', 'none']) {
    const err = t.throws(() => v({ oauth: { issuers: [{ issuer: 'https://idp.example.com', algorithms: [alg] }] } }));
    t.regex(err!.message, /oauth\.issuers\.0\.algorithms\.0/);
  }
});

test('an OAuth endpoint needs an issuer and a resource', (t) => {
  const err = t.throws(() => v({ endpoints: [{ name: 'a', match: { pathPrefix: '/a' }, auth: { oauth: true } }] }));
  t.regex(err!.message, /endpoints\.0\.auth\.oauth: oauth is on but no oauth\.issuers/);
  t.regex(err!.message, /endpoints\.0\.resource/);
});

test('duplicate endpoint names are refused', (t) => {
  const e = { match: { pathPrefix: '/a' }, auth: { apiKey: false } };
  const err = t.throws(() =>
    v({
      endpoints: [
        { name: 'a', ...e },
        { name: 'a', ...e },
      ],
    }),
  );
  t.regex(err!.message, /endpoints\.1\.name: duplicate endpoint name/);
});
