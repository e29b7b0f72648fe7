// The shipped policy declares that it reads grants only to match the items a request names
// (data.mcp_authz.input.grants: "applicable"), so the input carries only the caller's grants
// that can apply to the request. These properties prove, with the shipped bundle compiled to
// WASM and the service's own input builder, that the decision — the whole result, descriptions
// and step-up challenges included — and the visibility of every listed item are the same as
// with all the caller's grants, on generated grants, calls, batches, list requests and
// endpoints (argument rules with exempt grants, approvals, anonymous grants, owners).
import test from 'ava';
import fc from 'fast-check';
import { SHIPPED_BUNDLE } from '../src/config/paths.mjs';
import type { McpCall } from '../src/contracts/request.js';
import type { Principal } from '../src/contracts/principal.js';
import type { CheckContext } from '../src/decision/context.js';
import { EndpointRegistry, type Endpoint } from '../src/endpoints/registry.js';
import { applicableGrants } from '../src/policy/applicable-grants.js';
import { loadBundle } from '../src/policy/bundle-loader.js';
import { InputBuilder } from '../src/policy/policy-input.js';
import { WasmEngine } from '../src/policy/wasm-engine.js';

let engine: WasmEngine;
let declared: string | undefined;

test.before(async () => {
  const bundle = loadBundle(SHIPPED_BUNDLE);
  declared = (bundle.data.mcp_authz as { input?: { grants?: string } } | undefined)?.input?.grants;
  engine = await WasmEngine.create(bundle, {
    entrypoint: 'mcp/authz/decision',
    visibleEntrypoint: 'mcp/authz/visible',
    maxMemoryPages: 256,
    data: bundle.data,
  });
});

const endpoints = new EndpointRegistry([
  { name: 'open', match: { pathPrefix: '/open' }, auth: { apiKey: true, oauth: true } },
  { name: 'alice', match: { pathPrefix: '/alice' }, owner: 'alice', auth: { apiKey: true, oauth: true } },
  {
    name: 'rules',
    match: { pathPrefix: '/rules' },
    auth: { apiKey: true, oauth: true },
    data: {
      arguments: [
        {
          tools: ['http_get'],
          arguments: { url: { url: { hosts: ['api.example.com'], schemes: ['https'] } } },
          exemptGrants: ['tools:http_get:any-host', 'admin'],
        },
        { tools: ['read_*'], arguments: { path: { path: { under: ['/docs'] } } }, exemptGrants: ['*'] },
      ],
      approvals: [{ tools: ['delete_*'], group: 'ops' }],
    },
  },
  {
    name: 'anon',
    match: { pathPrefix: '/anon' },
    auth: { apiKey: false, oauth: false },
    data: { anonymousGrants: ['tools:search', 'tools:read_*'] },
  },
] as never).all;

const input = new InputBuilder(endpoints, {
  envoyInput: false,
  publicBaseUrl: 'https://mcp.example.com',
  keyHeader: 'x-api-key',
  keyQueryParams: [],
});

// Names and patterns from a small alphabet, so exact grants, wildcards at every position and
// prefixes that run past the target all occur often.
const word = fc.string({ unit: fc.constantFrom('a', 'b', '_', '/', ':', '.'), maxLength: 5 });
const names = fc.oneof(
  word,
  fc.constantFrom('search', 'read_file', 'read_', 'http_get', 'http_get:any-host', 'delete_repo', 'Search', ''),
);
const uris = fc.oneof(
  word.map((w) => `file:///${w}`),
  fc.constantFrom('file:///docs/a.md', 'file:///docs/', 'https://h/x', 'file:///docs/{name}'),
);
const templates = fc.constantFrom(
  'file:///docs/{name}',
  'file:///docs/{+path}',
  'file:///{a}',
  'file:///{dir}/docs/x',
  'file:///docs/a.md',
  'https://h/{x}{?q}',
  'file:///a{b}',
);
const pattern = fc.oneof(
  fc.array(word, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('*')),
  names,
  uris,
  fc.constantFrom(
    '*',
    'read_*',
    '*_repo',
    'file:///docs/*',
    'file:///*',
    '*e*',
    'file:///docs/{name}',
    'file:///*/docs/x',
  ),
);
const grant = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.tuple(fc.constantFrom('tools', 'prompts', 'resources'), pattern).map(([k, p]) => `${k}:${p}`),
  },
  { weight: 1, arbitrary: fc.constantFrom('*', 'openid', 'admin', 'tools:http_get:any-host', 'tools', 'x:y') },
);
const grants = fc.oneof(fc.array(grant, { maxLength: 6 }), fc.array(grant, { minLength: 20, maxLength: 60 }));

