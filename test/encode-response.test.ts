// The Check path's own CheckResponse encoder against the official protos: every shape decodes
// to exactly what proto-loader makes of toCheckResponse's object, byte for byte — with the
// decision id in the dynamic metadata, alone or beside the policy's.
import test from 'ava';
import fc from 'fast-check';
import { policyCode, type PolicyCode } from '../src/contracts/codes.js';
import { answer, deny, policyDeny, type Outcome } from '../src/contracts/outcome.js';
import { encodeCheckResponse } from '../src/ext-authz/encode-answer.js';
import { authorizationService } from '../src/envoy/protos.js';
import { DECISION_ID_KEY, toCheckResponse } from '../src/ext-authz/answer.js';

const check = authorizationService().Check!;
const now = new Date('2026-11-23T12:00:00.000Z');
const ID = '3f2b8c1e-8d1a-4c55-9f0e-0d5b1c9a7e42';

const allow = (extra: Partial<Extract<Outcome, { allow: true }>> = {}): Outcome => ({
  kind: 'allow',
  allow: true,
  status: 200,
  headers: [],
  headersToRemove: [],
  queryParamsToRemove: [],
  responseHeaders: [],
  reason: 'allowed',
  ...extra,
});

const shapes: [string, Outcome][] = [
  ['a bare allow', allow()],
  [
    'an allow with identity headers, removals and response headers',
    allow({
      headers: [
        { name: 'x-mcp-user-id', value: 'alice', append: false },
        { name: 'x-mcp-principal', value: 'k-1', append: false },
        { name: 'x-policy', value: 'tier=gold; é日本', append: true },
        { name: 'x-empty', value: '', append: false },
      ],
      headersToRemove: ['x-api-key', 'authorization', 'x-mcp-key-id'],
      queryParamsToRemove: ['api_key'],
      responseHeaders: [{ name: 'x-audit', value: 'on', append: true }],
    }),
  ],
  [
    'a 401 with a challenge',
    deny('invalid_token', 'The token is invalid.', {
      headers: [
        {
          name: 'www-authenticate',
          value: 'Bearer error="invalid_token", resource_metadata="https://x/.well-known/oauth-protected-resource/mcp"',
          append: false,
        },
      ],
    }),
  ],
  ['a 403 from the policy', deny('access_denied', 'This API key is not granted tools:delete_file')],
  [
    "a 451 with the policy's own code and body",
    policyDeny(451, policyCode('legal_hold')!, 'held', { rawBody: '<p>held</p>', contentType: 'text/html' }),
  ],
  [
    'a 429 with Retry-After and extra body fields',
    deny('too_many_requests', 'Too many failed authentication attempts.', {
      headers: [{ name: 'retry-after', value: '42', append: false }],
      extra: { retry_after: 42 },
    }),
  ],
  ['a 503 with a request id', deny('internal_error', 'failed', { extra: { request_id: 'r-1' } })],
  [
    "a JSON-RPC HeaderMismatch error with the request's id and data",
    deny('mcp_header_mismatch', 'Header mismatch: Mcp-Name header "a" does not match the body\'s params.name "日本".', {
      jsonRpc: { id: 'req-7', data: { header: 'Mcp-Name', headerValue: 'a', bodyValue: '日本' } },
    }),
  ],
  [
    'a JSON-RPC UnsupportedProtocolVersion error without an id',
    deny('unsupported_protocol_version', 'Unsupported protocol version "2099-01-01".', {
      jsonRpc: { data: { supported: ['2026-07-28'], requested: '2099-01-01' } },
    }),
  ],
  ['a long body (multi-byte length prefixes)', deny('invalid_jsonrpc', 'x'.repeat(20_000))],
  [
    'a discovery document answered directly',
    answer('protected_resource_metadata', '{"resource":"https://mcp.example.com/mcp"}', 'application/json'),
  ],
  [
    "an allow with the policy's dynamic metadata",
    allow({
      dynamicMetadata: {
        tier: 'gold',
        n: 1.5,
        big: 2 ** 53,
        neg: -0,
        ok: true,
        no: false,
        l: [null, 'x', [1], {}],
        nested: { a: { b: 'c' } },
        '': 'empty key',
        ключ: 'значение 日本',
      },
    }),
  ],
  [
    "a deny with the policy's dynamic metadata",
    policyDeny(403, policyCode('geo_block')!, 'blocked', { dynamicMetadata: { region: 'eu', score: 0.25 } }),
  ],
  ['a policy that sets decision_id itself', allow({ dynamicMetadata: { decision_id: 'forged', after: 1 } })],
];

