// The MCP request headers (docs/mcp-protocol.md) read by parseMcp: decoding, the cross-checks
// with the body, the protocol revisions, and the JSON-RPC error each refusal carries.
import test from 'ava';
import fc from 'fast-check';
import { RequestRejected } from '../src/contracts/request-rejected.js';
import type { HeaderMap } from '../src/contracts/request.js';
import { parseMcp } from '../src/request/json-rpc.js';
import { decodeHeaderValue, SUPPORTED_PROTOCOL_VERSIONS } from '../src/request/mcp-headers.js';
import { encodeHeaderValue, headerText } from './helpers/mcp-header-encoding.js';

const META = 'io.modelcontextprotocol/protocolVersion';

/** Headers as the decoder builds them: lower-cased names, one value each. */
function hm(h: Record<string, string | string[]>): HeaderMap {
  const out: HeaderMap = Object.create(null);
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = Array.isArray(v) ? v : [v];
  return out;
}

/** A 2026-07-28 message; id null: a notification. */
function modern(method: string, params: Record<string, unknown> = {}, id: number | string | null = 1): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    ...(id !== null ? { id } : {}),
    method,
    params: { ...params, _meta: { [META]: '2026-07-28' } },
  });
}

const v2026 = { 'mcp-protocol-version': '2026-07-28' };

function refused(body: string, headers: Record<string, string | string[]>): RequestRejected {
  try {
    parseMcp(body, body.length > 0, hm(headers));
  } catch (err) {
    if (err instanceof RequestRejected) return err;
    throw err;
  }
  throw new Error('accepted');
}

const accepted = (body: string, headers: Record<string, string | string[]>) =>
  parseMcp(body, body.length > 0, hm(headers)).view;

/** Well-formed Unicode strings (a lone surrogate has no UTF-8; the body scan refuses it). */
const text = fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => s.isWellFormed());
const anyValue = fc.oneof(
  text,
  fc.constantFrom('=?base64?literal?=', ' padded ', 'tab\t', '', '=?base64??=', 'Hello, 世界', 'line1\nline2'),
);

test('any value, encoded as a client encodes it, decodes to itself', (t) => {
  fc.assert(
    fc.property(anyValue, (v) => decodeHeaderValue(encodeHeaderValue(v), 'Mcp-Name') === v),
    { numRuns: 3000 },
  );
  t.pass();
});

test("the spec's encoding examples decode to their values", (t) => {
  t.is(decodeHeaderValue('us-west1', 'x'), 'us-west1');
  t.is(decodeHeaderValue('=?base64?SGVsbG8sIOS4lueVjA==?=', 'x'), 'Hello, 世界');
  t.is(decodeHeaderValue('=?base64?IHBhZGRlZCA=?=', 'x'), ' padded ');
  t.is(decodeHeaderValue('=?base64?bGluZTEKbGluZTI=?=', 'x'), 'line1\nline2');
  t.is(decodeHeaderValue('=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=', 'x'), '=?base64?literal?=');
  t.is(
    decodeHeaderValue('=?BASE64?SGk=?=', 'x'),
    '=?BASE64?SGk=?=',
    'the markers are case-sensitive: this is a plain value',
  );
});

