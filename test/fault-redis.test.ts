// Faults under load: two instances sharing limits through a real redis-server, under a steady
// gRPC load, while Redis's connections are cut in the middle of replies (a loopback proxy the
// test controls), while Redis is stopped, and after it restarts empty. Limits fall back to each
// instance's local counters as docs/rate-limits.md says, nothing is allowed beyond the bound it
// states, and the shared limits come back without a restart (metric and log). Each phase has
// its own clients, so what each was allowed is that phase's alone; the load is drained between
// phases. No timing is assumed: every step waits on answers, metrics or log lines.
import { Writable } from 'node:stream';
import test from 'ava';
import { pino } from 'pino';
import { TestAuthenticator, admitAuthenticated } from './fixtures/test-authenticator.js';
import { sample } from './helpers/prometheus.js';
import { startRedis } from './helpers/redis.js';
import {
  checkRequest,
  deniedStatus,
  rpc,
  startTestService,
  type CheckResponse,
  type TestService,
} from './helpers/service.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { waitFor } from './helpers/wait.js';

/** maxAttempts and the quota's burst; two instances. */
const N = 8;
const Q = 8;
const INSTANCES = 2;
const LOOPS = 12;

const endpoints = [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true } }];

type Kind = 'fail' | 'tryGood' | 'delete' | 'filler';
const KINDS: Kind[] = ['fail', 'filler', 'delete', 'fail', 'tryGood', 'delete'];

/** A phase's own clients: an attacker address and a quota principal. */
interface Phase {
  name: string;
  attacker: string;
  agent: string;
}

function request(kind: Kind, phase: Phase, n: number): Record<string, unknown> {
  switch (kind) {
    case 'fail':
      return checkRequest({
        method: 'GET',
        path: '/mcp/files',
        source: phase.attacker,
        headers: { 'x-test-auth': 'fail' },
      });
    case 'tryGood':
      return checkRequest({
        method: 'GET',
        path: '/mcp/files',
        source: phase.attacker,
        headers: { 'x-test-auth': 'ok', 'x-test-key': 'attacker' },
      });
    case 'delete':
      return checkRequest({
        path: '/mcp/files',
        source: '10.52.0.1',
        body: rpc('tools/call', { name: 'delete_file' }, n),
        headers: { 'x-test-auth': 'ok', 'x-test-key': phase.agent },
      });
    case 'filler':
      return checkRequest({
        method: 'GET',
        path: '/mcp/files',
        source: `10.51.${(n >> 8) & 255}.${n & 255}`,
        headers: { 'x-test-auth': 'ok', 'x-test-key': 'filler' },
      });
  }
}

interface Outcome {
  phase: string;
  kind: Kind;
  instance: number;
  result: 'allow' | number | 'error';
}

/** Loops sending Checks to both instances in turn, one phase's clients at a time. */
class Load {
  readonly outcomes: Outcome[] = [];
  private running = false;
  private loops: Promise<void>[] = [];
  private sent = 0;
  private phase!: Phase;

  constructor(private readonly instances: TestService[]) {}

  start(phase: Phase): void {
    this.phase = phase;
    this.running = true;
    this.loops = Array.from({ length: LOOPS }, () => this.loop());
  }

  /** Stops sending and waits for every Check in flight: nothing of this phase is left to land in the next. */
  async drain(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  count(phase: Phase, pred: (o: Outcome) => boolean): number {
    return this.outcomes.filter((o) => o.phase === phase.name && pred(o)).length;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const n = this.sent++;
      const kind = KINDS[n % KINDS.length]!;
      const instance = Math.floor(n / KINDS.length) % this.instances.length;
      const phase = this.phase;
      let result: Outcome['result'];
      try {
        const res: CheckResponse = await this.instances[instance]!.check(request(kind, phase, n));
        result = res.ok_response ? 'allow' : deniedStatus(res)!;
      } catch {
        result = 'error';
      }
      this.outcomes.push({ phase: phase.name, kind, instance, result });
    }
  }
}

