import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { sample, sumOf } from './helpers/prometheus.js';
import { deniedStatus, checkRequest, headerValue } from './helpers/service.js';
import { startServe } from './helpers/subprocess-service.js';
import { workerExecArgv } from '../src/server/cluster-supervisor.js';
import { rpc } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

const withTestAuth = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'serve-with-test-auth.ts');
const MAX = 20;
const config = {
  rateLimit: { failedAuth: { maxAttempts: MAX, windowSeconds: 60 } },
  endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true } }],
};
const fail = (source: string) =>
  checkRequest({ method: 'GET', path: '/mcp/files', source, headers: { 'x-test-auth': 'fail' } });
const good = (source: string, extra: Record<string, string> = {}) =>
  checkRequest({ method: 'GET', path: '/mcp/files', source, headers: { 'x-test-auth': 'ok', ...extra } });

test.serial(
  'serve --workers 2: both workers answer on one port, and 200 concurrent failures from one client count exactly N',
  async (t) => {
    const svc = await startServe(config, ['--workers', '2'], { entry: withTestAuth, clients: 8 });
    t.teardown(async () => void (await svc.stop()));

    // Eight connections spread over the two workers: both answer.
    const pids = new Set<string>();
    for (let i = 0; i < 16; i++) {
      const res = await svc.check(good(`10.30.0.${i}`), i);
      pids.add(headerValue(res.ok_response?.headers, 'x-mcp-principal')!.split('@')[1]!);
    }
    t.is(pids.size, 2, `answered by ${[...pids].join(', ')}`);

    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => svc.check(fail('10.31.0.1'), i)));
    t.is(results.filter((r) => deniedStatus(r) === 401).length, MAX);
    t.is(results.filter((r) => deniedStatus(r) === 429).length, 200 - MAX);
    // Counted on the primary, the lockout reached both workers: every connection refuses the client.
    for (let i = 0; i < 8; i++)
      t.is(deniedStatus(await svc.check(good('10.31.0.1'), i)), 429, 'locked out on every worker');

    // One /metrics, aggregated over both workers.
    const m = (await svc.http('/metrics')).text;
    t.is(
      sample(m, 'mcp_authz_auth_failures_total', {
        endpoint: 'files',
        method: 'api_key',
        reason: 'invalid_api_key',
        detail: 'key_unknown',
      }),
      MAX,
    );
    t.is(sample(m, 'mcp_authz_rate_limited_total', { endpoint: 'files', limiter: 'failed_auth' }), 200 - MAX + 8);
    t.is(sample(m, 'mcp_authz_check_total', { endpoint: 'files', decision: 'allow', status: '200' }), 16);
    t.is(sumOf(m, 'mcp_authz_check_total'), 16 + 200 + 8);
    t.is(sample(m, 'mcp_authz_check_duration_seconds_count', { decision: 'deny' }), 208);
    t.is((await svc.http('/readyz')).status, 200);
  },
);

test.serial(
  'serve --workers 2: per-tool quotas are counted on the primary — 60 concurrent calls over both workers allow exactly the burst',
  async (t) => {
    const svc = await startServe(
      {
        // One call per 1000 s after the burst: nothing refills while the test runs.
        rateLimit: { perTool: [{ name: 'deletes', match: 'tools:delete_*', rps: 0.001, burst: 5 }] },
        endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true } }],
      },
      ['--workers', '2'],
      { entry: withTestAuth, clients: 8 },
    );
    t.teardown(async () => void (await svc.stop()));
    const call = (tool: string, key: string, i: number) =>
      svc.check(
        checkRequest({
          path: '/mcp/files',
          source: '10.35.0.1',
          body: rpc('tools/call', { name: tool }, i),
          headers: { 'x-test-auth': 'ok', 'x-test-key': key },
        }),
        i,
      );
    // The eight connections are spread over both workers (a tool no rule names costs nothing).
    const pids = new Set<string>();
    for (let i = 0; i < 8; i++)
      pids.add(headerValue((await call('search', 'agent', i)).ok_response?.headers, 'x-mcp-principal')!.split('@')[1]!);
    t.is(pids.size, 2, `answered by ${[...pids].join(', ')}`);

    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => call('delete_file', 'agent', i)));
    t.is(results.filter((r) => r.ok_response).length, 5);
    t.is(results.filter((r) => deniedStatus(r) === 429).length, 55);
    t.truthy((await call('delete_file', 'other', 0)).ok_response, 'another principal has its own quota');

    // A batch of exactly the burst fits a fresh bucket; a larger one is refused and takes nothing.
    const batch = (n: number, key: string, i: number) =>
      svc.check(
        checkRequest({
          path: '/mcp/files',
          source: '10.35.0.1',
          body: JSON.stringify(
            Array.from({ length: n }, (_, k) => ({
              jsonrpc: '2.0',
              id: k + 1,
              method: 'tools/call',
              params: { name: 'delete_file' },
            })),
          ),
          headers: { 'x-test-auth': 'ok', 'x-test-key': key },
        }),
        i,
      );
    for (let i = 0; i < 2; i++) {
      const key = `batcher-${i}`;
      t.is(deniedStatus(await batch(6, key, i)), 429, `worker connection ${i}: six calls do not fit a bucket of five`);
      t.truthy(
        (await batch(5, key, i + 1)).ok_response,
        `the refused six took nothing: five fit (asked on connection ${i + 1})`,
      );
      t.is(deniedStatus(await batch(1, key, i)), 429, 'and then the bucket is empty');
    }
    const m = (await svc.http('/metrics')).text;
    t.is(sample(m, 'mcp_authz_quota_requests_total', { endpoint: 'files', rule: 'deletes', result: 'allowed' }), 8);
    t.is(sample(m, 'mcp_authz_quota_requests_total', { endpoint: 'files', rule: 'deletes', result: 'exceeded' }), 59);
    t.is(sample(m, 'mcp_authz_rate_limited_total', { endpoint: 'files', limiter: 'per_tool' }), 59);
  },
);

