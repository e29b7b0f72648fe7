// The npm package as a user installs it: `npm pack`, unpacked into node_modules/mcp-authz of
// a fresh folder beside its dependencies (hoisted, as npm installs them), then run through its
// own bin. `policy build` and `policy test` must work there on a policy repository of the
// user's own (--src), with nothing from this checkout but the pinned opa.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBundle } from '../src/policy/bundle-loader.js';
import { ROOT } from './helpers/cli.js';

function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const work = mkdtempSync(join(tmpdir(), 'mcp-authz-installed-'));
const pkg = join(work, 'node_modules', 'mcp-authz');
const OPA = join(ROOT, '.tools', 'bin', 'opa');

test.before(async () => {
  const packed = await run('npm', ['pack', '--silent', '--pack-destination', work], ROOT);
  if (packed.code !== 0) throw new Error(`npm pack failed: ${packed.stderr}`);
  mkdirSync(pkg, { recursive: true });
  const untar = await run(
    'tar',
    ['-xzf', join(work, packed.stdout.trim().split('\n').at(-1)!), '-C', pkg, '--strip-components', '1'],
    work,
  );
  if (untar.code !== 0) throw new Error(`tar failed: ${untar.stderr}`);
  for (const dep of readdirSync(join(ROOT, 'node_modules'))) {
    if (dep.startsWith('.')) continue;
    symlinkSync(join(ROOT, 'node_modules', dep), join(work, 'node_modules', dep));
  }
  const src = join(work, 'my-policy');
  mkdirSync(src);
  writeFileSync(
    join(src, 'authz.rego'),
    'package mcp.authz\n\ndefault decision := {"allow": false, "status": 403}\n\ndecision := {"allow": true} if input.principal.authenticated\n',
  );
  writeFileSync(
    join(src, 'authz_test.rego'),
    'package mcp.authz_test\n\nimport data.mcp.authz\n\ntest_authenticated if authz.decision.allow with input as {"principal": {"authenticated": true}}\n',
  );
});

const cli = (args: string[]) => run(process.execPath, [join(pkg, 'bin', 'mcp-authz.js'), ...args], work, { OPA });

test('the package carries the policy scripts the CLI runs and the script that installs the pinned opa', (t) => {
  t.deepEqual(readdirSync(join(pkg, 'scripts')).sort(), [
    'install-tools.sh',
    'opa-path.mjs',
    'policy-build.mjs',
    'policy-test.mjs',
  ]);
});

test("policy build --src compiles a policy repository of the user's own from the installed package", async (t) => {
  const r = await cli(['policy', 'build', '--src', 'my-policy', '--out', 'out/bundle.tar.gz']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /policy bundle built: out\/bundle\.tar\.gz \(revision sha256-[0-9a-f]{16}\)/);
  const bundle = loadBundle(join(work, 'out', 'bundle.tar.gz'));
  t.true(bundle.wasm.byteLength > 1000);
  t.deepEqual(
    bundle.manifest.wasm?.map((w) => w.entrypoint),
    ['mcp/authz/decision'],
  );
});

test("policy test --src runs the repository's own tests and coverage, and --min-coverage holds it to a bar", async (t) => {
  const r = await cli(['policy', 'test', '--src', 'my-policy']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /PASS: 1\/1/);
  t.regex(r.stdout, /opa test coverage of my-policy: 50\.0%/);
  const strict = await cli(['policy', 'test', '--src', 'my-policy', '--min-coverage', '90']);
  t.is(strict.code, 1);
  t.regex(strict.stderr, /coverage 50\.0% is below 90%/);
  const missing = await cli(['policy', 'test', '--src', 'nowhere']);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /--src .*nowhere is not a folder/);
});

test('a missing opa is explained, not a stack trace', async (t) => {
  const r = await run(
    process.execPath,
    [join(pkg, 'bin', 'mcp-authz.js'), 'policy', 'build', '--src', 'my-policy'],
    work,
    { OPA: join(work, 'no-opa') },
  );
  t.is(r.code, 127);
  t.true(r.stderr.includes(`run ${join(pkg, 'scripts', 'install-tools.sh')} opa`), r.stderr);
  t.notRegex(r.stderr, /\n\s+at /);
});
