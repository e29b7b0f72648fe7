// The shipped visibility rule against the shipped decision rule, both compiled to WASM in the
// shipped bundle: for any endpoint, principal and items, an item is visible exactly when the
// decision allows the call it stands for, made alone. The shared cases prove it through the
// server (test/policy-parity.test.ts); this proves it on random inputs.
import test from 'ava';
import fc from 'fast-check';
import { SHIPPED_BUNDLE } from '../src/config/paths.mjs';
import { loadBundle } from '../src/policy/bundle-loader.js';
import { mapResultSet } from '../src/policy/decision-mapper.js';
import { WasmEngine } from '../src/policy/wasm-engine.js';

let engine: WasmEngine;

test.before(async () => {
  const bundle = loadBundle(SHIPPED_BUNDLE);
  engine = await WasmEngine.create(bundle, { entrypoint: 'mcp/authz/decision', visibleEntrypoint: 'mcp/authz/visible', maxMemoryPages: 256, data: bundle.data });
});

const names = fc.constantFrom('search', 'read_file', 'read_', 'delete_repo', 'Search', 'a*b', 'x.y', '');
const uris = fc.constantFrom('file:///docs/a.md', 'file:///docs/', 'file:///etc/passwd', 'https://h/x', 'file:///docs/{name}');
const grant = fc.oneof(
  fc.constant('*'),
  fc.tuple(fc.constantFrom('tools', 'prompts', 'resources'), fc.constantFrom('*', 'search', 'read_*', '*_repo', 'a*b', 'file:///docs/*', 'file:///*', '*e*')).map(([k, g]) => `${k}:${g}`),
);
const call = fc.oneof(
  names.map((name) => ({ method: 'tools/call', kind: 'request', name })),
  names.map((name) => ({ method: 'prompts/get', kind: 'request', name })),
  uris.map((uri) => ({ method: 'resources/read', kind: 'request', uri })),
);
const principal = fc.record({
  authenticated: fc.boolean(),
  method: fc.constantFrom('api_key', 'oauth', 'anonymous'),
  id: fc.constant('p'),
  userId: fc.option(fc.constantFrom('alice', 'bob'), { nil: undefined }),
  permissions: fc.array(grant, { maxLength: 4 }),
  scopes: fc.array(grant, { maxLength: 4 }),
  roles: fc.constant([]),
});
const endpoint = fc.record({
  name: fc.constant('e'),
  owner: fc.option(fc.constantFrom('alice', 'bob'), { nil: undefined }),
  auth: fc.record({ apiKey: fc.boolean(), oauth: fc.boolean() }),
  data: fc.constantFrom({}, { anonymousGrants: ['tools:search'] }),
});

test('property: visible[i] is the decision on list.calls[i] alone', (t) => {
  fc.assert(
    fc.property(endpoint, principal, fc.array(call, { maxLength: 8 }), (ep, p, calls) => {
      const base = { endpoint: ep, principal: p, mcp: { present: true, batch: false, calls: [{ method: 'tools/list', kind: 'request' }] } };
      const ev = engine.evaluateVisible(JSON.stringify({ ...base, list: { calls } }))!;
      if (!ev.ok) return false;
      const visible = (ev.resultSet as { result: boolean[] }[])[0]!.result;
      if (visible.length !== calls.length) return false;
      return calls.every((c, i) => {
        const d = engine.evaluate(JSON.stringify({ ...base, mcp: { present: true, batch: false, calls: [c] } }));
        return d.ok && mapResultSet(d.resultSet).allow === visible[i];
      });
    }),
    { numRuns: 400 },
  );
  t.pass();
});

test('the shipped bundle carries both entrypoints', (t) => {
  t.true(engine.hasVisible);
});
