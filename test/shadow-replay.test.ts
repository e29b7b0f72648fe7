// `mcp-authz check --shadow` and `mcp-authz replay`, through the real CLI, on decision-log
// events a real service shipped to a loopback receiver and on real opa-built bundles: replay
// reports exactly the decisions the candidate changes, in a table and as JSON, with the exit
// code saying whether any changed.
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { stringify } from 'yaml';
import { BundleServer, buildPolicyBundle } from './helpers/bundle-server.js';
import { runCli } from './helpers/cli.js';
import { checkRequest, rpc, startTestService } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

const ENDPOINTS = [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }];

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-replay-'));
  const enforced = join(dir, 'enforced.tar.gz');
  const candidate = join(dir, 'candidate.tar.gz');
  writeFileSync(enforced, buildPolicyBundle({ revision: 'enforced', allowedTool: 'search' }));
  writeFileSync(candidate, buildPolicyBundle({ revision: 'candidate', allowedTool: 'fetch' }));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, stringify({ policy: { bundle: enforced }, endpoints: ENDPOINTS }));
  return { dir, enforced, candidate, config };
}

test('check --shadow prints both decisions and whether they differ; the exit code is the enforced one', async (t) => {
  const { candidate, config } = setup();
  const body = rpc('tools/call', { name: 'search', arguments: {} });
  const r = await runCli(['check', '-c', config, '--path', '/mcp/open', '-d', body, '--shadow', candidate]);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.is(out.decision, 'allow');
  t.true(out.shadow.evaluated);
  t.true(out.shadow.differs);
  t.deepEqual(
    [out.shadow.enforced.decision, out.shadow.shadow.decision, out.shadow.shadow.reason],
    ['allow', 'deny', 'access_denied'],
  );
  const same = await runCli([
    'check',
    '-c',
    config,
    '--path',
    '/mcp/open',
    '-d',
    rpc('tools/call', { name: 'other' }),
    '--shadow',
    candidate,
  ]);
  t.is(same.code, 3, 'denied by the enforced policy');
  t.false(JSON.parse(same.stdout).shadow.differs);
  const broken = await runCli(['check', '-c', config, '--path', '/mcp/open', '-d', body, '--shadow', '/nonexistent']);
  t.is(broken.code, 0, 'a shadow that does not load changes nothing');
  t.false(JSON.parse(broken.stdout).shadow.evaluated);
  t.regex(JSON.parse(broken.stdout).shadow.why, /nonexistent/);
});

