// policy.rawCredentials: OPA's Envoy tutorial policy verifies the JWT itself, from the
// authorization header. Served by the real service over real gRPC with the option on, it
// allows and denies exactly as `opa eval` decides on the input the policy evaluated; with the
// option off it sees [REDACTED] and denies everything. Whatever the option, the token
// appears in nothing the service writes: the service and decision logs, /metrics, the policy
// input and result `check` prints, `check --explain`'s trace, a refused decision's answer.
import test from 'ava';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { stringify } from 'yaml';
import type { CheckTrace } from '../src/decision/context.js';
import { fanOut } from '../src/pipeline/observers.js';
import { buildRuntime } from '../src/pipeline/build-runtime.js';
import { runCli } from './helpers/cli.js';
import { opaEval } from './helpers/opa-differential.js';
import { checkRequest, startTestService, type CheckResponse, type TestService } from './helpers/service.js';

const TUTORIAL = join(import.meta.dirname, 'fixtures', 'opa-envoy-tutorial', 'standalone-envoy.rego');
const NOW_S = Math.floor(Date.now() / 1000);
const b64 = (s: string) => Buffer.from(s).toString('base64url');

function hs256(claims: Record<string, unknown>, secret = 'secret'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(secret));
}

/** A folder holding the tutorial policy, unchanged. */
function tutorialDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-tutorial-'));
  copyFileSync(TUTORIAL, join(dir, 'policy.rego'));
  return dir;
}

function serviceConfig(rego: string, rawCredentials: boolean) {
  return {
    policy: { rego, entrypoint: 'envoy/authz/allow', rawCredentials },
    // The policy authenticates: mcp-authz asks for no credential of its own.
    endpoints: [{ name: 'people', match: { pathPrefix: '/people' }, auth: { apiKey: false, oauth: false } }],
  };
}

interface Served {
  svc: TestService;
  lines: string[];
  traces: CheckTrace[];
}

async function serve(rawCredentials: boolean, rego = tutorialDir()): Promise<Served> {
  const lines: string[] = [];
  const traces: CheckTrace[] = [];
  const logger = pino({ level: 'trace' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
  const svc = await startTestService(serviceConfig(rego, rawCredentials), {
    logger,
    buildRuntime: async (l, lg, m) => {
      const rt = await buildRuntime(l, lg, m);
      rt.observer = fanOut([rt.observer, { decided: (t) => void traces.push(t) }]);
      return rt;
    },
  });
  return { svc, lines, traces };
}

interface Case {
  method: string;
  path: string;
  token?: string;
  body?: string;
}

async function cases(): Promise<Case[]> {
  const tokens = [
    await hs256({ role: 'guest', sub: b64('alice'), nbf: NOW_S - 3600, exp: NOW_S + 3600 }),
    await hs256({ role: 'admin', sub: b64('bob'), nbf: NOW_S - 3600, exp: NOW_S + 3600 }),
    await hs256({ role: 'admin', sub: b64('bob'), nbf: NOW_S - 7200, exp: NOW_S - 3600 }),
    await hs256({ role: 'admin', sub: b64('bob'), nbf: NOW_S + 3600, exp: NOW_S + 7200 }),
    await hs256({ role: 'admin', sub: b64('bob'), nbf: NOW_S - 3600, exp: NOW_S + 3600 }, 'not-the-secret'),
  ];
  const out: Case[] = [];
  for (const token of tokens) {
    out.push({ method: 'GET', path: '/people', token });
    out.push({ method: 'GET', path: '/people/1', token });
    // mcp-authz reads a POST body as JSON-RPC: the tutorial's body, as a JSON-RPC request.
    out.push({ method: 'POST', path: '/people', token, body: addPerson('Charlie') });
    out.push({ method: 'POST', path: '/people', token, body: addPerson('Bob') });
    out.push({ method: 'DELETE', path: '/people', token });
  }
  out.push({ method: 'GET', path: '/people' });
  return out;
}

const addPerson = (firstname: string) => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'people/add', firstname });

const request = (c: Case) =>
  checkRequest({
    method: c.method,
    path: c.path,
    ...(c.body !== undefined ? { body: c.body, headers: { 'content-type': 'application/json' } } : {}),
    ...(c.token
      ? { headers: { authorization: `Bearer ${c.token}`, ...(c.body ? { 'content-type': 'application/json' } : {}) } }
      : {}),
  });

