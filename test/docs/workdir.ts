// A fresh working folder for a doc's shell block, laid out like a checkout: the built project
// linked in (bin, dist, policies, scripts, …), examples/ copied (a block may write there),
// and `mcp-authz` on PATH as an installed package would put it. The environment is the
// test's, without any MCP_* or OTEL_* variable, so a block sees what a fresh shell sees.
// package.json and node_modules are not linked: a block cannot run the project's npm scripts
// or reinstall its packages (`npm ci` would empty the checkout's node_modules through a link);
// bin/mcp-authz.js finds its packages from its real path.
import { cpSync, existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const LINKED = [
  'bin',
  'dist',
  'src',
  'policies',
  'proto',
  'scripts',
  'helm',
  'bench',
  'test',
  'docs',
  'tsconfig.json',
  'README.md',
  '.tools',
  '.build',
];

export function makeWorkdir(root: string, files: Record<string, string> = {}): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-docs-'));
  for (const name of LINKED) if (existsSync(join(root, name))) symlinkSync(join(root, name), join(dir, name));
  cpSync(join(root, 'examples'), join(dir, 'examples'), { recursive: true });
  for (const [name, from] of Object.entries(files)) {
    const src = join(root, from);
    if (!existsSync(src)) throw new Error(`the marker names ${from}, which does not exist`);
    cpSync(src, join(dir, name), { recursive: true });
  }
  const bin = join(dir, '.docs-bin');
  mkdirSync(bin);
  const shim = join(bin, 'mcp-authz');
  writeFileSync(shim, `#!/bin/sh\nexec node ${JSON.stringify(join(root, 'bin', 'mcp-authz.js'))} "$@"\n`);
  chmodSync(shim, 0o755);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(MCP_|OTEL_)/.test(k)) env[k] = v;
  const path = [bin, join(root, '.tools', 'node', 'bin'), join(root, '.tools', 'bin'), process.env.PATH ?? ''];
  env.PATH = path.filter((p) => p && (p === process.env.PATH || existsSync(p))).join(delimiter);
  return { dir, env };
}
