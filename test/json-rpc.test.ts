import test from 'ava';
import fc from 'fast-check';
import { scanJson } from '../src/request/json-body-scan.js';
import { foldKey } from '../src/request/json-key-fold.js';
import { parseMcp } from '../src/request/json-rpc.js';
import { normalizeResourceUri } from '../src/request/normalize-resource-uri.js';
import { RequestRejected } from '../src/contracts/request-rejected.js';

const noHeaders = Object.create(null);

/** The path of the first duplicated key, or undefined. */
function findDuplicateKey(text: string): string | undefined {
  const f = scanJson(text, 64);
  return f?.code === 'duplicate_json_key' ? f.path : undefined;
}

/** JSON values whose objects have no two keys alike under Go's case-insensitive matching. */
const unambiguous = fc
  .jsonValue({ maxDepth: 2 })
  .filter((v) => scanJson(JSON.stringify(v) ?? 'null', 64) === undefined);

const MEMBERS = new Set(['jsonrpc', 'id', 'method', 'params', 'result', 'error'].map(foldKey));

test('JSON.stringify output never has a duplicate key', (t) => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => findDuplicateKey(JSON.stringify(v) ?? 'null') === undefined),
    { numRuns: 2000 },
  );
  t.pass();
});

test('a key repeated in any object of a document is found, with its path', (t) => {
  const key = fc.string({ maxLength: 6 });
  fc.assert(
    fc.property(
      fc.dictionary(fc.string({ maxLength: 5 }), unambiguous),
      key,
      unambiguous,
      unambiguous,
      (obj, k, a, b) => {
        const others = Object.entries(obj).filter(([x]) => foldKey(x) !== foldKey(k));
        fc.pre(new Set(others.map(([x]) => foldKey(x))).size === others.length);
        // At the top level a key Go reads as a JSON-RPC member is refused for its spelling first.
        fc.pre(![k, ...others.map(([x]) => x)].some((x) => MEMBERS.has(foldKey(x))));
        const rest = JSON.stringify(Object.fromEntries(others)).slice(1, -1);
        const dup = `{${JSON.stringify(k)}:${JSON.stringify(a)},${rest}${rest ? ',' : ''}${JSON.stringify(k)}:${JSON.stringify(b)}}`;
        const top = scanJson(dup, 64);
        const nested = scanJson(`{"jsonrpc":"2.0","data":${dup}}`, 64);
        const plain = /^[A-Za-z_$][\w$]*$/.test(k);
        return (
          top?.code === 'duplicate_json_key' &&
          top.key === k &&
          (!plain || top.path === k) &&
          nested?.code === 'duplicate_json_key' &&
          nested.key === k &&
          (plain ? nested.path === `data.${k}` : nested.path.startsWith('data['))
        );
      },
    ),
    { numRuns: 1500 },
  );
  t.pass();
});

test('keys spelled with escapes count as the same key', (t) => {
  t.is(findDuplicateKey('{"name":"a","n\\u0061me":"b"}'), 'name');
  t.is(findDuplicateKey('{"a":{"x":1},"b":{"x":1}}'), undefined, 'equal keys in sibling objects are fine');
  t.is(findDuplicateKey('[{"x":1},{"x":2}]'), undefined);
  t.is(findDuplicateKey('{"s":"{\\"x\\":1,\\"x\\":2}"}'), undefined, 'text inside strings is not structure');
});

function attempt(f: () => unknown): unknown {
  try {
    return f();
  } catch (err) {
    return err;
  }
}

const normalized = (uri: string) => attempt(() => normalizeResourceUri(uri)) as string | RequestRejected;

const method = fc.constantFrom(
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'prompts/get',
  'resources/read',
  'notifications/initialized',
);
const call = fc.record({
  method,
  id: fc.option(fc.integer(), { nil: undefined }),
  name: fc.string({ maxLength: 10 }),
  uri: fc.webUrl(),
});

