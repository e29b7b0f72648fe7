// The AuthZEN Authorization API 1.0 on the HTTP port, against the real service and the real
// opa: the conformance vectors of the AuthZEN certification scenario (fixture policy written
// here in Rego, requests and expected answers taken from the published scenario), the
// transport rules (authentication, content type, malformed bodies, X-Request-ID), and parity
// with the Check: an MCP question is answered as the Check over gRPC answers the same call.
import test from 'ava';
import fc from 'fast-check';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { keysFile, makeKey } from './helpers/auth-fixtures.js';
import { regoDir } from './helpers/policy.js';
import { testPki } from './helpers/x509.js';
import { request as httpsRequest } from 'node:https';
import { checkRequest, deniedBody, rpc, startTestService, type TestService } from './helpers/service.js';

const SECRET = 'authzen-shared-secret-0123456789';

// The certification scenario's fixture (rules 1-8), over the AuthZEN request as input.authzen.
const FIXTURE_REGO = `package mcp.authz
import rego.v1

default decision := false

q := input.authzen

archived if q.resource.properties.status == "archived"
admin if q.subject.properties.role == "admin"

decision if {
	q.action.name == "read"
	q.subject.id in {"alice", "bob"}
}
decision if {
	q.action.name == "write"
	q.subject.id == "alice"
	not archived
}
decision if {
	q.action.name == "write"
	admin
}
decision if {
	q.action.name == "delete"
	q.subject.id == "alice"
	q.action.properties.soft == true
}
`;

async function post(
  svc: TestService,
  path: string,
  body: unknown,
  opts: { auth?: string | null; type?: string; requestId?: string; raw?: string } = {},
): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const headers: Record<string, string> = { 'content-type': opts.type ?? 'application/json' };
  if (opts.auth !== null) headers.authorization = opts.auth ?? `Bearer ${SECRET}`;
  if (opts.requestId) headers['x-request-id'] = opts.requestId;
  const res = await fetch(`http://127.0.0.1:${svc.httpPort}${path}`, {
    method: 'POST',
    headers,
    body: opts.raw ?? JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

let fixture: TestService;

test.before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-authzen-'));
  writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
  fixture = await startTestService(
    {
      policy: { rego: regoDir({ 'fixture.rego': FIXTURE_REGO }) },
      authzen: { enabled: true, secretFile: join(dir, 'secret'), genericEvaluations: true },
      endpoints: [{ name: 'open', match: { pathPrefix: '/mcp' }, auth: { apiKey: false, oauth: false } }],
    },
    { dir },
  );
});
test.after.always(async () => fixture?.stop());

const alice = { type: 'user', id: 'alice' };
const bob = { type: 'user', id: 'bob' };
const record1 = { type: 'record', id: 'record-1' };
const archived2 = { type: 'record', id: 'record-2', properties: { status: 'archived' } };

// Certification scenario, Basic: [request, expected decision].
const BASIC: [string, Record<string, unknown>, boolean][] = [
  ['rule 1: alice reads record-1', { subject: alice, action: { name: 'read' }, resource: record1 }, true],
  ['rule 4: bob writes record-1', { subject: bob, action: { name: 'write' }, resource: record1 }, false],
  [
    'optional context does not change the decision',
    {
      subject: alice,
      action: { name: 'read' },
      resource: record1,
      context: { time: '2025-06-27T18:03-07:00', ip: '192.168.1.1' },
    },
    true,
  ],
  [
    'rule 5: alice writes an archived record',
    { subject: alice, action: { name: 'write' }, resource: archived2 },
    false,
  ],
  [
    'rule 6: an admin writes an archived record',
    { subject: { ...bob, properties: { role: 'admin' } }, action: { name: 'write' }, resource: archived2 },
    true,
  ],
  [
    'rule 7: soft delete',
    { subject: alice, action: { name: 'delete', properties: { soft: true } }, resource: record1 },
    true,
  ],
  [
    'rule 8: hard delete',
    { subject: alice, action: { name: 'delete', properties: { soft: false } }, resource: record1 },
    false,
  ],
  [
    'additional properties are accepted',
    {
      subject: { ...alice, properties: { department: 'Sales', role: 'manager' } },
      action: { name: 'read', properties: { method: 'GET' } },
      resource: { ...record1, properties: { status: 'active', owner: 'bob' } },
    },
    true,
  ],
  [
    'unknown fields are ignored',
    { subject: alice, action: { name: 'read' }, resource: record1, foo: 'bar', futureField: { nested: true } },
    true,
  ],
];