const call: fc.Arbitrary<McpCall & { template?: true }> = fc.oneof(
  names.map((name) => ({ method: 'tools/call', kind: 'request' as const, name })),
  fc.constantFrom(
    { method: 'tools/call', kind: 'request' as const, name: 'http_get', arguments: { url: 'https://evil.example/' } },
    {
      method: 'tools/call',
      kind: 'request' as const,
      name: 'http_get',
      arguments: { url: 'https://api.example.com/' },
    },
    { method: 'tools/call', kind: 'request' as const, name: 'read_file', arguments: { path: '/etc/passwd' } },
    { method: 'tools/call', kind: 'request' as const, name: 'read_file', arguments: { path: '/docs/a.md' } },
    { method: 'tools/call', kind: 'request' as const },
  ),
  names.map((name) => ({ method: 'prompts/get', kind: 'request' as const, name })),
  uris.map((uri) => ({ method: 'resources/read', kind: 'request' as const, uri })),
  fc
    .tuple(fc.constantFrom('resources/subscribe', 'resources/unsubscribe'), uris)
    .map(([method, uri]) => ({ method, kind: 'request' as const, uri })),
  names.map((name) => ({ method: 'completion/complete', kind: 'request' as const, ref: { type: 'ref/prompt', name } })),
  templates.map((uri) => ({
    method: 'completion/complete',
    kind: 'request' as const,
    ref: { type: 'ref/resource', uri },
  })),
  fc.array(uris, { maxLength: 3 }).map((resourceSubscriptions) => ({
    method: 'subscriptions/listen',
    kind: 'request' as const,
    resourceSubscriptions,
  })),
  names.map((name) => ({ method: 'x/frob', kind: 'request' as const, name, unknownTarget: true as const })),
  fc
    .constantFrom('initialize', 'ping', 'tools/list', 'prompts/list', 'resources/list', 'resources/templates/list')
    .map((method) => ({ method, kind: 'request' as const })),
);

const principal = fc
  .record({
    method: fc.constantFrom('api_key', 'oauth', 'anonymous'),
    userId: fc.option(fc.constantFrom('alice', 'bob'), { nil: undefined }),
    grants,
  })
  .map(({ method, userId, grants }): Principal => {
    const p: Principal = {
      authenticated: method !== 'anonymous',
      method: method as Principal['method'],
      id: 'p',
      roles: [],
      permissions: method === 'api_key' ? grants : [],
      scopes: method === 'oauth' ? grants : [],
    };
    if (userId !== undefined) p.userId = userId;
    return p;
  });

function context(endpoint: Endpoint, p: Principal, calls: McpCall[]): CheckContext {
  return {
    request: {
      id: 'r',
      method: 'POST',
      scheme: 'https',
      host: 'mcp.example.com',
      path: `/${endpoint.name}`,
      query: {},
      headers: { ':authority': ['mcp.example.com'], 'content-type': ['application/json'] },
      attributes: {},
      bodyBytes: 0,
    },
    endpoint,
    clientAddress: '10.0.0.1',
    principal: p,
    credentialHeaders: [],
    credentialQueryParams: [],
    mcp: { present: true, batch: calls.length > 1, protocolVersion: '2025-06-18', calls },
    parsedBody: undefined,
  } as unknown as CheckContext;
}

/** The items a list request's response lists, as ext_proc's visibility stands them for calls. */
function listedCalls(method: string, names: string[], uris: string[], templates: string[]): McpCall[] {
  switch (method) {
    case 'tools/list':
      return names.map((name) => ({ method: 'tools/call', kind: 'request', name }));
    case 'prompts/list':
      return names.map((name) => ({ method: 'prompts/get', kind: 'request', name }));
    case 'resources/list':
      return uris.map((uri) => ({ method: 'resources/read', kind: 'request', uri }));
    default:
      return templates.map((uri) => ({ method: 'resources/read', kind: 'request', uri, template: true }) as McpCall);
  }
}

test('the shipped bundle declares that its policy reads only the applicable grants', (t) => {
  t.is(declared, 'applicable');
});

