import test from 'ava';
import fc from 'fast-check';
import {
  filterJsonBody,
  PRIVATE_CACHE_HEADER,
  withheldListResponse,
  type FilterFailure,
} from '../src/mcp-response/list-filter.js';
import type { ListCalls, ListedItem, ListMethod, Visibility } from '../src/mcp-response/list-methods.js';

const only =
  (...keys: string[]) =>
  (): Visibility =>
  (item: ListedItem) =>
    keys.includes(item.key);

const calls = (entries: [string | number, ListMethod][]): ListCalls => new Map(entries);

const tools = (...names: string[]) =>
  names.map((name) => ({ name, description: `${name} tool`, inputSchema: { type: 'object' } }));

function ok(r: ReturnType<typeof filterJsonBody>) {
  if (!r.ok) throw new Error(`expected a filtered body, got ${r.code}: ${r.detail}`);
  return r;
}

function failed(r: ReturnType<typeof filterJsonBody>): FilterFailure {
  if (r.ok) throw new Error('expected a failure');
  return r;
}

test('a tools/list result keeps exactly the visible tools, in order, with their fields and the other result members', (t) => {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 7,
    result: { tools: tools('search', 'delete_repo', 'read_file'), nextCursor: 'c2' },
  });
  const r = ok(filterJsonBody(body, calls([[7, 'tools/list']]), only('read_file', 'search')));
  const out = JSON.parse(r.body);
  t.deepEqual(out, { jsonrpc: '2.0', id: 7, result: { tools: tools('search', 'read_file'), nextCursor: 'c2' } });
  t.deepEqual(r.stats, { results: 1, shown: 2, hidden: 1 });
  t.true(r.changed);
});

test('prompts are decided on name, resources on uri and templates on uriTemplate', (t) => {
  const seen: ListedItem[] = [];
  const body = JSON.stringify([
    { jsonrpc: '2.0', id: 'p', result: { prompts: [{ name: 'summarize' }, { name: 'secret' }] } },
    {
      jsonrpc: '2.0',
      id: 'r',
      result: {
        resources: [
          { uri: 'file:///README.md', name: 'readme' },
          { uri: 'file:///etc/shadow', name: 'shadow' },
        ],
      },
    },
    {
      jsonrpc: '2.0',
      id: 't',
      result: {
        resourceTemplates: [
          { uriTemplate: 'file:///docs/{path}', name: 'docs' },
          { uriTemplate: 'db://{table}', name: 'db' },
        ],
      },
    },
  ]);
  const r = ok(
    filterJsonBody(
      body,
      calls([
        ['p', 'prompts/list'],
        ['r', 'resources/list'],
        ['t', 'resources/templates/list'],
      ]),
      (items) => {
        seen.push(...items);
        return (i) => ['summarize', 'file:///README.md', 'file:///docs/{path}'].includes(i.key);
      },
    ),
  );
  // Each item comes with the listed object itself (what a pin is checked on).
  t.deepEqual(seen, [
    { method: 'prompts/list', key: 'summarize', item: { name: 'summarize' } },
    { method: 'prompts/list', key: 'secret', item: { name: 'secret' } },
    { method: 'resources/list', key: 'file:///README.md', item: { uri: 'file:///README.md', name: 'readme' } },
    { method: 'resources/list', key: 'file:///etc/shadow', item: { uri: 'file:///etc/shadow', name: 'shadow' } },
    {
      method: 'resources/templates/list',
      key: 'file:///docs/{path}',
      item: { uriTemplate: 'file:///docs/{path}', name: 'docs' },
    },
    { method: 'resources/templates/list', key: 'db://{table}', item: { uriTemplate: 'db://{table}', name: 'db' } },
  ]);
  const out = JSON.parse(r.body) as { result: Record<string, { name: string }[]> }[];
  t.deepEqual(
    out[0]!.result.prompts!.map((p) => p.name),
    ['summarize'],
  );
  t.deepEqual(
    out[1]!.result.resources!.map((p) => p.name),
    ['readme'],
  );
  t.deepEqual(
    out[2]!.result.resourceTemplates!.map((p) => p.name),
    ['docs'],
  );
  t.deepEqual(r.stats, { results: 3, shown: 3, hidden: 3 });
});

