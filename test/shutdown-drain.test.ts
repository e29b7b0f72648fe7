// Graceful shutdown with a Check provably in flight: the call is held inside the service
// by a slow JWKS fetch when SIGTERM arrives, and must still get its real answer.
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { clientConstructors } from '../src/envoy/protos.js';
import { startCli } from './helpers/cli.js';
import { startJwksServer } from './helpers/jwks-server.js';
import { checkRequest, rpc } from './helpers/service.js';

const RESOURCE = 'https://mcp.example.com/mcp/tokens';

test('SIGTERM while a Check waits on the IdP: health goes NOT_SERVING, the call gets its real answer, then the process exits 0', async (t) => {
  const idp = await startJwksServer();
  t.teardown(() => idp.stop());
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-drain-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    stringify({
      listen: { grpc: '127.0.0.1:0', http: '127.0.0.1:0' },
      oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
      endpoints: [
        {
          name: 'tokens',
          match: { pathPrefix: '/mcp/tokens' },
          auth: { apiKey: false, oauth: true },
          resource: RESOURCE,
        },
      ],
    }),
  );
  const srv = await startCli(['serve', '--config', file, '--workers', '1']);
  const { Authorization, Health } = clientConstructors();
  const client = new Authorization(`127.0.0.1:${srv.grpcPort}`, grpc.credentials.createInsecure()) as any;
  const health = new Health(`127.0.0.1:${srv.grpcPort}`, grpc.credentials.createInsecure()) as any;
  const statuses: string[] = [];
  const watch = health.Watch({ service: '' });
  watch.on('data', (m: { status: string }) => statuses.push(m.status));
  watch.on('error', () => undefined);

  idp.setDelay(1500);
  const token = await idp.sign({ sub: 'alice', aud: RESOURCE, scope: 'tools:search' });
  const answer = new Promise<any>((resolve) =>
    client.Check(
      checkRequest({ path: '/mcp/tokens', body: rpc('tools/list'), headers: { authorization: `Bearer ${token}` } }),
      (err: Error | null, res: unknown) => resolve(err ?? res),
    ),
  );
  // The Check is now inside the service, waiting for the JWKS response.
  const deadline = Date.now() + 10_000;
  while (idp.fetches === 0) {
    if (Date.now() > deadline) t.fail('the service never fetched the JWKS');
    await new Promise((r) => setImmediate(r));
  }
  srv.child.kill('SIGTERM');

  const res = await answer;
  t.false(res instanceof Error, String(res));
  t.truthy(res.ok_response, 'the in-flight call completed with its real decision (allow)');
  t.is(res.ok_response.headers.find((h: any) => h.header.key === 'x-mcp-auth-method').header.value, 'oauth');
  t.is(await srv.exited, 0);
  t.true(statuses.includes('NOT_SERVING'), `health went NOT_SERVING before exit (saw ${statuses.join(',')})`);
  client.close();
  health.close();
});
