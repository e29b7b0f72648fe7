// Every feature that shares state through Redis, against a real Redis Cluster of three masters
// (test/helpers/redis.ts): rate limits, lockouts and quotas across two service instances;
// approvals, pins and user connections across two stores, as two replicas hold them; and a
// master killed: each feature's documented answer for what lived on it (limits decided on local
// counters, approvals, pins and connections refused), never an allow by accident.
import test from 'ava';
import fc from 'fast-check';
import type { ApprovalRequest } from '../src/approvals/approval-store.js';
import { ApprovalStoreUnavailable, RedisApprovalStore } from '../src/approvals/approval-store.js';
import { hashTag, SharedRedis } from '../src/config/redis-client.js';
import { redisConnectionSchema } from '../src/config/redis-schema.js';
import { RedisPinState } from '../src/pins/pin-state.js';
import { RedisConnectionStore } from '../src/upstream/connections-store.js';
import { TestAuthenticator, admitAuthenticated } from './fixtures/test-authenticator.js';
import { sample } from './helpers/prometheus.js';
import { command, startRedisCluster, type TestRedisCluster } from './helpers/redis.js';
import { checkRequest, deniedBody, deniedStatus, rpc, startTestService, type TestService } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

let cluster: TestRedisCluster;
let prefixes = 0;
/** A key prefix of its own per test: the tests share the cluster. */
const prefix = () => `t${Date.now()}x${prefixes++}`;

test.before(async () => {
  cluster = await startRedisCluster(3);
});
test.after.always(async () => cluster?.stop());

// Sharing is what these tests prove: the timeout is a hang guard, not a fallback trigger.
const connection = (c: TestRedisCluster, keyPrefix: string) => ({
  url: c.url,
  cluster: true,
  keyPrefix,
  commandTimeoutMs: 60_000,
});

// ------------------------------------------------------------------ config and key names

const schema = redisConnectionSchema({ defaultMs: 250, maxMs: 600_000 });

test('config: cluster: true takes the URL as a seed, nodes as more seeds; nodes without cluster are refused', (t) => {
  const ok = schema.parse({ url: 'rediss://:pw@redis-0:6379', cluster: true, nodes: ['rediss://redis-1:6379'] });
  t.true(ok.cluster);
  t.false(schema.parse({ url: 'redis://redis:6379' }).cluster, 'a single server by default');
  const refused = (v: unknown) =>
    schema
      .safeParse(v)
      .error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)
      .join('; ') ?? '';
  t.regex(refused({ url: 'redis://a:6379', nodes: ['redis://b:6379'] }), /nodes: .*set cluster: true/);
  t.regex(refused({ url: 'redis://a:6379/2', cluster: true }), /url: a Redis Cluster has only database 0/);
  t.regex(refused({ url: 'redis://a:6379', cluster: true, keyPrefix: '{app}' }), /keyPrefix: .*must not contain/);
  t.regex(refused({ url: 'redis://a', cluster: true, nodes: ['redis://u:p@b:6379'] }), /nodes\.0: .*no credentials/);
  t.regex(refused({ url: 'rediss://a', cluster: true, nodes: ['redis://b:6379'] }), /nodes\.0: .*rediss:\/\//);
});

test('property: a hash tag makes Redis hash exactly its text: keys that share one share a slot, and different texts give different tags', async (t) => {
  const port = cluster.nodes[0]!.port;
  const slot = async (key: string) => (await command(port, ['CLUSTER', 'KEYSLOT', key])).trim();
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), async (a, b) => {
      const [x, y] = [`p:one:${hashTag(a)}`, `p:two:${hashTag(a)}:${b}`];
      t.is(await slot(x), await slot(y), `${x} / ${y}`);
      return (hashTag(a) === hashTag(b)) === (a === b);
    }),
    { numRuns: 60 },
  );
  // Braces in the text can neither end the tag early nor leave it empty.
  t.is(hashTag('}a{b'), '{%7Da%7Bb}');
  t.is(hashTag(''), '{%}');
});

