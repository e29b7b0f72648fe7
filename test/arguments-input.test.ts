// Arguments on their way to the policy: read from the body (mcp.calls[].arguments), the
// argument rules validated at config load, and the URL views added to the input.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateConfig } from '../src/config/load.js';
import { RequestRejected } from '../src/contracts/request-rejected.js';
import type { CheckContext } from '../src/decision/context.js';
import { EndpointRegistry } from '../src/endpoints/registry.js';
import { parseMcp } from '../src/request/json-rpc.js';
import { needsSqlParser, sqlWithoutDialect, viewPlan, viewsOf } from '../src/policy/argument-views.js';
import { loadPostgresParser } from '../src/request/sql-parser.js';
import { InputBuilder } from '../src/policy/policy-input.js';
import type { McpCall } from '../src/contracts/request.js';
import type { Principal } from '../src/contracts/principal.js';

test.before(async () => {
  // The shared cases' views include SQL views, read by PostgreSQL's parser.
  await loadPostgresParser();
});

const noHeaders = Object.create(null);
const call = (params: unknown, method = 'tools/call') =>
  parseMcp(JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }), true, noHeaders).view.calls[0]!;

function refusal(params: unknown, method = 'tools/call'): [string, string] | undefined {
  try {
    call(params, method);
    return undefined;
  } catch (err) {
    if (err instanceof RequestRejected) return [err.code, err.description];
    throw err;
  }
}

// ---------------------------------------------------------------- reading the body

test('tools/call and prompts/get carry their arguments as parsed', (t) => {
  const args = { path: '/docs/a.md', n: 3, deep: { list: [1, 'x', null, true] } };
  t.deepEqual(call({ name: 'read_file', arguments: args }).arguments, args);
  t.deepEqual(call({ name: 'summarize', arguments: { style: 'short' } }, 'prompts/get').arguments, { style: 'short' });
});

test('a call without arguments, or with null arguments, has none', (t) => {
  t.false('arguments' in call({ name: 'read_file' }));
  t.false('arguments' in call({ name: 'read_file', arguments: null }));
});

test('arguments of other methods are not read', (t) => {
  t.false('arguments' in call({ uri: 'file:///a', arguments: { x: 1 } }, 'resources/read'));
  t.false('arguments' in call({ arguments: { x: 1 } }, 'tools/list'));
});

test('arguments that are not an object are 400 invalid_arguments', (t) => {
  for (const a of [[], ['/docs'], 'path=/docs', 7, true]) {
    const r = refusal({ name: 'read_file', arguments: a });
    t.is(r?.[0], 'invalid_arguments', JSON.stringify(a));
    t.regex(r![1], /params\.arguments of tools\/call must be an object/);
  }
});

test('a number beyond float64 anywhere in the arguments is 400 invalid_arguments, without the value', (t) => {
  for (const raw of ['1e400', '-1e309', '[1, {"x": 2e999}]']) {
    let r: [string, string] | undefined;
    try {
      parseMcp(
        `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"n":${raw}}}}`,
        true,
        noHeaders,
      );
    } catch (err) {
      r = [(err as RequestRejected).code, (err as RequestRejected).description];
    }
    t.is(r?.[0], 'invalid_arguments', raw);
    t.false(r![1].includes('e4') || r![1].includes('e3') || r![1].includes('e9'), r![1]);
  }
  t.deepEqual(call({ name: 't', arguments: { n: 1e308, big: 2 ** 60 } }).arguments, { n: 1e308, big: 2 ** 60 });
});

test('argument keys Go would read as one are refused like any other body key', (t) => {
  t.throws(
    () =>
      parseMcp(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/docs/a","Path":"/etc/passwd"}}}',
        true,
        noHeaders,
      ),
    {
      instanceOf: RequestRejected,
      message: /case-insensitive/,
    },
  );
  t.throws(
    () =>
      parseMcp(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/docs/a","path":"/etc/passwd"}}}',
        true,
        noHeaders,
      ),
    {
      instanceOf: RequestRejected,
    },
  );
});