for (const [name, body, decision] of BASIC) {
  test(`conformance, access evaluation: ${name}`, async (t) => {
    const r = await post(fixture, '/access/v1/evaluation', body);
    t.is(r.status, 200, r.text);
    t.is(r.headers.get('content-type'), 'application/json');
    t.is(r.json.decision, decision);
    if (r.json.context !== undefined) t.is(typeof r.json.context, 'object');
  });
}

const BAD: [string, unknown][] = [
  ['missing subject', { action: { name: 'read' }, resource: record1 }],
  ['missing action', { subject: alice, resource: record1 }],
  ['missing resource', { subject: alice, action: { name: 'read' } }],
  ['subject without type', { subject: { id: 'alice' }, action: { name: 'read' }, resource: record1 }],
  ['subject without id', { subject: { type: 'user' }, action: { name: 'read' }, resource: record1 }],
  ['action without name', { subject: alice, action: {}, resource: record1 }],
  ['resource without type', { subject: alice, action: { name: 'read' }, resource: { id: 'record-1' } }],
  ['resource without id', { subject: alice, action: { name: 'read' }, resource: { type: 'record' } }],
  ['subject is a string', { subject: 'alice', action: { name: 'read' }, resource: record1 }],
  ['action.name is a number', { subject: alice, action: { name: 123 }, resource: record1 }],
  ['the body is an array', [{ subject: alice, action: { name: 'read' }, resource: record1 }]],
];

for (const [name, body] of BAD) {
  test(`conformance, errors: ${name} → 400 with a message`, async (t) => {
    const r = await post(fixture, '/access/v1/evaluation', body);
    t.is(r.status, 400);
    t.regex(r.headers.get('content-type') ?? '', /^text\/plain/);
    t.true(r.text.length > 5);
    t.notRegex(r.text, /at .*\.(ts|js):\d+/, 'no stack');
  });
}

test('conformance, errors: wrong content type, malformed JSON, empty body, a repeated key → 400', async (t) => {
  const ok = { subject: alice, action: { name: 'read' }, resource: record1 };
  t.is((await post(fixture, '/access/v1/evaluation', ok, { type: 'text/plain' })).status, 400);
  t.is((await post(fixture, '/access/v1/evaluation', undefined, { raw: '{"subject": ' })).status, 400);
  t.is((await post(fixture, '/access/v1/evaluation', undefined, { raw: '' })).status, 400);
  const repeated = await post(fixture, '/access/v1/evaluation', undefined, {
    raw: '{"subject":{"type":"user","id":"bob","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}',
  });
  t.is(repeated.status, 400);
  t.regex(repeated.text, /duplicate_json_key/);
});

test('conformance, headers: X-Request-ID is echoed; without it the answer is the same', async (t) => {
  const body = { subject: alice, action: { name: 'read' }, resource: record1 };
  const r = await post(fixture, '/access/v1/evaluation', body, { requestId: 'bfe9eb29-ab87-4ca3-be83-a1d5d8305716' });
  t.is(r.headers.get('x-request-id'), 'bfe9eb29-ab87-4ca3-be83-a1d5d8305716');
  const again = await post(fixture, '/access/v1/evaluation', body);
  t.is(again.status, 200);
  t.is(again.json.decision, true, 'idempotent');
});

