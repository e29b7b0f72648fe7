// `keys create --append FILE`: the new entry lands in the keys file the service watches,
// next to its other entries and comments, by an atomic replace; and an expiry in the past
// is refused.
import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashApiKey } from '../src/contracts/api-key.js';
import { parseKeysFile } from '../src/auth/key-registry.js';
import { keysCommand } from '../src/cli/keys-command.js';
import { admitAuthenticatedOn } from './helpers/auth-fixtures.js';
import { runCli } from './helpers/cli.js';
import { checkRequest, headerValue, startTestService } from './helpers/service.js';

const QUICKSTART_KEYS = readFileSync(new URL('../examples/quickstart/keys.yaml', import.meta.url), 'utf8');
const dir = () => mkdtempSync(join(tmpdir(), 'mcp-authz-keys-'));
const keyOf = (out: string) => out.match(/\bmcp_[0-9A-Za-z]{49}\b/)![0];

test('--append adds the entry by rename, keeps every other entry and comment, and the service authenticates the key', async (t) => {
  const d = dir();
  const file = join(d, 'keys.yaml');
  writeFileSync(file, QUICKSTART_KEYS, { mode: 0o640 });
  const before = statSync(file);
  let out = '';
  t.is(
    keysCommand(
      ['create', '--name', 'CI bot', '--user', 'alice', '--permission', 'tools:search', '--append', file],
      (s) => (out += s),
    ),
    0,
  );
  const key = keyOf(out);
  t.is(out.split(key).length, 2, 'the key is printed once');
  t.regex(out, /Added to .*keys\.yaml as "ci-bot-[0-9a-f]{6}"/);

  const text = readFileSync(file, 'utf8');
  t.false(text.includes(key), 'only the hash is stored');
  const after = statSync(file);
  t.not(after.ino, before.ino, 'replaced by rename, not rewritten in place');
  t.is(after.mode & 0o777, 0o640, 'the file keeps its permissions');
  t.deepEqual(readdirSync(d), ['keys.yaml'], 'no temporary file left behind');
  const entries = parseKeysFile(text, file);
  const old = parseKeysFile(QUICKSTART_KEYS, 'quickstart');
  t.deepEqual(entries.slice(0, old.length), old, 'the other entries are untouched');
  t.is(entries.at(-1)!.sha256, hashApiKey(key));
  for (const comment of QUICKSTART_KEYS.split('\n').filter((l) => l.trim().startsWith('#')))
    t.true(text.includes(comment), `comment kept: ${comment}`);

  const svc = await startTestService(
    {
      apiKeys: { file: 'keys.yaml' },
      endpoints: [{ name: 'keyed', match: { pathPrefix: '/mcp/keyed' }, auth: { apiKey: true, oauth: false } }],
    },
    { files: { 'keys.yaml': text } },
  );
  t.teardown(() => svc.stop());
  admitAuthenticatedOn(svc);
  const res = await svc.check(checkRequest({ method: 'GET', path: '/mcp/keyed', headers: { 'x-api-key': key } }));
  t.is(headerValue(res.ok_response?.headers, 'x-mcp-user-id'), 'alice');
});

test('--append creates a missing keys file readable by its owner only, and keeps a JSON file JSON', (t) => {
  const d = dir();
  const fresh = join(d, 'new.yaml');
  let out = '';
  keysCommand(['create', '--name', 'first', '--append', fresh], (s) => (out += s));
  t.regex(out, /Created .*new\.yaml/);
  t.is(statSync(fresh).mode & 0o777, 0o600);
  t.is(parseKeysFile(readFileSync(fresh, 'utf8'), fresh)[0]!.sha256, hashApiKey(keyOf(out)));

  const json = join(d, 'keys.json');
  writeFileSync(json, JSON.stringify({ keys: [{ id: 'a', sha256: 'a'.repeat(64) }] }));
  keysCommand(['create', '--name', 'second', '--append', json], () => undefined);
  const doc = JSON.parse(readFileSync(json, 'utf8'));
  t.deepEqual(
    doc.keys.map((k: { id: string }) => k.id.split('-')[0]),
    ['a', 'second'],
  );
});

test('--append refuses a duplicate id and a broken keys file, and leaves the file as it was', (t) => {
  const d = dir();
  const file = join(d, 'keys.yaml');
  writeFileSync(file, QUICKSTART_KEYS);
  t.throws(() => keysCommand(['create', '--name', 'x', '--id', 'demo-bob', '--append', file], () => undefined), {
    message: /"demo-bob" already exists/,
  });
  t.is(readFileSync(file, 'utf8'), QUICKSTART_KEYS);
  const broken = 'keys:\n  - id: bad id\n    sha256: nothex\n';
  writeFileSync(file, broken);
  t.throws(() => keysCommand(['create', '--name', 'x', '--append', file], () => undefined), {
    message: /keys\.0\.(id|sha256)/,
  });
  t.is(readFileSync(file, 'utf8'), broken);
  t.deepEqual(readdirSync(d), ['keys.yaml']);
});

test('keys create refuses an expiry that is not in the future', (t) => {
  const now = () => Date.parse('2026-06-01T00:00:00Z');
  t.throws(() => keysCommand(['create', '--name', 'x', '--expires', '2026-05-31'], () => undefined, now), {
    message: /--expires: 2026-05-31 .* is not in the future/,
  });
  t.throws(() => keysCommand(['create', '--name', 'x', '--expires', '2026-06-01T00:00:00Z'], () => undefined, now), {
    message: /not in the future/,
  });
  t.is(
    keysCommand(['create', '--name', 'x', '--expires', '2026-06-02'], () => undefined, now),
    0,
  );
  const d = dir();
  const file = join(d, 'keys.yaml');
  t.throws(() => keysCommand(['create', '--name', 'x', '--expires', '2020-01-01', '--append', file], () => undefined), {
    message: /not in the future/,
  });
  t.false(existsSync(file), 'nothing written');
});

test('the CLI prints a refused expiry as an error, exit 1, no stack trace', async (t) => {
  const r = await runCli(['keys', 'create', '--name', 'x', '--expires', '2001-01-01']);
  t.is(r.code, 1);
  t.regex(r.stderr, /^mcp-authz: --expires: 2001-01-01 .* is not in the future\n$/);
  t.is(r.stdout, '', 'no key printed');
});