const allowed = (r: CheckResponse) => r.ok_response !== undefined && (r.status?.code ?? 0) === 0;

test("OPA's Envoy tutorial policy served over gRPC with policy.rawCredentials allows and denies as opa eval on the input it evaluated", async (t) => {
  const rego = tutorialDir();
  const { svc, traces } = await serve(true, rego);
  t.teardown(() => svc.stop());
  const all = await cases();
  const got: boolean[] = [];
  for (const c of all) got.push(allowed(await svc.check(request(c))));

  t.is(traces.length, all.length);
  const want: boolean[] = [];
  for (const [i, trace] of traces.entries()) {
    const credentials = trace.policy?.credentials;
    if (all[i]!.token) t.truthy(credentials, `case ${i}: the policy evaluated the raw header`);
    const input = JSON.parse(credentials?.input() ?? trace.policy!.input) as Record<string, unknown>;
    // Read with the policy's own clock: opa eval's time.now_ns is the moment it runs, as the service's was.
    want.push((await opaEval(rego, 'envoy/authz/allow', input, BigInt(Date.now()) * 1_000_000n)) === true);
  }
  t.deepEqual(got, want);
  // The cases exercise both answers, and the tutorial's own rules: a valid guest reads /people,
  // a valid admin adds Charlie but not Bob (the token's subject), expired, early and forged tokens never pass.
  t.deepEqual(
    all.flatMap((c, i) => (got[i] ? [`${c.method} ${c.path} ${c.body ?? ''} #${Math.floor(i / 5)}`] : [])),
    ['GET /people  #0', 'GET /people  #1', `POST /people ${addPerson('Charlie')} #1`],
  );
});

test('without policy.rawCredentials the tutorial policy sees [REDACTED] and denies every request', async (t) => {
  const { svc, traces } = await serve(false);
  t.teardown(() => svc.stop());
  for (const c of await cases()) t.false(allowed(await svc.check(request(c))), `${c.method} ${c.path}`);
  const input = JSON.parse(traces[0]!.policy!.input) as {
    attributes: { request: { http: { headers: Record<string, string> } } };
  };
  t.is(input.attributes.request.http.headers.authorization, '[REDACTED]');
  t.is(traces[0]!.policy!.credentials, undefined);
});

/** Every place a token could leak from, as text. */
function findToken(token: string, texts: Record<string, string>): string[] {
  const [, payload, signature] = token.split('.');
  return Object.entries(texts).flatMap(([where, text]) =>
    [token, `${payload}.${signature}`, signature!, payload!]
      .filter((s) => text.includes(s))
      .map(
        (s) => `${where} contains ${s === token ? 'the token' : s === signature ? 'its signature' : 'a part of it'}`,
      ),
  );
}

test('with policy.rawCredentials the token appears in no log line, metric, recorded input or result', async (t) => {
  const { svc, lines, traces } = await serve(true);
  t.teardown(() => svc.stop());
  const token = await hs256({ role: 'admin', sub: b64('bob'), nbf: NOW_S - 3600, exp: NOW_S + 3600 });
  t.true(allowed(await svc.check(request({ method: 'GET', path: '/people', token }))));
  t.false(allowed(await svc.check(request({ method: 'DELETE', path: '/people', token }))));
  const metrics = await svc.http('/metrics');
  const recorded = traces.map(
    (tr) =>
      JSON.stringify({ ...tr, durationNs: undefined, span: undefined, ctx: { ...tr.ctx, request: undefined } }) +
      tr.policy!.input +
      JSON.stringify(tr.policy!.result),
  );
  t.true(
    lines.some((l) => l.includes('"log":"decision"')),
    'the decision log wrote its lines',
  );
  t.deepEqual(findToken(token, { logs: lines.join(''), metrics: metrics.text, records: recorded.join('') }), []);
  t.true(traces[0]!.policy!.input.includes('"authorization":"[REDACTED]"'));
});

