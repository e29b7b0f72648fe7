// Bundles from a bundle service, against the real `opa` as the reference agent: one bundle
// server on loopback serves OPA (`opa run --server` with OPA's own bundle config) and
// mcp-authz; both must activate the same revisions, and refuse the same tampered, unsigned
// and wrongly signed bundles, keeping the last good one. Bundles are built and signed by
// `opa build --bundle --signing-key`. The faults a fleet meets — the server down at start
// and later, slow, answering garbage or a huge body — each keep a verified policy or none.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { opaBinary } from '../src/config/paths.mjs';
import { ConfigError, validateConfig } from '../src/config/load.js';
import { BundleRefused, canonicalJson, verificationKeys, verifyBundleFiles } from '../src/policy/bundle-signature.js';
import { BundleServer, buildPolicyBundle, bundleFiles, packBundle } from './helpers/bundle-server.js';
import { waitFor } from './helpers/wait.js';
import { sample } from './helpers/prometheus.js';
import { checkRequest, rpc, startTestService, type TestService } from './helpers/service.js';
import { startServe } from './helpers/subprocess-service.js';
import { testPki } from './helpers/x509.js';

const BUNDLE = 'authz';

/** Polls `cond` until it holds (test/helpers/wait.ts), in this file's argument order. */
const until = (cond: () => Promise<boolean> | boolean, what: string, deadlineMs = 15_000) =>
  waitFor(what, cond, deadlineMs);

function keyPair(dir: string, name: string): { privateKey: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const file = join(dir, `${name}.pem`);
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return { privateKey: file, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** The management sections both agents get, in OPA's key names. */
function management(server: BundleServer, agent: string, publicPem: string, extra: { tokenFile?: string } = {}) {
  return {
    services: {
      bs: {
        url: server.url(agent),
        ...(extra.tokenFile ? { credentials: { bearer: { token_path: extra.tokenFile } } } : {}),
      },
    },
    bundles: {
      [BUNDLE]: {
        service: 'bs',
        resource: `bundles/${BUNDLE}`,
        polling: { min_delay_seconds: 1, max_delay_seconds: 2, long_polling_timeout_seconds: 20 },
        signing: { keyid: 'global' },
      },
    },
    keys: { global: { algorithm: 'RS256', key: publicPem } },
    status: { service: 'bs' },
  };
}

interface Opa {
  proc: ChildProcess;
  socket: string;
  stop(): Promise<void>;
}

async function startOpa(config: Record<string, unknown>): Promise<Opa> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-opa-'));
  writeFileSync(join(dir, 'config.yaml'), stringify(config));
  const socket = join(dir, 'opa.sock');
  const proc = spawn(
    opaBinary(),
    [
      'run',
      '--server',
      '--addr',
      `unix://${socket}`,
      '--config-file',
      join(dir, 'config.yaml'),
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    proc,
    socket,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
      void stderr;
    },
  };
}

/** POST /v1/data/<path> to OPA over its unix socket. */
function opaQuery(opa: Opa, path: string, input: unknown): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ input });
    const r = request(
      {
        socketPath: opa.socket,
        path: `/v1/data/${path}`,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(JSON.parse(text) as Record<string, any>)
            : reject(new Error(`opa answered ${res.statusCode}: ${text}`)),
        );
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

function capture(): { logger: pino.Logger; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c)) as Record<string, any>), cb()) }),
  );
  return { logger, lines };
}

const ENDPOINTS = [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }];

async function allows(svc: TestService, tool: string): Promise<boolean> {
  return Boolean(
    (await svc.check(checkRequest({ path: '/mcp/open', body: rpc('tools/call', { name: tool }) }))).ok_response,
  );
}

/** The latest status report an agent sent, for the bundle. */
function lastStatus(server: BundleServer, agent: string): Record<string, any> | undefined {
  const list = server.statuses.get(agent) ?? [];
  return list[list.length - 1]?.bundles?.[BUNDLE];
}