test('property: the shipped decision with the applicable grants is the decision with all of them', (t) => {
  let allowed = 0;
  let denied = 0;
  let fewer = 0;
  const reasons = new Set<string>();
  fc.assert(
    fc.property(
      fc.constantFrom(...endpoints),
      principal,
      fc.array(call, { minLength: 1, maxLength: 4 }),
      (ep, p, calls) => {
        const ctx = context(ep, p, calls);
        const all = input.build(ctx, false, false, 'all');
        const some = input.build(ctx, false, false, 'applicable');
        const a = engine.evaluate(all);
        const b = engine.evaluate(some);
        if (!a.ok) throw new Error(a.error);
        if (!b.ok) throw new Error(b.error);
        const ra = (a.resultSet as { result: { allow?: boolean; error?: string } }[])[0]!.result;
        const rb = (b.resultSet as { result: unknown }[])[0]!.result;
        if (ra.allow === true) allowed++;
        else {
          denied++;
          reasons.add(ra.error ?? ((ra as { approval?: unknown }).approval ? 'approval' : '?'));
        }
        if (some.length < all.length) fewer++;
        if (JSON.stringify(rb) !== JSON.stringify(ra)) throw new Error(`${JSON.stringify(ra)} ≠ ${JSON.stringify(rb)}`);
        return true;
      },
    ),
    { numRuns: 3000 },
  );
  // Both outcomes, the denials' kinds, and inputs that did shrink: a property that held trivially would show none.
  t.true(allowed > 300 && denied > 300, `${allowed} allowed, ${denied} denied`);
  for (const r of ['access_denied', 'insufficient_scope', 'argument_denied', 'approval'])
    t.true(reasons.has(r), `no ${r} among ${[...reasons].join(', ')}`);
  t.true(fewer > 1000, `${fewer} inputs carried fewer grants`);
});

test('property: a list request gets every grant its items are checked against: the same items visible', (t) => {
  let shown = 0;
  let hidden = 0;
  fc.assert(
    fc.property(
      fc.constantFrom(...endpoints),
      principal,
      fc.constantFrom('tools/list', 'prompts/list', 'resources/list', 'resources/templates/list'),
      fc.array(call, { maxLength: 2 }),
      fc.array(names, { minLength: 1, maxLength: 8 }),
      fc.array(uris, { minLength: 1, maxLength: 8 }),
      fc.array(templates, { minLength: 1, maxLength: 4 }),
      (ep, p, method, others, ns, us, ts) => {
        // The list request as decided (its recorded input is what the visibility rule extends).
        const ctx = context(ep, p, [{ method, kind: 'request' }, ...others]);
        const listed = JSON.stringify(listedCalls(method, ns, us, ts));
        const answer = (base: string) => {
          const ev = engine.evaluateVisible(`${base.slice(0, -1)},"list":{"calls":${listed}}}`)!;
          return ev.ok ? (ev.resultSet as { result: boolean[] }[])[0]!.result : undefined;
        };
        const a = answer(input.build(ctx, false, false, 'all'));
        const b = answer(input.build(ctx, false, false, 'applicable'));
        if (a === undefined) return false;
        for (const v of a) v ? shown++ : hidden++;
        return JSON.stringify(a) === JSON.stringify(b);
      },
    ),
    { numRuns: 1500 },
  );
  t.true(shown > 500 && hidden > 500, `${shown} shown, ${hidden} hidden`);
});

test('property: the applicable grants are those that can match an item named, every grant of a listed kind, "*" and the exempt strings', (t) => {
  // Exact grants, the patterns whose literal before "*" starts the target, "*", exempt strings:
  // checked against a plain scan of every grant (the index is a faster way to the same set).
  fc.assert(
    fc.property(grants, fc.array(call, { maxLength: 4 }), (gs, calls) => {
      const got = new Set(applicableGrants(gs, calls, ['admin']));
      const want = new Set<string>();
      const needs: [string, string][] = [];
      const lists = new Set<string>();
      for (const c of calls) {
        if (c.method === 'tools/list') lists.add('tools');
        if (c.method === 'prompts/list') lists.add('prompts');
        if (c.method === 'resources/list' || c.method === 'resources/templates/list') lists.add('resources');
        if (c.method === 'tools/call' && typeof c.name === 'string') needs.push(['tools', c.name]);
        if (c.method === 'prompts/get' && typeof c.name === 'string') needs.push(['prompts', c.name]);
        if (c.method.startsWith('resources/') && typeof c.uri === 'string') needs.push(['resources', c.uri]);
        const ref = c.ref as { type: string; name?: string; uri?: string } | undefined;
        if (ref?.type === 'ref/prompt') needs.push(['prompts', ref.name!]);
        if (ref?.type === 'ref/resource') needs.push(['resources', ref.uri!]);
        for (const u of c.resourceSubscriptions ?? []) needs.push(['resources', u]);
      }
      for (const g of gs) {
        if (g === '*' || g === 'admin') want.add(g);
        const colon = g.indexOf(':');
        if (colon <= 0) continue;
        const kind = g.slice(0, colon);
        const pat = g.slice(colon + 1);
        if (lists.has(kind)) want.add(g);
        const star = pat.indexOf('*');
        for (const [k, target] of needs)
          if (k === kind && (star < 0 ? pat === target : target.startsWith(pat.slice(0, star)))) want.add(g);
      }
      return got.size === want.size && [...want].every((g) => got.has(g));
    }),
    { numRuns: 3000 },
  );
  t.pass();
});