function body(c: { method: string; id: number | undefined; name: string; uri: string }) {
  const params = c.method === 'resources/read' ? { uri: c.uri } : { name: c.name };
  return { jsonrpc: '2.0', method: c.method, params, ...(c.id !== undefined ? { id: c.id } : {}) };
}

test('every element of a batch becomes one call with its method and target', (t) => {
  fc.assert(
    fc.property(fc.array(call, { minLength: 1, maxLength: 6 }), fc.boolean(), (calls, asBatch) => {
      const single = !asBatch && calls.length === 1;
      const text = JSON.stringify(single ? body(calls[0]!) : calls.map(body));
      const uris = calls.map((c) => (c.method === 'resources/read' ? normalized(c.uri) : undefined));
      if (uris.some((u) => u instanceof RequestRejected)) {
        const err = attempt(() => parseMcp(text, true, noHeaders));
        return err instanceof RequestRejected && err.code === 'invalid_resource_uri';
      }
      const { view } = parseMcp(text, true, noHeaders);
      if (view.batch === single || view.calls.length !== calls.length) return false;
      return calls.every((c, i) => {
        const got = view.calls[i]!;
        const kind = c.id === undefined ? 'notification' : 'request';
        const target = c.method === 'resources/read' ? got.uri === uris[i] : got.name === c.name;
        return got.method === c.method && got.kind === kind && target;
      });
    }),
    { numRuns: 1500 },
  );
  t.pass();
});

test('any body either parses or is rejected with a 400, never another error', (t) => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 80 }),
        fc.jsonValue().map((v) => JSON.stringify(v) ?? ''),
      ),
      (text) => {
        try {
          parseMcp(text, text.length > 0, noHeaders);
          return true;
        } catch (err) {
          return err instanceof RequestRejected && err.status === 400;
        }
      },
    ),
    { numRuns: 3000 },
  );
  t.pass();
});

test('responses, notifications and completion refs are recognised', (t) => {
  const { view } = parseMcp(
    JSON.stringify([
      { jsonrpc: '2.0', id: 1, result: {} },
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } },
      {
        jsonrpc: '2.0',
        id: 2,
        method: 'completion/complete',
        params: { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'a', value: 'b' } },
      },
    ]),
    true,
    noHeaders,
  );
  t.deepEqual(
    view.calls.map((c) => c.kind),
    ['response', 'notification', 'request'],
  );
  t.deepEqual(view.calls[2]!.ref, { type: 'ref/prompt', name: 'greet' });
});

const one = (method: string, params: Record<string, unknown>) =>
  parseMcp(JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }), true, noHeaders).view.calls[0]!;
const refused = (method: string, params: unknown) => {
  const err = t0(() => parseMcp(JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }), true, noHeaders));
  return err instanceof RequestRejected ? err.code : 'allowed';
};
function t0(f: () => unknown): unknown {
  try {
    f();
    return undefined;
  } catch (err) {
    return err;
  }
}

test('a completion names the item it completes: the prompt, or the resource template normalized as a URI is', (t) => {
  t.deepEqual(
    one('completion/complete', {
      ref: { type: 'ref/prompt', name: 'payroll_lookup' },
      argument: { name: 'a', value: '' },
    }).ref,
    { type: 'ref/prompt', name: 'payroll_lookup' },
  );
  t.deepEqual(
    one('completion/complete', {
      ref: { type: 'ref/resource', uri: 'FILE:///docs/%61/{name}' },
      argument: { name: 'a', value: '' },
    }).ref,
    { type: 'ref/resource', uri: 'file:///docs/a/{name}' },
  );
});

test('a completion whose ref names no item the service can authorize is 400', (t) => {
  for (const ref of [
    undefined,
    null,
    'ref/prompt:x',
    { type: 'ref/tool', name: 'x' },
    { type: 'ref/prompt' },
    { type: 'ref/prompt', name: 7 },
    { type: 'ref/resource', name: 'x' },
    { type: 'ref/resource', uri: ['x'] },
  ]) {
    t.is(
      refused('completion/complete', { ref, argument: { name: 'a', value: '' } }),
      'invalid_jsonrpc',
      JSON.stringify(ref),
    );
  }
});

