// The metrics with every phase real: API keys from a keys file, the shipped policy compiled
// to WASM (a real tool deny), and the same policy in dry-run (a real dry-run deny).
import test from 'ava';
import { keysFile, makeKey } from './helpers/auth-fixtures.js';
import { sample, sumOf } from './helpers/prometheus.js';
import { checkRequest, deniedStatus, rpc, startTestService } from './helpers/service.js';

const alice = makeKey({ id: 'alice-key', userId: 'alice', permissions: ['tools:search'] });
const endpoints = [
  { name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true }, tools: ['search', 'delete_file'] },
];
const call = (tool: string, key: string) =>
  checkRequest({ path: '/mcp/files', body: rpc('tools/call', { name: tool }), headers: { 'x-api-key': key } });

async function scripted(dryRun: boolean) {
  const svc = await startTestService(
    { apiKeys: { file: 'keys.yaml' }, policy: { dryRun }, endpoints },
    { files: { 'keys.yaml': keysFile([alice]) } },
  );
  const results = [
    await svc.check(call('search', alice.key)),
    await svc.check(call('search', alice.key)),
    await svc.check(call('delete_file', alice.key)),
    await svc.check(call('search', 'mcp_not_a_real_key')),
  ];
  const m = (await svc.http('/metrics')).text;
  await svc.stop();
  return { results, m };
}

test('real keys and the shipped policy: allows, a tool deny and a bad key are counted exactly', async (t) => {
  const { results, m } = await scripted(false);
  t.truthy(results[0]!.ok_response);
  t.truthy(results[1]!.ok_response);
  t.is(deniedStatus(results[2]!), 403);
  t.is(deniedStatus(results[3]!), 401);
  const c = (name: string, labels: Record<string, string> = {}) => sample(m, `mcp_authz_${name}`, labels);
  t.is(c('check_total', { endpoint: 'files', decision: 'allow', status: '200' }), 2);
  t.is(c('check_total', { endpoint: 'files', decision: 'deny', status: '403' }), 1);
  t.is(c('check_total', { endpoint: 'files', decision: 'deny', status: '401' }), 1);
  t.is(c('tool_decisions_total', { endpoint: 'files', tool: 'search', decision: 'allow' }), 2);
  t.is(c('tool_decisions_total', { endpoint: 'files', tool: 'delete_file', decision: 'deny' }), 1);
  t.is(
    c('auth_failures_total', {
      endpoint: 'files',
      method: 'api_key',
      reason: 'invalid_api_key',
      detail: 'key_unknown',
    }),
    1,
  );
  t.is(sumOf(m, 'mcp_authz_auth_failures_total'), 1);
  t.is(c('api_key_requests_total', { key_id: 'alice-key' }), 3, 'three requests used the key (the tool deny too)');
  t.is(c('policy_reloads_total', { result: 'success' }), 1);
  t.is(c('policy_reloads_total', { result: 'failure' }) ?? 0, 0);
  t.is(sumOf(m, 'mcp_authz_policy_info'), 1, 'one revision loaded');
  t.is(c('policy_eval_duration_seconds_count'), 3, 'evaluated for every authenticated call');
  t.is(c('dry_run_denies_total'), 0);
});

test("dry-run: the shipped policy's deny is allowed and counted once as a dry-run deny", async (t) => {
  const { results, m } = await scripted(true);
  t.truthy(results[2]!.ok_response, 'the tool deny is allowed in dry-run');
  t.is(deniedStatus(results[3]!), 401, 'dry-run never turns an authentication failure into an allow');
  const c = (name: string, labels: Record<string, string> = {}) => sample(m, `mcp_authz_${name}`, labels);
  t.is(c('dry_run_denies_total'), 1);
  t.is(c('check_total', { endpoint: 'files', decision: 'allow', status: '200' }), 3);
  t.is(c('check_total', { endpoint: 'files', decision: 'deny', status: '401' }), 1);
});
