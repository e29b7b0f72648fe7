import test from 'ava';
import fc from 'fast-check';
import { findDuplicateKey } from '../src/request/json-duplicate-keys.js';
import { parseMcp } from '../src/request/json-rpc.js';
import { normalizeResourceUri } from '../src/request/normalize-resource-uri.js';
import { RequestRejected } from '../src/contracts/request-rejected.js';

const noHeaders = Object.create(null);

test('JSON.stringify output never has a duplicate key', (t) => {
  fc.assert(fc.property(fc.jsonValue(), (v) => findDuplicateKey(JSON.stringify(v) ?? 'null') === undefined), { numRuns: 2000 });
  t.pass();
});

test('a key repeated in any object of a document is found, with its path', (t) => {
  const key = fc.string({ maxLength: 6 });
  fc.assert(
    fc.property(fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 })), key, fc.jsonValue({ maxDepth: 2 }), fc.jsonValue({ maxDepth: 2 }), (obj, k, a, b) => {
      const rest = JSON.stringify(Object.fromEntries(Object.entries(obj).filter(([x]) => x !== k))).slice(1, -1);
      const dup = `{${JSON.stringify(k)}:${JSON.stringify(a)},${rest}${rest ? ',' : ''}${JSON.stringify(k)}:${JSON.stringify(b)}}`;
      const nested = `{"jsonrpc":"2.0","params":${dup}}`;
      return findDuplicateKey(dup) === k && findDuplicateKey(nested) === ['params', k].filter(Boolean).join('.');
    }),
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

const method = fc.constantFrom('initialize', 'ping', 'tools/list', 'tools/call', 'prompts/get', 'resources/read', 'notifications/initialized');
const call = fc.record({ method, id: fc.option(fc.integer(), { nil: undefined }), name: fc.string({ maxLength: 10 }), uri: fc.webUrl() });

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
    fc.property(fc.oneof(fc.string({ maxLength: 80 }), fc.jsonValue().map((v) => JSON.stringify(v) ?? '')), (text) => {
      try {
        parseMcp(text, text.length > 0, noHeaders);
        return true;
      } catch (err) {
        return err instanceof RequestRejected && err.status === 400;
      }
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test('responses, notifications and completion refs are recognised', (t) => {
  const { view } = parseMcp(
    JSON.stringify([
      { jsonrpc: '2.0', id: 1, result: {} },
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } },
      { jsonrpc: '2.0', id: 2, method: 'completion/complete', params: { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'a', value: 'b' } } },
    ]),
    true,
    noHeaders,
  );
  t.deepEqual(view.calls.map((c) => c.kind), ['response', 'notification', 'request']);
  t.is(view.calls[2]!.ref, 'ref/prompt:greet');
});

test('a tool name that is not a string is refused rather than passed unnamed', (t) => {
  const err = t.throws(() => parseMcp('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["a"]}}', true, noHeaders));
  t.true(err instanceof RequestRejected);
});