test('any header value either decodes or is refused as mcp_header_invalid (400), never another error', (t) => {
  const raw = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 30 }),
    fc.string({ maxLength: 20 }).map((s) => `=?base64?${s}?=`),
  );
  fc.assert(
    fc.property(raw, (r) => {
      try {
        decodeHeaderValue(r, 'Mcp-Name');
        return true;
      } catch (err) {
        return err instanceof RequestRejected && err.code === 'mcp_header_invalid' && err.status === 400;
      }
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test('Base64 that some decoders accept and others refuse is refused: unpadded, non-zero pad bits, URL-safe, whitespace, not UTF-8', (t) => {
  for (const bad of [
    '=?base64?SGk?=', // unpadded
    '=?base64?SGl=?=', // "Hi" with a non-zero pad bit ("SGk=" is canonical)
    '=?base64?-_8=?=', // URL-safe alphabet
    '=?base64?SG k=?=', // whitespace inside
    '=?base64?/w==?=', // 0xFF: not UTF-8
    '=?base64?7aCA?=', // an encoded surrogate (CESU-8): not UTF-8
    '=?base64?=', // the markers overlap: truncated
    'caf\u00e9', // non-ASCII sent plain
    'a\u0000b', // a control character sent plain
    ' lead', // whitespace a client must encode
    'trail\t',
  ]) {
    const err = t.throws(
      () => decodeHeaderValue(bad, 'Mcp-Name'),
      { instanceOf: RequestRejected },
      JSON.stringify(bad),
    );
    t.is(err.code, 'mcp_header_invalid');
  }
  t.is(decodeHeaderValue('=?base64?SGk=?=', 'x'), 'Hi');
});

test('Mcp-Name is compared with the body after decoding: any name round-trips, any other name is refused', (t) => {
  fc.assert(
    fc.property(text, text, fc.constantFrom('tools/call', 'prompts/get'), (name, other, method) => {
      const body = modern(method, { name });
      const ok = accepted(body, { ...v2026, 'mcp-method': method, 'mcp-name': encodeHeaderValue(name) });
      if (ok.calls[0]!.name !== name) return false;
      if (other === name) return true;
      const err = refused(body, { ...v2026, 'mcp-method': method, 'mcp-name': encodeHeaderValue(other) });
      return err.code === 'mcp_header_mismatch' && err.jsonRpc?.id === 1;
    }),
    { numRuns: 1500 },
  );
  t.pass();
});

test('Mcp-Method and Mcp-Name values are case-sensitive; header names are not (the decoder lower-cases them)', (t) => {
  const body = modern('tools/call', { name: 'Search' });
  t.is(refused(body, { ...v2026, 'Mcp-Method': 'tools/call', 'MCP-NAME': 'search' }).code, 'mcp_header_mismatch');
  t.is(refused(body, { ...v2026, 'mcp-method': 'Tools/Call', 'mcp-name': 'Search' }).code, 'mcp_header_mismatch');
  t.is(
    accepted(body, { 'MCP-Protocol-Version': '2026-07-28', 'MCP-METHOD': 'tools/call', 'mcp-NAME': 'Search' }).calls[0]!
      .name,
    'Search',
  );
});

test('a 2026-07-28 request must carry Mcp-Method, Mcp-Name for named calls, and its version in params._meta', (t) => {
  const noMethod = refused(modern('tools/list', {}, 'a'), v2026);
  t.is(noMethod.code, 'mcp_header_mismatch');
  t.deepEqual(noMethod.jsonRpc, {
    id: 'a',
    data: { header: 'Mcp-Method', headerValue: null, bodyField: 'method', bodyValue: 'tools/list' },
  });
  for (const [method, params, field] of [
    ['tools/call', { name: 't' }, 'params.name'],
    ['prompts/get', { name: 'p' }, 'params.name'],
    ['resources/read', { uri: 'file:///x' }, 'params.uri'],
  ] as const) {
    const err = refused(modern(method, params), { ...v2026, 'mcp-method': method });
    t.is(err.code, 'mcp_header_mismatch', method);
    t.is((err.jsonRpc?.data as Record<string, unknown> | undefined)?.bodyField, field);
  }
  const noMeta = refused(JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }), {
    ...v2026,
    'mcp-method': 'tools/list',
  });
  t.is(noMeta.code, 'mcp_header_mismatch');
  t.regex(noMeta.description, /params\._meta/);
  t.is(accepted(modern('tools/list'), { ...v2026, 'mcp-method': 'tools/list' }).protocolVersion, '2026-07-28');
  t.is(
    accepted(modern('server/discover'), { ...v2026, 'mcp-method': 'server/discover' }).calls[0]!.method,
    'server/discover',
  );
});

test('a 2026-07-28 notification needs no MCP headers (the revision defines none), but any it has must agree', (t) => {
  const note = modern('notifications/cancelled', { requestId: 1 }, null);
  t.is(accepted(note, v2026).calls[0]!.kind, 'notification');
  const err = refused(note, { ...v2026, 'mcp-method': 'notifications/progress' });
  t.is(err.code, 'mcp_header_mismatch');
  t.is(err.jsonRpc?.id, undefined, 'a notification has no id to echo');
});

test('a 2026-07-28 POST is one request or notification: a batch or a response is refused', (t) => {
  t.is(refused(`[${modern('ping')}]`, { ...v2026, 'mcp-method': 'ping' }).code, 'mcp_header_mismatch');
  t.is(refused(`[${modern('ping')}]`, v2026).code, 'mcp_header_mismatch');
  t.is(refused('{"jsonrpc":"2.0","id":1,"result":{}}', v2026).code, 'mcp_header_mismatch');
});

test("MCP-Protocol-Version must equal the body's params._meta version; the header is required when the body declares one", (t) => {
  const body = modern('tools/list');
  const older = refused(body, { 'mcp-protocol-version': '2025-06-18', 'mcp-method': 'tools/list' });
  t.is(older.code, 'mcp_header_mismatch');
  t.deepEqual((older.jsonRpc?.data as Record<string, unknown> | undefined)?.headerValue, '2025-06-18');
  t.is(refused(body, {}).code, 'mcp_header_mismatch', 'no header: read as 2025-03-26, but the body says 2026-07-28');
  const numeric = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: { [META]: 20260728 } } });
  t.is(
    refused(numeric, { ...v2026, 'mcp-method': 'ping' }).code,
    'mcp_header_mismatch',
    'a version that is not a string equals no header',
  );
  const batch = `[{"jsonrpc":"2.0","id":1,"method":"ping"},${modern('ping', {}, 2)}]`;
  t.is(
    refused(batch, { 'mcp-protocol-version': '2025-03-26' }).code,
    'mcp_header_mismatch',
    'every batch element is checked',
  );
});

