// The shared decision cases (policies/cases/*.json) against the compiled WASM, through the
// real gRPC server. scripts/policy-test.mjs runs the same cases against the Rego with
// `opa test`; both must agree. And visible ⇔ callable: for every case, the items its calls
// stand for, listed through the ext_proc service, are shown exactly when Check allows the
// call alone, or refuses it only for its arguments (the listed call carries none).
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Principal } from '../src/contracts/principal.js';
import { processExchange, requestBody, requestHeaders, responseBody, responseHeaders } from './helpers/ext-proc.js';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  headerValue,
  startTestService,
  type TestService,
} from './helpers/service.js';
import { PRINCIPAL_HEADER, withPrincipals } from './helpers/policy.js';

interface Call {
  method: string;
  kind: string;
  name?: string;
  uri?: string;
  arguments?: Record<string, unknown>;
  ref?: { type: string; name?: string; uri?: string };
  resourceSubscriptions?: string[];
  unknownTarget?: true;
}

/** The params of the JSON-RPC message that the service reads as `call`. */
function paramsOf(call: Call): Record<string, unknown> | undefined {
  if (call.ref !== undefined) return { ref: call.ref, argument: { name: 'a', value: '' } };
  if (call.resourceSubscriptions !== undefined)
    return { notifications: { resourceSubscriptions: call.resourceSubscriptions } };
  if (call.uri !== undefined) return { uri: call.uri };
  if (call.name !== undefined)
    return { name: call.name, ...(call.arguments !== undefined ? { arguments: call.arguments } : {}) };
  return undefined;
}

interface Case {
  name: string;
  endpoint: Record<string, any>;
  principal: Principal;
  calls: Call[];
  expect: {
    allow: boolean;
    status?: number;
    error?: string;
    error_description?: string;
    headers?: Record<string, string>;
  };
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
      const params = paramsOf(call);
      return {
        jsonrpc: '2.0',
        ...(call.kind === 'notification' ? {} : { id: n + 1 }),
        method: call.method,
        ...(params ? { params } : {}),
      };
    });
    const sample =
      body.length === 0
        ? { method: 'GET', path: c.endpoint.match.pathPrefix, headers: { [PRINCIPAL_HEADER]: String(i) } }
        : {
            path: c.endpoint.match.pathPrefix,
            body: JSON.stringify(body.length === 1 ? body[0] : body),
            headers: { [PRINCIPAL_HEADER]: String(i) },
          };
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

/**
 * The list method, result member and item of the item a call names: the tool, prompt or
 * resource it calls, reads or subscribes to, the prompt or template whose argument it completes.
 */
function listedItem(call: Call): { method: string; array: string; item: Record<string, string> } | undefined {
  if (call.method === 'tools/call' && typeof call.name === 'string')
    return { method: 'tools/list', array: 'tools', item: { name: call.name } };
  if (call.method === 'prompts/get' && typeof call.name === 'string')
    return { method: 'prompts/list', array: 'prompts', item: { name: call.name } };
  if (/^resources\/(read|subscribe|unsubscribe)$/.test(call.method) && typeof call.uri === 'string')
    return { method: 'resources/list', array: 'resources', item: { uri: call.uri, name: call.uri } };
  if (call.method === 'subscriptions/listen' && call.resourceSubscriptions?.length === 1)
    return { method: 'resources/list', array: 'resources', item: { uri: call.resourceSubscriptions[0]!, name: 'r' } };
  if (call.method === 'completion/complete' && call.ref?.type === 'ref/prompt' && typeof call.ref.name === 'string')
    return { method: 'prompts/list', array: 'prompts', item: { name: call.ref.name } };
  if (call.method === 'completion/complete' && call.ref?.type === 'ref/resource' && typeof call.ref.uri === 'string') {
    return {
      method: 'resources/templates/list',
      array: 'resourceTemplates',
      item: { uriTemplate: call.ref.uri, name: 't' },
    };
  }
  return undefined;
}

const listable = cases
  .map((c, i) => ({ c, i, items: c.calls.map(listedItem).filter((x) => x !== undefined) }))
  .filter((x) => x.items.length > 0);

test('the shared cases list items both shown and hidden', (t) => {
  t.true(listable.length >= 20);
});

listable.forEach(({ c, i, items }) => {
  test(`visible ⇔ callable: ${c.name}`, async (t) => {
    const methods = [...new Set(items.map((x) => x.method))];
    const body = JSON.stringify(methods.map((method, n) => ({ jsonrpc: '2.0', id: n + 1, method })));
    const headers: [string, string][] = [[PRINCIPAL_HEADER, String(i)]];
    const upstream = methods.map((method, n) => {
      const mine = items.filter((x) => x.method === method);
      return { jsonrpc: '2.0', id: n + 1, result: { [mine[0]!.array]: mine.map((x) => x.item) } };
    });
    const { answers } = await processExchange(`127.0.0.1:${svc.grpcPort}`, [
      requestHeaders({ path: c.endpoint.match.pathPrefix, headers, body }),
      requestBody(body),
      responseHeaders(200, [['content-type', 'application/json']]),
      responseBody(JSON.stringify(upstream), true),
    ]);
    const listDenied = answers.some((a) => a.immediate_response);
    const out = listDenied
      ? []
      : (JSON.parse(answers[3]!.response_body.response.body_mutation.body.toString('utf8')) as {
          id: number;
          result: Record<string, Record<string, string>[]>;
        }[]);
    for (const call of c.calls) {
      const listed = listedItem(call);
      if (!listed) continue;
      const shown = out.some((r) =>
        (r.result[listed.array] ?? []).some((item) => JSON.stringify(item) === JSON.stringify(listed.item)),
      );
      const { arguments: _args, ...bare } = call;
      const single = JSON.stringify({ jsonrpc: '2.0', id: 1, method: call.method, params: paramsOf(bare) });
      const res = await svc.check(
        checkRequest({ path: c.endpoint.match.pathPrefix, body: single, headers: { [PRINCIPAL_HEADER]: String(i) } }),
      );
      const callable = res.ok_response !== undefined || deniedBody(res)?.error === 'argument_denied';
      t.is(shown, callable, `${call.method} ${JSON.stringify(listed.item)}: listed ${shown}, callable ${callable}`);
    }
  });
});
