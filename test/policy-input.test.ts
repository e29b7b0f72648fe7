// The policy input: documented fields, credentials redacted everywhere, opa-envoy-plugin
// fields switchable; and the decision log line.
import test from 'ava';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createLogger } from '../src/log/logger.js';
import { runCheck } from '../src/pipeline/pipeline.js';
import { validateConfig } from '../src/config/load.js';
import { createMetricsRegistry } from '../src/metrics/registry.js';
import { buildRuntime } from '../src/pipeline/build-runtime.js';
import { toRequest } from '../src/envoy/to-request.js';
import { TestAuthenticator } from './fixtures/test-authenticator.js';
import { keyPrincipal, regoDir } from './helpers/policy.js';
import { checkRequest, rpc } from './helpers/service.js';

const SECRET_KEY = 'mcp_0123456789abcdefSECRETKEY';
const SECRET_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.SECRET.TOKEN';

async function runtimeWith(extra: Record<string, unknown>, lines: string[] = []) {
  const config = validateConfig(
    {
      apiKeys: { header: 'x-custom-key' },
      endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, owner: 'alice', data: { tier: 'gold' } }],
      ...extra,
    },
    'test',
    process.cwd(),
    {},
  );
  // The service's own logger, its lines captured: decision lines are written as serve writes them.
  const logger = createLogger('info', {
    sink: { write: (l: string) => lines.push(l), writeDecision: (l: string) => lines.push(l) },
  });
  const rt = await buildRuntime({ config, file: undefined, baseDir: process.cwd() }, logger, createMetricsRegistry(), {
    watch: false,
  });
  rt.authenticator = new TestAuthenticator({ alice: keyPrincipal('alice-key', 'alice', ['tools:*']) });
  return rt;
}

const sample = () =>
  checkRequest({
    path: '/mcp/files/x?api_key=' + SECRET_KEY + '&apikey=' + SECRET_KEY + '&q=1',
    body: rpc('tools/call', { name: 'search' }),
    headers: {
      'x-test-principal': 'alice',
      'x-api-key': SECRET_KEY,
      'x-custom-key': SECRET_KEY,
      authorization: `Bearer ${SECRET_TOKEN}`,
      cookie: `session=${SECRET_TOKEN}`,
      'x-other': 'visible',
    },
  });

test('the input carries request, endpoint, principal and mcp, and never a credential', async (t) => {
  const rt = await runtimeWith({ publicBaseUrl: 'https://mcp.example.com/', policy: { envoyInput: true } });
  const trace = await runCheck(rt, toRequest, sample() as never);
  await rt.close();
  t.true(trace.outcome.allow);
  const text = trace.policy!.input as string;
  t.false(text.includes(SECRET_KEY));
  t.false(text.includes(SECRET_TOKEN));
  const input = JSON.parse(text);
  t.is(input.request.headers['x-api-key'], '[REDACTED]');
  t.is(input.request.headers['x-custom-key'], '[REDACTED]');
  t.is(input.request.headers.authorization, '[REDACTED]');
  t.is(
    input.request.headers['x-test-principal'],
    '[REDACTED]',
    "the authenticator's credential headers are redacted too",
  );
  t.is(input.request.headers['x-other'], 'visible');
  t.is(input.request.headers[':path'], '/mcp/files/x?api_key=%5BREDACTED%5D&apikey=%5BREDACTED%5D&q=1');
  t.deepEqual(input.request.query, { api_key: ['[REDACTED]'], apikey: ['[REDACTED]'], q: ['1'] });
  t.is(input.request.path, '/mcp/files/x');
  t.is(input.endpoint.name, 'files');
  t.is(input.endpoint.owner, 'alice');
  t.deepEqual(input.endpoint.data, { tier: 'gold' });
  t.is(input.endpoint.resource_metadata, 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp/files');
  t.is(input.principal.userId, 'alice');
  t.deepEqual(input.principal.permissions, ['tools:*']);
  t.deepEqual(input.mcp, {
    present: true,
    batch: false,
    calls: [{ method: 'tools/call', kind: 'request', name: 'search' }],
  });
  t.deepEqual(input.parsed_path, ['mcp', 'files', 'x']);
  t.deepEqual(input.parsed_body, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'search' } });
  t.false(input.truncated_body);
  t.deepEqual(input.version, { encoding: 'protojson', ext_authz: 'v3' });
  t.is(input.attributes.request.http.headers['x-api-key'], '[REDACTED]');
  t.is(input.attributes.request.http.path, '/mcp/files/x?api_key=%5BREDACTED%5D&apikey=%5BREDACTED%5D&q=1');
  t.is(input.attributes.source.address.socketAddress.address, '10.1.2.3');
  t.is(input.attributes.source.address.socketAddress.portValue, 40000);
  t.is(input.attributes.request.time, '2023-11-14T22:13:20Z');
});