test('a decision that would send a raw credential on is refused (503 policy_error), and the token stays out of the answer and the logs', async (t) => {
  const rego = mkdtempSync(join(tmpdir(), 'mcp-authz-echo-'));
  // An opa-envoy-plugin style policy that forwards the caller's header: token passthrough.
  writeFileSync(
    join(rego, 'policy.rego'),
    'package envoy.authz\n\nallow := {"allowed": true, "headers": {"x-forwarded-token": input.attributes.request.http.headers.authorization}}\n',
  );
  const { svc, lines, traces } = await serve(true, rego);
  t.teardown(() => svc.stop());
  const token = await hs256({ sub: 'x', exp: NOW_S + 3600 });
  const res = await svc.check(request({ method: 'GET', path: '/people', token }));
  t.false(allowed(res));
  t.is(
    Number(res.denied_response?.status?.code === 'ServiceUnavailable' ? 503 : res.denied_response?.status?.code),
    503,
  );
  t.regex(res.denied_response!.body!, /policy_error/);
  t.regex(res.denied_response!.body!, /carries a credential of the request/);
  t.deepEqual(
    findToken(token, {
      answer: JSON.stringify(res),
      logs: lines.join(''),
      result: JSON.stringify(traces[0]!.policy!.result),
    }),
    [],
  );
  t.like(traces[0]!.policy!.result as object, { headers: { 'x-forwarded-token': '[REDACTED]' } });
});

async function explainRun(rego: string, token: string) {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-explain-raw-'));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, stringify(serviceConfig(rego, true)));
  const run = await runCli([
    'check',
    '--config',
    config,
    '--method',
    'GET',
    '--path',
    '/people',
    '-H',
    `authorization: Bearer ${token}`,
    '--explain',
  ]);
  const out = JSON.parse(run.stdout || 'null') as {
    decision: string;
    policy: {
      input: { attributes: { request: { http: { headers: Record<string, string> } } } };
      explain: { agreesWithService: boolean; result: unknown; trace: string[] };
    };
  } | null;
  return { run, out };
}

test('check --explain with policy.rawCredentials explains the decision the service made, on the input the policy evaluated', async (t) => {
  const token = await hs256({ role: 'guest', sub: b64('alice'), nbf: NOW_S - 3600, exp: NOW_S + 3600 });
  const { run, out } = await explainRun(tutorialDir(), token);
  t.is(run.code, 0, run.stderr);
  t.is(out!.decision, 'allow');
  t.true(out!.policy.explain.agreesWithService, 'opa eval on the input the policy evaluated agrees with the service');
  t.is(out!.policy.explain.result, true);
  t.true(
    out!.policy.explain.trace.some((l) => l.includes('io.jwt.decode_verify')),
    'the trace reaches the token check',
  );
  t.is(out!.policy.input.attributes.request.http.headers.authorization, '[REDACTED]');
  t.deepEqual(findToken(token, { stdout: run.stdout, stderr: run.stderr }), []);
});

test("check --explain replaces the token where opa's trace shows it (a trace() note)", async (t) => {
  const rego = mkdtempSync(join(tmpdir(), 'mcp-authz-note-'));
  writeFileSync(
    join(rego, 'policy.rego'),
    [
      'package envoy.authz',
      '',
      'import input.attributes.request.http as http_request',
      '',
      'default allow := false',
      '',
      'allow if {',
      '\ttrace(sprintf("checking %v", [http_request.headers.authorization]))',
      '\t[_, encoded] := split(http_request.headers.authorization, " ")',
      '\ttrace(sprintf("segments %v", [split(encoded, ".")]))',
      '\t[valid, _, _] := io.jwt.decode_verify(encoded, {"secret": "secret"})',
      '\tvalid',
      '}',
      '',
    ].join('\n'),
  );
  const token = await hs256({ sub: 'x', exp: NOW_S + 3600 });
  const { run, out } = await explainRun(rego, token);
  t.is(run.code, 0, run.stderr);
  t.is(out!.decision, 'allow');
  const notes = out!.policy.explain.trace.filter((l) => l.includes('Note'));
  t.true(
    notes.some((l) => l.includes('Note "checking [REDACTED]"')),
    notes.join('\n'),
  );
  t.true(
    notes.some((l) => l.includes('Note "segments ["[REDACTED]", "[REDACTED]", "[REDACTED]"]"')),
    notes.join('\n'),
  );
  t.deepEqual(findToken(token, { stdout: run.stdout, stderr: run.stderr }), []);
});