test('canonical JSON for signatures keeps number literals, sorts keys by UTF-8 bytes and escapes U+2028 like Go', (t) => {
  // UTF-16 order would put U+1F600 (a surrogate pair) before U+FFFF; Go's byte order puts it after.
  t.is(
    canonicalJson('{ "b": [1.0, 2e3], "a": "x\u2028", "\uffff": 1, "\ud83d\ude00": 2 }'),
    '{"a":"x\\u2028","b":[1.0,2e3],"\uffff":1,"\ud83d\ude00":2}',
  );
  t.is(canonicalJson('{"a":1,"a":2}'), '{"a":2}');
  t.throws(() => canonicalJson('{"a":1,}'));
  t.throws(() => canonicalJson('[1] x'));
});

test('OPA and mcp-authz, polling one bundle server, activate the same revisions and refuse the same tampered, unsigned and wrongly signed bundles', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-bundles-'));
  const good = keyPair(dir, 'good');
  const other = keyPair(dir, 'other');
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 's3cr3t-bundle-token\n');
  const server = new BundleServer();
  await server.start();
  t.teardown(() => server.stop());

  const r1 = buildPolicyBundle({ revision: 'r1', allowedTool: 'alpha', signingKey: good.privateKey });
  server.publish(r1);

  const opa = await startOpa(management(server, 'opa', good.publicPem));
  t.teardown(() => opa.stop());
  const { logger, lines } = capture();
  const refusals: string[] = [];
  const svc = await startTestService(
    { ...management(server, 'mcp', good.publicPem, { tokenFile }), endpoints: ENDPOINTS },
    { logger, runtime: { events: { bundleRefused: (_b, reason) => refusals.push(reason) } } },
  );
  t.teardown(() => svc.stop());

  await until(() => lastStatus(server, 'opa')?.active_revision === 'r1', 'OPA activating r1', 60_000);
  await until(() => lastStatus(server, 'mcp')?.active_revision === 'r1', 'mcp-authz reporting r1', 60_000);
  t.is(svc.health.current, 'SERVING');
  t.true(await allows(svc, 'alpha'));
  t.false(await allows(svc, 'beta'));
  // The bearer token from the file reached the server, and never the log.
  t.true(server.requests.get('mcp')!.some((r) => r.auth === 'Bearer s3cr3t-bundle-token'));
  // Long polling: the server held requests that carried the ETag, and answered 304s.
  t.true(server.requests.get('mcp')!.some((r) => r.prefer === 'wait=20'));

  const files = bundleFiles(buildPolicyBundle({ revision: 'r2', allowedTool: 'beta', signingKey: good.privateKey }));
  const tampered = new Map(files);
  tampered.set('p.rego', Buffer.from(files.get('p.rego')!.toString().replace('"beta"', '"gamma"')));
  const dataTampered = new Map(files);
  dataTampered.set('data.json', Buffer.from('{"settings":{"n":2.0}}'));
  const unsigned = new Map(files);
  unsigned.delete('.signatures.json');
  const extraFile = new Map(files);
  extraFile.set('extra.rego', Buffer.from('package extra\n'));
  const cases: [string, Buffer, string][] = [
    ['a policy file changed after signing', packBundle(tampered), 'tampered'],
    ['data.json changed after signing', packBundle(dataTampered), 'tampered'],
    ['a file the signature does not cover', packBundle(extraFile), 'tampered'],
    ['no .signatures.json', packBundle(unsigned), 'unsigned'],
    [
      'signed with another key',
      buildPolicyBundle({ revision: 'r2', allowedTool: 'beta', signingKey: other.privateKey }),
      'bad_signature',
    ],
  ];
  for (const [what, bytes, reason] of cases) {
    const opaBefore = server.statuses.get('opa')!.length;
    const refusedBefore = refusals.length;
    server.publish(bytes);
    await until(
      () =>
        server.statuses
          .get('opa')!
          .slice(opaBefore)
          .some((s) => s.bundles?.[BUNDLE]?.code !== undefined),
      `OPA refusing the bundle with ${what}`,
      60_000,
    );
    await until(() => refusals.length > refusedBefore, `mcp-authz refusing the bundle with ${what}`, 60_000);
    t.is(refusals[refusals.length - 1], reason, what);
    const opaStatus = server.statuses
      .get('opa')!
      .slice(opaBefore)
      .find((s) => s.bundles?.[BUNDLE]?.code !== undefined)!.bundles[BUNDLE];
    t.is(opaStatus.active_revision, 'r1', `OPA keeps r1 after ${what}: ${opaStatus.message}`);
    t.is(lastStatus(server, 'mcp')?.active_revision, 'r1', what);
    await until(
      () => lastStatus(server, 'mcp')?.code !== undefined,
      `mcp-authz reporting the refusal of ${what}`,
      60_000,
    );
    t.is(lastStatus(server, 'mcp')?.active_revision, 'r1', what);
    t.true(await allows(svc, 'alpha'), `the last good policy keeps deciding after ${what}`);
    t.is(svc.health.current, 'SERVING');
  }
  t.true(lines.some((l) => l.level === 50 && /bundle refused/.test(l.msg) && l.policy_revision_kept === 'r1'));
  const metrics = (await svc.http('/metrics')).text;
  t.true(sample(metrics, 'mcp_authz_bundle_refused_total', { bundle: BUNDLE, reason: 'tampered' })! >= 3);
  t.true(sample(metrics, 'mcp_authz_bundle_refused_total', { bundle: BUNDLE, reason: 'unsigned' })! >= 1);
  t.true(sample(metrics, 'mcp_authz_bundle_refused_total', { bundle: BUNDLE, reason: 'bad_signature' })! >= 1);

  // A good bundle again: both activate it.
  server.publish(buildPolicyBundle({ revision: 'r3', allowedTool: 'beta', signingKey: good.privateKey }));
  await until(() => lastStatus(server, 'opa')?.active_revision === 'r3', 'OPA activating r3', 60_000);
  await until(async () => allows(svc, 'beta'), 'mcp-authz activating r3', 60_000);
  t.false(await allows(svc, 'alpha'));
  await until(
    () => lastStatus(server, 'mcp')?.active_revision === 'r3' && lastStatus(server, 'mcp')?.code === undefined,
    'mcp-authz reporting r3',
    60_000,
  );

  // The status reports have OPA's shape: the same fields, of the same types, for the bundle.
  const opaBundle = lastStatus(server, 'opa')!;
  const mcpBundle = lastStatus(server, 'mcp')!;
  for (const field of [
    'name',
    'active_revision',
    'last_request',
    'last_successful_request',
    'last_successful_download',
    'last_successful_activation',
  ]) {
    t.is(typeof mcpBundle[field], typeof opaBundle[field], field);
  }
  t.false(JSON.stringify([...lines, ...server.statuses.get('mcp')!]).includes('s3cr3t-bundle-token'));
});