// ------------------------------------------------------------------ rate limits, lockouts, quotas

const endpoints = [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true } }];
const fail = (source: string) =>
  checkRequest({ method: 'GET', path: '/mcp/files', source, headers: { 'x-test-auth': 'fail' } });
const good = (source: string, key = 'k1') =>
  checkRequest({ method: 'GET', path: '/mcp/files', source, headers: { 'x-test-auth': 'ok', 'x-test-key': key } });
const toolCall = (tool: string, key: string) =>
  checkRequest({
    path: '/mcp/files',
    body: rpc('tools/call', { name: tool }),
    headers: { 'x-test-auth': 'ok', 'x-test-key': key },
  });

async function storeUp(s: TestService): Promise<number | undefined> {
  return sample((await s.http('/metrics')).text, 'mcp_authz_limiter_store_up', { store: 'redis' });
}

async function pair(
  t: { teardown(fn: () => Promise<void> | void): void },
  c: TestRedisCluster,
  config: Record<string, unknown>,
  redis: Record<string, unknown> = {},
): Promise<{ a: TestService; b: TestService; keyPrefix: string }> {
  const keyPrefix = prefix();
  const cfg = {
    ...config,
    rateLimit: { ...(config.rateLimit as object), redis: { ...connection(c, keyPrefix), ...redis } },
  };
  const opts = { runtime: { overrides: { authenticator: new TestAuthenticator(), authorizer: admitAuthenticated } } };
  const a = await startTestService(cfg, opts);
  const b = await startTestService(cfg, opts);
  t.teardown(async () => {
    await a.stop();
    await b.stop();
  });
  for (const s of [a, b]) await waitFor('the shared store', async () => (await storeUp(s)) === 1);
  return { a, b, keyPrefix };
}

test('two instances on a Redis Cluster enforce one failed-authentication lockout together', async (t) => {
  const { a, b } = await pair(t, cluster, {
    rateLimit: { failedAuth: { maxAttempts: 4, windowSeconds: 60 } },
    endpoints,
  });
  for (const s of [a, b, a, b]) t.is(deniedStatus(await s.check(fail('10.60.0.1'))), 401);
  t.is(deniedStatus(await a.check(good('10.60.0.1'))), 429, 'instance A sees the failures counted by B');
  t.is(deniedBody(await b.check(good('10.60.0.1'))).error, 'too_many_requests');
});

test('two instances on a Redis Cluster: 200 concurrent failures split between them count exactly N', async (t) => {
  const { a, b } = await pair(t, cluster, {
    rateLimit: { failedAuth: { maxAttempts: 7, windowSeconds: 60 } },
    endpoints,
  });
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).check(fail('10.61.0.1'))));
  t.is(results.filter((r) => deniedStatus(r) === 401).length, 7);
  t.is(results.filter((r) => deniedStatus(r) === 429).length, 193);
});

test('two instances on a Redis Cluster: a quota is exact under 120 concurrent calls, and a batch takes from two rules in one slot or from none', async (t) => {
  const { a, b } = await pair(t, cluster, {
    rateLimit: {
      perTool: [
        { name: 'deletes', match: 'tools:delete_*', rps: 0.001, burst: 9 },
        { name: 'tools', match: 'tools:*', rps: 0.001, burst: 12 },
      ],
    },
    endpoints,
  });
  // Nine deletes fit, whichever instance counts them; the other 111 are refused by "deletes".
  const results = await Promise.all(
    Array.from({ length: 120 }, (_, i) => (i % 2 ? a : b).check(toolCall('delete_file', 'agent-1'))),
  );
  t.is(results.filter((r) => r.ok_response).length, 9);
  t.true(results.filter((r) => !r.ok_response).every((r) => deniedBody(r).quota === 'deletes'));
  // "tools" counted those nine too (both rules' buckets in one script: one slot): three left.
  const batch = (key: string, ...tools: string[]) =>
    checkRequest({
      path: '/mcp/files',
      body: JSON.stringify(
        tools.map((name, i) => ({ jsonrpc: '2.0', id: i + 1, method: 'tools/call', params: { name } })),
      ),
      headers: { 'x-test-auth': 'ok', 'x-test-key': key },
    });
  t.is(deniedBody(await a.check(batch('agent-1', 'search', 'search', 'search', 'search'))).quota, 'tools');
  t.truthy(
    (await b.check(batch('agent-1', 'search', 'search', 'search'))).ok_response,
    'the refused four took nothing',
  );
  t.is(deniedBody(await a.check(toolCall('search', 'agent-1'))).quota, 'tools');
});

