// The shared decision cases (policies/cases/*.json) against the compiled WASM, through the
// real gRPC server. scripts/policy-test.mjs runs the same cases against the Rego with
// `opa test`; both must agree.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Principal } from '../src/contracts/principal.js';
import { checkRequest, deniedBody, deniedStatus, headerValue, startTestService, type TestService } from './helpers/service.js';
import { PRINCIPAL_HEADER, withPrincipals } from './helpers/policy.js';

interface Case {
  name: string;
  endpoint: Record<string, any>;
  principal: Principal;
  calls: { method: string; kind: string; name?: string; uri?: string; arguments?: Record<string, unknown> }[];
  expect: { allow: boolean; status?: number; error?: string; error_description?: string; headers?: Record<string, string> };
}

const dir = join(import.meta.dirname, '..', 'policies', 'cases');
const cases: Case[] = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .flatMap((f) => Object.values(JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, Case[]>).flat());

let svc: TestService;

test.before(async () => {
  const endpoints = new Map<string, Record<string, unknown>>();
  for (const c of cases) {
    const { resource_metadata: _rm, ...config } = c.endpoint;
    endpoints.set(c.endpoint.name, config);
  }
  const principals = Object.fromEntries(cases.map((c, i) => [String(i), c.principal]));
  svc = await startTestService(
    {
      publicBaseUrl: 'https://mcp.example.com',
      oauth: { issuers: [{ issuer: 'https://idp.example.com', audiences: ['https://mcp.example.com'] }] },
      endpoints: [...endpoints.values()],
    },
    { buildRuntime: withPrincipals(principals) },
  );
});
test.after.always(async () => svc?.stop());

test('the shared cases cover ownership, tools, globs and arguments', (t) => {
  t.true(cases.length >= 40);
  t.true(cases.filter((c) => c.calls.some((call) => call.arguments !== undefined)).length >= 100);
});

cases.forEach((c, i) => {
  test(`parity: ${c.name}`, async (t) => {
    const body = c.calls.map((call, n) => {
      const params =
        call.uri !== undefined ? { uri: call.uri } : call.name !== undefined ? { name: call.name, ...(call.arguments !== undefined ? { arguments: call.arguments } : {}) } : undefined;
      return { jsonrpc: '2.0', ...(call.kind === 'notification' ? {} : { id: n + 1 }), method: call.method, ...(params ? { params } : {}) };
    });
    const sample =
      body.length === 0
        ? { method: 'GET', path: c.endpoint.match.pathPrefix, headers: { [PRINCIPAL_HEADER]: String(i) } }
        : { path: c.endpoint.match.pathPrefix, body: JSON.stringify(body.length === 1 ? body[0] : body), headers: { [PRINCIPAL_HEADER]: String(i) } };
    const res = await svc.check(checkRequest(sample));
    if (c.expect.allow) {
      t.truthy(res.ok_response, `denied: ${res.denied_response?.body}`);
      return;
    }
    t.falsy(res.ok_response);
    t.is(deniedStatus(res), c.expect.status);
    const got = deniedBody(res);
    t.is(got.error, c.expect.error);
    if (c.expect.error_description !== undefined) t.is(got.error_description, c.expect.error_description);
    for (const [name, value] of Object.entries(c.expect.headers ?? {})) {
      t.is(headerValue(res.denied_response!.headers, name.toLowerCase()), value);
    }
    if (!c.expect.headers) t.is(headerValue(res.denied_response!.headers, 'www-authenticate'), undefined);
  });
});