test('bundle server down at start: not ready with a clear reason, ready once it serves a verified bundle', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-bundles-'));
  const good = keyPair(dir, 'good');
  const server = new BundleServer();
  await server.start();
  const port = server.port;
  await server.stop();
  const { logger, lines } = capture();
  const cfg = management(server, 'mcp', good.publicPem);
  cfg.bundles[BUNDLE]!.polling = { min_delay_seconds: 1, max_delay_seconds: 1 } as never;
  const svc = await startTestService({ ...cfg, endpoints: ENDPOINTS }, { logger });
  t.teardown(() => svc.stop());
  t.is(svc.health.current, 'NOT_SERVING');
  const ready = await svc.http('/readyz');
  t.is(ready.status, 503);
  t.regex(ready.text, /bundle authz/);
  t.true(
    lines.some(
      (l) =>
        l.msg === 'bundle download failed; no policy is loaded and Checks are denied' && /ECONNREFUSED/.test(l.err),
    ),
  );
  t.false(await allows(svc, 'alpha'));

  const again = new BundleServer();
  await again.start(port);
  t.teardown(() => again.stop());
  again.publish(buildPolicyBundle({ revision: 'r1', allowedTool: 'alpha', signingKey: good.privateKey }));
  await until(() => svc.health.current === 'SERVING', 'ready after the server came up', 60_000);
  t.true(await allows(svc, 'alpha'));
});