test('Redis cut mid-reply, stopped and restarted empty under load: local counters within the documented bound, shared again without a restart', async (t) => {
  t.timeout(600_000); // a generous bound for a busy machine
  const redis = await startRedis();
  const proxy = await startTcpProxy(redis.port);
  const logs: string[][] = [[], []];
  const config = {
    rateLimit: {
      failedAuth: { maxAttempts: N, windowSeconds: 600 },
      perTool: [{ name: 'deletes', match: 'tools:delete_*', rps: 0.001, burst: Q }],
      redis: { url: proxy.url, keyPrefix: `faults${Date.now()}` },
    },
    endpoints,
  };
  const instances: TestService[] = [];
  for (let i = 0; i < INSTANCES; i++) {
    const logger = pino(
      { level: 'info' },
      new Writable({
        write: (c, _e, cb) => (String(c).includes('"msg":"decision"') || logs[i]!.push(String(c)), cb()),
      }),
    );
    instances.push(
      await startTestService(config, {
        logger,
        runtime: { overrides: { authenticator: new TestAuthenticator(), authorizer: admitAuthenticated } },
      }),
    );
  }
  const load = new Load(instances);
  t.teardown(async () => {
    await load.drain();
    for (const s of instances) await s.stop();
    await proxy.close();
    await redis.stop();
  });

  const metrics = async () => Promise.all(instances.map(async (s) => (await s.http('/metrics')).text));
  const storeUp = async () => (await metrics()).map((m) => sample(m, 'mcp_authz_limiter_store_up', { store: 'redis' }));
  const fallbacks = async () =>
    (await metrics()).map((m) => sample(m, 'mcp_authz_limiter_store_fallbacks_total', { store: 'redis' }) ?? 0);
  /** Limiter calls each instance decided on its local counters because Redis did not answer. */
  const localAnswers = async (limiter: string) =>
    (await metrics()).map((m) => sample(m, 'mcp_authz_limiter_local_answers_total', { store: 'redis', limiter }) ?? 0);
  const totalLocal = async (limiter: string) => (await localAnswers(limiter)).reduce((a, b) => a + b, 0);
  const shared = async () => (await storeUp()).every((v) => v === 1);
  await waitFor('both instances to share Redis', shared, 300_000, 50);

  const tried = (p: Phase) => load.count(p, (o) => o.kind === 'fail' && o.result === 401);
  const allowed = (p: Phase) => load.count(p, (o) => o.kind === 'delete' && o.result === 'allow');
  /** Runs the load with the phase's clients until both have been refused again and again, on both instances. */
  const run = async (p: Phase, during?: () => Promise<void>) => {
    load.start(p);
    await during?.();
    await waitFor(
      `${p.name}: the limits to refuse the phase's clients on both instances`,
      () => {
        for (let i = 0; i < INSTANCES; i++) {
          if (load.count(p, (o) => o.instance === i && o.kind === 'fail' && o.result === 429) < 5) return false;
          if (load.count(p, (o) => o.instance === i && o.kind === 'delete' && o.result === 429) < 5) return false;
        }
        return true;
      },
      300_000,
      20,
    );
    await load.drain();
  };
  const everyAnswer = (p: Phase) =>
    new Set(load.outcomes.filter((o) => o.phase === p.name).map((o) => `${o.kind}:${o.result}`));

  // 1. Shared: one count for both instances.
  // On a busy machine a command can time out even so: what was decided locally is counted,
  // and is all that can come on top of the shared count.
  const steady: Phase = { name: 'shared', attacker: '10.50.0.1', agent: 'agent-1' };
  let local = { failed: await totalLocal('failed_auth'), quota: await totalLocal('per_tool') };
  await run(steady);
  let extra = {
    failed: (await totalLocal('failed_auth')) - local.failed,
    quota: (await totalLocal('per_tool')) - local.quota,
  };
  t.true(
    tried(steady) >= N && tried(steady) <= N + extra.failed,
    `shared: ${tried(steady)} tried, ${extra.failed} decided locally`,
  );
  t.true(
    allowed(steady) >= Q && allowed(steady) <= Q + extra.quota,
    `shared: ${allowed(steady)} allowed, ${extra.quota} decided locally`,
  );

  // 2. Every connection to Redis cut in the middle of a reply, three times, under load.
  const cut: Phase = { name: 'cut', attacker: '10.50.0.2', agent: 'agent-2' };
  const cutsBefore = await fallbacks();
  await run(cut, async () => {
    for (let k = 0; k < 3; k++) {
      const cuts = proxy.cuts;
      await proxy.cutMidReply();
      await waitFor('both connections to be cut', () => proxy.cuts >= cuts + INSTANCES, 300_000, 10);
      await waitFor('both instances to share Redis again', shared, 300_000, 20);
    }
  });
  const cutsAfter = await fallbacks();
  for (let i = 0; i < INSTANCES; i++)
    t.true(
      cutsAfter[i]! - cutsBefore[i]! >= 3,
      `instance ${i} fell back at each cut: ${cutsBefore[i]} → ${cutsAfter[i]}`,
    );
  t.true(tried(cut) >= N && tried(cut) <= N + INSTANCES * N, `cut: ${tried(cut)} tried`);
  t.true(allowed(cut) >= Q && allowed(cut) <= Q + INSTANCES * Q, `cut: ${allowed(cut)} allowed`);
  t.false(
    [...everyAnswer(cut)].some((a) => a.endsWith(':error') || /:5\d\d$/.test(a)),
    `every Check answered, none 5xx: ${[...everyAnswer(cut)].join(' ')}`,
  );

  // 3. Redis connected but answering nothing (its process stopped): each call times out and is
  // decided locally, counted and logged, though the connection never closes.
  const slow: Phase = { name: 'slow', attacker: '10.50.0.5', agent: 'agent-5' };
  local = { failed: await totalLocal('failed_auth'), quota: await totalLocal('per_tool') };
  const localBefore = await localAnswers('failed_auth');
  redis.pause();
  await run(slow, async () => {
    await waitFor(
      'both instances to decide failures locally',
      async () => (await localAnswers('failed_auth')).every((v, i) => v > localBefore[i]!),
      300_000,
      20,
    );
    redis.resume();
  });
  extra = {
    failed: (await totalLocal('failed_auth')) - local.failed,
    quota: (await totalLocal('per_tool')) - local.quota,
  };
  for (let i = 0; i < INSTANCES; i++)
    t.true(
      logs[i]!.some((l) => l.includes('Redis did not answer a limiter call: it is decided on local counters')),
      `instance ${i} logged the local decisions`,
    );
  t.true(
    tried(slow) >= N && tried(slow) <= N + Math.min(extra.failed, INSTANCES * N),
    `slow: ${tried(slow)} tried, ${extra.failed} decided locally`,
  );
  t.true(
    allowed(slow) >= Q && allowed(slow) <= Q + Math.min(extra.quota, INSTANCES * Q),
    `slow: ${allowed(slow)} allowed, ${extra.quota} decided locally`,
  );
  t.false(
    [...everyAnswer(slow)].some((a) => a.endsWith(':error') || /:5\d\d$/.test(a)),
    `every Check answered, none 5xx: ${[...everyAnswer(slow)].join(' ')}`,
  );

  // 4. Redis stopped: each instance limits on its own counters, from zero for a new client.
  await redis.stop();
  await waitFor('both instances to fall back', async () => (await storeUp()).every((v) => v === 0), 300_000, 20);
  const outage: Phase = { name: 'outage', attacker: '10.50.0.3', agent: 'agent-3' };
  await run(outage);
  t.is(tried(outage), INSTANCES * N, 'outage: exactly N failures tried on each instance');
  t.is(allowed(outage), INSTANCES * Q, 'outage: exactly the burst allowed on each instance');
  for (let i = 0; i < INSTANCES; i++)
    t.is(
      load.count(outage, (o) => o.instance === i && o.kind === 'fail' && o.result === 401),
      N,
    );
  t.false(
    [...everyAnswer(outage)].some((a) => a.endsWith(':error') || /:5\d\d$/.test(a)),
    `every Check answered, none 5xx: ${[...everyAnswer(outage)].join(' ')}`,
  );
  // A client locked out while Redis was shared stays locked out on both instances.
  for (const s of instances) t.is(deniedStatus(await s.check(request('tryGood', steady, 0))), 429);

  // 5. Redis back, empty: shared again without a restart, said by the metric and the log.
  await redis.start();
  await waitFor('both instances to share Redis again', shared, 300_000, 50);
  for (let i = 0; i < INSTANCES; i++)
    t.true(
      logs[i]!.some((l) => l.includes('Redis is reachable again: rate limits are shared again')),
      `instance ${i} logged the recovery`,
    );
  const back: Phase = { name: 'back', attacker: '10.50.0.4', agent: 'agent-4' };
  local = { failed: await totalLocal('failed_auth'), quota: await totalLocal('per_tool') };
  await run(back);
  extra = {
    failed: (await totalLocal('failed_auth')) - local.failed,
    quota: (await totalLocal('per_tool')) - local.quota,
  };
  t.true(
    tried(back) >= N && tried(back) <= N + extra.failed,
    `back: ${tried(back)} tried, ${extra.failed} decided locally`,
  );
  t.true(
    allowed(back) >= Q && allowed(back) <= Q + extra.quota,
    `back: ${allowed(back)} allowed, ${extra.quota} decided locally`,
  );
  // Lockouts each instance recorded outlive Redis's data.
  for (const s of instances) {
    t.is(deniedStatus(await s.check(request('tryGood', steady, 0))), 429);
    t.is(deniedStatus(await s.check(request('tryGood', outage, 0))), 429);
  }
  const phases = [steady, cut, slow, outage, back];
  t.log(
    `cuts: ${proxy.cuts}; fallbacks: ${(await fallbacks()).join(', ')}; local answers: ${(await localAnswers('failed_auth')).join(', ')} (failed_auth), ${(await localAnswers('per_tool')).join(', ')} (per_tool)`,
  );
  t.log(
    `tried: ${phases.map((p) => `${p.name} ${tried(p)}`).join(', ')}; allowed: ${phases.map((p) => `${p.name} ${allowed(p)}`).join(', ')}`,
  );
});
