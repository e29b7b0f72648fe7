// `mcp-authz check` runs the same pipeline as the server: for the same request it prints
// the decision the server returns, plus the principal and why authentication failed.
import test from 'ava';
import { explain } from '../src/cli/check-command.js';
import { loadConfigFile } from '../src/config/load.js';
import { keysFile, makeKey } from './helpers/auth-fixtures.js';
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  headerValue,
  startTestService,
  type TestService,
} from './helpers/service.js';

let svc: TestService;
let idp: JwksServer;
const alice = makeKey({ id: 'alice-key', userId: 'alice', permissions: ['*'] });
const gone = makeKey({ id: 'gone-key', userId: 'alice', expires: '2021-06-01T00:00:00Z' });
const RESOURCE = 'https://mcp.example.com/mcp/both';

test.before(async () => {
  idp = await startJwksServer({ discovery: 'none' });
  svc = await startTestService(
    {
      publicBaseUrl: 'https://mcp.example.com',
      apiKeys: { file: 'keys.yaml' },
      oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
      endpoints: [
        { name: 'keys', match: { pathPrefix: '/mcp/keys' }, auth: { apiKey: true, oauth: false } },
        {
          name: 'both',
          match: { pathPrefix: '/mcp/both' },
          auth: { apiKey: true, oauth: true },
          resource: RESOURCE,
          scopes: ['tools:read'],
        },
      ],
    },
    { files: { 'keys.yaml': keysFile([alice, gone]) } },
  );
});
test.after.always(async () => {
  await svc?.stop();
  await idp?.stop();
});

async function both(path: string, headers: Record<string, string>) {
  const server = await svc.check(checkRequest({ method: 'GET', path, headers }));
  const cli = await explain(loadConfigFile(svc.configFile, {}), {
    method: 'GET',
    path,
    host: 'mcp.example.com',
    headers: Object.entries(headers),
  });
  return { server, cli: cli as Record<string, any> };
}

test('check prints the server decision for no credential, a bad key, a good key and a bad token', async (t) => {
  const expired = await idp.sign({ sub: 'u', aud: RESOURCE, exp: Math.floor(Date.now() / 1000) - 7200 });
  const cases: [string, Record<string, string>][] = [
    ['/mcp/keys', {}],
    ['/mcp/keys', { 'x-api-key': gone.key }],
    ['/mcp/keys', { 'x-api-key': alice.key }],
    ['/mcp/both', { authorization: `Bearer ${expired}` }],
    ['/mcp/nowhere', { 'x-api-key': alice.key }],
  ];
  for (const [path, headers] of cases) {
    const { server, cli } = await both(path, headers);
    const label = `${path} ${Object.keys(headers).join(',') || 'no credential'}`;
    t.is(cli.decision, server.ok_response ? 'allow' : 'deny', label);
    if (server.ok_response) {
      t.is(cli.status, 200, label);
      t.deepEqual(cli.principal.id, headerValue(server.ok_response.headers, 'x-mcp-principal'), label);
      continue;
    }
    t.is(cli.status, deniedStatus(server), label);
    t.is(cli.body.error, deniedBody(server).error, label);
    t.is(
      headerValue(cli.checkResponse.denied_response.headers, 'www-authenticate'),
      headerValue(server.denied_response!.headers, 'www-authenticate'),
      label,
    );
  }
});

test('check shows why authentication failed, without the key', async (t) => {
  const { cli } = await both('/mcp/keys', { 'x-api-key': gone.key });
  t.is(cli.authFailure, 'invalid_api_key');
  t.regex(cli.authWhy, /"gone-key" expired at 2021-06-01/);
  t.false(JSON.stringify(cli).includes(gone.key));
  const token = await both('/mcp/both', {
    authorization: `Bearer ${await idp.sign({ sub: 'u', aud: 'https://other.example.com' })}`,
  });
  t.is(token.cli.authFailure, 'invalid_credentials');
  t.regex(token.cli.authWhy, /aud|audience/i);
});

test('check shows the principal a key authenticates as', async (t) => {
  const { cli } = await both('/mcp/keys', { 'x-api-key': alice.key });
  t.like(cli.principal, {
    authenticated: true,
    method: 'api_key',
    id: 'alice-key',
    keyId: 'alice-key',
    userId: 'alice',
    keyType: 'private',
    permissions: ['*'],
  });
  t.is(cli.authFailure, null);
});
