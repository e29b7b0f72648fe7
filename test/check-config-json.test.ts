// `serve --check-config --json`: one JSON object whatever failed, for scripts and CI; and the
// loud warning when the README's public demo keys are loaded on an address others can reach.
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { DEMO_KEY_HASHES, demoKeyWarning, isLocalOnly } from '../src/auth/demo-keys.js';
import { buildKeyRegistry, parseKeysFile } from '../src/auth/key-registry.js';
import { ROOT, runCli } from './helpers/cli.js';

const endpoints = [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }];

function configDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-cc-'));
  for (const [n, text] of Object.entries(files)) writeFileSync(join(dir, n), text);
  return join(dir, 'config.yaml');
}

test('--check-config --json on the quickstart: ok, its endpoints, keys and policy revision, no warning', async (t) => {
  const r = await runCli(['serve', '--check-config', '--json']);
  t.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  const revision = readFileSync(join(ROOT, 'policies', 'build', 'bundle.tar.gz.revision'), 'utf8').trim();
  t.like(report, { ok: true, apiKeys: { count: 3, inline: 0 }, policy: { revision }, problems: [], warnings: [] });
  t.deepEqual(
    report.config.endpoints,
    parseYaml(readFileSync(join(ROOT, 'examples', 'quickstart', 'config.yaml'), 'utf8')).endpoints.map(
      (e: { name: string }) => e.name,
    ),
  );
  t.regex(report.tracing, /^tracing: off/);
});

test('--check-config --json names what fails in one shape: a bad field, a missing keys file, a missing bundle', async (t) => {
  const cases: [Record<string, string>, string, RegExp][] = [
    [{ 'config.yaml': stringify({ listen: { grpc: 'nowhere' }, endpoints }) }, 'config', /listen\.grpc/],
    [
      { 'config.yaml': stringify({ apiKeys: { file: 'keys.yaml' }, endpoints }) },
      'apiKeys',
      /cannot read the keys file/,
    ],
    [{ 'config.yaml': stringify({ policy: { bundle: 'b.tar.gz' }, endpoints }) }, 'policy', /b\.tar\.gz/],
  ];
  for (const [files, part, why] of cases) {
    const r = await runCli(['serve', '--config', configDir(files), '--check-config', '--json']);
    t.is(r.code, 1, r.stderr);
    const report = JSON.parse(r.stdout);
    t.false(report.ok);
    t.is(report.problems[0].part, part);
    t.regex(report.problems[0].message, why);
  }
});

test('--json without --check-config is a usage error', async (t) => {
  const r = await runCli(['serve', '--json']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--json goes with --check-config/);
});

test('the demo key hashes are those of examples/quickstart/keys.yaml and of the plaintext keys in the README', (t) => {
  const file = parseYaml(readFileSync(join(ROOT, 'examples', 'quickstart', 'keys.yaml'), 'utf8'));
  t.deepEqual([...DEMO_KEY_HASHES].sort(), file.keys.map((k: { sha256: string }) => k.sha256).sort());
  const readmeKeys = [...new Set(readFileSync(join(ROOT, 'README.md'), 'utf8').match(/mcp_[A-Za-z0-9]{40,}/g) ?? [])];
  const hashed = readmeKeys
    .map((k) => createHash('sha256').update(k).digest('hex'))
    .filter((h) => DEMO_KEY_HASHES.includes(h));
  t.is(new Set(hashed).size, 3, 'each demo key is printed in the README');
});

test('demo keys warn on every address others can reach, never on loopback or a Unix socket', (t) => {
  const registry = buildKeyRegistry(
    parseKeysFile(readFileSync(join(ROOT, 'examples', 'quickstart', 'keys.yaml'), 'utf8'), 'keys.yaml'),
    [],
    'keys.yaml',
  );
  for (const local of ['127.0.0.1:9191', 'localhost:9191', '[::1]:9191', '127.1.2.3:1', 'unix:/run/mcp-authz.sock'])
    t.true(isLocalOnly(local), local);
  for (const open of ['0.0.0.0:9191', '[::]:9191', '10.0.0.5:9191', 'mcp-authz.svc:9191'])
    t.false(isLocalOnly(open), open);
  t.is(demoKeyWarning(registry, { grpc: '127.0.0.1:9191', http: 'localhost:9090' }), undefined);
  const w = demoKeyWarning(registry, { grpc: '0.0.0.0:9191', http: '127.0.0.1:9090' });
  t.deepEqual(w?.keys, ['demo-public', 'demo-alice', 'demo-bob']);
  t.deepEqual(w?.exposed, ['0.0.0.0:9191']);
  t.regex(w!.message, /PUBLIC DEMO API KEYS ARE LOADED/);
  const own = buildKeyRegistry([{ id: 'mine', sha256: 'a'.repeat(64), permissions: [], disabled: false }], [], 'x');
  t.is(demoKeyWarning(own, { grpc: '0.0.0.0:9191' }), undefined, 'other keys: no warning');
});

test('the container config (demo keys on 0.0.0.0) is valid but warned about, in --check-config and its --json', async (t) => {
  const file = join(ROOT, 'examples', 'container', 'config.yaml');
  const dir = configDir({
    'config.yaml': readFileSync(file, 'utf8'),
    'keys.yaml': readFileSync(join(ROOT, 'examples', 'quickstart', 'keys.yaml'), 'utf8'),
  });
  const json = await runCli(['serve', '--config', dir, '--check-config', '--json']);
  t.is(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout);
  t.is(report.warnings.length, 1);
  t.regex(
    report.warnings[0],
    /PUBLIC DEMO API KEYS ARE LOADED \(demo-public, demo-alice, demo-bob\) and the service listens on 0\.0\.0\.0:9191, 0\.0\.0\.0:9090/,
  );
  const text = await runCli(['serve', '--config', dir, '--check-config']);
  t.regex(text.stdout, /^WARNING: PUBLIC DEMO API KEYS/m);
});