test('bundle server down later, slow, answering garbage or a huge body: the verified policy stays, each counted and logged', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-bundles-'));
  const good = keyPair(dir, 'good');
  const server = new BundleServer();
  await server.start();
  t.teardown(() => server.stop());
  server.publish(buildPolicyBundle({ revision: 'r1', allowedTool: 'alpha', signingKey: good.privateKey }));
  const { logger, lines } = capture();
  const cfg = management(server, 'mcp', good.publicPem);
  Object.assign(cfg.services.bs, { response_header_timeout_seconds: 2 });
  Object.assign(cfg.bundles[BUNDLE]!, {
    polling: { min_delay_seconds: 1, max_delay_seconds: 1 },
    size_limit_bytes: 1024 * 1024,
  });
  const requests: string[] = [];
  const refusals: string[] = [];
  const svc = await startTestService(
    { ...cfg, endpoints: ENDPOINTS },
    {
      logger,
      runtime: { events: { bundleRequest: (_b, r) => requests.push(r), bundleRefused: (_b, r) => refusals.push(r) } },
    },
  );
  t.teardown(() => svc.stop());
  // The first answer may miss the short timeout on a loaded machine: the next poll brings it.
  await until(
    () => svc.health.current === 'SERVING',
    `serving r1 (${JSON.stringify(lines.filter((l) => l.level >= 40))})`,
    60_000,
  );
  // Polling without long polling: the ETag makes the next answers 304s.
  await until(() => requests.includes('not_modified'), 'a 304 for the bundle in force', 60_000);

  const failureLogged = (pattern: RegExp) => () =>
    lines.some(
      (l) =>
        l.msg === 'bundle download failed; the policy in force stays' &&
        l.policy_revision_kept === 'r1' &&
        pattern.test(l.err),
    );
  for (const [fault, pattern] of [
    ['slow', /no complete answer within/],
    ['huge', /more than the limit of 1048576 bytes/],
    ['error', /answered HTTP 500/],
  ] as const) {
    server.fault = fault;
    await until(failureLogged(pattern), `the ${fault} server logged`, 60_000);
    t.true(await allows(svc, 'alpha'), fault);
    t.is(svc.health.current, 'SERVING', fault);
  }
  server.fault = 'garbage';
  await until(() => refusals.includes('invalid'), 'garbage refused', 60_000);
  t.true(await allows(svc, 'alpha'));
  await server.stop();
  const failuresBefore = requests.filter((r) => r === 'failure').length;
  await until(
    () => requests.filter((r) => r === 'failure').length > failuresBefore && failureLogged(/ECONNREFUSED/)(),
    'the server down logged',
    60_000,
  );
  t.true(await allows(svc, 'alpha'));
  t.is(svc.health.current, 'SERVING');
  const metrics = (await svc.http('/metrics')).text;
  t.true(sample(metrics, 'mcp_authz_bundle_requests_total', { bundle: BUNDLE, result: 'failure' })! >= 4);
  t.true(sample(metrics, 'mcp_authz_bundle_last_successful_request_timestamp_seconds', { bundle: BUNDLE })! > 0);
});

/** What a consumer written for OPA's decision-log events reads from one. */
function readOpaEvent(e: Record<string, any>) {
  return {
    id: String(e.decision_id),
    at: Date.parse(e.timestamp),
    path: String(e.path),
    revision: String(e.bundles[BUNDLE].revision),
    allow: Boolean(e.result.allow),
    tools: (e.input.mcp.calls as { name: string }[]).map((c) => c.name),
    evalNs: Number(e.metrics.timer_rego_query_eval_ns),
    agent: `${e.labels.id}@${e.labels.version}`,
  };
}

/** The JSON type of every field, one level down for objects (the event's shape). */
function shape(e: Record<string, any>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(e)) {
    out[k] = Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v;
    if (k === 'labels') for (const [k2, v2] of Object.entries(v as object)) out[`${k}.${k2}`] = typeof v2;
  }
  return out;
}