test('a protocol revision the service does not read is -32022 with the supported list, the requested version and the id', (t) => {
  for (const v of ['2099-01-01', '2026-07-28,2026-07-28', 'latest', '', '2025-11-25 ']) {
    const err = refused('{"jsonrpc":"2.0","id":9,"method":"ping"}', { 'mcp-protocol-version': v });
    t.is(err.code, 'unsupported_protocol_version', JSON.stringify(v));
    t.deepEqual(err.jsonRpc, { id: 9, data: { supported: SUPPORTED_PROTOCOL_VERSIONS, requested: v } });
  }
  t.is(
    refused('', { 'mcp-protocol-version': '2099-01-01' }).code,
    'unsupported_protocol_version',
    'without a body too (GET, DELETE)',
  );
  t.deepEqual([...SUPPORTED_PROTOCOL_VERSIONS].sort(), [
    '2024-11-05',
    '2025-03-26',
    '2025-06-18',
    '2025-11-25',
    '2026-07-28',
  ]);
  t.is(
    refused('{"jsonrpc":"2.0","id":1,"method":"ping"}', { 'mcp-protocol-version': ['2025-06-18', '2025-06-18'] }).code,
    'mcp_header_mismatch',
    'repeated',
  );
});

test('older revisions read as before: no MCP header is required, and the headers a client sends must agree', (t) => {
  for (const v of [undefined, '2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25']) {
    const h = v === undefined ? {} : { 'mcp-protocol-version': v };
    const view = accepted('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}', h);
    t.is(view.calls[0]!.name, 'search');
    t.is(view.protocolVersion, v);
    t.is(
      accepted('[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"result":{}}]', h).calls.length,
      2,
      'batches and responses still pass',
    );
    t.is(
      refused('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}', {
        ...h,
        'mcp-method': 'tools/call',
        'mcp-name': 'delete',
      }).code,
      'mcp_header_mismatch',
    );
  }
});