test('policy.envoyInput: false leaves the opa-envoy-plugin fields out', async (t) => {
  const rt = await runtimeWith({ policy: { envoyInput: false } });
  const trace = await runCheck(rt, toRequest, sample() as never);
  await rt.close();
  const input = JSON.parse(trace.policy!.input as string);
  t.deepEqual(Object.keys(input).sort(), ['endpoint', 'mcp', 'principal', 'request']);
});

test('unset, envoyInput follows the bundle: the shipped policy declares it never reads the opa-envoy-plugin fields', async (t) => {
  const rt = await runtimeWith({});
  const trace = await runCheck(rt, toRequest, sample() as never);
  await rt.close();
  t.true(trace.outcome.allow);
  const input = JSON.parse(trace.policy!.input as string);
  t.deepEqual(Object.keys(input).sort(), ['endpoint', 'mcp', 'principal', 'request']);
});

test('the decision log writes one line per decision with ids and codes, never a secret', async (t) => {
  const lines: string[] = [];
  const rt = await runtimeWith({}, lines);
  await runCheck(rt, toRequest, sample() as never);
  await rt.close();
  const decisions = lines.map((l) => JSON.parse(l)).filter((l) => l.log === 'decision');
  t.is(decisions.length, 1);
  const d = decisions[0];
  t.like(d, {
    endpoint: 'files',
    principal: 'alice-key',
    mcp_method: 'tools/call',
    tool: 'search',
    allow: true,
    status: 200,
    reason: 'allowed',
    policy_decision: 'allow',
  });
  t.regex(d.decision_id, /^[0-9a-f-]{36}$/);
  t.regex(d.policy_revision, /^sha256-/);
  t.is(typeof d.duration_ms, 'number');
  t.is(typeof d.time, 'number');
  t.is(d.ts, new Date(d.time).toISOString(), "ts is the same instant as pino's time, in ISO 8601");
  t.is(d.client_address, '10.1.2.3');
  for (const l of lines) {
    t.false(l.includes(SECRET_KEY));
    t.false(l.includes(SECRET_TOKEN));
  }
  t.false('headers' in d);
});

test("the decision log carries x-request-id and the caller's W3C trace id with tracing off, and the decision id Envoy gets", async (t) => {
  const lines: string[] = [];
  const rt = await runtimeWith({}, lines);
  const req = sample() as { attributes: { request: { http: { headers: Record<string, string> } } } };
  req.attributes.request.http.headers['x-request-id'] = 'req-7f3a';
  req.attributes.request.http.headers.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const trace = await runCheck(rt, toRequest, req as never);
  // A malformed traceparent is no trace id at all, never a half-read one.
  req.attributes.request.http.headers.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra';
  await runCheck(rt, toRequest, req as never);
  await rt.close();
  const [first, second] = lines.map((l) => JSON.parse(l)).filter((l) => l.log === 'decision');
  t.like(first, {
    request_id: 'req-7f3a',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    decision_id: trace.decisionId,
  });
  t.false('span_id' in first, 'tracing is off: the service made no span');
  t.false('trace_id' in second);
  t.not(second.decision_id, first.decision_id);
});