// Certification scenario, Batch: [request, expected decisions].
const BATCH: [string, Record<string, unknown>, boolean[] | number][] = [
  [
    'defaults for subject and action',
    {
      subject: alice,
      action: { name: 'read' },
      evaluations: [{ resource: record1 }, { resource: { type: 'record', id: 'record-2' } }],
    },
    2,
  ],
  [
    'rules 3 and 4 in order',
    { subject: bob, resource: record1, evaluations: [{ action: { name: 'read' } }, { action: { name: 'write' } }] },
    [true, false],
  ],
  [
    'properties per item (rules 2 and 5)',
    {
      subject: alice,
      action: { name: 'write' },
      evaluations: [{ resource: { ...record1, properties: { status: 'active' } } }, { resource: archived2 }],
    },
    [true, false],
  ],
  [
    'subject properties per item (rules 5 and 6)',
    {
      action: { name: 'write' },
      resource: archived2,
      evaluations: [{ subject: alice }, { subject: { ...bob, properties: { role: 'admin' } } }],
    },
    [false, true],
  ],
  [
    'fully specified evaluations',
    {
      evaluations: [
        { subject: alice, action: { name: 'read' }, resource: record1 },
        { subject: bob, action: { name: 'write' }, resource: record1 },
      ],
    },
    [true, false],
  ],
  [
    'context inheritance and override',
    {
      subject: alice,
      action: { name: 'read' },
      context: { time: '2025-06-27T18:03-07:00' },
      evaluations: [
        { resource: record1 },
        {
          resource: { type: 'record', id: 'record-2' },
          context: { time: '2025-06-27T19:00-07:00', source: 'batch-override' },
        },
      ],
    },
    2,
  ],
  [
    'an empty evaluation inherits every default; a given entity replaces the default whole',
    {
      subject: alice,
      action: { name: 'write' },
      resource: { ...record1, properties: { status: 'active' } },
      evaluations: [{}, { resource: archived2 }],
    },
    [true, false],
  ],
  [
    'execute_all: an item missing a field is a deny of that item',
    {
      subject: alice,
      action: { name: 'read' },
      options: { evaluations_semantic: 'execute_all' },
      evaluations: [{ resource: record1 }, {}],
    },
    [true, false],
  ],
  [
    'deny_on_first_deny stops after the first deny',
    {
      subject: bob,
      resource: record1,
      options: { evaluations_semantic: 'deny_on_first_deny' },
      evaluations: [{ action: { name: 'read' } }, { action: { name: 'write' } }, { action: { name: 'read' } }],
    },
    [true, false],
  ],
  [
    'permit_on_first_permit stops after the first permit',
    {
      subject: bob,
      resource: record1,
      options: { evaluations_semantic: 'permit_on_first_permit' },
      evaluations: [{ action: { name: 'write' } }, { action: { name: 'read' } }, { action: { name: 'write' } }],
    },
    [false, true],
  ],
];

for (const [name, body, expected] of BATCH) {
  test(`conformance, access evaluations: ${name}`, async (t) => {
    const r = await post(fixture, '/access/v1/evaluations', body);
    t.is(r.status, 200, r.text);
    t.is(r.json.decision, undefined, 'no top-level decision beside evaluations');
    t.true(Array.isArray(r.json.evaluations));
    for (const e of r.json.evaluations) t.is(typeof e.decision, 'boolean');
    if (typeof expected === 'number') t.is(r.json.evaluations.length, expected);
    else
      t.deepEqual(
        r.json.evaluations.map((e: { decision: boolean }) => e.decision),
        expected,
      );
  });
}

test('conformance, access evaluations: the failed item says why in its context', async (t) => {
  const r = await post(fixture, '/access/v1/evaluations', {
    subject: alice,
    action: { name: 'read' },
    evaluations: [{ resource: record1 }, {}],
  });
  t.is(r.json.evaluations[1].context.error.status, 400);
  t.regex(r.json.evaluations[1].context.error.message, /evaluations\[1\]\.resource is required/);
});

test('conformance, access evaluations: without evaluations (or with none) the answer is a single decision', async (t) => {
  const single = { subject: alice, action: { name: 'read' }, resource: record1 };
  t.deepEqual((await post(fixture, '/access/v1/evaluations', single)).json, { decision: true });
  t.deepEqual((await post(fixture, '/access/v1/evaluations', { ...single, evaluations: [] })).json, { decision: true });
  const bad = await post(fixture, '/access/v1/evaluations', { ...single, options: { evaluations_semantic: 'some' } });
  t.is(bad.status, 400);
});