test('the visibility of a whole batch is decided once, and responses to other calls are left as they are', (t) => {
  let decisions = 0;
  const other = { jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text', text: 'x' }] } };
  const body = JSON.stringify([
    { jsonrpc: '2.0', id: 1, result: { tools: tools('a', 'b') } },
    other,
    { jsonrpc: '2.0', id: 3, result: { prompts: [{ name: 'p' }] } },
  ]);
  const r = ok(
    filterJsonBody(
      body,
      calls([
        [1, 'tools/list'],
        [3, 'prompts/list'],
      ]),
      () => {
        decisions++;
        return (i) => i.key !== 'b';
      },
    ),
  );
  t.is(decisions, 1);
  const out = JSON.parse(r.body) as unknown[];
  t.deepEqual(out[1], other);
  t.deepEqual(out[0], { jsonrpc: '2.0', id: 1, result: { tools: tools('a') } });
});

test('a filtered result that carries cache fields is marked private; one without them gets none', (t) => {
  const withTtl = ok(
    filterJsonBody(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        result: { tools: tools('a'), ttlMs: 60000, cacheScope: 'public', resultType: 'complete' },
      }),
      calls([[1, 'tools/list']]),
      only('a'),
    ),
  );
  t.like(JSON.parse(withTtl.body).result, { ttlMs: 60000, cacheScope: 'private', resultType: 'complete' });
  const ttlOnly = ok(
    filterJsonBody(
      JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [], ttlMs: 0 } }),
      calls([[1, 'tools/list']]),
      only(),
    ),
  );
  t.is(JSON.parse(ttlOnly.body).result.cacheScope, 'private', 'an omitted cacheScope means public, so it is set');
  const legacy = ok(
    filterJsonBody(
      JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: tools('a') } }),
      calls([[1, 'tools/list']]),
      only('a'),
    ),
  );
  t.false('cacheScope' in JSON.parse(legacy.body).result);
  t.deepEqual(PRIVATE_CACHE_HEADER, { name: 'cache-control', value: 'private' });
});

test('a body that answers no listed call, an error answer and an empty body pass byte for byte', (t) => {
  const c = calls([[1, 'tools/list']]);
  for (const body of [
    ' {"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"x"}]}} ',
    '{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}',
    '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}',
    '',
  ]) {
    const r = ok(filterJsonBody(body, c, () => () => false));
    t.is(r.body, body);
    t.false(r.changed);
  }
});

test('list results of an unexpected shape fail closed', (t) => {
  const c = calls([[1, 'tools/list']]);
  for (const result of [
    null,
    'tools',
    [],
    {},
    { tools: {} },
    { tools: [null] },
    { tools: [{}] },
    { tools: [{ name: 5 }] },
    { prompts: [] },
  ]) {
    const r = failed(filterJsonBody(JSON.stringify({ jsonrpc: '2.0', id: 1, result }), c, () => () => true));
    t.is(r.code, 'malformed_list_result', JSON.stringify(result));
  }
});

test('responses that readers could read differently fail closed', (t) => {
  const c = calls([[1, 'tools/list']]);
  const cases: [string, FilterFailure['code']][] = [
    ['{"jsonrpc":"2.0","id":1,"result":{"tools":[]}', 'invalid_json'],
    ['{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","x":NaN}]}}', 'invalid_json'],
    ['{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]},"result":{"tools":[]}}', 'duplicate_json_key'],
    ['{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","Name":"delete_repo"}]}}', 'duplicate_json_key'],
    ['{"jsonrpc":"2.0","id":1,"result":{"tools":[],"Tools":[{"name":"delete_repo"}]}}', 'duplicate_json_key'],
    ['{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","ſchema":1,"schema":2}]}}', 'duplicate_json_key'],
    ['{"jsonrpc":"2.0","ID":1,"result":{"tools":[{"name":"delete_repo"}]}}', 'ambiguous_member'],
    ['{"jsonrpc":"2.0","id":1,"Result":{"tools":[{"name":"delete_repo"}]}}', 'ambiguous_member'],
    ['{"jsonrpc":"2.0","id":"1","result":{"tools":[{"name":"delete_repo"}]}}', 'ambiguous_response'],
    ['{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"error":{"code":1,"message":"x"}}', 'ambiguous_response'],
    [
      '[{"jsonrpc":"2.0","id":1,"result":{"tools":[]}},{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_repo"}]}}]',
      'ambiguous_response',
    ],
  ];
  for (const [body, code] of cases) t.is(failed(filterJsonBody(body, c, () => () => false)).code, code, body);
});

