// Writes the argument views the service computes into the shared decision cases
// (policies/cases/*.json): `opa test` reads the cases as they are, so a case's calls carry
// the `argumentViews` the service would add. Run after adding a case with arguments:
//   npm run gen:case-views
// test/arguments-input.test.ts fails when a case's views differ from the service's.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { McpCall } from '../src/contracts/request.js';
import { viewPlan, viewsOf } from '../src/policy/argument-views.js';
import { loadPostgresParser } from '../src/request/sql-parser.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'policies', 'cases');

interface Case {
  endpoint: { data?: never };
  calls: (McpCall & { argumentViews?: unknown })[];
}

await loadPostgresParser();
for (const file of readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()) {
  const path = join(dir, file);
  const before = readFileSync(path, 'utf8');
  const groups = JSON.parse(before) as Record<string, Case[]>;
  for (const cases of Object.values(groups)) {
    for (const c of cases) {
      const plan = viewPlan(c.endpoint.data);
      c.calls = c.calls.map(({ argumentViews: _old, ...call }) => {
        const views = plan && viewsOf(call, plan);
        return views === undefined ? call : { ...call, argumentViews: JSON.parse(JSON.stringify(views)) };
      });
    }
  }
  if (JSON.stringify(groups) === JSON.stringify(JSON.parse(before))) continue;
  writeFileSync(path, JSON.stringify(groups, null, 1) + '\n');
  process.stdout.write(`updated ${file}\n`);
}
