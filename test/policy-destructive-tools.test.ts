// The example rule "destructive tools only for operators" (examples/policies/destructive-tools.rego)
// compiled with the shipped policy to WASM by the real opa, and fed the policy input the
// service builds from a pinned tool's annotations (input.mcp.calls[i].tool).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { projectRoot } from '../src/config/paths.mjs';
import { mapResultSet } from '../src/policy/decision-mapper.js';
import { compileRego } from '../src/policy/rego-compiler.js';
import { WasmEngine } from '../src/policy/wasm-engine.js';
import { toolHints } from '../src/pins/definition.js';
import { regoDir } from './helpers/policy.js';

let engine: WasmEngine;

test.before(async () => {
  const read = (path: string) => readFileSync(join(projectRoot, path), 'utf8');
  const shipped = readdirSync(join(projectRoot, 'policies/mcp/authz')).filter(
    (f) => f.endsWith('.rego') && !f.endsWith('_test.rego'),
  );
  const dir = regoDir({
    ...Object.fromEntries(shipped.map((f) => [f, read(`policies/mcp/authz/${f}`)])),
    'destructive-tools.rego': read('examples/policies/destructive-tools.rego'),
  });
  const bundle = await compileRego(dir, 'mcp/guarded/decision', 'mcp/guarded/visible');
  engine = await WasmEngine.create(bundle, {
    entrypoint: 'mcp/guarded/decision',
    visibleEntrypoint: 'mcp/guarded/visible',
    maxMemoryPages: 256,
    data: {},
  });
});

const endpoint = { name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true, oauth: false } };
const principal = (roles: string[]) => ({
  authenticated: true,
  method: 'api_key',
  id: 'k',
  userId: 'u',
  role: roles[0] ?? 'user',
  roles,
  permissions: ['*'],
  scopes: [],
});

function decide(roles: string[], tool: unknown, name = 'delete_file') {
  const call: Record<string, unknown> = { method: 'tools/call', kind: 'request', name };
  if (tool !== undefined) call.tool = tool;
  const ev = engine.evaluate(
    JSON.stringify({ endpoint, principal: principal(roles), mcp: { present: true, batch: false, calls: [call] } }),
  );
  if (!ev.ok) throw new Error(ev.error);
  return mapResultSet(ev.resultSet);
}

const pinned = (annotations: Record<string, unknown> | undefined) => ({
  pinned: true,
  annotations: toolHints(annotations ? { annotations } : undefined),
});

test('a pinned destructive tool is refused to a user and allowed to an operator', (t) => {
  const d = decide(['user'], pinned({ destructiveHint: true }));
  t.false(d.allow);
  const refused = (d as { deny: { code: string; description: string } }).deny;
  t.is(refused.code, 'destructive_tool');
  t.is(refused.description, 'delete_file may destroy data: only operators may call it');
  t.true(decide(['user', 'operator'], pinned({ destructiveHint: true })).allow);
});

test('a pinned read-only or non-destructive tool is allowed to a user', (t) => {
  t.true(decide(['user'], pinned({ readOnlyHint: true }), 'search').allow);
  t.true(decide(['user'], pinned({ destructiveHint: false }), 'search').allow);
});

test('no annotations, or none pinned: the conservative default (destructive) applies', (t) => {
  t.false(decide(['user'], pinned(undefined)).allow, 'pinned without annotations: destructiveHint defaults to true');
  t.false(decide(['user'], undefined).allow, 'an endpoint without pins gives no annotations');
  t.false(
    decide(['user'], { pinned: false, annotations: toolHints(undefined) }).allow,
    'a drifted tool in report mode',
  );
});

test("the shipped policy's own denies still apply first", (t) => {
  const ev = engine.evaluate(
    JSON.stringify({
      endpoint: { ...endpoint, owner: 'someone-else' },
      principal: principal(['operator']),
      mcp: {
        present: true,
        batch: false,
        calls: [{ method: 'tools/call', kind: 'request', name: 'search', tool: pinned({ readOnlyHint: true }) }],
      },
    }),
  );
  t.true(ev.ok);
  t.false(mapResultSet((ev as { resultSet: unknown }).resultSet).allow);
});
