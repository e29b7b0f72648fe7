// The API key registry: the keys file reloading without a restart, a broken file keeping
// the old keys, MCP_API_KEYS, `keys create`, and validation that names the bad field.
import test from 'ava';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateApiKey, hashApiKey, keyShape } from '../src/contracts/api-key.js';
import { parseKeysFile, KeysFileError } from '../src/auth/key-registry.js';
import { keysCommand } from '../src/cli/keys-command.js';
import { ConfigError, loadConfigFile } from '../src/config/load.js';
import { admitAuthenticatedOn, keysFile, makeKey } from './helpers/auth-fixtures.js';
import { checkRequest, deniedBody, deniedStatus, headerValue, startTestService } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

const endpoints = [{ name: 'keys', match: { pathPrefix: '/mcp/keys' }, auth: { apiKey: true, oauth: false } }];
const withKey = (key: string) => checkRequest({ method: 'GET', path: '/mcp/keys', headers: { 'x-api-key': key } });

test('a key added to the keys file works without a restart', async (t) => {
  const first = makeKey({ id: 'first', userId: 'alice' });
  const second = makeKey({ id: 'second', userId: 'bob' });
  const svc = await startTestService(
    { apiKeys: { file: 'keys.yaml' }, endpoints },
    { files: { 'keys.yaml': keysFile([first]) } },
  );
  t.teardown(() => svc.stop());
  admitAuthenticatedOn(svc);
  t.is(deniedStatus(await svc.check(withKey(second.key))), 401);
  // Replaced by rename, as editors and Kubernetes do.
  writeFileSync(join(svc.dir, 'keys.yaml.tmp'), keysFile([first, second]));
  renameSync(join(svc.dir, 'keys.yaml.tmp'), join(svc.dir, 'keys.yaml'));
  await waitFor(
    'the new key to be accepted',
    async () => (await svc.check(withKey(second.key))).ok_response !== undefined,
    10_000,
    20,
  );
  const res = await svc.check(withKey(second.key));
  t.is(headerValue(res.ok_response!.headers, 'x-mcp-key-id'), 'second');
  t.truthy((await svc.check(withKey(first.key))).ok_response);
});

test('a key disabled in the keys file is refused without a restart (file written in place)', async (t) => {
  const k = makeKey({ id: 'soon-disabled', userId: 'alice' });
  const svc = await startTestService(
    { apiKeys: { file: 'keys.yaml' }, endpoints },
    { files: { 'keys.yaml': keysFile([k]) } },
  );
  t.teardown(() => svc.stop());
  admitAuthenticatedOn(svc);
  t.truthy((await svc.check(withKey(k.key))).ok_response);
  writeFileSync(join(svc.dir, 'keys.yaml'), keysFile([k], { 'soon-disabled': { disabled: true } }));
  await waitFor('the key to be refused', async () => deniedStatus(await svc.check(withKey(k.key))) === 401, 10_000, 20);
  t.is(deniedBody(await svc.check(withKey(k.key))).error, 'invalid_api_key');
});

test('a broken keys file leaves the previous keys working, and a fixed one is then picked up', async (t) => {
  const keep = makeKey({ id: 'keep', userId: 'alice' });
  const later = makeKey({ id: 'later', userId: 'bob' });
  // Many deliberate failures below: the lockout is not what this test is about.
  const svc = await startTestService(
    { apiKeys: { file: 'keys.yaml', pollIntervalMs: 100 }, rateLimit: { failedAuth: { maxAttempts: 0 } }, endpoints },
    { files: { 'keys.yaml': keysFile([keep]) } },
  );
  t.teardown(() => svc.stop());
  admitAuthenticatedOn(svc);
  // Broken: an entry without its hash, beside a new key that must not get in.
  writeFileSync(
    join(svc.dir, 'keys.yaml'),
    `keys:\n  - id: keep\n    name: no hash here\n  - ${JSON.stringify(later.entry)}\n`,
  );
  // Across many watch events and polls (every 100 ms) of the broken file, the old registry stays in force.
  const until = Date.now() + 1500;
  while (Date.now() < until) {
    t.truthy((await svc.check(withKey(keep.key))).ok_response, 'old key keeps working');
    t.is(deniedStatus(await svc.check(withKey(later.key))), 401, 'nothing from the broken file is used');
  }
  writeFileSync(join(svc.dir, 'keys.yaml'), keysFile([keep, later]));
  await waitFor(
    'the fixed file to be used',
    async () => (await svc.check(withKey(later.key))).ok_response !== undefined,
    10_000,
    20,
  );
  t.pass();
});

test('keys file validation names the bad field of each bad entry', (t) => {
  const err = t.throws(() =>
    parseKeysFile(
      'keys:\n  - id: a\n    sha256: xyz\n  - id: b\n    sha256: ' +
        'a'.repeat(64) +
        '\n    expiresAt: someday\n  - id: c\n    sha256: ' +
        'b'.repeat(64) +
        '\n    permissions: ["admin"]\n',
      'keys.yaml',
    ),
  ) as KeysFileError;
  t.true(err instanceof KeysFileError);
  t.true(err.problems.some((p) => p.startsWith('keys.0.sha256:')));
  t.true(err.problems.some((p) => p.startsWith('keys.1.expiresAt:')));
  t.true(err.problems.some((p) => p.startsWith('keys.2.permissions.0:')));
});

