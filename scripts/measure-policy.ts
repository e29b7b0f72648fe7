// Measures the policy phase's per-Check costs: building the input (with and without the
// opa-envoy-plugin fields) and evaluating the shipped policy (object vs pre-serialized input).
//   node --import tsx scripts/measure-policy.ts [iterations]
import { toRequest } from '../src/envoy/to-request.js';
import { EndpointRegistry } from '../src/endpoints/registry.js';
import { parseMcp } from '../src/request/json-rpc.js';
import { InputBuilder } from '../src/policy/policy-input.js';
import { loadBundle } from '../src/policy/bundle-loader.js';
import { SHIPPED_BUNDLE } from '../src/policy/rego-compiler.js';
import { WasmEngine } from '../src/policy/wasm-engine.js';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import type { CheckContext } from '../src/check/context.js';
import { checkRequest, rpc } from '../test/helpers/service.js';

const N = Number(process.argv[2] ?? 100_000);
const endpoints = new EndpointRegistry([
  { name: 'files', match: { pathPrefix: '/mcp/files' }, owner: 'alice', auth: { apiKey: true, oauth: true, queryParamKeys: false }, scopes: ['tools:read_file'], data: {} },
]);
const wire = checkRequest({
  path: '/mcp/files',
  body: rpc('tools/call', { name: 'read_file', arguments: { path: '/docs/a.md' } }),
  headers: { 'x-api-key': 'mcp_secret', 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18', 'user-agent': 'claude-code/1.0' },
}) as never;
const request = toRequest(wire, { maxBodyBytes: 1 << 20, maxHeaderBytes: 65536, maxHeaders: 200 });
const parsed = parseMcp(request.body, request.hasBody, request.headers);
const ctx: CheckContext = {
  request, endpoint: endpoints.all[0], clientAddress: '10.1.2.3',
  principal: { authenticated: true, method: 'api_key', id: 'alice-key', keyId: 'alice-key', userId: 'alice', roles: [], permissions: ['tools:search', 'tools:read_*'], scopes: [], keyType: 'private' },
  credentialHeaders: ['x-api-key'], credentialQueryParams: [], mcp: parsed.view, parsedBody: parsed.json,
};
const opts = { publicBaseUrl: 'https://mcp.example.com', keyHeader: 'x-api-key', keyQueryParams: ['api_key', 'apikey'] };
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

const bundle = loadBundle(SHIPPED_BUNDLE);
const engine = await WasmEngine.create(bundle, { entrypoint: 'mcp/authz/decision', maxMemoryPages: 1024, data: {} });
const raw = await loadPolicy(bundle.wasm, { initial: 16, maximum: 1024 });
raw.setData({});
const leanObj = JSON.parse(lean.build(ctx));
const fullObj = JSON.parse(full.build(ctx));
time('eval (SDK, object input, core)', () => raw.evaluate(leanObj, 0));
time('eval (pre-serialized ArrayBuffer, core)', () => engine.evaluate(enc.encode(lean.build(ctx)).buffer as ArrayBuffer));
time('eval (SDK, object input, with envoy fields)', () => raw.evaluate(fullObj, 0));
time('eval (pre-serialized ArrayBuffer, with envoy fields)', () => engine.evaluate(enc.encode(full.build(ctx)).buffer as ArrayBuffer));