test('decision log sampling drops allows but keeps denies', async (t) => {
  const lines: string[] = [];
  const rt = await runtimeWith({ decisionLog: { enabled: true, sampleRate: 0 } }, lines);
  await runCheck(rt, toRequest, sample() as never);
  const denied = checkRequest({ path: '/mcp/files', body: rpc('tools/list') });
  await runCheck(rt, toRequest, denied as never);
  await rt.close();
  const decisions = lines.map((l) => JSON.parse(l)).filter((l) => l.log === 'decision');
  t.is(decisions.length, 1);
  t.false(decisions[0].allow);
});

test('the decision log line has exactly the shape pino writes, bindings included', async (t) => {
  const capture = (lines: string[]) => new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) });
  // The service's own logger: decision lines go straight to its sink.
  const fast: string[] = [];
  const viaPino: string[] = [];
  const rtFast = await buildRuntime(
    {
      config: validateConfig(
        { endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, owner: 'alice' }] },
        'test',
        process.cwd(),
        {},
      ),
      file: undefined,
      baseDir: process.cwd(),
    },
    createLogger('info', {
      sink: { write: (l: string) => fast.push(l), writeDecision: (l: string) => fast.push(l) },
    }).child({ worker: 2 }),
    createMetricsRegistry(),
    { watch: false },
  );
  // A logger of the test's own (here with a mixin adding nothing): the decision log hands its fields to pino.
  const rtPino = await buildRuntime(
    {
      config: validateConfig(
        { endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, owner: 'alice' }] },
        'test',
        process.cwd(),
        {},
      ),
      file: undefined,
      baseDir: process.cwd(),
    },
    pino({ level: 'info', base: { service: 'mcp-authz' }, mixin: () => ({}) }, capture(viaPino)).child({ worker: 2 }),
    createMetricsRegistry(),
    { watch: false },
  );
  for (const rt of [rtFast, rtPino]) {
    await runCheck(rt, toRequest, sample() as never);
    await runCheck(rt, toRequest, checkRequest({ path: '/mcp/files', body: rpc('tools/list') }) as never);
    await rt.close();
  }
  const decisions = (lines: string[]) => lines.filter((l) => l.includes('"log":"decision"'));
  t.is(decisions(fast).length, 2);
  const stable = (l: string) => {
    t.true(l.endsWith('}\n'));
    const o = JSON.parse(l);
    return Object.entries(o).map(([k, v]) => [
      k,
      ['time', 'ts', 'decision_id', 'request_id', 'duration_ms', 'policy_duration_ms', 'policy_revision'].includes(k)
        ? typeof v
        : v,
    ]);
  };
  t.deepEqual(decisions(fast).map(stable), decisions(viaPino).map(stable));
  t.like(JSON.parse(decisions(fast)[0]!), {
    level: 30,
    service: 'mcp-authz',
    worker: 2,
    log: 'decision',
    msg: 'decision',
  });
});

test('metadata Envoy sends in the CheckRequest reaches the policy as plain JSON after the wire decode', async (t) => {
  const { authorizationService } = await import('../src/envoy/protos.js');
  const method = (
    authorizationService() as unknown as Record<
      string,
      { requestSerialize(m: unknown): Buffer; requestDeserialize(b: Buffer): unknown }
    >
  ).Check;
  const req = sample() as { attributes: Record<string, unknown> };
  req.attributes.metadata_context = {
    filter_metadata: {
      'envoy.filters.http.jwt_authn': {
        fields: {
          sub: { stringValue: 'alice' },
          n: { numberValue: 3 },
          ok: { boolValue: true },
          nested: { structValue: { fields: { tier: { stringValue: 'gold' } } } },
          list: { listValue: { values: [{ stringValue: 'a' }, { numberValue: 1 }] } },
        },
      },
    },
  };
  const decoded = method.requestDeserialize(method.requestSerialize(req));
  const rt = await runtimeWith({ policy: { envoyInput: true } });
  const trace = await runCheck(rt, toRequest, decoded as never);
  await rt.close();
  const input = JSON.parse(trace.policy!.input as string);
  t.deepEqual(input.attributes.metadataContext.filterMetadata['envoy.filters.http.jwt_authn'], {
    sub: 'alice',
    n: 3,
    ok: true,
    nested: { tier: 'gold' },
    list: ['a', 1],
  });
});