test('one receiver gets decision-log events from OPA and mcp-authz in the same shape, and an OPA consumer reads both', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-bundles-'));
  const good = keyPair(dir, 'good');
  const server = new BundleServer();
  await server.start();
  t.teardown(() => server.stop());
  server.publish(buildPolicyBundle({ revision: 'r1', allowedTool: 'alpha', signingKey: good.privateKey }));
  const logs = (agent: string) => ({
    decision_logs: {
      service: 'bs',
      reporting: { min_delay_seconds: 1, max_delay_seconds: 1 },
      ...(agent === 'mcp' ? { mask: ['/input/attributes/source/address', '/input/nope/absent'] } : {}),
    },
    labels: { team: 'sec' },
  });
  const opa = await startOpa({ ...management(server, 'opa', good.publicPem), ...logs('opa') });
  t.teardown(() => opa.stop());
  const svc = await startTestService({
    ...management(server, 'mcp', good.publicPem),
    ...logs('mcp'),
    endpoints: ENDPOINTS,
  });
  t.teardown(() => svc.stop());
  await until(() => lastStatus(server, 'opa')?.active_revision === 'r1', 'OPA activating r1', 60_000);
  t.is(svc.health.current, 'SERVING');

  t.true(await allows(svc, 'alpha'));
  await until(() => (server.logs.get('mcp') ?? []).length >= 1, 'the mcp-authz event', 60_000);
  const ours = server.logs.get('mcp')![0]!;
  // The same input, asked of OPA through its Data API, makes OPA's own event.
  const answer = await opaQuery(opa, 'mcp/authz/decision', ours.input);
  t.deepEqual(answer.result, ours.result);
  await until(() => (server.logs.get('opa') ?? []).length >= 1, 'the OPA event', 60_000);
  const theirs = server.logs.get('opa')![0]!;

  // Every field OPA sends, mcp-authz sends with the same JSON type.
  const opaShape = shape(theirs);
  const ourShape = shape(ours);
  for (const [field, type] of Object.entries(opaShape))
    t.is(ourShape[field], type, `${field} (OPA: ${JSON.stringify(theirs[field.split('.')[0]!])})`);
  // What mcp-authz adds: its own answer (a deny before the policy has no result), and the masked paths.
  // requested_by and req_id are OPA fields too, which OPA leaves out for a query over a unix socket.
  t.deepEqual(
    Object.keys(ourShape)
      .filter((k) => !(k in opaShape))
      .sort(),
    ['erased', 'mcp_authz', 'req_id', 'requested_by'],
  );
  t.is(typeof ours.requested_by, 'string');
  t.is(typeof ours.req_id, 'number');
  // The timers both agents measure, by OPA's names (OPA adds its parse and compile timers).
  for (const timer of ['timer_rego_query_eval_ns', 'timer_server_handler_ns']) {
    t.is(typeof theirs.metrics[timer], 'number', timer);
    t.true(Number.isInteger(ours.metrics[timer]) && ours.metrics[timer] > 0, timer);
  }
  t.deepEqual(ours.erased, ['/input/attributes/source/address']);
  t.is(ours.input.attributes.source.address, undefined);
  t.is(ours.labels.team, 'sec');

  const a = readOpaEvent(theirs);
  const b = readOpaEvent(ours);
  t.deepEqual({ ...b, id: '', at: 0, evalNs: 0, agent: '' }, { ...a, id: '', at: 0, evalNs: 0, agent: '' });
  t.true(Number.isFinite(b.at) && b.evalNs > 0 && b.id.length === 36);
  t.is(ours.mcp_authz.decision, 'allow');
});