test('a keys file that is not YAML is refused without quoting its content', (t) => {
  const err = t.throws(() => parseKeysFile('keys: [mcp_secretvalue\n  : :', 'keys.yaml')) as KeysFileError;
  t.false(err.message.includes('mcp_secretvalue'));
});

test('the service does not start on a bad keys file, and says which field', async (t) => {
  const err = await t.throwsAsync(
    startTestService(
      { apiKeys: { file: 'keys.yaml' }, endpoints },
      { files: { 'keys.yaml': 'keys:\n  - id: x\n    sha256: 123\n' } },
    ),
  );
  t.regex(err!.message, /keys\.0\.sha256/);
});

test('MCP_API_KEYS: plaintext development keys are hashed at load and authenticate with their fields', async (t) => {
  const devKey = 'connector-key-for-dev';
  const svc = await startTestService(
    { endpoints },
    {
      env: {
        MCP_API_KEYS: JSON.stringify({
          [devKey]: { name: 'ChatGPT Connector', userId: 'connector-user', role: 'user', permissions: ['*'] },
        }),
      },
    },
  );
  t.teardown(() => svc.stop());
  admitAuthenticatedOn(svc);
  const res = await svc.check(withKey(devKey));
  t.truthy(res.ok_response);
  const keyId = headerValue(res.ok_response!.headers, 'x-mcp-key-id')!;
  t.is(keyId, `env-${hashApiKey(devKey).slice(0, 12)}`, 'id from the hash, never the key');
  t.is(headerValue(res.ok_response!.headers, 'x-mcp-user-id'), 'connector-user');
  // A development key need not start with mcp_: on an API-key-only endpoint any bearer is a key.
  t.truthy(
    (
      await svc.check(
        checkRequest({ method: 'GET', path: '/mcp/keys', headers: { authorization: `Bearer ${devKey}` } }),
      )
    ).ok_response,
  );
  // Nothing in the loaded config holds the plaintext.
  t.false(JSON.stringify(svc.runtime.config).includes(devKey));
});

test('MCP_API_KEYS that is not JSON stops the load without echoing it', (t) => {
  const dir = startDir();
  const err = t.throws(() => loadConfigFile(dir, { MCP_API_KEYS: '{"mcp_leaky": ' })) as ConfigError;
  t.true(err instanceof ConfigError);
  t.regex(err.message, /MCP_API_KEYS/);
  t.false(err.message.includes('mcp_leaky'));
});

test('keys create prints the key once and a registry entry that authenticates it', async (t) => {
  let out = '';
  t.is(
    keysCommand(
      [
        'create',
        '--name',
        'CI bot',
        '--user',
        'alice',
        '--role',
        'bot',
        '--permission',
        'tools:search',
        '--permission',
        'prompts:*',
        '--expires',
        '2099-01-01',
      ],
      (s) => (out += s),
    ),
    0,
  );
  const key = out.match(/\bmcp_[0-9A-Za-z]+/)![0];
  t.is(keyShape(key), 'well_formed');
  t.is(out.split(key).length, 2, 'the key is printed exactly once');
  const yamlPart = out.slice(out.indexOf('keys:'));
  const entries = parseKeysFile(
    yamlPart.slice(0, yamlPart.indexOf('\n\n') === -1 ? undefined : yamlPart.indexOf('\n\n')),
    'stdout',
  );
  t.is(entries.length, 1);
  t.is(entries[0]!.sha256, hashApiKey(key));
  t.false(yamlPart.includes(key), 'the entry holds the hash only');

  const svc = await startTestService(
    { apiKeys: { file: 'keys.yaml' }, endpoints },
    { files: { 'keys.yaml': yamlPart } },
  );
  t.teardown(() => svc.stop());
  admitAuthenticatedOn(svc);
  const res = await svc.check(withKey(key));
  t.truthy(res.ok_response);
  t.is(headerValue(res.ok_response!.headers, 'x-mcp-user-id'), 'alice');
});

test('keys create refuses a bad option and names it', (t) => {
  t.throws(() => keysCommand(['create', '--name', 'x', '--expires', 'tomorrow-ish'], () => undefined), {
    message: /--expires/,
  });
  t.throws(() => keysCommand(['create', '--name', 'x', '--permission', 'admin'], () => undefined), {
    message: /--permission/,
  });
  t.throws(() => keysCommand(['create'], () => undefined), { message: /--name/ });
});

test('generated keys carry 256 random bits and a checksum that catches a single changed character', (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const k = generateApiKey();
    t.regex(k, /^mcp_[0-9A-Za-z]{49}$/);
    t.is(keyShape(k), 'well_formed');
    seen.add(k);
    const i2 = 4 + (i % 49);
    const c = k[i2] === 'x' ? 'y' : 'x';
    t.is(keyShape(k.slice(0, i2) + c + k.slice(i2 + 1)), 'bad_checksum');
  }
  t.is(seen.size, 200);
  t.is(keyShape('connector-key'), 'other');
});

function startDir(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'mcp-authz-cfg-')), 'config.yaml');
  writeFileSync(file, 'endpoints: []\n');
  return file;
}
