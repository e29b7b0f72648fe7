// The gRPC port (and Envoy's HTTP authorization port) on a Unix domain socket, as Envoy's
// `pipe` address and gRPC's unix: targets reach it: a grpc-js client calls Check over it on
// both gRPC servers, the file gets listen.socketMode and is gone after shutdown; a socket left
// by a process that died is replaced, a live one or another file is never taken over; TLS
// works over it too; with --workers the primary's one socket serves every worker.
import test from 'ava';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { clientConstructors } from '../src/envoy/protos.js';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { startServe } from './helpers/subprocess-service.js';
import { checkRequest, deniedStatus, rpc, startTestService, type CheckResponse } from './helpers/service.js';
import { testPki } from './helpers/x509.js';

const bob = mintKey({ id: 'bob-unix', name: 'Bob', userId: 'bob', role: 'user', permissions: ['tools:search'] });
const endpoints = [{ name: 'files', match: { pathPrefix: '/mcp/files' } }];
const search = () =>
  checkRequest({
    path: '/mcp/files',
    headers: { 'x-api-key': bob.key, 'content-type': 'application/json' },
    body: rpc('tools/call', { name: 'search' }),
  });

/** A short folder for sockets: sun_path holds 107 bytes. */
const socketDir = () => mkdtempSync(join(tmpdir(), 'mcp-sock-'));

function unixClient(path: string, creds = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}) {
  const { Authorization } = clientConstructors();
  return new Authorization(`unix:${path}`, creds, options) as grpc.Client & Record<string, any>;
}

function check(client: grpc.Client & Record<string, any>, req: Record<string, unknown>): Promise<CheckResponse> {
  return new Promise((resolve, reject) =>
    client.Check(req, { deadline: Date.now() + 30_000 }, (err: grpc.ServiceError | null, res: CheckResponse) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

for (const grpcServer of ['lean', 'grpc-js'] as const) {
  test(`grpcServer ${grpcServer}: Check over unix:/path, the socket file has listen.socketMode and is removed on shutdown`, async (t) => {
    const path = join(socketDir(), 'grpc.sock');
    const svc = await startTestService(
      { grpcServer, listen: { grpc: `unix:${path}`, socketMode: '0600' }, apiKeys: { file: 'keys.yaml' }, endpoints },
      { files: { 'keys.yaml': keysFile([bob]) } },
    );
    let stopped = false;
    t.teardown(() => (stopped ? undefined : svc.stop()));
    t.is(svc.grpcPort, 0, 'no TCP port');
    t.true(statSync(path).isSocket());
    t.is(statSync(path).mode & 0o777, 0o600);
    t.truthy((await svc.check(search())).ok_response, "the helper's client reaches it at unix:");
    const client = unixClient(path);
    t.is(
      deniedStatus(
        await check(
          client,
          checkRequest({
            path: '/mcp/files',
            headers: { 'x-api-key': bob.key },
            body: rpc('tools/call', { name: 'delete_repo' }),
          }),
        ),
      ),
      403,
    );
    client.close();
    await svc.stop();
    stopped = true;
    t.false(existsSync(path), 'the socket file is gone');
  });
}

test('a socket left by a process that died is replaced; a live socket or another kind of file is never taken over', async (t) => {
  const dir = socketDir();
  const stale = join(dir, 'stale.sock');
  // A process that listens and is killed leaves its socket file behind.
  const child = spawn(
    process.execPath,
    ['-e', `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  t.true(statSync(stale).isSocket(), 'the dead process left its socket');
  const svc = await startTestService({ listen: { grpc: `unix:${stale}` }, endpoints });
  t.teardown(() => svc.stop());
  t.is(deniedStatus(await svc.check(search())), 401, 'served on the replaced socket');

  const live = join(dir, 'live.sock');
  const holder = createServer().listen(live);
  await new Promise((resolve) => holder.once('listening', resolve));
  t.teardown(() => void holder.close());
  await t.throwsAsync(startTestService({ listen: { grpc: `unix:${live}` }, endpoints }), {
    message: /cannot listen on .*live\.sock: another process is listening on it/,
  });

  const file = join(dir, 'file.sock');
  writeFileSync(file, 'not a socket');
  await t.throwsAsync(startTestService({ listen: { grpc: `unix:${file}` }, endpoints }), {
    message: /cannot listen on .*file\.sock: the file exists and is not a socket/,
  });
});

test("Envoy's HTTP authorization port on a Unix socket", async (t) => {
  const path = join(socketDir(), 'authz.sock');
  const svc = await startTestService(
    {
      listen: { extAuthzHttp: `unix:${path}` },
      clientAddress: { from: 'x-envoy-external-address' },
      apiKeys: { file: 'keys.yaml' },
      endpoints,
    },
    { files: { 'keys.yaml': keysFile([bob]) } },
  );
  t.teardown(() => svc.stop());
  const status = (headers: Record<string, string>) =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        { socketPath: path, path: '/mcp/files', method: 'GET', headers: { host: 'mcp.example.com', ...headers } },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      req.on('error', reject);
      req.end();
    });
  t.is(await status({ 'x-api-key': bob.key }), 200);
  t.is(await status({}), 401);
});

test('mTLS over a Unix socket', async (t) => {
  const dir = socketDir();
  const pki = testPki();
  const server = pki.server();
  const envoy = pki.client('envoy');
  writeFileSync(join(dir, 'tls.crt'), server.cert);
  writeFileSync(join(dir, 'tls.key'), server.key);
  writeFileSync(join(dir, 'ca.crt'), pki.ca.cert);
  const path = join(dir, 'grpc.sock');
  const svc = await startTestService({
    listen: { grpc: `unix:${path}` },
    tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), clientCaFile: join(dir, 'ca.crt') },
    endpoints,
  });
  t.teardown(() => svc.stop());
  const override = { 'grpc.ssl_target_name_override': 'localhost' };
  const good = unixClient(
    path,
    grpc.credentials.createSsl(Buffer.from(pki.ca.cert), Buffer.from(envoy.key), Buffer.from(envoy.cert)),
    override,
  );
  t.teardown(() => good.close());
  t.is(deniedStatus(await check(good, search())), 401, 'decided');
  const none = unixClient(path, grpc.credentials.createSsl(Buffer.from(pki.ca.cert)), override);
  t.teardown(() => none.close());
  t.is(((await t.throwsAsync(check(none, search()))) as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
});

test('serve --workers 2 on a Unix socket: one socket for every worker, gone after SIGTERM', async (t) => {
  const path = join(socketDir(), 'grpc.sock');
  const serve = await startServe(
    {
      listen: { grpc: `unix:${path}`, socketMode: '0660' },
      apiKeys: {
        keys: [
          {
            id: bob.id,
            sha256: createHash('sha256').update(bob.key).digest('hex'),
            userId: 'bob',
            permissions: ['tools:search'],
          },
        ],
      },
      endpoints,
    },
    ['--workers', '2'],
    { clients: 4 },
  );
  t.teardown(async () => void (await serve.stop()));
  t.is(statSync(path).mode & 0o777, 0o660);
  for (let i = 0; i < 4; i++) t.truthy((await serve.check(search(), i)).ok_response);
  t.true(serve.logs().includes(`"sockets":{"grpc":"unix:${path}"}`), 'the log names the socket');
  t.is(await serve.stop(), 0);
  t.false(existsSync(path), 'the socket file is gone once the primary exits');
});