test('conformance, discovery: the PDP metadata names both evaluation endpoints', async (t) => {
  const r = await fetch(`http://127.0.0.1:${fixture.httpPort}/.well-known/authzen-configuration`);
  t.is(r.status, 200);
  t.is(r.headers.get('content-type'), 'application/json');
  const doc = (await r.json()) as Record<string, string>;
  const base = `http://127.0.0.1:${fixture.httpPort}`;
  t.deepEqual(doc, {
    policy_decision_point: base,
    access_evaluation_endpoint: `${base}/access/v1/evaluation`,
    access_evaluations_endpoint: `${base}/access/v1/evaluations`,
  });
});

test('authentication: no bearer, a wrong one, or another scheme is a 401; the right secret is answered', async (t) => {
  const body = { subject: alice, action: { name: 'read' }, resource: record1 };
  const none = await post(fixture, '/access/v1/evaluation', body, { auth: null });
  t.is(none.status, 401);
  t.regex(none.headers.get('www-authenticate') ?? '', /^Bearer /);
  t.is((await post(fixture, '/access/v1/evaluation', body, { auth: 'Bearer wrong' })).status, 401);
  t.is((await post(fixture, '/access/v1/evaluation', body, { auth: `Basic ${SECRET}` })).status, 401);
  t.is((await post(fixture, '/access/v1/evaluations', body, { auth: null })).status, 401);
  t.is((await post(fixture, '/access/v1/evaluation', body)).status, 200);
});

test('methods: the evaluation endpoints take POST, the metadata GET', async (t) => {
  const get = await fetch(`http://127.0.0.1:${fixture.httpPort}/access/v1/evaluation`);
  t.is(get.status, 405);
  t.is(get.headers.get('allow'), 'POST');
  const postMeta = await post(fixture, '/.well-known/authzen-configuration', {});
  t.is(postMeta.status, 405);
});

// Parity: the shipped policy, API keys, and the Check over gRPC.
test('an MCP question is answered as the Check for the same call: a denied tool, an allowed one, any tool (property)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-authzen-parity-'));
  writeFileSync(join(dir, 'secret'), SECRET);
  const keys = {
    reader: makeKey({ id: 'reader', permissions: ['tools:search'] }),
    writer: makeKey({ id: 'writer', permissions: ['tools:search', 'tools:write_file'] }),
    everything: makeKey({ id: 'everything', permissions: ['*'] }),
    off: makeKey({ id: 'off', permissions: ['*'] }),
  };
  writeFileSync(join(dir, 'keys.yaml'), keysFile(Object.values(keys), { off: { disabled: true } }));
  const svc = await startTestService(
    {
      apiKeys: { file: join(dir, 'keys.yaml') },
      authzen: { enabled: true, secretFile: join(dir, 'secret') },
      endpoints: [
        { name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true, oauth: false } },
        { name: 'other', match: { pathPrefix: '/mcp/other' }, auth: { apiKey: true, oauth: false } },
      ],
    },
    { dir },
  );
  t.teardown(() => svc.stop());

  const both = async (key: keyof typeof keys, tool: string, args: Record<string, unknown>) => {
    const check = await svc.check(
      checkRequest({
        path: '/mcp/files',
        headers: { 'content-type': 'application/json', 'x-api-key': keys[key].key },
        body: rpc('tools/call', { name: tool, arguments: args }),
      }),
    );
    const az = await post(svc, '/access/v1/evaluation', {
      subject: { type: 'api_key', id: key },
      action: { name: 'tools/call', properties: { arguments: args } },
      resource: { type: 'tool', id: tool, properties: { endpoint: 'files' } },
    });
    t.is(az.status, 200, az.text);
    return { check, az: az.json };
  };

  const denied = await both('reader', 'write_file', { path: '/etc/passwd' });
  t.truthy(denied.check.denied_response, 'the Check denies the tool');
  t.false(denied.az.decision);
  t.is(denied.az.context.reason, deniedBody(denied.check).error, 'the same code');
  t.is(denied.az.context.status, 403);
  const allowed = await both('writer', 'write_file', { path: '/tmp/x' });
  t.truthy(allowed.check.ok_response);
  t.true(allowed.az.decision);
  const disabled = await both('off', 'search', {});
  t.truthy(disabled.check.denied_response);
  t.false(disabled.az.decision);
  t.is(disabled.az.context.reason, deniedBody(disabled.check).error);

  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom<keyof typeof keys>('reader', 'writer', 'everything', 'off'),
      fc.oneof(fc.constantFrom('search', 'write_file', 'delete_all'), fc.stringMatching(/^[a-z_]{1,12}$/)),
      fc.dictionary(fc.stringMatching(/^[a-z]{1,6}$/), fc.oneof(fc.string(), fc.integer(), fc.boolean()), {
        maxKeys: 3,
      }),
      async (key, tool, args) => {
        const { check, az } = await both(key, tool, args);
        const checkAllowed = check.ok_response !== undefined;
        if (az.decision !== checkAllowed) return false;
        return checkAllowed || az.context.reason === deniedBody(check).error;
      },
    ),
    { numRuns: 40 },
  );
});

