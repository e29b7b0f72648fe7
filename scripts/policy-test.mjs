#!/usr/bin/env node
// Checks and tests the shipped Rego with the real opa: `opa check --strict`, `opa test`
// with the shared decision cases (policies/cases → data.cases), and coverage, which must be
// 100% for the shipped package (test files excluded) and is printed either way.
import { execFileSync, spawnSync } from 'node:child_process';
import { join, relative } from 'node:path';
import { opaBinary, projectRoot as root } from '../src/config/paths.mjs';

const opa = opaBinary();
const src = join(root, 'policies', 'mcp');
const cases = `cases:${join(root, 'policies', 'cases')}`;

execFileSync(opa, ['check', '--strict', src], { stdio: 'inherit' });
const verbose = spawnSync(opa, ['test', src, cases], { stdio: 'inherit' });
if (verbose.status !== 0) process.exit(verbose.status ?? 1);

const cov = JSON.parse(execFileSync(opa, ['test', '--coverage', src, cases], { encoding: 'utf8', maxBuffer: 64 << 20 }));
let covered = 0;
let total = 0;
const lines = [];
for (const [file, f] of Object.entries(cov.files)) {
  if (file.endsWith('_test.rego')) continue;
  const c = f.covered_lines ?? 0;
  const n = c + (f.not_covered_lines ?? 0);
  covered += c;
  total += n;
  const missing = (f.not_covered ?? []).map((r) => `${r.start.row}-${r.end.row}`).join(', ');
  lines.push(`  ${relative(root, file)}: ${(f.coverage ?? 100).toFixed(1)}% (${c}/${n} lines)${missing ? ` not covered: ${missing}` : ''}`);
}
const pct = total === 0 ? 100 : (100 * covered) / total;
process.stdout.write(`opa test coverage of the shipped policy: ${pct.toFixed(1)}%\n${lines.join('\n')}\n`);
if (covered !== total) {
  process.stderr.write('policy coverage is below 100%: add tests or cases for the lines above\n');
  process.exit(1);
}