test('on a Redis Cluster the buckets of different clients spread over the masters', async (t) => {
  const { a, keyPrefix } = await pair(t, cluster, { rateLimit: { perClient: { rps: 0.001, burst: 5 } }, endpoints });
  for (let i = 0; i < 24; i++) t.truthy((await a.check(good('10.62.0.1', `spread-${i}`))).ok_response);
  const holding = [];
  for (const n of cluster.nodes) {
    const reply = await command(n.port, ['KEYS', `${keyPrefix}:bucket:*`]);
    holding.push(reply.startsWith('*') ? Number(reply.slice(1, reply.indexOf('\r\n'))) : 0);
  }
  t.is(
    holding.reduce((x, y) => x + y, 0),
    24,
  );
  t.true(holding.filter((n) => n > 0).length >= 2, `bucket keys per master: ${holding.join(', ')}`);
});

// ------------------------------------------------------------------ approvals, pins, connections

function approvalRequest(id: string, uses = 3): ApprovalRequest {
  const now = Date.now();
  return {
    id,
    digest: `digest-${id}`,
    principal: 'key:alice',
    endpoint: 'files',
    tool: 'delete_file',
    arguments: '{}',
    reason: 'Deletes need a person.',
    group: 'ops',
    rule: 'deletes',
    uses,
    windowSeconds: 600,
    policyRevision: 'r1',
    createdAt: now,
    expiresAt: now + 300_000,
  };
}

async function redisPair(
  t: { teardown(fn: () => Promise<void> | void): void },
  c: TestRedisCluster,
  keyPrefix: string,
  commandTimeoutMs = 60_000,
): Promise<[SharedRedis, SharedRedis]> {
  const one = () => new SharedRedis({ ...connection(c, keyPrefix), commandTimeoutMs }, { feature: 'test' });
  const pairOf: [SharedRedis, SharedRedis] = [one(), one()];
  t.teardown(() => Promise.all(pairOf.map((r) => r.close())).then(() => undefined));
  for (const r of pairOf) if (!(await r.connected(30_000))) throw new Error('the cluster client never got ready');
  return pairOf;
}

test('approvals on a Redis Cluster: asked on one replica, granted on the other, each use taken once across both', async (t) => {
  const keyPrefix = prefix();
  const [ra, rb] = await redisPair(t, cluster, keyPrefix);
  const a = new RedisApprovalStore(ra, keyPrefix);
  const b = new RedisApprovalStore(rb, keyPrefix);
  // Ids whose records live on different masters: every one is still read and decided whole.
  const ids = Array.from({ length: 6 }, (_, i) => `approval-${i}`);
  t.true(new Set(await Promise.all(ids.map((id) => cluster.nodeOf(hashTag(id))))).size >= 2);
  for (const id of ids) {
    await a.create(approvalRequest(id), 600_000);
    t.is((await b.byDigest(`digest-${id}`))?.state, 'pending');
    const decision = {
      state: 'granted' as const,
      approver: 'carol',
      decidedAt: Date.now(),
      validUntil: Date.now() + 600_000,
    };
    t.true(await b.decide(id, decision, 3, 600_000));
    t.false(await a.decide(id, decision, 3, 600_000), 'decided once');
    const taken = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).consume(id)));
    t.is(taken.filter(Boolean).length, 3, `${id}: three uses, whichever replica takes them`);
    t.is((await a.byId(id))?.usesLeft, 0);
  }
});

