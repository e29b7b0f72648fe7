// helm/mcp-authz/README.md is generated from values.yaml (npm run gen:chart-readme): it must
// be current, and every value must say what it does.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { CHART_README, renderChartReadme, valueRows } from '../scripts/gen-chart-readme.js';

test('the committed chart README is what npm run gen:chart-readme generates', (t) => {
  t.is(readFileSync(CHART_README, 'utf8'), renderChartReadme(), 'run `npm run gen:chart-readme` and commit the result');
});

test('every value in values.yaml has a "# --" description', (t) => {
  const rows = valueRows(readFileSync(CHART_README.replace(/README\.md$/, 'values.yaml'), 'utf8'));
  t.true(rows.length > 50);
  t.deepEqual(
    rows.filter((r) => r.description === '').map((r) => r.key),
    [],
  );
});

test('descriptions come from the "# --" comment above a key, the first key of a map and the key after a nested map', (t) => {
  const rows = valueRows(`# A header that is not a description.

# -- Top level.
top: 1
parent:
  # -- First child.
  first: a
  nested:
    deep: true
  # -- After the nested map.
  after: [x]
# -- A map documented whole.
whole:
  inner: 2
  # -- Documented inside too.
  documented: 3
undocumented: ""
`);
  t.deepEqual(
    rows.map((r) => [r.key, r.type, r.default, r.description]),
    [
      ['top', 'int', 1, 'Top level.'],
      ['parent.first', 'string', 'a', 'First child.'],
      ['parent.nested.deep', 'bool', true, ''],
      ['parent.after', 'list', ['x'], 'After the nested map.'],
      ['whole', 'object', { inner: 2, documented: 3 }, 'A map documented whole.'],
      ['whole.documented', 'int', 3, 'Documented inside too.'],
      ['undocumented', 'string', '', ''],
    ],
  );
});