test('an MCP question names its endpoint, and a subject the endpoint does not take is not allowed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-authzen-map-'));
  writeFileSync(join(dir, 'secret'), SECRET);
  const everything = makeKey({ id: 'everything', permissions: ['*'] });
  writeFileSync(join(dir, 'keys.yaml'), keysFile([everything]));
  const svc = await startTestService(
    {
      apiKeys: { file: join(dir, 'keys.yaml') },
      authzen: { enabled: true, secretFile: join(dir, 'secret') },
      endpoints: [
        { name: 'keyed', match: { host: 'mcp.example.com', pathPrefix: '/mcp' }, auth: { apiKey: true, oauth: false } },
        { name: 'tokens', match: { pathPrefix: '/tokens' }, auth: { apiKey: false, oauth: false, mtls: true } },
      ],
    },
    { dir },
  );
  t.teardown(() => svc.stop());
  const ask = (resource: Record<string, unknown>, subject = { type: 'api_key', id: 'everything' }, context = {}) =>
    post(svc, '/access/v1/evaluation', { subject, action: { name: 'tools/call' }, resource, context });
  const unnamed = await ask({ type: 'tool', id: 'search' });
  t.is(unnamed.status, 400);
  t.regex(unnamed.text, /name the MCP endpoint/);
  t.is(
    (await ask({ type: 'tool', id: 'search' }, undefined, { mcp_server: 'https://mcp.example.com/mcp' })).json.decision,
    true,
  );
  t.is((await ask({ type: 'tool', id: 'search', properties: { endpoint: 'keyed' } })).json.decision, true);
  t.is((await ask({ type: 'tool', id: 'search', properties: { endpoint: 'nope' } })).status, 400);
  const record = await ask({ type: 'record', id: 'r1', properties: { endpoint: 'keyed' } });
  t.is(record.status, 400, 'a non-MCP question without genericEvaluations is refused');
  t.regex(record.text, /genericEvaluations/);
  const unknownKey = await ask(
    { type: 'tool', id: 'search', properties: { endpoint: 'keyed' } },
    { type: 'api_key', id: 'ghost' },
  );
  t.false(unknownKey.json.decision);
  t.is(unknownKey.json.context.reason, 'invalid_api_key');
  const wrongKind = await ask({ type: 'tool', id: 'search', properties: { endpoint: 'tokens' } });
  t.false(wrongKind.json.decision, 'an API key subject on an endpoint that takes no API keys');
  t.is(
    (await ask({ type: 'tool', id: 'search', properties: { endpoint: 'keyed' } }, { type: 'robot', id: 'x' })).status,
    400,
  );
});

test('config: an enabled AuthZEN API without a way to authenticate callers is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-authzen-cfg-'));
  writeFileSync(join(dir, 'config.yaml'), stringify({ authzen: { enabled: true } }));
  const { loadConfigFile } = await import('../src/config/load.js');
  const err = t.throws(() => loadConfigFile(join(dir, 'config.yaml'), {}));
  t.regex(err!.message, /authenticated callers only/);
});

