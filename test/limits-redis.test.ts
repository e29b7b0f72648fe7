import { createServer, type AddressInfo, type Socket } from 'node:net';
import test from 'ava';
import { TestAuthenticator, admitAuthenticated } from './fixtures/test-authenticator.js';
import { sample } from './helpers/prometheus.js';
import { startRedis, type TestRedis } from './helpers/redis.js';
import { checkRequest, deniedBody, deniedStatus, rpc, startTestService, type TestService } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

// Each test gets its own redis-server: stopping it must not disturb the others.
async function pair(
  t: { teardown(fn: () => Promise<void> | void): void },
  config: Record<string, unknown>,
): Promise<{ redis: TestRedis; a: TestService; b: TestService }> {
  const redis = await startRedis();
  // Sharing is what these tests prove: a command a busy machine delays past the default 250 ms
  // would be decided locally (counted: test/fault-redis.test.ts proves that path), so the
  // timeout here is a hang guard.
  const cfg = {
    ...config,
    rateLimit: {
      ...(config.rateLimit as object),
      redis: { url: redis.url, keyPrefix: `t${Date.now()}`, commandTimeoutMs: 60_000 },
    },
  };
  const opts = { runtime: { overrides: { authenticator: new TestAuthenticator(), authorizer: admitAuthenticated } } };
  const a = await startTestService(cfg, opts);
  const b = await startTestService(cfg, opts);
  t.teardown(async () => {
    await a.stop();
    await b.stop();
    await redis.stop();
  });
  for (const s of [a, b]) await waitFor('the shared store', async () => storeUp(s).then((v) => v === 1));
  return { redis, a, b };
}

async function storeUp(s: TestService): Promise<number | undefined> {
  return sample((await s.http('/metrics')).text, 'mcp_authz_limiter_store_up', { store: 'redis' });
}

const endpoints = [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true } }];
const fail = (source: string) =>
  checkRequest({ method: 'GET', path: '/mcp/files', source, headers: { 'x-test-auth': 'fail' } });
const good = (source: string, key = 'k1') =>
  checkRequest({ method: 'GET', path: '/mcp/files', source, headers: { 'x-test-auth': 'ok', 'x-test-key': key } });

test('two instances sharing Redis enforce one failed-authentication limit together', async (t) => {
  const { a, b } = await pair(t, { rateLimit: { failedAuth: { maxAttempts: 4, windowSeconds: 60 } }, endpoints });
  t.is(deniedStatus(await a.check(fail('10.20.0.1'))), 401);
  t.is(deniedStatus(await b.check(fail('10.20.0.1'))), 401);
  t.is(deniedStatus(await a.check(fail('10.20.0.1'))), 401);
  t.is(deniedStatus(await b.check(fail('10.20.0.1'))), 401);
  t.is(deniedStatus(await a.check(good('10.20.0.1'))), 429, 'instance A sees the failures counted by B');
  t.is(deniedBody(await b.check(good('10.20.0.1'))).error, 'too_many_requests');
});

test('two instances sharing Redis: 200 concurrent failures split between them count exactly N', async (t) => {
  const { a, b } = await pair(t, { rateLimit: { failedAuth: { maxAttempts: 7, windowSeconds: 60 } }, endpoints });
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).check(fail('10.21.0.1'))));
  t.is(results.filter((r) => deniedStatus(r) === 401).length, 7);
  t.is(results.filter((r) => deniedStatus(r) === 429).length, 193);
});

test('two instances sharing Redis enforce one per-client rate together', async (t) => {
  const { a, b } = await pair(t, { rateLimit: { perClient: { rps: 0.1, burst: 3 } }, endpoints });
  t.truthy((await a.check(good('10.22.0.1', 'shared-key'))).ok_response);
  t.truthy((await b.check(good('10.22.0.2', 'shared-key'))).ok_response);
  t.truthy((await a.check(good('10.22.0.3', 'shared-key'))).ok_response);
  t.is(deniedBody(await b.check(good('10.22.0.4', 'shared-key'))).error, 'rate_limited');
});

test('two instances sharing Redis enforce one per-tool quota together; a tool no rule names is not counted', async (t) => {
  const { a, b } = await pair(t, {
    rateLimit: { perTool: [{ name: 'deletes', match: 'tools:delete_*', rps: 0.001, burst: 3 }] },
    endpoints,
  });
  const call = (tool: string, key: string) =>
    checkRequest({
      path: '/mcp/files',
      body: rpc('tools/call', { name: tool }),
      headers: { 'x-test-auth': 'ok', 'x-test-key': key },
    });
  t.truthy((await a.check(call('delete_file', 'shared-agent'))).ok_response);
  t.truthy((await b.check(call('delete_file', 'shared-agent'))).ok_response);
  for (let i = 0; i < 5; i++) t.truthy((await b.check(call('search', 'shared-agent'))).ok_response);
  t.truthy((await a.check(call('delete_dir', 'shared-agent'))).ok_response);
  const over = await b.check(call('delete_file', 'shared-agent'));
  t.is(deniedBody(over).error, 'quota_exceeded', 'instance B sees the calls counted by A');
  t.is(deniedBody(over).quota, 'deletes');
  t.truthy((await a.check(call('delete_file', 'another-agent'))).ok_response);
  const m = (await a.http('/metrics')).text;
  t.is(
    sample(m, 'mcp_authz_quota_requests_total', { endpoint: 'files', rule: 'deletes', result: 'allowed' }),
    3,
    'instance A counted its own three',
  );
});