test('templates a grant cannot be matched against with certainty are 400 invalid_resource_uri', (t) => {
  for (const uri of [
    'file:///docs/{name',
    'file:///docs/name}',
    'file:///{a{b}}',
    'file:///{}',
    'file:///{=x}',
    'file:///{a b}',
    'file:///{+path}/../secret',
    'file:///docs/{x}/%2e%2e/y',
    '{scheme}://h/x',
    'file:///a//{b}',
  ]) {
    t.is(
      refused('completion/complete', { ref: { type: 'ref/resource', uri }, argument: { name: 'a', value: '' } }),
      'invalid_resource_uri',
      uri,
    );
  }
  for (const uri of [
    'file:///docs/{name}',
    'file:///docs/{+path}',
    'https://h/{x}{?q,r}',
    'file:///{a.b:3}/{c*}',
    'file:///docs/a.md',
    'repo://{owner}/{repo}#{frag}',
  ]) {
    t.is(
      refused('completion/complete', { ref: { type: 'ref/resource', uri }, argument: { name: 'a', value: '' } }),
      'allowed',
      uri,
    );
  }
});

test('subscriptions name the resources they read: resources/subscribe, resources/unsubscribe, subscriptions/listen', (t) => {
  t.is(one('resources/subscribe', { uri: 'file:///docs/./a.md' }).uri, 'file:///docs/a.md');
  t.is(one('resources/unsubscribe', { uri: 'file:///docs/a.md' }).uri, 'file:///docs/a.md');
  t.deepEqual(
    one('subscriptions/listen', {
      notifications: {
        resourceSubscriptions: ['file:///docs/a.md', 'FILE:///x/../etc/passwd'],
        toolsListChanged: true,
      },
    }).resourceSubscriptions,
    ['file:///docs/a.md', 'file:///etc/passwd'],
  );
  t.is(one('subscriptions/listen', { notifications: { toolsListChanged: true } }).resourceSubscriptions, undefined);
  t.is(refused('resources/subscribe', {}), 'invalid_jsonrpc');
  t.is(refused('resources/unsubscribe', { uri: 7 }), 'invalid_jsonrpc');
  t.is(refused('subscriptions/listen', { notifications: { resourceSubscriptions: 'file:///a' } }), 'invalid_jsonrpc');
  t.is(
    refused('subscriptions/listen', { notifications: { resourceSubscriptions: ['file:///a', 7] } }),
    'invalid_jsonrpc',
  );
  t.is(
    refused('subscriptions/listen', { notifications: { resourceSubscriptions: ['file:///public/%2f..%2fsecret'] } }),
    'invalid_resource_uri',
  );
});

test('a method the service does not know that carries params.name, params.uri or params.ref is marked: its target cannot be told', (t) => {
  for (const params of [
    { name: 'x' },
    { uri: 'x://y' },
    { ref: { type: 'ref/prompt', name: 'x' } },
    { name: 7 },
    { ref: null },
  ]) {
    const c = one('x/frob', params);
    t.true(c.unknownTarget, JSON.stringify(params));
    t.is(c.ref, undefined);
  }
  t.is(one('x/frob', { cursor: 'c' }).unknownTarget, undefined);
  t.is(one('tools/list', {}).unknownTarget, undefined);
  t.is(one('tools/call', { name: 'x' }).unknownTarget, undefined);
});

test('a tool name that is not a string is refused rather than passed unnamed', (t) => {
  const err = t.throws(() =>
    parseMcp('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["a"]}}', true, noHeaders),
  );
  t.true(err instanceof RequestRejected);
});

/** The refusal parseMcp throws for a body, as [code, description]. */
function refusal(body: string): [string, string] | undefined {
  try {
    parseMcp(body, true, noHeaders);
    return undefined;
  } catch (err) {
    if (!(err instanceof RequestRejected)) throw err;
    return [err.code, err.description];
  }
}

