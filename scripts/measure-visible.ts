// Measures the list visibility rule: one evaluation for a list of N tools, for the shipped rule
// (policies/mcp/authz/visible.rego) and for the rule derived from `decision`
// (examples/policies/visible-from-decision.rego), against one decision for one call.
//   node --import tsx scripts/measure-visible.ts [iterations]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot, SHIPPED_BUNDLE } from '../src/config/paths.mjs';
import { loadBundle } from '../src/policy/bundle-loader.js';
import { compileRego } from '../src/policy/rego-compiler.js';
import { WasmEngine } from '../src/policy/wasm-engine.js';
import { regoDir } from '../test/helpers/policy.js';

const N = Number(process.argv[2] ?? 2000);
const options = { entrypoint: 'mcp/authz/decision', visibleEntrypoint: 'mcp/authz/visible', maxMemoryPages: 1024 };
const shippedBundle = loadBundle(SHIPPED_BUNDLE);
const shipped = await WasmEngine.create(shippedBundle, { ...options, data: shippedBundle.data });
const read = (p: string) => readFileSync(join(projectRoot, p), 'utf8');
// Every file of the shipped policy but its visible.rego and tests, and the example rule instead.
const policyFiles = readdirSync(join(projectRoot, 'policies/mcp/authz')).filter(
  (f) => f.endsWith('.rego') && !f.endsWith('_test.rego') && f !== 'visible.rego',
);
const derivedDir = regoDir({
  ...Object.fromEntries(policyFiles.map((f) => [f, read(`policies/mcp/authz/${f}`)])),
  'visible.rego': read('examples/policies/visible-from-decision.rego'),
});
const derived = await WasmEngine.create(await compileRego(derivedDir, options.entrypoint, options.visibleEntrypoint), {
  ...options,
  data: {},
});

const base = {
  endpoint: { name: 'files', owner: 'alice', auth: { apiKey: true, oauth: false }, data: {} },
  principal: {
    authenticated: true,
    method: 'api_key',
    id: 'k',
    userId: 'alice',
    roles: [],
    permissions: ['tools:search', 'tools:read_*'],
    scopes: [],
  },
  mcp: {
    present: true,
    batch: false,
    protocolVersion: '2025-06-18',
    calls: [{ method: 'tools/list', kind: 'request' }],
  },
};
const tools = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    method: 'tools/call',
    kind: 'request',
    name: i < 5 ? ['search', 'read_file', 'read_dir', 'read_log', 'read_config'][i]! : `admin_tool_${i}`,
  }));

function time(fn: () => unknown): number {
  for (let i = 0; i < Math.min(N, 500); i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) fn();
  return Number(process.hrtime.bigint() - t0) / N / 1000;
}

const decision = JSON.stringify({ ...base, mcp: { ...base.mcp, calls: [tools(1)[0]] } });
process.stdout.write(`decision, one call: ${time(() => shipped.evaluate(decision)).toFixed(1)} µs\n`);
for (const n of [5, 50, 200]) {
  const input = JSON.stringify({ ...base, list: { calls: tools(n) } });
  const a = time(() => shipped.evaluateVisible(input));
  const b = time(() => derived.evaluateVisible(input));
  process.stdout.write(
    `visible, ${String(n).padStart(3)} tools: shipped ${a.toFixed(1).padStart(7)} µs   derived from decision ${b.toFixed(1).padStart(7)} µs\n`,
  );
}
process.stdout.write(`load average: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
