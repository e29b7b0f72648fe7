// What `serve --help` says reloads is what reloads: the keys file does, the config file
// (endpoints) does not until a restart.
import test from 'ava';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { clientConstructors } from '../src/envoy/protos.js';
import { runCli, startCli } from './helpers/cli.js';
import { checkRequest } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

test('serve --help says the keys file and the policy reload, and the config file needs a restart', async (t) => {
  const r = await runCli(['serve', '--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /What reloads without a restart: the API keys file \(apiKeys\.file\) and the policy/);
  t.regex(
    r.stdout,
    /config file itself — endpoints, listen, limits, OAuth issuers, MCP_\* variables — is read\s+once at start: restart/,
  );
  t.notRegex(r.stdout, /endpoints and\s+policy reload/);
});

test('as the help says: a new key in the keys file is honoured without a restart, a new endpoint in the config is not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-reload-'));
  const key = (n: number) => `mcp_${String(n).repeat(48)}`;
  const entry = (n: number) => ({
    id: `k${n}`,
    sha256: createHash('sha256').update(key(n)).digest('hex'),
    permissions: ['*'],
  });
  const config = (names: string[]) => ({
    listen: { grpc: '127.0.0.1:0', http: '127.0.0.1:0' },
    apiKeys: { file: 'keys.yaml', pollIntervalMs: 100 },
    endpoints: names.map((n) => ({
      name: n,
      match: { pathPrefix: `/mcp/${n}` },
      auth: { apiKey: true, oauth: false },
    })),
  });
  const write = (name: string, obj: unknown) => {
    writeFileSync(join(dir, `.${name}`), stringify(obj));
    renameSync(join(dir, `.${name}`), join(dir, name));
  };
  write('config.yaml', config(['one']));
  write('keys.yaml', { keys: [entry(1)] });
  const srv = await startCli(['serve', '--config', join(dir, 'config.yaml'), '--workers', '1']);
  t.teardown(() => srv.child.kill('SIGKILL'));
  const client = new (clientConstructors().Authorization)(
    `127.0.0.1:${srv.grpcPort}`,
    grpc.credentials.createInsecure(),
  ) as grpc.Client & Record<string, any>;
  t.teardown(() => client.close());
  const check = (path: string, k: string) =>
    new Promise<any>((resolve, reject) =>
      client.Check(checkRequest({ method: 'GET', path, headers: { 'x-api-key': k } }), (err: Error | null, res: any) =>
        err ? reject(err) : resolve(res),
      ),
    );
  t.truthy((await check('/mcp/one', key(1))).ok_response);
  t.truthy((await check('/mcp/one', key(2))).denied_response, 'key 2 is not registered yet');

  // The config gains an endpoint first, then the keys file gains key 2.
  write('config.yaml', config(['one', 'two']));
  write('keys.yaml', { keys: [entry(1), entry(2)] });
  await waitFor('the keys reload', async () => Boolean((await check('/mcp/one', key(2))).ok_response), 60_000, 100);
  const two = await check('/mcp/two', key(2));
  t.is(two.denied_response?.status?.code, 'NotFound', 'the endpoint added to the config is unknown until a restart');
});