test('without a body, the headers are the call from 2026-07-28 only; the name is decoded and a resource URI normalized', (t) => {
  const view = accepted('', { ...v2026, 'mcp-method': 'tools/call', 'mcp-name': encodeHeaderValue('délete') });
  t.is(view.source, 'headers');
  t.is(view.calls[0]!.name, 'délete');
  t.is(
    accepted('', { ...v2026, 'mcp-method': 'resources/read', 'mcp-name': 'FILE:///a/./b' }).calls[0]!.uri,
    'file:///a/b',
  );
  t.is(
    accepted('', { 'mcp-protocol-version': '2025-11-25', 'mcp-method': 'tools/call', 'mcp-name': 'x' }).source,
    'none',
  );
  t.is(refused('', { ...v2026, 'mcp-method': 'tools/call', 'mcp-name': '=?base64?!!?=' }).code, 'mcp_header_invalid');
  t.is(
    refused('', { ...v2026, 'mcp-method': 'tools/list', 'mcp-name': 'x' }).code,
    'mcp_header_mismatch',
    'Mcp-Name on a method without a name',
  );
});

test('Mcp-Name is defined for tools/call, prompts/get and resources/read only: on completion/complete, resources/subscribe, resources/unsubscribe or subscriptions/listen it is refused', (t) => {
  const bodies: [string, Record<string, unknown>, string][] = [
    [
      'completion/complete',
      { ref: { type: 'ref/prompt', name: 'payroll_lookup' }, argument: { name: 'a', value: '' } },
      'payroll_lookup',
    ],
    ['resources/subscribe', { uri: 'file:///etc/passwd' }, 'file:///etc/passwd'],
    ['resources/unsubscribe', { uri: 'file:///etc/passwd' }, 'file:///etc/passwd'],
    [
      'subscriptions/listen',
      { notifications: { resourceSubscriptions: ['file:///etc/passwd'] } },
      'file:///etc/passwd',
    ],
  ];
  for (const [method, params, name] of bodies) {
    const headers = { ...v2026, 'mcp-method': method };
    t.is(
      accepted(modern(method, params), headers).calls[0]!.method,
      method,
      'without Mcp-Name the body names the item',
    );
    const err = refused(modern(method, params), { ...headers, 'mcp-name': name });
    t.is(err.code, 'mcp_header_mismatch', method);
    t.is(err.jsonRpc?.id, 1, 'answered as the JSON-RPC error carrying the request id');
  }
});

test('without a body, completion/complete, resources/subscribe and resources/unsubscribe name nothing: refused as missing_body, never passed unnamed', (t) => {
  for (const method of ['completion/complete', 'resources/subscribe', 'resources/unsubscribe']) {
    t.is(refused('', { ...v2026, 'mcp-method': method }).code, 'missing_body', method);
  }
  t.deepEqual(
    accepted('', { ...v2026, 'mcp-method': 'subscriptions/listen' }).calls,
    [{ method: 'subscriptions/listen', kind: 'request' }],
    'a listen without a body subscribes to no resource',
  );
});

// --- Mcp-Param-{Name} ---------------------------------------------------------------

const call = (args: Record<string, unknown>) => modern('tools/call', { name: 'sql', arguments: args });
const callHeaders = (params: Record<string, string | string[]>) => ({
  ...v2026,
  'mcp-method': 'tools/call',
  'mcp-name': 'sql',
  ...params,
});

test('an Mcp-Param header matching a top-level argument (ASCII case-insensitively) is checked and shown to the policy, decoded', (t) => {
  const view = accepted(
    call({ region: 'us-west1', greeting: 'Hello, 世界', count: 42, dry: false, query: 'SELECT 1' }),
    callHeaders({
      'Mcp-Param-Region': 'us-west1',
      'mcp-param-greeting': '=?base64?SGVsbG8sIOS4lueVjA==?=',
      'MCP-PARAM-COUNT': '42.0',
      'mcp-param-dry': 'false',
    }),
  );
  t.deepEqual(
    view.calls[0]!.headerParams,
    { region: 'us-west1', greeting: 'Hello, 世界', count: '42', dry: 'false' },
    'integers as the body has them, in decimal',
  );
});