test('the decision-log receiver down: every Check is answered, the buffer stays bounded, drops are counted, the rest arrive when it is back', async (t) => {
  const server = new BundleServer();
  await server.start();
  const port = server.port;
  await server.stop();
  const shipped = { sent: 0, dropped: 0 };
  const limit = 16 * 1024;
  const svc = await startTestService(
    {
      policy: {}, // the shipped policy, from the local file
      services: { logs: { url: `http://127.0.0.1:${port}/mcp` } },
      decision_logs: {
        service: 'logs',
        reporting: { min_delay_seconds: 1, max_delay_seconds: 1, buffer_size_limit_bytes: limit },
      },
      endpoints: ENDPOINTS,
    },
    { runtime: { events: { decisionLogsShipped: (r, n) => (shipped[r] += n) } } },
  );
  t.teardown(() => svc.stop());
  const checks = 60;
  const answers = await Promise.all(
    Array.from({ length: checks }, (_, i) =>
      svc.check(checkRequest({ path: '/mcp/open', body: rpc('tools/call', { name: `tool-${i}` }) })),
    ),
  );
  t.is(answers.length, checks);
  t.true(answers.every((a) => a.ok_response !== undefined || a.denied_response !== undefined));
  t.true(shipped.dropped > 0, 'the bounded buffer dropped the oldest events');

  const again = new BundleServer();
  await again.start(port);
  t.teardown(() => again.stop());
  await until(
    () => shipped.sent + shipped.dropped === checks,
    `every event sent or dropped (${JSON.stringify(shipped)})`,
    120_000,
  );
  const received = again.logs.get('mcp') ?? [];
  t.is(received.length, shipped.sent);
  t.true(received.length * 512 <= limit, 'no more than the buffer held was kept');
  // The newest survive: the last Check's event is among those sent.
  t.true(received.some((e) => e.mcp_authz.tool === `tool-${checks - 1}`));
  // Without masks the input goes out as the policy read it (the JSON text, not re-serialized).
  const last = received.find((e) => e.mcp_authz.tool === `tool-${checks - 1}`)!;
  t.is(last.input.mcp.calls[0].name, `tool-${checks - 1}`);
  t.is(last.path, 'mcp/authz/decision');
  const metrics = (await svc.http('/metrics')).text;
  t.is(sample(metrics, 'mcp_authz_decision_log_events_total', { result: 'dropped' }), shipped.dropped);
});