test.serial(
  'SIGTERM to the primary: in-flight Checks on every worker finish, then every process exits 0',
  async (t) => {
    const svc = await startServe(config, ['--workers', '2'], { entry: withTestAuth, clients: 4 });
    t.teardown(async () => void (await svc.stop()));
    t.is(await svc.health(), 'SERVING');
    for (let i = 0; i < 4; i++) t.truthy((await svc.check(good(`10.32.1.${i}`), i)).ok_response, 'connections are up');
    const inFlight = Array.from({ length: 8 }, (_, i) =>
      svc.check(good(`10.32.0.${i}`, { 'x-test-delay-ms': '1000' }), i),
    );
    const held = () => svc.logs().match(/test-auth: holding a request pid=(\d+)/g) ?? [];
    await waitFor('every request to be in flight', () => held().length === 8);
    t.is(new Set(held()).size, 2, 'requests are in flight on both workers');
    svc.proc.kill('SIGTERM');
    const answered = await Promise.all(inFlight);
    for (const r of answered) t.truthy(r.ok_response, 'an in-flight Check is answered, not cut');
    t.is(await svc.exited, 0);
    t.regex(svc.logs(), /draining every worker/);
    // 'exit' can come before the last bytes of the shared stderr pipe are read: read it to its end.
    const stderr = svc.proc.stderr!;
    if (!stderr.readableEnded) await once(stderr, 'end');
    const shutdown = svc
      .logs()
      .split('\n')
      .filter((l) => /stopped|exited|shutting down|draining/.test(l));
    t.is(
      (svc.logs().match(/"worker":\d+,"msg":"mcp-authz stopped"/g) ?? []).length,
      2,
      `both workers drained and stopped; the shutdown's log lines:\n${shutdown.join('\n')}`,
    );
    t.is((svc.logs().match(/"msg":"worker exited"/g) ?? []).length, 2, 'the primary saw both exit cleanly');
  },
);

test.serial('a worker that replaces a crashed one knows the lockouts already running', async (t) => {
  const svc = await startServe(config, ['--workers', '2'], { entry: withTestAuth, clients: 8 });
  t.teardown(async () => void (await svc.stop()));
  const pidOn = async (i: number) =>
    headerValue((await svc.check(good(`10.34.1.${i}`), i)).ok_response?.headers, 'x-mcp-principal')!.split('@')[1]!;
  const before = new Set<string>();
  for (let i = 0; i < 8; i++) before.add(await pidOn(i));
  t.is(before.size, 2);
  for (let i = 0; i < MAX; i++) t.is(deniedStatus(await svc.check(fail('10.34.0.1'), i)), 401);

  process.kill(Number([...before][0]), 'SIGKILL');
  await waitFor('the crash to be noticed', () => svc.logs().includes('worker exited unexpectedly'));
  await waitFor('a replacement worker', async () => (await svc.http('/readyz')).status === 200, 20_000, 50);

  // Clients reconnect; the primary spreads new connections over both workers.
  const answers: { pid: string; status: number | undefined }[] = [];
  await waitFor(
    'a connection on the new worker',
    async () => {
      for (let i = 0; i < 8; i++) {
        try {
          const pid = await pidOn(i);
          answers.push({ pid, status: deniedStatus(await svc.check(good('10.34.0.1'), i)) });
        } catch {
          // this connection is still reconnecting
        }
      }
      return answers.some((a) => !before.has(a.pid));
    },
    20_000,
    100,
  );
  const fromNew = answers.filter((a) => !before.has(a.pid));
  t.true(fromNew.length > 0);
  t.deepEqual(
    new Set(answers.map((a) => a.status)),
    new Set([429]),
    'the locked-out client is refused by the old and the new worker',
  );
});

test.serial('serve --workers 1 runs one process with in-memory limits', async (t) => {
  const svc = await startServe(config, ['--workers', '1'], { entry: withTestAuth });
  t.teardown(async () => void (await svc.stop()));
  for (let i = 0; i < MAX; i++) t.is(deniedStatus(await svc.check(fail('10.33.0.1'))), 401);
  t.is(deniedStatus(await svc.check(fail('10.33.0.1'))), 429);
  t.false(svc.logs().includes('"worker":'), 'no workers were started');
});

test.serial('serve rejects a bad --workers value', async (t) => {
  await t.throwsAsync(startServe(config, ['--workers', 'lots']), { message: /--workers expects a whole number/ });
});

test("workers get a 4 MiB young generation, keep the parent's Node.js options, and keep the operator's own size", (t) => {
  t.deepEqual(workerExecArgv(['--import', 'tsx'], undefined), ['--import', 'tsx', '--max-semi-space-size=4']);
  t.deepEqual(workerExecArgv(['--max-semi-space-size=16'], undefined), ['--max-semi-space-size=16']);
  t.deepEqual(workerExecArgv([], '--max-semi-space-size=8 --trace-gc'), []);
  t.deepEqual(workerExecArgv([], '--enable-source-maps'), ['--max-semi-space-size=4']);
});
