#!/usr/bin/env node
// Compiles the shipped Rego (policies/mcp) to a WASM bundle: policies/build/bundle.tar.gz
// (policy.wasm, data.json, .manifest). Skips the work when nothing it depends on changed.
// The revision is a content hash of the sources, so it does not depend on git.
// Also `mcp-authz policy build`, from a checkout or an installed package.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { SHIPPED_BUNDLE, WASM_CAPABILITIES } from '../src/config/paths.mjs';
import { availableBuiltins, explainUnavailable } from '../src/policy/builtin-catalogue.mjs';
import { opaPath, parseOrExit, root, runOrExit } from './opa-path.mjs';

const USAGE = `usage: mcp-authz policy build [--src DIR] [--out FILE] [--entrypoint E] [--visible-entrypoint V] [--force]
       (npm run policy:build)

Compiles a folder of Rego to the WASM bundle the service loads (opa check --strict, then
opa build -t wasm), with the builtins the service's WASM runtime supports. Skips the work
when nothing changed (a content hash of the sources is the bundle's revision).

options:
  --src DIR          the Rego folder (default: the shipped policy, policies/mcp); *_test.rego
                     files are left out
  --out FILE         the bundle to write (default: policies/build/bundle.tar.gz)
  --entrypoint E     the decision rule (default mcp/authz/decision; the config's policy.entrypoint)
  --visible-entrypoint V
                     the list visibility rule, built too when the source has it (default
                     mcp/authz/visible; the config's policy.visibleEntrypoint; docs/ext_proc.md)
  --force            build even when the bundle is up to date
  -h, --help         this help
`;

const values = parseOrExit(
  {
    force: { type: 'boolean', default: false },
    src: { type: 'string', default: join(root, 'policies', 'mcp') },
    out: { type: 'string', default: SHIPPED_BUNDLE },
    entrypoint: { type: 'string', default: 'mcp/authz/decision' },
    'visible-entrypoint': { type: 'string', default: 'mcp/authz/visible' },
  },
  USAGE,
);
const src = resolve(values.src);
const out = resolve(values.out);
if (!existsSync(src) || !statSync(src).isDirectory()) {
  process.stderr.write(`policy build: --src ${values.src} is not a folder\n`);
  process.exit(2);
}
const opa = opaPath();
const caps = WASM_CAPABILITIES;

function files(dir) {
  return readdirSync(dir)
    .flatMap((n) => {
      const p = join(dir, n);
      return statSync(p).isDirectory() ? files(p) : [p];
    })
    .filter((p) => /\.(rego|json|ya?ml)$/.test(p) && !p.endsWith('_test.rego'))
    .sort();
}

// The capabilities of the WASM target here: the builtins the policy module has compiled in
// and those the service provides to it (src/policy/builtin-catalogue.mjs), with this opa's
// declarations and features. `opa build` then refuses any other builtin at compile time.
function writeCapabilities() {
  const current = JSON.parse(execFileSync(opa, ['capabilities', '--current'], { encoding: 'utf8' }));
  const allowed = new Set(availableBuiltins());
  const text =
    JSON.stringify(
      {
        builtins: current.builtins.filter((b) => allowed.has(b.name)),
        features: current.features,
        wasm_abi_versions: [
          { version: 1, minor_version: 1 },
          { version: 1, minor_version: 2 },
        ],
      },
      null,
      1,
    ) + '\n';
  if (!existsSync(caps) || readFileSync(caps, 'utf8') !== text) writeFileSync(caps, text);
}

// opa names a builtin the capabilities leave out as an undefined function: say which are
// not available in mcp-authz, why, and what is.
function runOpa(args, { retryable = false } = {}) {
  try {
    const out = execFileSync(opa, args, { cwd: src, stdio: ['ignore', 'pipe', 'pipe'] });
    if (out.length) process.stdout.write(out);
    return out;
  } catch (err) {
    const output = `${err.stdout ?? ''}${err.stderr ?? ''}`;
    const why = explainUnavailable(output);
    if (why) {
      process.stderr.write(`${output.trim()}\n\npolicy build: ${why}\n`);
      process.exit(1);
    }
    if (!retryable && err.stdout?.length) process.stdout.write(err.stdout);
    throw err;
  }
}

const opaVersion = runOrExit(() => execFileSync(opa, ['version'], { encoding: 'utf8' })).split('\n')[0];
writeCapabilities();
const hash = createHash('sha256');
hash.update(`${opaVersion}\n${values.entrypoint}\n${values['visible-entrypoint']}\n`);
hash.update(readFileSync(caps));
for (const f of files(src)) hash.update(`${relative(src, f)}\n`).update(readFileSync(f));
const revision = `sha256-${hash.digest('hex').slice(0, 16)}`;
const stamp = `${out}.revision`;

if (!values.force && existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === revision) {
  process.stdout.write(`policy bundle up to date: ${relative(process.cwd(), out)} (revision ${revision})\n`);
  process.exit(0);
}
mkdirSync(dirname(out), { recursive: true });
// Run from the source folder so the bundle names files relative to it, not this machine's paths.
runOrExit(() => runOpa(['check', '--strict', '--capabilities', caps, '--ignore', '*_test.rego', '.']));
const build = (entrypoints) => [
  'build',
  '-t',
  'wasm',
  ...entrypoints.flatMap((e) => ['-e', e]),
  '--capabilities',
  caps,
  '--ignore',
  '*_test.rego',
  '-r',
  revision,
  '-o',
  out,
  '.',
];
// The visibility rule is built beside the decision when the source defines it; without it
// the bundle still decides requests, and ext_proc withholds list responses.
const visible = values['visible-entrypoint'];
let withVisible = true;
runOrExit(() => {
  try {
    runOpa(build([values.entrypoint, visible]), { retryable: true });
  } catch (err) {
    // opa reports this on stdout or stderr depending on the version.
    if (!`${err.stdout ?? ''}${err.stderr ?? ''}`.includes(`entrypoint "${visible}" does not refer to a rule`)) {
      if (err.stdout?.length) process.stdout.write(err.stdout);
      throw err;
    }
    withVisible = false;
    runOpa(build([values.entrypoint]));
  }
});
writeFileSync(stamp, `${revision}\n`);
process.stdout.write(`policy bundle built: ${relative(process.cwd(), out)} (revision ${revision})\n`);
if (!withVisible) {
  process.stdout.write(
    `note: the policy has no ${visible} rule: list responses filtered through ext_proc will be withheld (docs/ext_proc.md)\n`,
  );
}