// ---------------------------------------------------------------- the rules at load

const endpointWith = (rules: unknown) => ({
  endpoints: [
    {
      name: 'e',
      match: { pathPrefix: '/e' },
      auth: { apiKey: false },
      data: { arguments: rules, other: { free: 'form' } },
    },
  ],
});
const v = (raw: unknown) => validateConfig(raw, 'test.yaml', '/etc/mcp-authz', {});

test('argument rules reach the policy data exactly as written', (t) => {
  const rules = [
    { tools: ['read_*'], arguments: { path: { path: { under: ['/docs', '/'] } } }, otherArguments: 'deny' },
    {
      prompts: ['summarize'],
      arguments: {
        style: { enum: ['short', 1, null] },
        n: { presence: 'optional', type: 'integer', minimum: -5, maximum: 5 },
      },
      exemptGrants: ['admin'],
    },
    {
      tools: ['http_get'],
      arguments: {
        url: {
          url: {
            hosts: ['api.example.com', '*.example.org', '192.0.2.1', '[2001:db8::1]', '10.0.0.0/8', '2001:db8::/32'],
            schemes: ['https'],
            ports: [443],
          },
        },
      },
    },
    {
      tools: ['sql'],
      arguments: {
        q: { sql: 'select-only', maxLength: 4000, notPattern: '(?i)pg_' },
        ids: { items: { type: 'integer' } },
        debug: { presence: 'forbidden' },
      },
    },
    {
      tools: ['pg'],
      arguments: { q: { sql: { dialect: 'postgresql' } }, qs: { items: { sql: { dialect: 'sqlserver' } } } },
    },
  ];
  const c = v(endpointWith(rules));
  t.deepEqual(c.endpoints[0]!.data, { arguments: rules, other: { free: 'form' } });
});