const goAttacks: [string, string, string][] = [
  [
    '"Name" beside "name"',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Name":"delete_file"}}',
    'params.Name',
  ],
  [
    '"NAME" beside "name"',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","NAME":"delete_file"}}',
    'params.NAME',
  ],
  [
    '"nAme" beside "name"',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","nAme":"delete_file"}}',
    'params.nAme',
  ],
  [
    '"name" escaped as "n\\u0041me" beside "name"',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","n\\u0041me":"delete_file"}}',
    'params.nAme',
  ],
  [
    '"Method" beside "method"',
    '{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"delete_file"}}',
    'Method',
  ],
  [
    '"paramſ" beside "params"',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"},"paramſ":{"name":"delete_file"}}',
    '["paramſ"]',
  ],
  [
    '"Params" alone, in a response that Go reads as a call',
    '{"jsonrpc":"2.0","id":1,"result":{},"Method":"tools/call","Params":{"Name":"delete_file"}}',
    'Method',
  ],
  [
    '"ID" alone (Go: a request; JavaScript and Python: a notification)',
    '{"jsonrpc":"2.0","ID":1,"method":"tools/call","params":{"name":"search"}}',
    'ID',
  ],
  [
    '"Arguments" beside "arguments"',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{},"Arguments":{"q":1}}}',
    'params.Arguments',
  ],
  [
    '"Type" in a completion ref',
    '{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"Type":"ref/prompt","name":"greet"}}}',
    'params.ref.Type',
  ],
  [
    '"Name" alone in a completion ref (Go fills the prompt name from it)',
    '{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","Name":"payroll_lookup"},"argument":{"name":"a","value":""}}}',
    'params.ref.Name',
  ],
  [
    '"URI" beside "uri" in a completion ref',
    '{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///docs/{x}","URI":"file:///etc/{x}"},"argument":{"name":"a","value":""}}}',
    'params.ref.URI',
  ],
  [
    '"Ref" beside "ref"',
    '{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"summarize"},"Ref":{"type":"ref/prompt","name":"payroll_lookup"},"argument":{"name":"a","value":""}}}',
    'params.Ref',
  ],
  [
    '"ResourceSubscriptions" in a listen',
    '{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"ResourceSubscriptions":["file:///etc/passwd"]}}}',
    'params.notifications.ResourceSubscriptions',
  ],
  [
    '"Notifications" beside "notifications"',
    '{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{},"Notifications":{"resourceSubscriptions":["file:///etc/passwd"]}}}',
    'params.Notifications',
  ],
  [
    '"Path" beside "path" in the arguments',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"path":"/a","Path":"/etc"}}}',
    'params.arguments.Path',
  ],
  [
    'a Kelvin sign beside "k" deep in the arguments',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"list":[{"k":1},{"k":1,"\u212a":2}]}}}',
    'params.arguments.list[1]["\u212a"]',
  ],
  [
    '"jsonRPC" in the second element of a batch',
    '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","jsonRPC":"1.0","id":2,"method":"ping"}]',
    '[1].jsonRPC',
  ],
];

for (const [what, body, path] of goAttacks) {
  test(`a body with ${what} is refused as ambiguous, naming the key's path but no value`, (t) => {
    const r = refusal(body);
    t.is(r?.[0], 'ambiguous_json_key');
    t.true(r![1].includes(path), r![1]);
    t.false(/delete_file|\/etc/.test(r![1]), 'no value in the description');
  });
}

test("a completion ref or a listen's notifications repeating a member is refused as a duplicate", (t) => {
  t.is(
    refusal(
      '{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"summarize","name":"payroll_lookup"},"argument":{"name":"a","value":""}}}',
    )?.[0],
    'duplicate_json_key',
  );
  t.is(
    refusal(
      '{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","type":"ref/resource","name":"a","uri":"file:///x"},"argument":{"name":"a","value":""}}}',
    )?.[0],
    'duplicate_json_key',
  );
  t.is(
    refusal(
      '{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[],"resourceSubscriptions":["file:///etc/passwd"]}}}',
    )?.[0],
    'duplicate_json_key',
  );
});