// Grants in the input (docs/policies.md "Grants in the input").
const MANY_GRANTS = [
  ...Array.from({ length: 500 }, (_, i) => `tools:tool_${i}`),
  'tools:read_*',
  'tools:http_get',
  'tools:http_get:any-host',
  'prompts:summary',
  'resources:file:///docs/*',
];

async function grantsRuntime(policy: Record<string, unknown>) {
  const rt = await runtimeWith({
    policy,
    endpoints: [
      {
        name: 'files',
        match: { pathPrefix: '/mcp/files' },
        owner: 'alice',
        data: {
          arguments: [
            {
              tools: ['http_get'],
              arguments: { url: { url: { hosts: ['api.example.com'] } } },
              exemptGrants: ['tools:http_get:any-host'],
            },
          ],
        },
      },
    ],
  });
  rt.authenticator = new TestAuthenticator({ alice: keyPrincipal('alice-key', 'alice', MANY_GRANTS) });
  return rt;
}

const grantsSeen = async (rt: Awaited<ReturnType<typeof runtimeWith>>, body: string) => {
  const trace = await runCheck(
    rt,
    toRequest,
    checkRequest({ path: '/mcp/files', body, headers: { 'x-test-principal': 'alice' } }) as never,
  );
  return { allow: trace.outcome.allow, permissions: JSON.parse(trace.policy!.input as string).principal.permissions };
};

test('the shipped policy is given only the grants that can apply to the request: the tool named, wildcards that can match it, exempt grants', async (t) => {
  const rt = await grantsRuntime({});
  try {
    t.deepEqual(await grantsSeen(rt, rpc('tools/call', { name: 'tool_321' })), {
      allow: true,
      permissions: ['tools:tool_321', 'tools:http_get:any-host'],
    });
    t.deepEqual(await grantsSeen(rt, rpc('tools/call', { name: 'read_file' })), {
      allow: true,
      permissions: ['tools:read_*', 'tools:http_get:any-host'],
    });
    t.deepEqual(await grantsSeen(rt, rpc('tools/call', { name: 'delete_repo' })), {
      allow: false,
      permissions: ['tools:http_get:any-host'],
    });
    // The exempt grant is given, and lifts the endpoint's URL rule as it does with every grant given.
    t.deepEqual(
      await grantsSeen(rt, rpc('tools/call', { name: 'http_get', arguments: { url: 'https://x.example/' } })),
      {
        allow: true,
        permissions: ['tools:http_get', 'tools:http_get:any-host'],
      },
    );
    t.deepEqual(await grantsSeen(rt, rpc('prompts/get', { name: 'summary' })), {
      allow: true,
      permissions: ['prompts:summary', 'tools:http_get:any-host'],
    });
    // A list request: every grant its items are checked against.
    const list = await grantsSeen(rt, rpc('tools/list', {}));
    t.true(list.allow);
    t.is(list.permissions.length, 503);
    t.false(list.permissions.includes('prompts:summary'));
  } finally {
    await rt.close();
  }
});

test('policy.grantsInput: all gives the policy every grant of the caller', async (t) => {
  const rt = await grantsRuntime({ grantsInput: 'all' });
  try {
    t.deepEqual(await grantsSeen(rt, rpc('tools/call', { name: 'tool_321' })), {
      allow: true,
      permissions: MANY_GRANTS,
    });
  } finally {
    await rt.close();
  }
});

test('a policy whose bundle does not declare data.mcp_authz.input.grants is given every grant, as before', async (t) => {
  // A policy of its own that reads the grants otherwise than the shipped one: a count.
  const rego = regoDir({
    'p.rego': 'package mcp.authz\n\ndecision := {"allow": count(input.principal.permissions) > 100}\n',
  });
  const rt = await grantsRuntime({ rego });
  try {
    t.deepEqual(await grantsSeen(rt, rpc('tools/call', { name: 'tool_321' })), {
      allow: true,
      permissions: MANY_GRANTS,
    });
  } finally {
    await rt.close();
  }
});