test('pins on a Redis Cluster: the first definition one replica saw is the pin for both; what was last listed is shared', async (t) => {
  const keyPrefix = prefix();
  const one = () => new RedisPinState(connection(cluster, keyPrefix));
  const [a, b] = [one(), one()];
  t.teardown(() => Promise.all([a.close(), b.close()]).then(() => undefined));
  await Promise.all([a.ready(), b.ready()]);
  const first = { kind: 'tool' as const, name: 'search', sha256: 'aaa', definition: { name: 'search', v: 1 } };
  const changed = { kind: 'tool' as const, name: 'search', sha256: 'bbb', definition: { name: 'search', v: 2 } };
  // Endpoints whose keys live on different masters.
  const names = ['files', 'mail', 'calendar', 'wiki', 'tickets', 'builds'];
  t.true(new Set(await Promise.all(names.map((n) => cluster.nodeOf(hashTag(n))))).size >= 2);
  for (const endpoint of names) {
    await a.record(endpoint, [first], [first]);
    await b.record(endpoint, [changed], [changed]);
    const seen = await a.lookup(endpoint, 'tool', 'search', true);
    t.is(seen.seen, 'bbb', 'the digest B listed last');
    t.is(seen.firstSeen?.sha256, 'aaa', 'the pin A trusted first, kept');
    t.is((await b.firstSeen(endpoint)).size, 1);
  }
});

test('user connections on a Redis Cluster: written on one replica, read, locked and listed (every master) on the other', async (t) => {
  const keyPrefix = prefix();
  const a = await RedisConnectionStore.connect(connection(cluster, keyPrefix));
  const b = await RedisConnectionStore.connect(connection(cluster, keyPrefix));
  t.teardown(() => Promise.all([a.close(), b.close()]).then(() => undefined));
  const users = Array.from({ length: 12 }, (_, i) => `user-${i}@example.com`);
  for (const user of users) await a.set({ provider: 'github', user }, `sealed-${user}`);
  t.is(await b.get({ provider: 'github', user: 'user-3@example.com' }), 'sealed-user-3@example.com');
  t.deepEqual((await b.list('github')).map((k) => k.user).sort(), [...users].sort(), 'all twelve, from every master');
  const unlock = await a.tryLock({ provider: 'github', user: 'user-1@example.com' }, 60_000);
  t.truthy(unlock);
  t.is(await b.tryLock({ provider: 'github', user: 'user-1@example.com' }, 60_000), undefined, 'held by A');
  await unlock!();
  t.truthy(await b.tryLock({ provider: 'github', user: 'user-1@example.com' }, 60_000));
  t.true(await b.replace({ provider: 'github', user: 'user-2@example.com' }, 'sealed-user-2@example.com', 'next'));
  t.is(await a.get({ provider: 'github', user: 'user-2@example.com' }), 'next');
});

// ------------------------------------------------------------------ a master lost