test('a list result the filter cannot match to a listed call fails closed, under any spelling of its list member', (t) => {
  const c = calls([[1, 'tools/list']]);
  for (const body of [
    '{"jsonrpc":"2.0","id":null,"result":{"tools":[{"name":"delete_repo"}]}}',
    '{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}',
    '{"jsonrpc":"2.0","id":2,"result":{"TOOLS":[{"name":"delete_repo"}]}}',
    '{"jsonrpc":"2.0","id":2,"result":{"resourceTemplates":[{"uriTemplate":"db://{t}"}]}}',
    '{"jsonrpc":"2.0","result":{"prompts":[{"name":"secret"}]}}',
    '[{"jsonrpc":"2.0","id":1,"result":{"tools":[]}},{"jsonrpc":"2.0","id":null,"result":{"resources":[{"uri":"file:///etc/shadow"}]}}]',
  ]) {
    t.is(failed(filterJsonBody(body, c, () => () => true)).code, 'unmatched_response', body);
  }
  // An unmatched answer that is not a list, and an error under an unmatched id, still pass.
  for (const body of [
    '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}',
    '{"jsonrpc":"2.0","id":2,"result":{"tool":"x"}}',
  ]) {
    t.is(ok(filterJsonBody(body, c, () => () => false)).body, body);
  }
});

test('a withheld list is a JSON-RPC error for each listed call, a batch when the request was one', (t) => {
  const why = failed(filterJsonBody('nope', calls([[1, 'tools/list']]), () => () => true));
  t.deepEqual(withheldListResponse(calls([[1, 'tools/list']]), why, { batch: false }), {
    jsonrpc: '2.0',
    id: 1,
    error: {
      code: -32603,
      message: 'The list result was withheld: it could not be filtered for this caller.',
      data: { reason: 'invalid_json' },
    },
  });
  const batch = withheldListResponse(
    calls([
      [1, 'tools/list'],
      ['x', 'prompts/list'],
    ]),
    why,
    { batch: true },
  ) as { id: unknown }[];
  t.deepEqual(
    batch.map((e) => e.id),
    [1, 'x'],
  );
  t.true(Array.isArray(withheldListResponse(calls([[1, 'tools/list']]), why, { batch: true })));
});

test('the filtered list is the input list with exactly the invisible items removed, in order', (t) => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.string({ maxLength: 8 }), { maxLength: 12 }),
      fc.func(fc.boolean()),
      fc.dictionary(
        fc.stringMatching(/^[a-z]{1,5}$/).filter((k) => k !== 'tools'),
        fc.oneof(fc.integer(), fc.string(), fc.boolean(), fc.constant(null), fc.array(fc.string())),
        { maxKeys: 3 },
      ),
      (names, pick, extra) => {
        const list = names.map((name, i) => ({ name, i }));
        const result = { ...extra, tools: list };
        const body = JSON.stringify({ jsonrpc: '2.0', id: 9, result });
        const r = filterJsonBody(body, calls([[9, 'tools/list']]), () => (item) => pick(item.key));
        if (!r.ok) return false;
        const out = JSON.parse(r.body).result;
        const expected = list.filter((x) => pick(x.name));
        return (
          JSON.stringify(out.tools) === JSON.stringify(expected) &&
          r.stats.hidden === list.length - expected.length &&
          Object.keys(extra).every((k) => JSON.stringify(out[k]) === JSON.stringify(JSON.parse(body).result[k]))
        );
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});