for (const [name, outcome] of shapes) {
  for (const id of [undefined, ID]) {
    test(`${name}${id ? ', with a decision id' : ''}: same bytes and same decoded message as the proto-loader path`, (t) => {
      const fast = encodeCheckResponse(outcome, id, now);
      const reference = check.responseSerialize(toCheckResponse(outcome, id, now));
      t.deepEqual(check.responseDeserialize(fast), check.responseDeserialize(reference));
      t.true(fast.equals(reference));
    });
  }
}

test('a code the catalogue answers as JSON-RPC renders the JSON-RPC error response on both paths', (t) => {
  const o = deny('mcp_header_mismatch', 'Header mismatch: x', { jsonRpc: { id: 7, data: { header: 'Mcp-Method' } } });
  const body = JSON.parse(check.responseDeserialize(encodeCheckResponse(o, undefined, now)).denied_response.body);
  t.deepEqual(body, {
    jsonrpc: '2.0',
    id: 7,
    error: { code: -32020, message: 'Header mismatch: x', data: { header: 'Mcp-Method' } },
  });
  t.deepEqual(JSON.parse(toCheckResponse(o, undefined, now).denied_response.body), body);
  t.deepEqual(
    JSON.parse(toCheckResponse(deny('unsupported_protocol_version', 'v'), undefined, now).denied_response.body),
    { jsonrpc: '2.0', error: { code: -32022, message: 'v' } },
    'without id and data when unknown',
  );
  t.is(
    JSON.parse(toCheckResponse(deny('invalid_jsonrpc', 'x'), undefined, now).denied_response.body).error,
    'invalid_jsonrpc',
    'other codes keep the JSON error body',
  );
});

/** The decoded dynamic_metadata Struct as a plain object of string values. */
function metadataOf(buf: Buffer): Record<string, unknown> | undefined {
  const res = check.responseDeserialize(buf) as {
    dynamic_metadata?: { fields: Record<string, { stringValue?: string; numberValue?: number }> };
  };
  if (!res.dynamic_metadata) return undefined;
  return Object.fromEntries(
    Object.entries(res.dynamic_metadata.fields).map(([k, v]) => [k, v.stringValue ?? v.numberValue]),
  );
}

test("every kind of answer carries the decision id under decision_id, where Envoy's access log finds it", (t) => {
  t.is(DECISION_ID_KEY, 'decision_id');
  for (const [name, outcome] of shapes) {
    t.is(metadataOf(encodeCheckResponse(outcome, ID, now))?.decision_id, ID, name);
  }
  t.is(
    metadataOf(encodeCheckResponse(allow(), undefined, now)),
    undefined,
    'no id, no policy metadata: no dynamic_metadata at all',
  );
});

test("the decision id wins over a decision_id the policy sets, and the policy's other keys stay", (t) => {
  const m = metadataOf(
    encodeCheckResponse(allow({ dynamicMetadata: { decision_id: 'forged', tier: 'gold' } }), ID, now),
  );
  t.deepEqual(m, { decision_id: ID, tier: 'gold' });
});

test('a "__proto__" key the policy sets is dropped on both paths (proto-loader\'s objects cannot hold it)', (t) => {
  const outcome = allow({
    dynamicMetadata: JSON.parse('{"__proto__": {"x": 1}, "kept": "yes"}') as Record<string, unknown>,
  });
  const fast = encodeCheckResponse(outcome, ID, now);
  t.true(fast.equals(check.responseSerialize(toCheckResponse(outcome, ID, now))));
  t.deepEqual(metadataOf(fast), { kept: 'yes', decision_id: ID });
});