test('authentication over mTLS: a listed SPIFFE ID is answered, another client certificate is a 401', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-authzen-mtls-'));
  const pki = testPki();
  const server = pki.server();
  writeFileSync(join(dir, 'tls.crt'), server.cert);
  writeFileSync(join(dir, 'tls.key'), server.key);
  writeFileSync(join(dir, 'ca.crt'), pki.ca.cert);
  const svc = await startTestService(
    {
      policy: { rego: regoDir({ 'fixture.rego': FIXTURE_REGO }) },
      tls: {
        certFile: join(dir, 'tls.crt'),
        keyFile: join(dir, 'tls.key'),
        clientCaFile: join(dir, 'ca.crt'),
        grpc: 'off',
        http: 'mtls',
      },
      authzen: { enabled: true, mtlsClients: ['spiffe://cluster.local/ns/envoy/sa/gateway'], genericEvaluations: true },
      endpoints: [{ name: 'open', match: { pathPrefix: '/mcp' }, auth: { apiKey: false, oauth: false } }],
    },
    { dir },
  );
  t.teardown(() => svc.stop());
  const ask = (client: { cert: string; key: string }) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const body = JSON.stringify({ subject: alice, action: { name: 'read' }, resource: record1 });
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: svc.httpPort,
          path: '/access/v1/evaluation',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          ca: pki.ca.cert,
          cert: client.cert,
          key: client.key,
          servername: 'localhost',
        },
        (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const listed = await ask(pki.client('gateway'));
  t.is(listed.status, 200, listed.body);
  t.deepEqual(JSON.parse(listed.body), { decision: true });
  const other = await ask(pki.client('someone-else'));
  t.is(other.status, 401);
});

test("a token's subject with its claims is answered as the Check with that token: scopes grant tools", async (t) => {
  const { startJwksServer } = await import('./helpers/jwks-server.js');
  const jwks = await startJwksServer();
  t.teardown(() => jwks.stop());
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-authzen-oauth-'));
  writeFileSync(join(dir, 'secret'), SECRET);
  const resource = 'https://mcp.example.com/mcp/docs';
  const svc = await startTestService(
    {
      oauth: { issuers: [{ issuer: jwks.issuer, jwksUri: jwks.jwksUri }] },
      authzen: { enabled: true, secretFile: join(dir, 'secret') },
      endpoints: [{ name: 'docs', match: { pathPrefix: '/mcp/docs' }, auth: { apiKey: false, oauth: true }, resource }],
    },
    { dir },
  );
  t.teardown(() => svc.stop());
  const now = Math.floor(Date.now() / 1000);
  const decisions: boolean[] = [];
  for (const [scope, tool] of [
    ['tools:search', 'search'],
    ['tools:search', 'delete_all'],
    ['tools:search tools:delete_all', 'delete_all'],
  ] as const) {
    const claims = { iss: jwks.issuer, sub: 'carol', aud: resource, scope, iat: now, exp: now + 300 };
    const check = await svc.check(
      checkRequest({
        path: '/mcp/docs',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await jwks.sign(claims)}` },
        body: rpc('tools/call', { name: tool, arguments: {} }),
      }),
    );
    const { sub, iss: _iss, ...rest } = claims;
    const az = await post(svc, '/access/v1/evaluation', {
      subject: { type: 'identity', id: sub, properties: { iss: jwks.issuer, claims: rest } },
      action: { name: 'tools/call' },
      resource: { type: 'tool', id: tool },
    });
    t.is(az.status, 200, az.text);
    t.is(az.json.decision, check.ok_response !== undefined, `${scope} → ${tool}`);
    if (!az.json.decision) t.is(az.json.context.reason, deniedBody(check).error);
    decisions.push(az.json.decision);
  }
  t.deepEqual(decisions, [true, false, true], 'the scope decides, for both');
  const unknownIssuer = await post(svc, '/access/v1/evaluation', {
    subject: { type: 'identity', id: 'carol', properties: { iss: 'https://elsewhere.example.com' } },
    action: { name: 'tools/call' },
    resource: { type: 'tool', id: 'search' },
  });
  t.false(unknownIssuer.json.decision, 'a subject of an issuer that is not configured is not allowed');
});
