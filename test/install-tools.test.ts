// scripts/install-tools.sh on a machine without Go: an opa already on PATH is used (as the
// script's own message promises), and without one the script says what to install. Run from a
// copy of the script in a fresh folder (no .tools/ there), with a PATH that has bash and
// coreutils but no go.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers/cli.js';

const TOOLS = ['bash', 'dirname', 'mkdir', 'cat', 'head', 'tr', 'uname', 'id', 'env'];

function sandbox(withOpa: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-install-'));
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(join(ROOT, 'scripts', 'install-tools.sh'), join(dir, 'scripts', 'install-tools.sh'));
  const bin = join(dir, 'path-bin');
  mkdirSync(bin);
  for (const tool of TOOLS) {
    const p = ['/usr/bin', '/bin'].map((d) => join(d, tool)).find(existsSync);
    if (p) symlinkSync(p, join(bin, tool));
  }
  if (withOpa) symlinkSync(join(ROOT, '.tools', 'bin', 'opa'), join(bin, 'opa'));
  const run = () =>
    spawnSync(join(bin, 'bash'), [join(dir, 'scripts', 'install-tools.sh'), 'opa'], {
      env: { PATH: bin, HOME: dir },
      encoding: 'utf8',
    });
  return { dir, run };
}

test('without Go, an opa on PATH is used: exit 0, and it says which one', (t) => {
  const { run } = sandbox(true);
  const r = run();
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /Go is not installed; using opa v1\.22\.2 from PATH \(.*path-bin\/opa\)/);
});

test('without Go and without opa, it fails and says what to install', (t) => {
  const { run } = sandbox(false);
  const r = run();
  t.is(r.status, 1);
  t.regex(r.stderr, /Go is not installed\. Install Go >= 1\.24/);
  t.regex(r.stderr, /put these on PATH yourself .*opa v1\.22\.2/);
});
