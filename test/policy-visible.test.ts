// The shipped visibility rule against the shipped decision rule, both compiled to WASM in the
// shipped bundle: for any endpoint, principal and items, an item is visible exactly when the
// decision allows the call it stands for, made alone, or refuses it only for its arguments (a
// listed item carries none; argument rules say how a tool is called, not whether it is listed). The shared cases prove it through the
// server (test/policy-parity.test.ts); this proves it on random inputs — and likewise for the
// rule docs/ext_proc.md offers for policies of your own (examples/policies/).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { projectRoot, SHIPPED_BUNDLE } from '../src/config/paths.mjs';
import { loadBundle } from '../src/policy/bundle-loader.js';
import { compileRego } from '../src/policy/rego-compiler.js';
import { mapResultSet, type Mapped } from '../src/policy/decision-mapper.js';
import { WasmEngine } from '../src/policy/wasm-engine.js';
import { regoDir } from './helpers/policy.js';

let engine: WasmEngine;
let derived: WasmEngine;

const ENTRYPOINTS = { entrypoint: 'mcp/authz/decision', visibleEntrypoint: 'mcp/authz/visible', maxMemoryPages: 256 };

test.before(async () => {
  const bundle = loadBundle(SHIPPED_BUNDLE);
  engine = await WasmEngine.create(bundle, { ...ENTRYPOINTS, data: bundle.data });
  // The shipped decision with the documented rule derived from it in place of the shipped visible.rego.
  const read = (path: string) => readFileSync(join(projectRoot, path), 'utf8');
  // Every file of the shipped policy but its visible.rego and tests, and the example rule instead.
  const shipped = readdirSync(join(projectRoot, 'policies/mcp/authz')).filter(
    (f) => f.endsWith('.rego') && !f.endsWith('_test.rego') && f !== 'visible.rego',
  );
  const dir = regoDir({
    ...Object.fromEntries(shipped.map((f) => [f, read(`policies/mcp/authz/${f}`)])),
    'visible.rego': read('examples/policies/visible-from-decision.rego'),
  });
  const own = await compileRego(dir, ENTRYPOINTS.entrypoint, ENTRYPOINTS.visibleEntrypoint);
  derived = await WasmEngine.create(own, { ...ENTRYPOINTS, data: {} });
});

const names = fc.constantFrom('search', 'read_file', 'read_', 'delete_repo', 'Search', 'a*b', 'x.y', '');
const uris = fc.constantFrom(
  'file:///docs/a.md',
  'file:///docs/',
  'file:///etc/passwd',
  'https://h/x',
  'file:///docs/{name}',
);
const templates = fc.constantFrom(
  'file:///docs/{name}',
  'file:///docs/{+path}',
  'file:///{a}',
  'file:///{dir}/docs/x',
  'file:///docs/a.md',
  'https://h/{x}{?q}',
);
const grant = fc.oneof(
  fc.constant('*'),
  fc
    .tuple(
      fc.constantFrom('tools', 'prompts', 'resources'),
      fc.constantFrom(
        '*',
        'search',
        'read_*',
        '*_repo',
        'a*b',
        'file:///docs/*',
        'file:///*',
        '*e*',
        'file:///docs/{name}',
        'file:///*a*',
        'file:///*/docs/x',
      ),
    )
    .map(([k, g]) => `${k}:${g}`),
);
// Every kind of call that names an item: a listed item's own call, and its other handlers.
const call = fc.oneof(
  names.map((name) => ({ method: 'tools/call', kind: 'request', name })),
  names.map((name) => ({ method: 'prompts/get', kind: 'request', name })),
  uris.map((uri) => ({ method: 'resources/read', kind: 'request', uri })),
  templates.map((uri) => ({ method: 'resources/read', kind: 'request', uri, template: true })),
  names.map((name) => ({ method: 'completion/complete', kind: 'request', ref: { type: 'ref/prompt', name } })),
  templates.map((uri) => ({ method: 'completion/complete', kind: 'request', ref: { type: 'ref/resource', uri } })),
  fc
    .tuple(fc.constantFrom('resources/subscribe', 'resources/unsubscribe'), uris)
    .map(([method, uri]) => ({ method, kind: 'request', uri })),
  fc
    .array(uris, { maxLength: 3 })
    .map((resourceSubscriptions) => ({ method: 'subscriptions/listen', kind: 'request', resourceSubscriptions })),
  names.map((name) => ({ method: 'x/frob', kind: 'request', name, unknownTarget: true })),
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
  data: fc.constantFrom(
    {},
    { anonymousGrants: ['tools:search'] },
    // A required argument the listed call lacks: the bound tools' calls alone are argument_denied.
    {
      arguments: [{ tools: ['search', 'read_*'], prompts: ['*'], arguments: { path: { path: { under: ['/docs'] } } } }],
    },
  ),
});

/** Callable: allowed, or refused only for the arguments a listed item does not carry. */
const callable = (d: Mapped) => d.allow || d.deny.code === 'argument_denied';