test('two instances sharing Redis: a batch of exactly the burst fits a fresh bucket, a larger one is refused and takes nothing from any rule', async (t) => {
  const { a, b } = await pair(t, {
    rateLimit: {
      perTool: [
        { name: 'deletes', match: 'tools:delete_*', rps: 1, burst: 3 },
        { name: 'tools', match: 'tools:*', rps: 0.001, burst: 4 },
      ],
    },
    endpoints,
  });
  const batch = (key: string, ...tools: string[]) =>
    checkRequest({
      path: '/mcp/files',
      body: JSON.stringify(
        tools.map((name, i) => ({ jsonrpc: '2.0', id: i + 1, method: 'tools/call', params: { name } })),
      ),
      headers: { 'x-test-auth': 'ok', 'x-test-key': key },
    });
  // Fresh buckets are full whatever the time: rps 1 cannot make these flaky.
  t.truthy(
    (await a.check(batch('fresh', 'delete_a', 'delete_b', 'delete_c'))).ok_response,
    'three deletes at once: the burst',
  );
  t.is(deniedBody(await b.check(batch('other', 'delete_a', 'delete_b', 'delete_c', 'delete_d'))).quota, 'deletes');
  // The refused four took nothing from "tools" either (burst 4): four searches still fit.
  t.truthy((await b.check(batch('other', 'search', 'search', 'search', 'search'))).ok_response);
  t.is(deniedBody(await a.check(batch('other', 'search'))).quota, 'tools');
});

test('with Redis down both instances keep answering and limiting locally; when it is back limits are shared again', async (t) => {
  const { redis, a, b } = await pair(t, {
    rateLimit: { failedAuth: { maxAttempts: 3, windowSeconds: 60 } },
    endpoints,
  });
  // Counted from here: on a busy machine the first connection can time out once at start-up.
  const fallbacks = async () =>
    sample((await a.http('/metrics')).text, 'mcp_authz_limiter_store_fallbacks_total', { store: 'redis' }) ?? 0;
  const before = await fallbacks();
  await redis.stop();
  for (const s of [a, b]) await waitFor('the fallback to be reported', async () => (await storeUp(s)) === 0);
  t.is((await fallbacks()) - before, 1);

  // Authentication is unaffected: a good credential is allowed, a bad one is a 401 (never a 5xx).
  t.truthy((await a.check(good('10.23.0.1'))).ok_response);
  t.truthy((await b.check(good('10.23.0.1'))).ok_response);
  t.is(deniedBody(await a.check(fail('10.23.0.2'))).error, 'invalid_api_key');
  // Each instance still locks a client out on its own counters.
  for (let i = 0; i < 2; i++) t.is(deniedStatus(await a.check(fail('10.23.0.2'))), 401);
  t.is(deniedStatus(await a.check(good('10.23.0.2'))), 429);
  for (let i = 0; i < 3; i++) t.is(deniedStatus(await b.check(fail('10.23.0.3'))), 401);
  t.is(deniedStatus(await b.check(fail('10.23.0.3'))), 429);

  await redis.start();
  for (const s of [a, b])
    await waitFor('the shared store to be back', async () => (await storeUp(s)) === 1, 15_000, 50);
  // Shared again: failures on A and B add up to one lockout.
  t.is(deniedStatus(await a.check(fail('10.23.0.9'))), 401);
  t.is(deniedStatus(await b.check(fail('10.23.0.9'))), 401);
  t.is(deniedStatus(await a.check(fail('10.23.0.9'))), 401);
  t.is(deniedStatus(await b.check(good('10.23.0.9'))), 429);
});

test('Redis unreachable from the start: limits are local and Checks are answered at once', async (t) => {
  const redis = await startRedis();
  await redis.stop(); // a port where nothing listens
  const svc = await startTestService(
    { rateLimit: { failedAuth: { maxAttempts: 2, windowSeconds: 60 }, redis: { url: redis.url } }, endpoints },
    { runtime: { overrides: { authenticator: new TestAuthenticator(), authorizer: admitAuthenticated } } },
  );
  t.teardown(() => svc.stop());
  t.truthy((await svc.check(good('10.24.0.1'))).ok_response);
  t.is(deniedStatus(await svc.check(fail('10.24.0.2'))), 401);
  t.is(deniedStatus(await svc.check(fail('10.24.0.2'))), 401);
  t.is(deniedStatus(await svc.check(fail('10.24.0.2'))), 429);
  await waitFor('the fallback to be reported', async () => (await storeUp(svc)) === 0);
});

test('Redis that accepts the connection but never answers: no Check waits for it', async (t) => {
  // A Check that waited on this server would wait for ever (the command timeout is set far
  // beyond the test's own timeout), so being answered at all proves none waits.
  const received: Buffer[] = [];
  const sockets = new Set<Socket>();
  const silent = createServer((s) => {
    sockets.add(s);
    s.on('data', (d) => received.push(d));
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const port = (silent.address() as AddressInfo).port;
  const svc = await startTestService(
    {
      rateLimit: {
        failedAuth: { maxAttempts: 2, windowSeconds: 60 },
        perClient: { rps: 1, burst: 5 },
        redis: { url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 600_000 },
      },
      endpoints,
    },
    { runtime: { overrides: { authenticator: new TestAuthenticator(), authorizer: admitAuthenticated } } },
  );
  t.teardown(() => svc.stop());
  await waitFor('the client to connect to the silent server', async () => sockets.size > 0 && received.length > 0);
  t.truthy((await svc.check(good('10.25.0.1'))).ok_response);
  t.is(deniedStatus(await svc.check(fail('10.25.0.2'))), 401);
  t.is(deniedStatus(await svc.check(fail('10.25.0.2'))), 401);
  t.is(deniedStatus(await svc.check(fail('10.25.0.2'))), 429, 'the lockout still works on local counters');
  const sent = Buffer.concat(received).toString('latin1').toUpperCase();
  t.false(/EVALSHA|INCR|PEXPIRE|\bSET\b/.test(sent), 'no limiter command was sent to the server that never answers');
});