test('an integer argument is compared numerically; strings and booleans as decoded text', (t) => {
  for (const h of ['42', '42.0', '4.2e1', '420e-1'])
    t.truthy(accepted(call({ n: 42 }), callHeaders({ 'mcp-param-n': h })).calls[0]!.headerParams);
  for (const h of ['042', '0x2a', ' 42', '42 ', '+42', '', '4_2', 'Infinity']) {
    const err = refused(call({ n: 42 }), callHeaders({ 'mcp-param-n': h }));
    t.true(['mcp_header_mismatch', 'mcp_header_invalid'].includes(err.code), JSON.stringify(h));
  }
  t.is(
    refused(call({ s: '42' }), callHeaders({ 'mcp-param-s': '42.0' })).code,
    'mcp_header_mismatch',
    'a string is text, not a number',
  );
  t.is(refused(call({ b: true }), callHeaders({ 'mcp-param-b': 'True' })).code, 'mcp_header_mismatch');
  t.is(
    refused(call({ n: 1.5 }), callHeaders({ 'mcp-param-n': '1.5' })).code,
    'mcp_header_mismatch',
    'no header mirrors a non-integer',
  );
  t.is(
    refused(call({ n: 9007199254740992 }), callHeaders({ 'mcp-param-n': '9007199254740992' })).code,
    'mcp_header_mismatch',
    'nor an integer past 2^53-1',
  );
});

test('an Mcp-Param header whose argument is absent, null, an object or an array is forwarded unchecked and not shown to the policy', (t) => {
  const view = accepted(
    call({ a: null, o: { region: 'x' }, l: ['x'] }),
    callHeaders({ 'mcp-param-a': 'x', 'mcp-param-o': 'x', 'mcp-param-l': 'x', 'mcp-param-tenant': 'acme' }),
  );
  t.is(view.calls[0]!.headerParams, undefined);
  const kelvin = accepted(call({ '\u212Aey': 'x' }), callHeaders({ 'mcp-param-key': 'y' }));
  t.is(kelvin.calls[0]!.headerParams, undefined, 'only A–Z fold: the Kelvin sign is not "k"');
  t.is(
    accepted(modern('tools/list'), { ...v2026, 'mcp-method': 'tools/list', 'mcp-param-x': 'y' }).calls[0]!.headerParams,
    undefined,
    'only tools/call has parameter headers',
  );
});

test('a repeated or badly encoded Mcp-Param header is refused even when the argument is absent', (t) => {
  t.is(refused(call({}), callHeaders({ 'mcp-param-region': ['a', 'a'] })).code, 'mcp_header_mismatch');
  t.is(refused(call({}), callHeaders({ 'mcp-param-region': '=?base64?YQ?=' })).code, 'mcp_header_invalid');
  t.is(refused(call({}), callHeaders({ 'mcp-param-region': 'r\u00e9gion' })).code, 'mcp_header_invalid');
});

test("without a body every Mcp-Param header of a 2026-07-28 tools/call is the call's headerParams, decoded", (t) => {
  const view = accepted(
    '',
    callHeaders({ 'mcp-param-region': 'us-west1', 'mcp-param-note': encodeHeaderValue(' x ') }),
  );
  t.deepEqual(view.calls[0]!.headerParams, { region: 'us-west1', note: ' x ' });
});

const argValue = fc.oneof(text, fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), fc.boolean());
const argName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_-]{0,12}$/);

test('any argument value mirrored as a client mirrors it passes and reaches the policy as its text; any other value is refused', (t) => {
  fc.assert(
    fc.property(argName, argValue, argValue, (name, value, other) => {
      const body = call({ [name]: value, other: 'x' });
      const view = accepted(
        body,
        callHeaders({ [`mcp-param-${name.toLowerCase()}`]: encodeHeaderValue(headerText(value)) }),
      );
      if (view.calls[0]!.headerParams?.[name.toLowerCase()] !== headerText(value)) return false;
      if (headerText(other) === headerText(value)) return true;
      const err = refused(
        body,
        callHeaders({ [`mcp-param-${name.toLowerCase()}`]: encodeHeaderValue(headerText(other)) }),
      );
      const data = err.jsonRpc?.data as Record<string, unknown>;
      return (
        err.code === 'mcp_header_mismatch' && err.jsonRpc?.id === 1 && data.bodyField === `params.arguments.${name}`
      );
    }),
    { numRuns: 1500 },
  );
  t.pass();
});
