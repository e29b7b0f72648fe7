#!/usr/bin/env node
// Checks and tests Rego with the real opa: `opa check --strict`, `opa test`, and coverage.
// The shipped policy runs with the shared decision cases (policies/cases → data.cases) and
// must be 100% covered (test files excluded). A policy repository of your own (--src) runs
// its own tests; --min-coverage sets the coverage it must reach. Also `mcp-authz policy test`.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { opaPath, parseOrExit, root, runOrExit } from './opa-path.mjs';

const USAGE = `usage: mcp-authz policy test [--src DIR] [--cases DIR] [--min-coverage PCT]
       (npm run policy:test)

Runs opa check --strict, opa test (verbose) and opa test --coverage on a folder of Rego and
its *_test.rego files, and prints the coverage of the policy files.

options:
  --src DIR            the Rego folder (default: the shipped policy, policies/mcp)
  --cases DIR          JSON decision cases loaded as data.cases (default: policies/cases for the
                       shipped policy, none for --src)
  --min-coverage PCT   fail below this coverage (default: 100 for the shipped policy, 0 for --src)
  -h, --help           this help
`;

const values = parseOrExit(
  { src: { type: 'string' }, cases: { type: 'string' }, 'min-coverage': { type: 'string' } },
  USAGE,
);
const shipped = values.src === undefined;
const src = resolve(values.src ?? join(root, 'policies', 'mcp'));
const casesDir =
  values.cases !== undefined ? resolve(values.cases) : shipped ? join(root, 'policies', 'cases') : undefined;
const min = Number(values['min-coverage'] ?? (shipped ? 100 : 0));
for (const [flag, dir] of [
  ['--src', src],
  ['--cases', casesDir],
]) {
  if (dir !== undefined && (!existsSync(dir) || !statSync(dir).isDirectory())) {
    process.stderr.write(`policy test: ${flag} ${dir} is not a folder\n`);
    process.exit(2);
  }
}
if (!Number.isFinite(min) || min < 0 || min > 100) {
  process.stderr.write(
    `policy test: --min-coverage expects a percentage from 0 to 100, got ${JSON.stringify(values['min-coverage'])}\n`,
  );
  process.exit(2);
}
const opa = opaPath();
const paths = [src, ...(casesDir ? [`cases:${casesDir}`] : [])];
// opa test's default 5 s per test fails the slowest ones by chance on a loaded machine: a
// test's verdict must not depend on the machine's speed, so the bound is only a hang guard.
const TIMEOUT = ['--timeout', '10m'];

runOrExit(() => execFileSync(opa, ['check', '--strict', src], { stdio: 'inherit' }));
const verbose = runOrExit(() => spawnSync(opa, ['test', ...TIMEOUT, ...paths], { stdio: 'inherit' }));
if (verbose.error)
  runOrExit(() => {
    throw verbose.error;
  });
if (verbose.status !== 0) process.exit(verbose.status ?? 1);

const cov = JSON.parse(
  runOrExit(() =>
    execFileSync(opa, ['test', ...TIMEOUT, '--coverage', ...paths], { encoding: 'utf8', maxBuffer: 64 << 20 }),
  ),
);
let covered = 0;
let total = 0;
const lines = [];
for (const [file, f] of Object.entries(cov.files ?? {})) {
  if (file.endsWith('_test.rego')) continue;
  const c = f.covered_lines ?? 0;
  const n = c + (f.not_covered_lines ?? 0);
  covered += c;
  total += n;
  const missing = (f.not_covered ?? []).map((r) => `${r.start.row}-${r.end.row}`).join(', ');
  lines.push(
    `  ${relative(process.cwd(), file) || file}: ${(f.coverage ?? 100).toFixed(1)}% (${c}/${n} lines)${missing ? ` not covered: ${missing}` : ''}`,
  );
}
const pct = total === 0 ? 100 : (100 * covered) / total;
process.stdout.write(
  `opa test coverage of ${shipped ? 'the shipped policy' : relative(process.cwd(), src) || src}: ${pct.toFixed(1)}%\n${lines.join('\n')}\n`,
);
if (pct < min) {
  process.stderr.write(`policy coverage ${pct.toFixed(1)}% is below ${min}%: add tests or cases for the lines above\n`);
  process.exit(1);
}
