// Measures the policy phase's per-Check costs: building the input (with and without the
// opa-envoy-plugin fields) and evaluating the shipped policy (object vs pre-serialized input),
// then a tools/call on an endpoint without argument rules and with them (path, URL, SQL).
//   node --import tsx scripts/measure-policy.ts [iterations] [bundle.tar.gz] [baseline-bundle.tar.gz]
// With a baseline bundle, the tools/call rows are measured interleaved with it (rounds of
// both engines in turn, the median of each), so a loaded machine slows both alike.
import { toRequest } from '../src/envoy/to-request.js';
import { EndpointRegistry } from '../src/endpoints/registry.js';
import { parseMcp } from '../src/request/json-rpc.js';
import { InputBuilder } from '../src/policy/policy-input.js';
import { loadBundle } from '../src/policy/bundle-loader.js';
import { SHIPPED_BUNDLE } from '../src/config/paths.mjs';
import { WasmEngine } from '../src/policy/wasm-engine.js';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import type { CheckContext } from '../src/decision/context.js';
import { checkRequest, rpc } from '../test/helpers/service.js';
import { loadPostgresParser } from '../src/request/sql-parser.js';

const N = Number(process.argv[2] ?? 100_000);
await loadPostgresParser();
const BUNDLE = process.argv[3] ?? SHIPPED_BUNDLE;
const BASELINE = process.argv[4];
// The rules of examples/arguments/config.yaml.
const rules = [
  { tools: ['read_file'], arguments: { path: { path: { under: ['/docs'] } } } },
  {
    tools: ['http_get'],
    arguments: {
      url: { url: { hosts: ['api.example.com', '*.docs.example.com'], schemes: ['https'], ports: [443] } },
      method: { presence: 'optional', enum: ['GET', 'HEAD'] },
    },
  },
  {
    tools: ['sql'],
    arguments: {
      query: { sql: { dialect: 'postgresql' }, maxLength: 4000 },
      limit: { presence: 'optional', type: 'integer', minimum: 1, maximum: 1000 },
    },
    otherArguments: 'deny',
  },
  // A pattern costs an RE2 compilation on every evaluation in WASM.
  { tools: ['tag'], arguments: { label: { pattern: '[a-z][a-z0-9-]*', maxLength: 32 } } },
];
const endpoints = new EndpointRegistry([
  {
    name: 'files',
    match: { pathPrefix: '/mcp/files' },
    owner: 'alice',
    auth: { apiKey: true, oauth: true, queryParamKeys: false },
    scopes: ['tools:read_file'],
    tools: [],
    data: {},
  },
  {
    name: 'ruled',
    match: { pathPrefix: '/mcp/ruled' },
    owner: 'alice',
    auth: { apiKey: true, oauth: true, queryParamKeys: false },
    scopes: ['tools:read_file'],
    tools: [],
    data: { arguments: rules },
  },
] as never);
const wire = checkRequest({
  path: '/mcp/files',
  body: rpc('tools/call', { name: 'read_file', arguments: { path: '/docs/a.md' } }),
  headers: {
    'x-api-key': 'mcp_secret',
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-06-18',
    'user-agent': 'claude-code/1.0',
  },
}) as never;
const request = toRequest(wire, { maxBodyBytes: 1 << 20, maxHeaderBytes: 65536, maxHeaders: 200 });
const parsed = parseMcp(request.body, request.hasBody, request.headers);
const ctx: CheckContext = {
  request,
  endpoint: endpoints.all[0],
  clientAddress: '10.1.2.3',
  principal: {
    authenticated: true,
    method: 'api_key',
    id: 'alice-key',
    keyId: 'alice-key',
    userId: 'alice',
    roles: [],
    permissions: ['tools:search', 'tools:read_*', 'tools:http_get', 'tools:sql', 'tools:tag'],
    scopes: [],
    keyType: 'private',
  },
  credentialHeaders: ['x-api-key'],
  credentialQueryParams: [],
  mcp: parsed.view,
  parsedBody: parsed.json,
};
const opts = {
  publicBaseUrl: 'https://mcp.example.com',
  keyHeader: 'x-api-key',
  keyQueryParams: ['api_key', 'apikey'],
};
const lean = new InputBuilder(endpoints.all, { ...opts, envoyInput: false });
const full = new InputBuilder(endpoints.all, { ...opts, envoyInput: true });

function time(label: string, fn: () => unknown): number {
  for (let i = 0; i < Math.min(N, 5000); i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) fn();
  const us = Number(process.hrtime.bigint() - t0) / N / 1000;
  process.stdout.write(`${label.padEnd(58)} ${us.toFixed(2)} µs\n`);
  return us;
}