test('serve --workers: the primary polls once for all workers, a refused bundle reaches none, a new one is in force on every worker when it is reported', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-bundles-'));
  const good = keyPair(dir, 'good');
  const server = new BundleServer();
  await server.start();
  t.teardown(() => server.stop());
  server.publish(buildPolicyBundle({ revision: 'r1', allowedTool: 'alpha', signingKey: good.privateKey }));
  const clients = 8;
  const serve = await startServe(
    { ...management(server, 'mcp', good.publicPem), endpoints: ENDPOINTS },
    ['--workers', '2'],
    { clients },
  );
  t.teardown(async () => void (await serve.stop()));
  const every = async (tool: string) =>
    (
      await Promise.all(
        Array.from({ length: clients }, (_, i) =>
          serve.check(checkRequest({ path: '/mcp/open', body: rpc('tools/call', { name: tool }) }), i),
        ),
      )
    ).map((r) => Boolean(r.ok_response));
  await until(async () => (await serve.http('/readyz')).status === 200, 'both workers serving r1', 60_000);
  t.deepEqual(await every('alpha'), Array(clients).fill(true));
  // One agent polls: the bundle was downloaded once, not once per worker.
  t.is(server.requests.get('mcp')!.filter((r) => r.status === 200).length, 1);

  const files = bundleFiles(buildPolicyBundle({ revision: 'r2', allowedTool: 'beta', signingKey: good.privateKey }));
  const tampered = new Map(files);
  tampered.set('p.rego', Buffer.from(files.get('p.rego')!.toString().replace('"beta"', '"alpha"')));
  server.publish(packBundle(tampered));
  await until(() => lastStatus(server, 'mcp')?.code !== undefined, 'the tampered bundle refused', 60_000);
  t.regex(lastStatus(server, 'mcp')!.message, /does not match its signed hash/);
  t.deepEqual(await every('alpha'), Array(clients).fill(true));
  t.deepEqual(await every('beta'), Array(clients).fill(false));

  server.publish(packBundle(files));
  // Reported active only once every worker confirmed the swap: from then on every worker decides with r2.
  await until(() => lastStatus(server, 'mcp')?.active_revision === 'r2', 'r2 reported active', 60_000);
  t.deepEqual(await every('beta'), Array(clients).fill(true));
  t.deepEqual(await every('alpha'), Array(clients).fill(false));
  t.regex(serve.logs(), /"bundle activated on every worker".*|"policy_revision":"r2".*"workers":2/);
  const metrics = (await serve.http('/metrics')).text;
  t.is(sample(metrics, 'mcp_authz_policy_info', { revision: 'r2' }), 1);
  t.true(sample(metrics, 'mcp_authz_bundle_refused_total', { bundle: BUNDLE, reason: 'tampered' })! >= 1);
  t.true(sample(metrics, 'mcp_authz_bundle_requests_total', { bundle: BUNDLE, result: 'modified' })! >= 2);

  // A worker that dies is replaced; the new one is handed r2 by the primary (workers never poll).
  const workerPids = () =>
    readFileSync(`/proc/${serve.proc.pid}/task/${serve.proc.pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  const before = workerPids();
  t.is(before.length, 2);
  const downloads = server.requests.get('mcp')!.filter((r) => r.status === 200).length;
  process.kill(before[0]!, 'SIGKILL');
  await until(() => workerPids().length === 2 && !workerPids().includes(before[0]!), 'a replacement worker', 60_000);
  await until(async () => (await serve.http('/readyz')).status === 200, 'the replacement ready with r2', 60_000);
  t.deepEqual(await every('beta'), Array(clients).fill(true));
  t.is(
    server.requests.get('mcp')!.filter((r) => r.status === 200).length,
    downloads,
    'no new download for the replacement',
  );
});

test("the management config is OPA's, and what mcp-authz cannot honour is refused by name", (t) => {
  const ok = {
    services: { s: { url: 'https://bundles.example.com' } },
    bundles: { authz: { service: 's', signing: { keyid: 'k' } } },
    keys: { k: { key: 'secret', algorithm: 'HS256' } },
  };
  const cfg = validateConfig(ok, 'test', '/etc/mcp-authz', {});
  t.is(cfg.bundles.authz!.polling.min_delay_seconds, 60);
  t.is(cfg.bundles.authz!.size_limit_bytes, 64 * 1024 * 1024);
  const problems = (raw: Record<string, unknown>) => {
    try {
      validateConfig(raw, 'test', '/etc/mcp-authz', {});
      return '';
    } catch (err) {
      return (err as ConfigError).problems.join('\n');
    }
  };
  t.regex(problems({ ...ok, policy: { bundle: 'b.tar.gz' } }), /bundles\.authz: the policy comes from one place/);
  t.regex(problems({ ...ok, bundles: { authz: { service: 'nope' } } }), /bundles\.authz\.service: no service "nope"/);
  t.regex(
    problems({ ...ok, bundles: { authz: { service: 's', signing: { keyid: 'other' } } } }),
    /signing\.keyid: no key "other"/,
  );
  t.regex(problems({ ...ok, bundles: { a: { service: 's' }, b: { service: 's' } } }), /configure one bundle/);
  t.regex(
    problems({ ...ok, services: { s: { url: 'https://x.example.com', credentials: { bearer: { token: 'abc' } } } } }),
    /token_path/,
  );
  t.regex(problems({ ...ok, services: { s: { url: 'ftp://x.example.com' } } }), /http:\/\/ or https:\/\//);
  t.regex(problems({ ...ok, decision_logs: { service: 'nope' } }), /decision_logs\.service: no service "nope"/);
  t.regex(
    problems({ ...ok, decision_logs: { service: 's', mask: ['/headers/x'] } }),
    /JSON Pointer under \/input or \/result/,
  );
  t.regex(
    problems({ ...ok, bundles: { authz: { service: 's', polling: { min_delay_seconds: 10, max_delay_seconds: 5 } } } }),
    /max_delay_seconds must be at least/,
  );
  // Relative credential paths resolve against the config file's folder, like every other path.
  const rel = validateConfig(
    { services: { s: { url: 'https://x.example.com', credentials: { bearer: { token_path: 'token' } } } } },
    'test',
    '/etc/mcp-authz',
    {},
  );
  t.is(rel.services.s!.credentials!.bearer!.token_path, '/etc/mcp-authz/token');
});

test('an HS256-signed bundle verifies with its shared secret, and a wrong scope is a bad signature', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-bundles-'));
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'a-shared-secret-of-enough-length-0123456789');
  const claims = join(dir, 'claims.json');
  writeFileSync(claims, JSON.stringify({ scope: 'write' }));
  const files = bundleFiles(
    buildPolicyBundle({
      revision: 'h1',
      allowedTool: 'alpha',
      signingKey: secret,
      signingAlg: 'HS256',
      claimsFile: claims,
    }),
  );
  const keys = verificationKeys({ k: { key: 'a-shared-secret-of-enough-length-0123456789', algorithm: 'HS256' } });
  await t.notThrowsAsync(verifyBundleFiles('b', files, keys, { keyid: 'k', scope: 'write' }));
  const err = await t.throwsAsync(verifyBundleFiles('b', files, keys, { keyid: 'k', scope: 'read' }));
  t.is((err as BundleRefused).reason, 'bad_signature');
  const wrong = verificationKeys({ k: { key: 'another-shared-secret-of-enough-length-000', algorithm: 'HS256' } });
  t.is(
    ((await t.throwsAsync(verifyBundleFiles('b', files, wrong, { keyid: 'k' }))) as BundleRefused).reason,
    'bad_signature',
  );
  // An RS256 key does not accept an HS256 token (no algorithm confusion).
  const rsa = keyPair(dir, 'rsa');
  t.is(
    (
      (await t.throwsAsync(
        verifyBundleFiles('b', files, verificationKeys({ k: { key: rsa.publicPem, algorithm: 'RS256' } }), {
          keyid: 'k',
        }),
      )) as BundleRefused
    ).reason,
    'bad_signature',
  );
});

test('a bundle service behind mutual TLS: its CA from tls.ca_cert, the client certificate from credentials.client_tls; without it, no policy', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-bundles-'));
  const good = keyPair(dir, 'good');
  const pki = testPki('bundle service CA');
  const server = new BundleServer();
  const leaf = pki.server();
  server.tls = { cert: leaf.cert, key: leaf.key, ca: pki.ca.cert };
  await server.start();
  t.teardown(() => server.stop());
  server.publish(buildPolicyBundle({ revision: 'r1', allowedTool: 'alpha', signingKey: good.privateKey }));
  const client = pki.client('mcp-authz');
  writeFileSync(join(dir, 'ca.pem'), pki.ca.cert);
  writeFileSync(join(dir, 'client.pem'), client.cert);
  writeFileSync(join(dir, 'client-key.pem'), client.key);
  const cfg = (withClientCert: boolean) => {
    const m = management(server, 'mcp', good.publicPem);
    Object.assign(m.services.bs, {
      tls: { ca_cert: join(dir, 'ca.pem') },
      ...(withClientCert
        ? { credentials: { client_tls: { cert: join(dir, 'client.pem'), private_key: join(dir, 'client-key.pem') } } }
        : {}),
    });
    return { ...m, endpoints: ENDPOINTS };
  };
  const svc = await startTestService(cfg(true));
  t.teardown(() => svc.stop());
  t.is(svc.health.current, 'SERVING');
  t.true(await allows(svc, 'alpha'));

  const { logger, lines } = capture();
  const without = await startTestService(cfg(false), { logger });
  t.teardown(() => without.stop());
  t.is(without.health.current, 'NOT_SERVING');
  t.true(
    lines.some((l) => l.msg === 'bundle download failed; no policy is loaded and Checks are denied'),
    JSON.stringify(lines.map((l) => l.err)),
  );
});