test('replay finds exactly the decisions a candidate changes in shipped events', async (t) => {
  const { dir, enforced, candidate, config } = setup();
  const receiver = new BundleServer();
  await receiver.start();
  t.teardown(() => receiver.stop());
  const svc = await startTestService({
    policy: { bundle: enforced },
    services: { logs: { url: `http://127.0.0.1:${receiver.port}/mcp` } },
    decision_logs: { service: 'logs', reporting: { min_delay_seconds: 1, max_delay_seconds: 1 } },
    endpoints: ENDPOINTS,
  });
  t.teardown(() => svc.stop());
  const tools = ['search', 'fetch', 'other', 'search', 'list'];
  for (const tool of tools)
    await svc.check(checkRequest({ path: '/mcp/open', body: rpc('tools/call', { name: tool, arguments: {} }) }));
  // A Check the policy never saw (no endpoint): an event without input.
  await svc.check(checkRequest({ path: '/elsewhere', body: rpc('tools/call', { name: 'search' }) }));
  await waitFor('six events shipped', () => (receiver.logs.get('mcp') ?? []).length >= 6, 60_000);
  const events = receiver.logs.get('mcp')!;

  // One upload body (gzip), and the same events one per line with a local decision line and a stray line.
  const shipped = join(dir, 'upload.json.gz');
  writeFileSync(shipped, gzipSync(JSON.stringify(events)));
  const lines = join(dir, 'events.jsonl');
  const local = { level: 30, time: 1, log: 'decision', decision_id: 'local-1', tool: 'search', msg: 'decision' };
  writeFileSync(lines, [...events.map((e) => JSON.stringify(e)), JSON.stringify(local), '{"msg":"hello"}'].join('\n'));

  const table = await runCli(['replay', '--bundle', candidate, '-c', config, shipped]);
  t.is(table.code, 1, table.stderr);
  const changedIds = events
    .filter((e) => e.mcp_authz.tool === 'search' || e.mcp_authz.tool === 'fetch')
    .map((e) => e.decision_id as string);
  t.is(changedIds.length, 3);
  for (const id of changedIds) t.regex(table.stdout, new RegExp(`${id}\\s+open\\s+(search|fetch)\\s+`));
  t.regex(table.stdout, /allow\s+deny access_denied/);
  t.regex(table.stdout, /deny access_denied\s+allow/);
  t.regex(table.stdout, /6 records: 5 replayed through .*, 3 would change, 2 unchanged; skipped 1 without input/);

  const json = await runCli(['replay', '--bundle', candidate, '-c', config, '--json', lines]);
  t.is(json.code, 1);
  const report = JSON.parse(json.stdout);
  t.deepEqual(report.changed.map((c: { decision_id: string }) => c.decision_id).sort(), [...changedIds].sort());
  t.is(report.replayed, 5);
  t.is(report.unchanged, 2);
  t.deepEqual(report.skipped, { no_input: 2, masked: 0, not_a_decision: 1 });
  const search = report.changed.find((c: { tool: string }) => c.tool === 'search');
  t.deepEqual(search.enforced.decision, 'allow');
  t.deepEqual(search.candidate, { decision: 'deny', code: 'access_denied' });

  // The enforced bundle itself changes nothing.
  const same = await runCli(['replay', '--bundle', enforced, '-c', config, shipped]);
  t.is(same.code, 0, same.stdout + same.stderr);
  t.regex(same.stdout, /0 would change/);

  // An event whose input was masked is flagged, or left out with --skip-masked.
  const masked = events.map((e) =>
    e.mcp_authz.tool === 'fetch' ? { ...e, erased: ['/input/request/headers/x-secret'] } : e,
  );
  const maskedFile = join(dir, 'masked.json');
  writeFileSync(maskedFile, JSON.stringify(masked));
  const flagged = await runCli(['replay', '--bundle', candidate, '-c', config, '--json', maskedFile]);
  const flaggedReport = JSON.parse(flagged.stdout);
  t.deepEqual(flaggedReport.changed.find((c: { tool: string }) => c.tool === 'fetch').masked, [
    '/input/request/headers/x-secret',
  ]);
  const skipped = await runCli(['replay', '--bundle', candidate, '-c', config, '--json', '--skip-masked', maskedFile]);
  const skippedReport = JSON.parse(skipped.stdout);
  t.is(skippedReport.skipped.masked, 1);
  t.is(skippedReport.changed.length, 2);
});

test('replay: a missing candidate, no file, or an unreadable file is exit code 2 with a message', async (t) => {
  const { dir, config } = setup();
  const file = join(dir, 'empty.jsonl');
  writeFileSync(file, '');
  const noBundle = await runCli(['replay', '-c', config, file]);
  t.is(noBundle.code, 2);
  t.regex(noBundle.stderr, /--bundle/);
  const badBundle = await runCli(['replay', '--bundle', join(dir, 'nope.tar.gz'), '-c', config, file]);
  t.is(badBundle.code, 2);
  t.regex(badBundle.stderr, /candidate policy does not load/);
  const garbage = join(dir, 'garbage.jsonl');
  writeFileSync(garbage, 'not json\n');
  const bad = await runCli(['replay', '--bundle', join(dir, 'nope.tar.gz'), '-c', config, garbage]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /line 1 is not JSON/);
});