test.serial(
  'a master killed: limits on its slots are decided on local counters, approvals, pins and connections there are refused; all shared again once it is back',
  async (t) => {
    const own = await startRedisCluster(3);
    t.teardown(() => own.stop());
    const { a, b, keyPrefix } = await pair(
      t,
      own,
      { rateLimit: { failedAuth: { maxAttempts: 3, windowSeconds: 60 } }, endpoints },
      // Far beyond the test's own timeout: a command that waited for the lost master, rather than
      // failing at once, would hang the test; being answered at all proves none waits.
      { commandTimeoutMs: 600_000 },
    );
    const [ra] = await redisPair(t, own, keyPrefix, 600_000);
    const approvals = new RedisApprovalStore(ra, keyPrefix);
    const pins = new RedisPinState({ ...connection(own, keyPrefix), commandTimeoutMs: 600_000 });
    const conns = await RedisConnectionStore.connect({ ...connection(own, keyPrefix), commandTimeoutMs: 600_000 });
    t.teardown(() => Promise.all([pins.close(), conns.close()]).then(() => undefined));
    await pins.ready();

    // A client address, an approval id, an endpoint and a user whose keys live on master 0.
    const onVictim = async (make: (i: number) => string, key: (s: string) => string) => {
      for (let i = 0; ; i++) if ((await own.nodeOf(key(make(i)))) === 0) return make(i);
    };
    const lockoutKey = (addr: string) => `${keyPrefix}:failed-auth:files|${addr}`;
    const addr = await onVictim((i) => `10.70.0.${i}`, lockoutKey);
    const id = await onVictim((i) => `victim-${i}`, hashTag);
    const endpoint = await onVictim((i) => `ep${i}`, hashTag);
    const user = await onVictim(
      (i) => `u${i}`,
      (u) => `${keyPrefix}:connection:github:${Buffer.from(u).toString('base64url')}`,
    );
    await approvals.create(approvalRequest(id), 600_000);
    await pins.record(endpoint, [{ kind: 'tool', name: 'search', sha256: 'aaa' }], []);
    await conns.set({ provider: 'github', user }, 'sealed');

    const localAnswers = async (s: TestService) =>
      sample((await s.http('/metrics')).text, 'mcp_authz_limiter_local_answers_total', {
        store: 'redis',
        limiter: 'failed_auth',
      }) ?? 0;
    const before = await localAnswers(a);
    await own.nodes[0]!.stop();

    // The instance still locks the client out, on its own counters, and says so in a metric.
    for (let i = 0; i < 3; i++) t.is(deniedStatus(await a.check(fail(addr))), 401);
    t.is(deniedStatus(await a.check(fail(addr))), 429, 'locked out on local counters');
    t.true((await localAnswers(a)) > before, 'the local answers are counted');
    t.truthy((await b.check(good(addr))).ok_response, 'B, which saw no failure, allows a good credential');

    // What lived on the lost master is refused, never guessed.
    // On the first attempt: the connection refused, or the cluster saying it is down — not after
    // ioredis's redirection retries ("Too many Cluster redirections").
    const atOnce = (m: string) => /Connection is closed|CLUSTERDOWN/.test(m) && !/redirections/.test(m);
    await t.throwsAsync(approvals.byId(id), { instanceOf: ApprovalStoreUnavailable, message: atOnce });
    await t.throwsAsync(approvals.consume(id), { instanceOf: ApprovalStoreUnavailable });
    await t.throwsAsync(pins.lookup(endpoint, 'tool', 'search', true));
    await t.throwsAsync(conns.get({ provider: 'github', user }), { message: atOnce });

    await own.nodes[0]!.start();
    await own.healthy();
    // Back, empty (no persistence): the stores answer again.
    await waitFor(
      'the approval store to answer again',
      () =>
        approvals.byId(id).then(
          () => true,
          () => false,
        ),
      60_000,
      100,
    );
    t.is(await approvals.byId(id), undefined, 'the restarted master came back empty: nothing pending there');
    t.is((await pins.lookup(endpoint, 'tool', 'search', false)).seen, undefined);
    // Both instances count in the cluster again: a failure each is answered without a local answer.
    let probe = 0;
    for (const s of [a, b])
      await waitFor(
        'failures counted in the cluster again',
        async () => {
          const was = await localAnswers(s);
          await s.check(fail(await onVictim(() => `10.71.${(probe >> 8) & 255}.${probe++ & 255}`, lockoutKey)));
          return (await localAnswers(s)) === was;
        },
        60_000,
        100,
      );
    // Shared again: failures on A and B add up to one lockout.
    const fresh = await onVictim((i) => `10.72.0.${i}`, lockoutKey);
    for (const s of [a, b, a]) t.is(deniedStatus(await s.check(fail(fresh))), 401);
    t.is(deniedStatus(await b.check(good(fresh))), 429, 'B sees the lockout counted by both');
  },
);
