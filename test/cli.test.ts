import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { clientConstructors } from '../src/envoy/protos.js';
import { runCli, startCli } from './helpers/cli.js';
import { checkRequest, rpc, startTestService } from './helpers/service.js';

const config = {
  endpoints: [
    { name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } },
    { name: 'keyed', match: { pathPrefix: '/mcp/keyed' }, auth: { apiKey: true, oauth: false } },
  ],
};

function writeConfig(obj: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-cli-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, typeof obj === 'string' ? obj : stringify(obj));
  return file;
}

test('check prints the same decision the server returns for the same request', async (t) => {
  const svc = await startTestService(config);
  t.teardown(() => svc.stop());
  const samples = [
    { path: '/mcp/open', body: rpc('tools/call', { name: 'search' }), headers: ['x-mcp-user-id: forged'] },
    { path: '/mcp/keyed', body: rpc('tools/list') , headers: [] },
    { path: '/mcp/open', body: '{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}', headers: [] },
    { path: '/elsewhere', body: rpc('ping'), headers: [] },
  ];
  for (const s of samples) {
    const cli = await runCli(['check', '--config', svc.configFile, '--method', 'POST', '--path', s.path, '--host', 'mcp.example.com', '--body', s.body, ...s.headers.flatMap((h) => ['-H', h])]);
    const printed = JSON.parse(cli.stdout);
    const headers = Object.fromEntries(s.headers.map((h) => [h.split(':')[0]!, h.slice(h.indexOf(':') + 1).trim()]));
    const res = await svc.check(checkRequest({ method: 'POST', path: s.path, host: 'mcp.example.com', headers, body: s.body, source: '127.0.0.1' }));
    const server = res.ok_response ? 'allow' : 'deny';
    t.is(printed.decision, server, s.path);
    t.is(cli.code, server === 'allow' ? 0 : 3);
    if (res.denied_response) {
      const a = JSON.parse(res.denied_response.body!);
      t.is(printed.body.error, a.error);
      t.is(printed.body.error_description, a.error_description);
      t.is(printed.checkResponse.status.code, res.status!.code);
    } else {
      t.deepEqual(printed.checkResponse.ok_response.headers_to_remove, res.ok_response!.headers_to_remove);
      t.deepEqual(printed.checkResponse.ok_response.headers.map((h: any) => h.header), res.ok_response!.headers!.map((h) => h.header));
    }
  }
});

test('a bad config exits non-zero and names every bad field', async (t) => {
  const file = writeConfig({
    listen: { grpc: 'nowhere' },
    endpoints: [{ name: 'bad name!', match: {}, auth: { apiKey: 'yes' } }],
    oauth: { issuers: [{ issuer: 'https://idp.example.com', algorithms: ['HS256'] }] },
    bogus: 1,
  });
  const r = await runCli(['serve', '--config', file, '--check-config']);
  t.is(r.code, 1);
  for (const field of ['listen.grpc', 'endpoints.0.name', 'endpoints.0.match', 'endpoints.0.auth.apiKey', 'oauth.issuers.0.algorithms.0', 'bogus']) {
    t.true(r.stderr.includes(field), `${field} named in:\n${r.stderr}`);
  }
  t.regex(r.stderr, /HS\* and none are refused/);
});

test('a config that is not YAML, or is missing, exits non-zero with the reason', async (t) => {
  const notYaml = await runCli(['serve', '--config', writeConfig('endpoints: [\n  - {name: a')]);
  t.is(notYaml.code, 1);
  t.regex(notYaml.stderr, /not valid YAML/);
  const missing = await runCli(['serve', '--config', '/nonexistent/config.yaml']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /cannot read file/);
});

test('--check-config accepts the quickstart', async (t) => {
  const r = await runCli(['serve', '--check-config']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /configuration is valid/);
});

test('serve stops on SIGTERM after answering every call it accepted', async (t) => {
  const file = writeConfig({ ...config, listen: { grpc: '127.0.0.1:0', http: '127.0.0.1:0' } });
  const srv = await startCli(['serve', '--config', file, '--workers', '1']);
  const { Authorization } = clientConstructors();
  const client = new Authorization(`127.0.0.1:${srv.grpcPort}`, grpc.credentials.createInsecure()) as any;
  const req = checkRequest({ method: 'GET', path: '/mcp/open', host: 'h' });
  const one = () => new Promise<any>((resolve) => client.Check(req, (err: Error | null, res: any) => resolve(err ?? res)));
  t.truthy((await one()).ok_response, 'serving before the signal');
  const burst = Array.from({ length: 200 }, one);
  srv.child.kill('SIGTERM');
  const results = await Promise.all(burst);
  const answered = results.filter((r) => r.ok_response).length;
  const refused = results.filter((r) => r instanceof Error);
  // Calls the server accepted are answered; calls it never accepted fail as UNAVAILABLE (Envoy retries or denies).
  t.is(answered + refused.length, 200);
  t.true(refused.every((e: any) => e.code === grpc.status.UNAVAILABLE), refused.map((e: any) => e.message).join('\n'));
  t.is(await srv.exited, 0);
  t.regex(srv.logs(), /draining in-flight Checks/);
  t.regex(srv.logs(), /mcp-authz stopped/);
  client.close();
});
