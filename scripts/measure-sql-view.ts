// Measures what an SQL argument costs a tools/call: the SQL view alone, and the policy input
// built and evaluated for a call on an endpoint whose rule reads the argument, beside a call
// on an endpoint without rules. Rounds alternate between the cases (median of each), so a
// loaded machine slows all alike.
//   node --import tsx scripts/measure-sql-view.ts [calls-per-round] [rounds]
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SHIPPED_BUNDLE } from '../src/config/paths.mjs';
import { EndpointRegistry } from '../src/endpoints/registry.js';
import { toRequest } from '../src/envoy/to-request.js';
import { loadBundle } from '../src/policy/bundle-loader.js';
import { InputBuilder } from '../src/policy/policy-input.js';
import { WasmEngine } from '../src/policy/wasm-engine.js';
import { parseMcp } from '../src/request/json-rpc.js';
import { sqlView } from '../src/request/sql-view.js';
import type { CheckContext } from '../src/decision/context.js';
import { checkRequest, rpc } from '../test/helpers/service.js';

const PER = Number(process.argv[2] ?? 2000);
const ROUNDS = Number(process.argv[3] ?? 15);
const parser = join(import.meta.dirname, '..', 'src', 'request', 'sql-parser.ts');
const sqlRule: unknown = existsSync(parser) ? { dialect: 'postgresql' } : 'select-only';
if (existsSync(parser)) await (await import('../src/request/sql-parser.js' as string)).loadPostgresParser();

const QUERIES = {
  short: 'SELECT id, title FROM posts WHERE author = 7',
  join: "SELECT u.id, count(*) FROM users u JOIN orders o ON o.user_id = u.id WHERE o.created_at > now() - interval '7 days' GROUP BY u.id ORDER BY 2 DESC LIMIT 50",
};
const endpoints = new EndpointRegistry([
  {
    name: 'plain',
    match: { pathPrefix: '/mcp/plain' },
    auth: { apiKey: true, oauth: false, queryParamKeys: false },
    scopes: [],
    tools: [],
    data: {},
  },
  {
    name: 'sql',
    match: { pathPrefix: '/mcp/sql' },
    auth: { apiKey: true, oauth: false, queryParamKeys: false },
    scopes: [],
    tools: [],
    data: {
      arguments: [
        {
          tools: ['sql'],
          arguments: {
            query: { sql: sqlRule },
            limit: { presence: 'optional', type: 'integer', minimum: 1, maximum: 1000 },
          },
        },
      ],
    },
  },
] as never);
const builder = new InputBuilder(endpoints.all, {
  envoyInput: false,
  publicBaseUrl: 'https://mcp.example.com',
  keyHeader: 'x-api-key',
  keyQueryParams: [],
});
const engine = await WasmEngine.create(loadBundle(SHIPPED_BUNDLE), {
  entrypoint: 'mcp/authz/decision',
  maxMemoryPages: 1024,
  data: {},
});
const principal = {
  authenticated: true,
  method: 'api_key',
  id: 'k',
  keyId: 'k',
  userId: 'u',
  roles: [],
  permissions: ['*'],
  scopes: [],
  keyType: 'private',
} as const;

function ctxFor(endpoint: number, query: string): CheckContext {
  const r = toRequest(
    checkRequest({
      path: endpoint === 0 ? '/mcp/plain' : '/mcp/sql',
      body: rpc('tools/call', { name: 'sql', arguments: { query, limit: 50 } }),
      headers: { 'x-api-key': 'mcp_x', 'content-type': 'application/json' },
    }) as never,
    { maxBodyBytes: 1 << 20, maxHeaderBytes: 65536, maxHeaders: 200 },
  );
  const p = parseMcp(r.body, r.hasBody, r.headers);
  return {
    request: r,
    endpoint: endpoints.all[endpoint],
    clientAddress: '10.0.0.1',
    principal,
    credentialHeaders: ['x-api-key'],
    credentialQueryParams: [],
    mcp: p.view,
    parsedBody: p.json,
  } as unknown as CheckContext;
}
const allowed = (c: CheckContext) =>
  (engine.evaluate(builder.build(c, false)) as { resultSet: { result: { allow: boolean } }[] }).resultSet[0]!.result
    .allow
    ? 'allow'
    : 'deny';

const cases: [string, () => unknown][] = [];
for (const [name, q] of Object.entries(QUERIES)) {
  const plain = ctxFor(0, q);
  const ruled = ctxFor(1, q);
  cases.push([`view only, ${name}`, () => sqlView(q)]);
  cases.push([
    `input + eval, no rule, ${name} (${allowed(plain)})`,
    () => engine.evaluate(builder.build(plain, false)),
  ]);
  cases.push([
    `input + eval, sql rule, ${name} (${allowed(ruled)})`,
    () => engine.evaluate(builder.build(ruled, false)),
  ]);
}
const samples = cases.map(() => [] as number[]);
for (const [, fn] of cases) for (let i = 0; i < PER; i++) fn();
for (let r = 0; r < ROUNDS; r++) {
  cases.forEach(([, fn], i) => {
    const t0 = process.hrtime.bigint();
    for (let n = 0; n < PER; n++) fn();
    samples[i]!.push(Number(process.hrtime.bigint() - t0) / PER / 1000);
  });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
process.stdout.write(`sql: ${JSON.stringify(sqlRule)}, ${PER} calls × ${ROUNDS} rounds, median µs per call\n`);
cases.forEach(([label], i) =>
  process.stdout.write(`${label.padEnd(48)} ${median(samples[i]!).toFixed(1).padStart(8)}\n`),
);