const enc = new TextEncoder();
const a = time('input: core fields (request, endpoint, principal, mcp)', () => lean.build(ctx));
const b = time('input: + opa-envoy-plugin fields (envoyInput: true)', () => full.build(ctx));
process.stdout.write(`${'  => opa-envoy-plugin fields cost'.padEnd(58)} ${(b - a).toFixed(2)} µs\n`);
process.stdout.write(`input size: core ${lean.build(ctx).length} B, with envoy fields ${full.build(ctx).length} B\n`);

const bundle = loadBundle(BUNDLE);
const engine = await WasmEngine.create(bundle, { entrypoint: 'mcp/authz/decision', maxMemoryPages: 1024, data: {} });
const raw = await loadPolicy(bundle.wasm, { initial: 16, maximum: 1024 });
raw.setData({});
const leanObj = JSON.parse(lean.build(ctx));
const fullObj = JSON.parse(full.build(ctx));
time('eval (SDK, object input, core)', () => raw.evaluate(leanObj, 0));
time('eval (pre-serialized ArrayBuffer, core)', () =>
  engine.evaluate(enc.encode(lean.build(ctx)).buffer as ArrayBuffer),
);
time('eval (SDK, object input, with envoy fields)', () => raw.evaluate(fullObj, 0));
time('eval (pre-serialized ArrayBuffer, with envoy fields)', () =>
  engine.evaluate(enc.encode(full.build(ctx)).buffer as ArrayBuffer),
);

// A tools/call without argument rules and with them: input build + evaluation, as the Check does.
function ctxFor(endpoint: number, tool: string, args: Record<string, unknown>): CheckContext {
  const body = rpc('tools/call', { name: tool, arguments: args });
  const r = toRequest(
    checkRequest({
      path: '/mcp/files',
      body,
      headers: { 'x-api-key': 'mcp_secret', 'content-type': 'application/json' },
    }) as never,
    { maxBodyBytes: 1 << 20, maxHeaderBytes: 65536, maxHeaders: 200 },
  );
  const p = parseMcp(r.body, r.hasBody, r.headers);
  return { ...ctx, request: r, endpoint: endpoints.all[endpoint], mcp: p.view, parsedBody: p.json };
}
const calls: [string, CheckContext][] = [
  ['read_file, endpoint without argument rules', ctxFor(0, 'read_file', { path: '/docs/a.md' })],
  ['read_file, path under /docs (allowed)', ctxFor(1, 'read_file', { path: '/docs/guide/intro.md' })],
  ['read_file, path with .. (denied)', ctxFor(1, 'read_file', { path: '/docs/../etc/passwd' })],
  [
    'http_get, URL host in a list (allowed)',
    ctxFor(1, 'http_get', { url: 'https://api.example.com/v1/items?q=1', method: 'GET' }),
  ],
  [
    'http_get, URL with user information (denied)',
    ctxFor(1, 'http_get', { url: 'https://api.example.com@evil.example/' }),
  ],
  [
    'sql, SELECT with a limit (allowed)',
    ctxFor(1, 'sql', { query: 'SELECT id, title FROM posts WHERE author = 7', limit: 50 }),
  ],
  ['sql, two statements (denied)', ctxFor(1, 'sql', { query: 'SELECT 1; DROP TABLE t' })],
  ['tag, label matching a pattern (allowed)', ctxFor(1, 'tag', { label: 'nightly-build' })],
];
const baseline =
  BASELINE === undefined
    ? undefined
    : await WasmEngine.create(loadBundle(BASELINE), {
        entrypoint: 'mcp/authz/decision',
        maxMemoryPages: 1024,
        data: {},
      });
const allowOf = (e: WasmEngine, c: CheckContext) =>
  (e.evaluate(lean.build(c)) as { resultSet: { result: { allow: boolean } }[] }).resultSet?.[0]?.result.allow
    ? 'allow'
    : 'deny';
const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
function perCall(e: WasmEngine, c: CheckContext, n: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) e.evaluate(lean.build(c));
  return Number(process.hrtime.bigint() - t0) / n / 1000;
}
if (baseline)
  process.stdout.write(
    `\ninput + eval per tools/call, µs (median of 15 interleaved rounds): this bundle vs ${BASELINE}\n`,
  );
for (const [label, c] of calls) {
  if (!baseline) {
    time(`input + eval: ${label} → ${allowOf(engine, c)}`, () => engine.evaluate(lean.build(c)));
    continue;
  }
  const rounds = 15;
  const per = Math.max(200, Math.floor(N / rounds));
  perCall(engine, c, 1000);
  perCall(baseline, c, 1000);
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < rounds; r++) {
    a.push(perCall(engine, c, per));
    b.push(perCall(baseline, c, per));
  }
  process.stdout.write(
    `${label.padEnd(48)} ${median(a).toFixed(1).padStart(7)} (${allowOf(engine, c)})  baseline ${median(b).toFixed(1).padStart(7)} (${allowOf(baseline, c)})\n`,
  );
}