const badRules: [string, unknown, RegExp][] = [
  [
    'a misspelled constraint',
    [{ tools: ['t'], arguments: { p: { pathUnder: ['/docs'] } } }],
    /arguments\.0\.arguments\.p.*pathUnder/,
  ],
  ['a rule naming no tool or prompt', [{ arguments: {} }], /name the tools and\/or prompts/],
  [
    'a relative path prefix',
    [{ tools: ['t'], arguments: { p: { path: { under: ['docs'] } } } }],
    /under\.0: an absolute path/,
  ],
  [
    'a prefix with ..',
    [{ tools: ['t'], arguments: { p: { path: { under: ['/docs/../etc'] } } } }],
    /under\.0: no empty, "\." or "\.\." segments/,
  ],
  [
    'a prefix with a trailing slash',
    [{ tools: ['t'], arguments: { p: { path: { under: ['/docs/'] } } } }],
    /under\.0: no trailing "\/"/,
  ],
  [
    'a prefix with a backslash',
    [{ tools: ['t'], arguments: { p: { path: { under: ['/docs\\x'] } } } }],
    /under\.0: no control characters/,
  ],
  [
    'an upper-case host',
    [{ tools: ['t'], arguments: { u: { url: { hosts: ['API.example.com'] } } } }],
    /hosts\.0: a lower-case host name/,
  ],
  [
    'a host with a trailing dot',
    [{ tools: ['t'], arguments: { u: { url: { hosts: ['api.example.com.'] } } } }],
    /hosts\.0/,
  ],
  ['a host with a port', [{ tools: ['t'], arguments: { u: { url: { hosts: ['api.example.com:443'] } } } }], /hosts\.0/],
  ['a Unicode host', [{ tools: ['t'], arguments: { u: { url: { hosts: ['bücher.example'] } } } }], /hosts\.0/],
  [
    'a numeric host WHATWG reads as an address',
    [{ tools: ['t'], arguments: { u: { url: { hosts: ['127.1'] } } } }],
    /hosts\.0/,
  ],
  [
    'an IPv6 address in a long form',
    [{ tools: ['t'], arguments: { u: { url: { hosts: ['[2001:db8:0::1]'] } } } }],
    /hosts\.0/,
  ],
  ['a CIDR with too many bits', [{ tools: ['t'], arguments: { u: { url: { hosts: ['10.0.0.0/33'] } } } }], /hosts\.0/],
  [
    'a CIDR of an address in another form',
    [{ tools: ['t'], arguments: { u: { url: { hosts: ['010.0.0.0/8'] } } } }],
    /hosts\.0/,
  ],
  [
    'a scheme without a host',
    [{ tools: ['t'], arguments: { u: { url: { hosts: ['a.example'], schemes: ['file'] } } } }],
    /schemes\.0/,
  ],
  ['an unknown SQL guard', [{ tools: ['t'], arguments: { q: { sql: 'read-only' } } }], /\.sql/],
  [
    'an unknown SQL dialect',
    [{ tools: ['t'], arguments: { q: { sql: { dialect: 'db2' } } } }],
    /\.sql.*select-only, or \{dialect: postgresql/,
  ],
  [
    'an SQL constraint with another key',
    [{ tools: ['t'], arguments: { q: { sql: { dialect: 'postgresql', allow: ['insert'] } } } }],
    /\.sql/,
  ],
  [
    'a forbidden argument with a value constraint',
    [{ tools: ['t'], arguments: { d: { presence: 'forbidden', type: 'boolean' } } }],
    /a forbidden argument takes no other constraint/,
  ],
  [
    'minimum above maximum',
    [{ tools: ['t'], arguments: { n: { minimum: 5, maximum: 1 } } }],
    /minimum is above maximum/,
  ],
  ['a bound beyond 2^53', [{ tools: ['t'], arguments: { n: { maximum: 2 ** 60 } } }], /maximum/],
  ['otherArguments other than allow or deny', [{ tools: ['t'], otherArguments: 'warn' }], /otherArguments/],
  ['rules that are not a list', { tools: ['t'] }, /data\.arguments/],
];

for (const [what, rules, message] of badRules) {
  test(`argument rules with ${what} stop the service with the field's path`, (t) => {
    const err = t.throws(() => v(endpointWith(rules)));
    t.regex(err!.message, /endpoints\.0\.data\.arguments/);
    t.regex(err!.message, message);
  });
}

// ---------------------------------------------------------------- URL views in the input

test('the arguments a url, path or sql constraint names get views, on every endpoint that has one', (t) => {
  t.is(viewPlan(undefined), undefined);
  t.is(viewPlan({ arguments: [{ tools: ['t'] }] }), undefined);
  t.deepEqual(viewPlan({ arguments: [{ tools: ['t'], arguments: { p: { pattern: '/.*' } } }] }), {
    views: new Map(),
    names: new Map([['p', ['p']]]),
  });
  const plan = viewPlan({
    arguments: [
      {
        tools: ['a'],
        arguments: { url: { url: { hosts: ['x.example'] } }, p: { type: 'string' }, file: { path: { under: ['/'] } } },
      },
      {
        prompts: ['b'],
        arguments: { links: { items: { url: { hosts: ['x.example'] } } }, file: { items: { path: { under: ['/'] } } } },
      },
      {
        tools: ['sql'],
        arguments: {
          q: { sql: { dialect: 'postgresql' } },
          legacy: { sql: 'select-only' },
          other: { items: { sql: { dialect: 'mysql' } } },
        },
      },
    ],
  })!;
  const kinds = (...on: string[]) => ({
    url: on.includes('url'),
    path: on.includes('path'),
    sql: on.includes('sql'),
    portable: on.includes('portable'),
  });
  t.deepEqual(Object.fromEntries(plan.views), {
    url: { value: kinds('url'), items: kinds() },
    file: { value: kinds('path'), items: kinds('path') },
    links: { value: kinds(), items: kinds('url') },
    q: { value: kinds('sql'), items: kinds() },
    legacy: { value: kinds('sql', 'portable'), items: kinds() },
    other: { value: kinds(), items: kinds('sql', 'portable') },
  });
});

test('the SQL parser is loaded only for endpoints whose rules read an SQL argument', (t) => {
  t.false(
    needsSqlParser([{}, { data: { arguments: [{ tools: ['t'], arguments: { p: { path: { under: ['/'] } } } }] } }]),
  );
  t.true(
    needsSqlParser([{ data: { arguments: [{ tools: ['t'], arguments: { q: { sql: { dialect: 'postgresql' } } } }] } }]),
  );
  t.true(
    needsSqlParser([
      {},
      { data: { arguments: [{ tools: ['t'], arguments: { qs: { items: { sql: 'select-only' } } } }] } },
    ]),
  );
  // select-only names no dialect: the service warns at start-up, naming the endpoints.
  t.deepEqual(
    sqlWithoutDialect([
      { name: 'a', data: { arguments: [{ tools: ['t'], arguments: { q: { sql: { dialect: 'postgresql' } } } }] } },
      { name: 'b', data: { arguments: [{ tools: ['t'], arguments: { qs: { items: { sql: 'select-only' } } } }] } },
      { name: 'c' },
    ]),
    ['b'],
  );
});

test('a call gets the views of each planned argument it sends, and of the items of an array', (t) => {
  const args = JSON.parse('{"__proto__":{"url":{"hosts":["a.example"]}}}');
  Object.assign(args, {
    url: { url: { hosts: ['a.example'] } },
    links: { items: { url: { hosts: ['a.example'] } } },
    files: { items: { path: { under: ['/docs'] } } },
  });
  const plan = viewPlan({ arguments: [{ tools: ['t'], arguments: args }] })!;
  const c: McpCall = {
    method: 'tools/call',
    kind: 'request',
    name: 't',
    arguments: JSON.parse(
      '{"url":"https://a.example/","links":["https://b.example:8443/",5],"files":["/docs/a","/docs/../b"],"__proto__":"https://c.example","other":"https://d.example"}',
    ),
  };
  const views = viewsOf(c, plan)!;
  const domain = (host: string, port: number) => ({ ok: true, scheme: 'https', host, hostType: 'domain', port });
  const expected = JSON.parse('{"__proto__":null}');
  Object.assign(expected, {
    url: { url: domain('a.example', 443) },
    links: { items: [{ url: domain('b.example', 8443) }, { url: { ok: false, why: 'not_a_string' } }] },
    files: { items: [{ path: { ok: true } }, { path: { ok: false, why: 'dot_segment' } }] },
  });
  // biome-ignore lint/suspicious/noProto: the test is about an argument named __proto__
  // biome-ignore lint/complexity/useLiteralKeys: the bracket sets an own property, not the prototype
  expected['__proto__'] = { url: domain('c.example', 443) };
  t.deepEqual(JSON.parse(JSON.stringify(views)), expected);
  t.is(viewsOf({ method: 'tools/call', kind: 'request', name: 't', arguments: { other: 'x' } }, plan), undefined);
  t.is(viewsOf({ method: 'tools/call', kind: 'request', name: 't' }, plan), undefined);
});

test("a key Go reads as a rule's argument but spelled otherwise is marked sentAs", (t) => {
  const plan = viewPlan({
    arguments: [
      {
        tools: ['t'],
        arguments: {
          limit: { presence: 'optional', maximum: 10 },
          url: { url: { hosts: ['a.example'] } },
          pass: { presence: 'forbidden' },
        },
      },
    ],
  })!;
  const views = (args: Record<string, unknown>) =>
    JSON.parse(
      JSON.stringify(viewsOf({ method: 'tools/call', kind: 'request', name: 't', arguments: args }, plan) ?? null),
    );
  t.deepEqual(views({ Limit: 99 }), { limit: { sentAs: 'Limit' } });
  t.deepEqual(views({ URL: 'https://b.example/' }), { url: { sentAs: 'URL' } });
  t.deepEqual(views({ 'pa\u017fs': true }), { pass: { sentAs: 'pa\u017fs' } });
  t.deepEqual(views({ limit: 3, other: 1 }), null);
});

test('the policy input carries arguments and, on an endpoint with url rules, their views', (t) => {
  const rules = [{ tools: ['http_get'], arguments: { url: { url: { hosts: ['api.example.com'] } } } }];
  const registry = new EndpointRegistry(
    v({
      endpoints: [
        { name: 'web', match: { pathPrefix: '/web' }, data: { arguments: rules } },
        { name: 'plain', match: { pathPrefix: '/plain' } },
      ],
    }).endpoints,
  );
  const builder = new InputBuilder(registry.all, {
    envoyInput: false,
    publicBaseUrl: undefined,
    keyHeader: 'x-api-key',
    keyQueryParams: [],
  });
  const parsed = parseMcp(
    JSON.stringify([
      {
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'http_get', arguments: { url: 'https://api.example.com@evil.example/' } },
      },
      { jsonrpc: '2.0', id: 2, method: 'tools/list' },
    ]),
    true,
    noHeaders,
  );
  const principal: Principal = {
    authenticated: true,
    method: 'api_key',
    id: 'k',
    roles: [],
    permissions: ['*'],
    scopes: [],
  };
  const ctx = (endpoint: number) =>
    ({
      request: {
        id: 'r',
        method: 'POST',
        scheme: 'https',
        host: 'h',
        path: '/web',
        query: {},
        headers: {},
        bodyBytes: 0,
        attributes: {},
      },
      endpoint: registry.all[endpoint],
      principal,
      credentialHeaders: [],
      credentialQueryParams: [],
      mcp: parsed.view,
      parsedBody: parsed.json,
    }) as unknown as CheckContext;
  const web = JSON.parse(builder.build(ctx(0), false));
  t.deepEqual(web.mcp.calls[0], {
    method: 'tools/call',
    kind: 'request',
    name: 'http_get',
    arguments: { url: 'https://api.example.com@evil.example/' },
    argumentViews: { url: { url: { ok: false, why: 'user_information' } } },
  });
  t.deepEqual(web.mcp.calls[1], { method: 'tools/list', kind: 'request' });
  t.false('argumentViews' in parsed.view.calls[0]!, 'the request model is left as it was');
  const plain = JSON.parse(builder.build(ctx(1), false));
  t.deepEqual(plain.mcp.calls[0], {
    method: 'tools/call',
    kind: 'request',
    name: 'http_get',
    arguments: { url: 'https://api.example.com@evil.example/' },
  });
});

test('the shared argument cases carry exactly the views the service computes', (t) => {
  const file = join(import.meta.dirname, '..', 'policies', 'cases', 'arguments.json');
  const cases = (
    JSON.parse(readFileSync(file, 'utf8')) as {
      arguments: { name: string; endpoint: { data: never }; calls: (McpCall & { argumentViews?: unknown })[] }[];
    }
  ).arguments;
  let withViews = 0;
  for (const c of cases) {
    const plan = viewPlan(c.endpoint.data);
    for (const { argumentViews, ...call } of c.calls) {
      const expected = plan && viewsOf(call, plan);
      t.deepEqual(
        argumentViews,
        expected === undefined ? undefined : JSON.parse(JSON.stringify(expected)),
        `${c.name} (npm run gen:case-views)`,
      );
      if (argumentViews !== undefined) withViews++;
    }
  }
  t.true(withViews >= 60, `${withViews} calls with views`);
});