test('any policy metadata and any decision id encode to the proto-loader bytes', (t) => {
  const json = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.constant(null),
      fc.boolean(),
      fc.double({ noNaN: true }),
      fc.string({ unit: 'grapheme' }),
      fc.array(tie('value'), { maxLength: 4 }),
      tie('object'),
    ),
    object: fc.dictionary(
      fc.string({ unit: 'grapheme', maxLength: 12 }).filter((k) => k !== '__proto__'),
      tie('value'),
      { maxKeys: 5 },
    ),
  }));
  const outcomes = fc.oneof(
    json.object.map((m) => allow({ dynamicMetadata: m as Record<string, unknown> })),
    json.object.map((m) => policyDeny(403, policyCode('x')!, 'd', { dynamicMetadata: m as Record<string, unknown> })),
    fc.constant(allow()),
    fc.constant(deny('invalid_api_key', 'bad')),
  );
  fc.assert(
    fc.property(outcomes, fc.option(fc.string({ unit: 'grapheme', maxLength: 200 }), { nil: undefined }), (o, id) => {
      return encodeCheckResponse(o, id, now).equals(check.responseSerialize(toCheckResponse(o, id, now)));
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('any headers, removals and deny bodies encode to the proto-loader bytes', (t) => {
  const header = fc.record({
    name: fc.string({ minLength: 1 }),
    value: fc.string({ unit: 'grapheme' }),
    append: fc.boolean(),
  });
  const allowArb = fc
    .record({
      headers: fc.array(header, { maxLength: 6 }),
      headersToRemove: fc.array(fc.string(), { maxLength: 4 }),
      queryParamsToRemove: fc.array(fc.string(), { maxLength: 3 }),
      responseHeaders: fc.array(header, { maxLength: 3 }),
    })
    .map((x) => allow(x));
  const denyArb = fc
    .record({
      status: fc.integer({ min: 400, max: 599 }),
      code: fc.string(),
      description: fc.string({ unit: 'grapheme', maxLength: 300 }),
      headers: fc.array(header, { maxLength: 3 }),
    })
    .map((d) => policyDeny(d.status, d.code as PolicyCode, d.description, { headers: d.headers }));
  fc.assert(
    fc.property(fc.oneof(allowArb, denyArb), fc.option(fc.uuid(), { nil: undefined }), (o, id) => {
      const fast = encodeCheckResponse(o, id, now);
      return fast.equals(check.responseSerialize(toCheckResponse(o, id, now)));
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('a lone surrogate (possible in a policy-set header) is written as U+FFFD: the bytes stay valid UTF-8, as proto3 strings must be', (t) => {
  const o = allow({ headers: [{ name: 'x-policy', value: 'a\ud800b', append: false }] });
  const fast = encodeCheckResponse(o, ID, now);
  t.is(fast.length, check.responseSerialize(toCheckResponse(o, ID, now)).length);
  t.true(fast.includes(Buffer.from('a\ufffdb')));
  t.false(fast.includes(Buffer.from([0xed, 0xa0, 0x80])), 'no encoded surrogate');
  const decoded = check.responseDeserialize(fast) as { ok_response: { headers: { header: { value: string } }[] } };
  t.is(decoded.ok_response.headers[0]!.header.value, 'a\ufffdb');
});

test("a frozen metadata value (a used approval's evidence) encodes to the proto-loader bytes, the first time and each time after", (t) => {
  const flat = fc.dictionary(
    fc.string({ unit: 'grapheme', maxLength: 12 }).filter((k) => k !== '__proto__'),
    fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 800 }),
      fc.double({ noNaN: true }),
      fc.boolean(),
      fc.constant(null),
    ),
    { maxKeys: 5 },
  );
  fc.assert(
    fc.property(flat, fc.string({ maxLength: 40 }), (m, id) => {
      const evidence = Object.freeze({ ...m });
      const o = allow({ dynamicMetadata: { tier: 'gold', approval: evidence } });
      const reference = check.responseSerialize(toCheckResponse(o, id, now));
      // The same frozen object again, in another answer beside other keys.
      const other = allow({ dynamicMetadata: { approval: evidence, n: 1 } });
      return (
        encodeCheckResponse(o, id, now).equals(reference) &&
        encodeCheckResponse(o, id, now).equals(reference) &&
        encodeCheckResponse(other, id, now).equals(check.responseSerialize(toCheckResponse(other, id, now)))
      );
    }),
    { numRuns: 300 },
  );
  // Frozen only on the surface: what it holds can change, so it is encoded where it is each time.
  const inner = { state: 'pending' };
  const shallow = Object.freeze({ inner });
  const o = allow({ dynamicMetadata: { approval: shallow } });
  encodeCheckResponse(o, ID, now);
  inner.state = 'granted';
  t.true(encodeCheckResponse(o, ID, now).equals(check.responseSerialize(toCheckResponse(o, ID, now))));
});