test('member names in any case pass deeper in the arguments, where no reader reads them as members, but not in params', (t) => {
  const { view } = parseMcp(
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"Name":"x","METHOD":"y","params":{"ID":1},"names":2}}}',
    true,
    noHeaders,
  );
  t.is(view.calls[0]!.name, 'search');
  t.is(
    refusal('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"x","name":"search"}}')?.[0],
    'ambiguous_json_key',
  );
});

test('nesting is bounded: the default is 64 levels, and the bound is a parameter', (t) => {
  const body = (levels: number) =>
    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{"a":${'['.repeat(levels - 3)}${']'.repeat(levels - 3)}}}}`;
  t.is(refusal(body(64)), undefined);
  t.is(refusal(body(65))?.[0], 'json_too_deep');
  t.is(refusal(body(100_000))?.[0], 'json_too_deep');
  t.throws(() => parseMcp(body(9), true, noHeaders, 8), {
    instanceOf: RequestRejected,
    message: /deeper than 8 levels/,
  });
  t.notThrows(() => parseMcp(body(8), true, noHeaders, 8));
});

test('lone surrogates are refused wherever they are, escaped or raw; pairs pass', (t) => {
  t.is(
    refusal('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sea\\ud800rch"}}')?.[0],
    'lone_surrogate',
  );
  t.is(
    refusal(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{"q":"cut \\ud83d"}}}',
    )?.[0],
    'lone_surrogate',
  );
  t.is(
    refusal(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{"q":"\\udc00\\ud800"}}}',
    )?.[0],
    'lone_surrogate',
    'a low before a high is no pair',
  );
  t.is(
    refusal('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{"\\ud800x":1}}}')?.[0],
    'lone_surrogate',
    'in a key',
  );
  t.is(
    refusal('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sea\ud800rch"}}')?.[0],
    'lone_surrogate',
    'raw, from an in-process caller',
  );
  t.true(
    refusal('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sea\\ud800rch"}}')![1].includes(
      'params.name',
    ),
  );
  t.is(
    refusal(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{"q":"\\ud83d\\ude00 \\uD83D\\uDE00 😀 \\\\ud800"}}}',
    ),
    undefined,
    'pairs, and an escaped backslash before "ud800"',
  );
});

test('a message is a request, a notification or a response, read the same by every reader', (t) => {
  t.is(refusal('{"jsonrpc":"2.0","id":null,"method":"ping"}')?.[0], 'invalid_jsonrpc');
  t.is(refusal('{"jsonrpc":"2.0","id":true,"method":"ping"}')?.[0], 'invalid_jsonrpc');
  t.is(refusal('{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}')?.[0], 'invalid_jsonrpc');
  t.is(refusal('{"jsonrpc":"2.0","id":1,"method":"ping","error":{"code":1,"message":"x"}}')?.[0], 'invalid_jsonrpc');
  t.is(refusal('{"jsonrpc":"2.0","id":1,"result":null}')?.[0], 'invalid_jsonrpc');
  t.is(refusal('{"jsonrpc":"2.0","id":1,"error":null}')?.[0], 'invalid_jsonrpc');
  t.is(refusal('{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}')?.[0], 'invalid_jsonrpc');
  t.is(refusal('{"jsonrpc":"2.0","result":{}}')?.[0], 'invalid_jsonrpc');
  t.is(refusal('{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[]}')?.[0], 'invalid_jsonrpc');
  const { view } = parseMcp(
    '[{"jsonrpc":"2.0","id":"a","error":{"code":-1,"message":"no"}},{"jsonrpc":"2.0","id":2,"result":{}}]',
    true,
    noHeaders,
  );
  t.deepEqual(
    view.calls.map((c) => c.kind),
    ['response', 'response'],
  );
});