for (const [name, which] of [
  ['the shipped rule', () => engine],
  ['the rule derived from decision (examples/policies)', () => derived],
] as const) {
  test(`property: visible[i] says whether list.calls[i] alone is allowed or refused only for its arguments — ${name}`, (t) => {
    const engine = which();
    fc.assert(
      fc.property(endpoint, principal, fc.array(call, { maxLength: 8 }), (ep, p, calls) => {
        const base = {
          endpoint: ep,
          principal: p,
          mcp: { present: true, batch: false, calls: [{ method: 'tools/list', kind: 'request' }] },
        };
        const ev = engine.evaluateVisible(JSON.stringify({ ...base, list: { calls } }))!;
        if (!ev.ok) return false;
        const visible = (ev.resultSet as { result: boolean[] }[])[0]!.result;
        if (visible.length !== calls.length) return false;
        return calls.every((c, i) => {
          const d = engine.evaluate(JSON.stringify({ ...base, mcp: { present: true, batch: false, calls: [c] } }));
          return d.ok && callable(mapResultSet(d.resultSet)) === visible[i];
        });
      }),
      { numRuns: 400 },
    );
    t.pass();
  });
}

/** A listed item (its call in list.calls) and the calls that reach its own handlers. */
const listedWithHandlers = fc.oneof(
  names.map((name) => ({
    item: { method: 'prompts/get', kind: 'request', name },
    handlers: [{ method: 'completion/complete', kind: 'request', ref: { type: 'ref/prompt', name } }],
  })),
  templates.map((uri) => ({
    item: { method: 'resources/read', kind: 'request', uri, template: true },
    handlers: [{ method: 'completion/complete', kind: 'request', ref: { type: 'ref/resource', uri } }],
  })),
  uris.map((uri) => ({
    item: { method: 'resources/read', kind: 'request', uri },
    handlers: [
      { method: 'resources/subscribe', kind: 'request', uri },
      { method: 'resources/unsubscribe', kind: 'request', uri },
      { method: 'subscriptions/listen', kind: 'request', resourceSubscriptions: [uri] },
    ],
  })),
);

for (const [name, which] of [
  ['the shipped rule', () => engine],
  ['the rule derived from decision (examples/policies)', () => derived],
] as const) {
  test(`property: a listed item is visible exactly when its own handlers are callable (completion of a prompt or template, subscription to a resource) — ${name}`, (t) => {
    const engine = which();
    let shown = 0;
    let hidden = 0;
    fc.assert(
      fc.property(
        endpoint,
        principal,
        fc.array(listedWithHandlers, { minLength: 1, maxLength: 6 }),
        (ep, p, listed) => {
          const base = {
            endpoint: ep,
            principal: p,
            mcp: { present: true, batch: false, calls: [{ method: 'resources/list', kind: 'request' }] },
          };
          const ev = engine.evaluateVisible(JSON.stringify({ ...base, list: { calls: listed.map((l) => l.item) } }))!;
          if (!ev.ok) return false;
          const visible = (ev.resultSet as { result: boolean[] }[])[0]!.result;
          return listed.every((l, i) => {
            if (visible[i]) shown++;
            else hidden++;
            return l.handlers.every((h) => {
              const d = engine.evaluate(JSON.stringify({ ...base, mcp: { present: true, batch: false, calls: [h] } }));
              return d.ok && callable(mapResultSet(d.resultSet)) === visible[i];
            });
          });
        },
      ),
      { numRuns: 400 },
    );
    t.true(shown > 100 && hidden > 100, `${shown} shown, ${hidden} hidden`);
  });
}

test('a tool bound by an argument rule is listed to the callers granted it, though its call without arguments is refused', (t) => {
  const ep = {
    name: 'e',
    auth: { apiKey: true, oauth: false },
    data: { arguments: [{ tools: ['read_*'], arguments: { path: { path: { under: ['/docs'] } } } }] },
  };
  const p = { authenticated: true, method: 'api_key', id: 'p', permissions: ['tools:read_*'], scopes: [], roles: [] };
  const calls = [
    { method: 'tools/call', kind: 'request', name: 'read_file' },
    { method: 'tools/call', kind: 'request', name: 'delete_repo' },
  ];
  const base = {
    endpoint: ep,
    principal: p,
    mcp: { present: true, batch: false, calls: [{ method: 'tools/list', kind: 'request' }] },
  };
  for (const e of [engine, derived]) {
    const ev = e.evaluateVisible(JSON.stringify({ ...base, list: { calls } }))!;
    t.true(ev.ok);
    t.deepEqual((ev.resultSet as { result: boolean[] }[])[0]!.result, [true, false]);
    const d = e.evaluate(JSON.stringify({ ...base, mcp: { present: true, batch: false, calls: [calls[0]] } }));
    t.true(d.ok);
    const m = mapResultSet(d.resultSet);
    t.is(m.allow ? 'allow' : m.deny.code, 'argument_denied');
  }
});

test('the shipped bundle carries both entrypoints', (t) => {
  t.true(engine.hasVisible);
  t.true(derived.hasVisible);
});
