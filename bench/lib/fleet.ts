// `npm run bench -- --fleet`: a simulated fleet on loopback. N `mcp-authz serve --workers 1`
// instances share one real redis-server (rateLimit.redis: lockouts and quotas) and one real
// PostgreSQL (stores.keys: postgres; started as the tests start it, in a temporary folder).
// A light grpc-js load (paced, a few calls in flight per instance) runs on every instance
// throughout, and three things are measured as events — timestamps of answers, never a sleep:
// 1. revocation: a key in use on every instance is revoked (the UPDATE `mcp-authz keys revoke
//    --store postgres` runs); per instance, the time from the statement to the first refused
//    Check, repeated with a fresh key each time;
// 2. accuracy: a per-tool quota of N calls and a failed-authentication lockout after L
//    failures, driven concurrently across every instance: how many calls were allowed against
//    N, how many bad attempts were tried (401) against L, and whether the lock then holds on
//    every instance;
// 3. one instance's loss: SIGKILL to one instance under load: the errors its clients see, the
//    others' throughput and p99 before and after, and a quota spent across the kill.
// See docs/scaling.md.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type pg from 'pg';
import { generateApiKey, hashApiKey } from '../../src/contracts/api-key.js';
import { migratePostgres } from '../../src/stores/open.js';
import { startPostgres, type TestPostgres } from '../../test/helpers/postgres.js';
import { startRedis, type TestRedis } from '../../test/helpers/redis.js';
import { checkRequest, deniedBody, deniedStatus, rpc, type CheckResponse } from '../../test/helpers/service.js';
import { round } from './ghz.js';
import { startMcpAuthz } from './mcp-authz.js';
import { shippedBundle } from './paths.js';
import { freePort, loadAverage, machineBusySeconds, treeCpuSeconds, type Started } from './processes.js';
import { CheckClient } from './verify.js';

export interface FleetOptions {
  /** Serve instances (each --workers 1). */
  instances: number;
  /** Revocations measured, each with a fresh key. */
  revocations: number;
  /** The steady load: Checks per second sent to each instance, and how many in flight at most. */
  rpsPerInstance: number;
  inFlightPerInstance: number;
  /** The per-tool quota's burst (N calls), and the failed-authentication lockout's maxAttempts (L). */
  quota: number;
  lockoutAttempts: number;
  /** Seconds of steady load measured before and after one instance is killed; 0: no loss phase. */
  lossWindowSec: number;
  /** Where each instance's log goes (a folder), else nowhere. */
  serverLogDir?: string;
  /** How long any one awaited event may take before the run fails (generous: a loaded machine). */
  deadlineMs?: number;
  /** stores.postgres.queryTimeoutMs: the product's default (2,000 ms) unless set; past it a lookup answers 503. */
  postgresQueryTimeoutMs?: number;
  /**
   * rateLimit.redis.commandTimeoutMs: the product's default (250 ms) unless set. Past it a limiter
   * call is answered by the instance's local counters, which a quota or lockout then overshoots:
   * part of what the benchmark measures, and what a test on a loaded machine sets aside.
   */
  redisCommandTimeoutMs?: number;
  log: (msg: string) => void;
}

export interface Percentiles {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export interface RevocationRound {
  key: string;
  /** The UPDATE's own round trip (sent → committed and acknowledged), ms. */
  statementMs: number;
  /** ms from sending the statement to its notification reaching a listener of the harness's own (the database's part). */
  notifiedAfterMs: number;
  /** Per instance: ms from sending the revoking statement to the first refused Check's answer. */
  refusedAfterMs: number[];
  /** Checks allowed that were sent after the statement was acknowledged, per instance. */
  allowedAfterCommit: number[];
  /** Answers for the key that were neither an allow nor its refusal (e.g. a slow database's 503), by answer. */
  other: Record<string, number>;
}

export interface LoadWindow {
  seconds: number;
  /** Per instance: answers per second, p50/p99 ms (sent → answered), transport errors. */
  perInstance: { instance: number; rps: number; p50Ms: number; p99Ms: number; errors: number }[];
}

export interface FleetResult {
  config: Omit<
    FleetOptions,
    'log' | 'serverLogDir' | 'deadlineMs' | 'redisCommandTimeoutMs' | 'postgresQueryTimeoutMs'
  > & {
    redisCommandTimeoutMs: number;
    postgresQueryTimeoutMs: number;
  };
  tools: { redis: string; postgres: string };
  revocation: {
    rounds: RevocationRound[];
    /** Over every (round, instance): ms from the revoking statement to the first refusal. */
    refusedAfterMs: Percentiles;
    /** Over the rounds: ms from the statement to its notification at the harness's own listener. */
    notifiedAfterMs: Percentiles;
    /** Per instance over the rounds. */
    perInstance: Percentiles[];
    /** Every revocation observed as a refusal on every instance. */
    observedEverywhere: boolean;
    allowedAfterCommit: number;
  };
  quota: {
    configured: number;
    /** Tokens the bucket could have gained during the phase (rps × seconds, floored). */
    refill: number;
    sent: number;
    allowed: number;
    exceeded: number;
    other: Record<string, number>;
    perInstanceAllowed: number[];
    exact: boolean;
    overBy: number;
  };
  lockout: {
    configured: number;
    sent: number;
    /** Bad attempts whose key was tried (401 invalid_api_key): the attempts that got through. */
    tried: number;
    lockedOut: number;
    other: Record<string, number>;
    perInstanceTried: number[];
    /** After the burst, a valid key from the locked-out address is refused 429 on every instance. */
    heldEverywhere: boolean;
    exact: boolean;
    overBy: number;
  };
  loss?: {
    killed: number;
    before: LoadWindow;
    after: LoadWindow;
    /** Calls in flight on the killed instance when it was killed, and how they ended (gRPC 14: UNAVAILABLE). */
    killedInFlight: number;
    killedAnswers: Record<string, number>;
    /** Transport errors and unexpected answers on the surviving instances over the whole phase. */
    survivorErrors: number;
    survivorUnexpected: Record<string, number>;
    quota: {
      configured: number;
      refill: number;
      allowed: number;
      /** Quota calls whose answer was lost with the killed instance (counted or not: unknown). */
      unanswered: number;
      exceeded: number;
      /** allowed ≤ configured + refill and allowed + unanswered ≥ configured: nothing lost, nothing over. */
      consistent: boolean;
    };
  };
  /** Limiter calls answered by an instance's local counters (Redis too slow or away), summed over the surviving instances. */
  limiterLocalAnswers: number;
  cpu: {
    /** Per phase: the instances' CPU µs per answered Check (all instances' CPU / all answers), the machine's busy cores. */
    phases: {
      phase: string;
      seconds: number;
      checks: number;
      instancesUsPerCheck: number;
      /** What the instances would have spent in as long with no load (measured before the load), per Check. */
      instancesIdleUsPerCheck: number;
      redisUsPerCheck: number;
      postgresUsPerCheck: number;
      machineBusyCores: number;
    }[];
    /** One instance's CPU with no load, in ms per second. */
    idleMsPerSecond: number;
    harnessCpuSec: number;
  };
  loadAverage: { start: [number, number, number]; end: [number, number, number] };
  passed: boolean;
}

const ENDPOINT = '/mcp/fleet';
const SCHEMA = 'mcp_authz';
/** Refill of the quota buckets: one call per 10,000 s, so a phase's refill is 0 in practice, and it is reported. */
const QUOTA_RPS = 0.0001;
const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

type Outcome = 'allow' | 'error' | string; // else `deny <status> <error>`

interface Answer {
  instance: number;
  tag: string;
  sentMs: number;
  doneMs: number;
  outcome: Outcome;
}

function classify(res: CheckResponse): Outcome {
  if (res.denied_response === undefined && (res.status?.code ?? 0) === 0) return 'allow';
  let error = '';
  try {
    error = String(deniedBody(res)?.error ?? '');
  } catch {
    /* not JSON */
  }
  return `deny ${deniedStatus(res) ?? '?'} ${error}`.trim();
}

const REVOKED = 'deny 401 invalid_api_key';
const LOCKED = 'deny 429 too_many_requests';
const QUOTA = 'deny 429 quota_exceeded';

function call(tool: string, key: string, source: string): Record<string, unknown> {
  return checkRequest({
    method: 'POST',
    path: ENDPOINT,
    body: rpc('tools/call', { name: tool, arguments: { path: '/docs/README.md' } }, 7),
    headers: { ...mcpHeaders, 'x-api-key': key },
    source,
  });
}

/**
 * One paced closed loop per slot: at most `inFlight` Checks at a time to one instance, each
 * slot sending at most `rps / inFlight` per second. `next()` gives the request and its tag;
 * undefined pauses the slot for a tick.
 */
class Driver {
  private running = true;
  private readonly loops: Promise<void>[] = [];
  inFlight = 0;

  constructor(
    readonly instance: number,
    private readonly client: CheckClient,
    rps: number,
    slots: number,
    private readonly next: () => { req: Record<string, unknown>; tag: string } | undefined,
    private readonly onAnswer: (a: Answer) => void,
  ) {
    const intervalMs = rps > 0 ? (1000 * slots) / rps : 0;
    for (let s = 0; s < slots; s++) this.loops.push(this.loop(intervalMs, (s * intervalMs) / slots));
  }

  private async loop(intervalMs: number, offsetMs: number): Promise<void> {
    let due = performance.now() + offsetMs;
    while (this.running) {
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (!this.running) break;
      due = Math.max(due + intervalMs, performance.now() - intervalMs); // no catch-up burst after a stall
      const n = this.next();
      if (n === undefined) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      const sentMs = performance.now();
      this.inFlight++;
      let outcome: Outcome;
      try {
        outcome = classify(await this.client.check(n.req, 30_000));
      } catch (err) {
        outcome = `error ${(err as { code?: number }).code ?? ''}`.trim();
      }
      this.inFlight--;
      this.onAnswer({ instance: this.instance, tag: n.tag, sentMs, doneMs: performance.now(), outcome });
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/** Quota calls per second per instance during the loss phase. */
const lossQuotaRps = (o: FleetOptions) => Math.max(1, o.rpsPerInstance / 10);

/** CPU seconds of the children a process waited for (PostgreSQL's backends that ended). */
function reapedCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[13]) + Number(f[14])) / 100;
  } catch {
    return 0;
  }
}

/** The PID of the process whose command line `match` accepts (the servers the tests' helpers start). */
function findPid(match: (args: string[]) => boolean): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const args = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (args.length && match(args)) return Number(name);
    } catch {
      /* exited meanwhile */
    }
  }
  return undefined;
}

function percentiles(values: number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]! : NaN);
  return { n: s.length, p50: round(at(0.5), 1), p99: round(at(0.99), 1), max: round(s.at(-1) ?? NaN, 1) };
}

function count(outcomes: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of outcomes) out[o] = (out[o] ?? 0) + 1;
  return out;
}

/** Polls `cond` (an in-memory condition fed by answers) until it holds; fails after `deadlineMs`. */
async function until(what: string, cond: () => boolean, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`fleet: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Sends `total` calls split across `clients`, `perClientInFlight` at a time on each, as fast as they are answered. */
async function burst(
  clients: CheckClient[],
  total: number,
  perClientInFlight: number,
  req: (i: number) => Record<string, unknown>,
): Promise<Answer[]> {
  const answers: Answer[] = [];
  let next = 0;
  await Promise.all(
    clients.flatMap((client, instance) =>
      Array.from({ length: perClientInFlight }, async () => {
        while (next < total) {
          const i = next++;
          const sentMs = performance.now();
          let outcome: Outcome;
          try {
            outcome = classify(await client.check(req(i), 30_000));
          } catch (err) {
            outcome = `error ${(err as { code?: number }).code ?? ''}`.trim();
          }
          answers.push({ instance, tag: String(i), sentMs, doneMs: performance.now(), outcome });
        }
      }),
    ),
  );
  return answers;
}

function windowOf(answers: Answer[], instances: number[], fromMs: number, toMs: number): LoadWindow {
  const seconds = (toMs - fromMs) / 1000;
  return {
    seconds: round(seconds, 1),
    perInstance: instances.map((instance) => {
      const mine = answers.filter((a) => a.instance === instance && a.doneMs >= fromMs && a.doneMs < toMs);
      const ok = mine.filter((a) => !a.outcome.startsWith('error'));
      const lat = percentiles(ok.map((a) => a.doneMs - a.sentMs));
      return {
        instance,
        rps: round(ok.length / seconds, 1),
        p50Ms: lat.p50,
        p99Ms: lat.p99,
        errors: mine.length - ok.length,
      };
    }),
  };
}

export async function runFleet(o: FleetOptions): Promise<FleetResult> {
  const deadline = o.deadlineMs ?? 60_000;
  const loadStart = loadAverage();
  const harness0 = process.cpuUsage();
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-fleet-'));
  let db: TestPostgres | undefined;
  let redis: TestRedis | undefined;
  let admin: pg.Client | undefined;
  let listener: pg.Client | undefined;
  const servers: (Started | undefined)[] = [];
  const clients: CheckClient[] = [];
  const drivers: Driver[] = [];
  try {
    [db, redis] = await Promise.all([startPostgres({ settings: { max_connections: '60' } }), startRedis()]);
    const url = `postgres://postgres@127.0.0.1:${db.port}/postgres`;
    await migratePostgres({ url, schema: SCHEMA, poolSize: 1, queryTimeoutMs: 10_000, migrate: false });
    admin = await db.connect();
    // The harness listens on the keys' channel too: when the database delivered a notification.
    listener = await db.connect();
    const notified = new Map<string, number[]>();
    listener.on('notification', (m) => {
      const at = performance.now();
      if (m.payload) notified.set(m.payload, [...(notified.get(m.payload) ?? []), at]);
    });
    await listener.query('LISTEN mcp_authz_keys');
    const dbPort = String(db.port);
    const redisPort = String(redis.port);
    const storePids = {
      // redis-server renames itself "redis-server 127.0.0.1:<port>".
      redis: findPid((a) => a[0]!.startsWith('redis-server') && a.join(' ').includes(`:${redisPort}`)),
      postgres: findPid((a) => a[0]!.endsWith('/postgres') && a[a.indexOf('-p') + 1] === dbPort),
    };
    const storeCpu = () => ({
      redis: storePids.redis ? treeCpuSeconds(storePids.redis) : NaN,
      postgres: storePids.postgres ? treeCpuSeconds(storePids.postgres) + reapedCpuSeconds(storePids.postgres) : NaN,
    });
    const versions = {
      redis: await redisVersion(redis.port),
      postgres: String((await admin.query('SHOW server_version')).rows[0]?.server_version ?? 'unknown'),
    };
    const insertKey = async (id: string, grants: string[]): Promise<string> => {
      const key = generateApiKey();
      await admin!.query(`INSERT INTO ${SCHEMA}.api_keys (id, sha256, owner, grants) VALUES ($1, $2, $3, $4)`, [
        id,
        hashApiKey(key),
        'fleet-user',
        grants,
      ]);
      return key;
    };
    // The loss phase's quota: more than its paced quota calls spend in the two windows
    // (a tenth of the steady rate per instance), so that the rest is spent after the kill.
    const lossQuota = o.quota + Math.ceil(lossQuotaRps(o) * o.instances * 2 * o.lossWindowSec * 1.25);

    // The instances: one config each (own ports), everything else the same.
    const ports: number[] = [];
    const httpPorts: number[] = [];
    const starting: Promise<Started>[] = [];
    for (let i = 0; i < o.instances; i++) {
      const [grpcPort, httpPort] = [await freePort(), await freePort()];
      ports.push(grpcPort);
      httpPorts.push(httpPort);
      const cfg = {
        publicBaseUrl: 'https://mcp.example.com',
        listen: { grpc: `127.0.0.1:${grpcPort}`, http: `127.0.0.1:${httpPort}` },
        policy: { bundle: shippedBundle },
        stores: {
          keys: 'postgres',
          postgres: {
            url,
            schema: SCHEMA,
            poolSize: 2,
            ...(o.postgresQueryTimeoutMs ? { queryTimeoutMs: o.postgresQueryTimeoutMs } : {}),
          },
          // Long TTLs: a revoked key can only be refused because the notification said so.
          keyCache: { ttlSeconds: 3600, negativeTtlSeconds: 3600 },
        },
        rateLimit: {
          failedAuth: { maxAttempts: o.lockoutAttempts, windowSeconds: 3600 },
          perTool: [
            { name: 'writes', match: 'tools:write_*', rps: QUOTA_RPS, burst: o.quota },
            { name: 'appends', match: 'tools:append_*', rps: QUOTA_RPS, burst: lossQuota },
          ],
          redis: {
            url: redis.url,
            keyPrefix: 'fleet',
            ...(o.redisCommandTimeoutMs ? { commandTimeoutMs: o.redisCommandTimeoutMs } : {}),
          },
        },
        endpoints: [{ name: 'fleet', match: { pathPrefix: ENDPOINT }, auth: { apiKey: true, oauth: false } }],
      };
      const file = join(dir, `instance-${i}.yaml`);
      writeFileSync(file, stringify(cfg));
      const probe = call('read_file', 'mcp_probe_not_a_key', '10.255.0.1');
      starting.push(
        startMcpAuthz(file, grpcPort, probe, o.serverLogDir ? join(o.serverLogDir, `fleet-${i}.log`) : undefined, 1),
      );
    }
    const started = await Promise.allSettled(starting);
    for (const s of started) servers.push(s.status === 'fulfilled' ? s.value : undefined);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    for (const p of ports) clients.push(new CheckClient(`127.0.0.1:${p}`));
    const all = clients.map((_, i) => i);
    o.log(`fleet: ${o.instances} instances up; redis ${versions.redis}, postgresql ${versions.postgres}`);

    // What an instance spends with no load at all (timers, the channels' keep-alives), per second.
    const idle0 = servers.map((x) => treeCpuSeconds(x!.pid));
    const idleT0 = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    const idleSec = (performance.now() - idleT0) / 1000;
    const idlePerInstanceSec =
      servers.reduce((a, x, i) => a + (treeCpuSeconds(x!.pid) - idle0[i]!), 0) / servers.length / idleSec;

    // The steady load, on every instance, for the whole run: `current` says what it sends;
    // an instance that refused the current revoked key is sent nothing more until the next
    // round (every refusal is a failed authentication, counted towards a lockout).
    const answers: Answer[] = [];
    let current: { req: Record<string, unknown>; tag: string } | undefined;
    const seen = new Map<string, { n: number; firstDoneMs: number }>();
    const refusedOn = new Set<number>();
    const record = (a: Answer) => {
      answers.push(a);
      const k = `${a.tag}|${a.instance}|${a.outcome}`;
      const s = seen.get(k);
      if (s) s.n++;
      else seen.set(k, { n: 1, firstDoneMs: a.doneMs });
      if (a.outcome === REVOKED && a.tag === current?.tag) refusedOn.add(a.instance);
    };
    const seenOf = (tag: string, i: number, outcome: string) => seen.get(`${tag}|${i}|${outcome}`);
    const cpuPhases: FleetResult['cpu']['phases'] = [];
    const phase = async <T extends { extraChecks: number }>(name: string, fn: () => Promise<T>): Promise<T> => {
      const pids = servers.map((s) => s?.pid ?? -1);
      const cpu0 = pids.map((p) => (p > 0 ? treeCpuSeconds(p) : 0));
      const s0 = storeCpu();
      const m0 = machineBusySeconds();
      const n0 = answers.length;
      const t0 = performance.now();
      const r = await fn();
      const sec = (performance.now() - t0) / 1000;
      // A killed instance's CPU after its last reading is lost: counted up to the kill only.
      const cpu1 = pids.map((p, i) => (p > 0 && servers[i] ? treeCpuSeconds(p) : cpu0[i]!));
      const checks = answers.length - n0 + r.extraChecks;
      const used = cpu1.reduce((a, c, i) => a + (c - cpu0[i]!), 0);
      const s1 = storeCpu();
      const perCheck = (cpuSec: number) => (checks ? round((cpuSec * 1e6) / checks, 0) : 0);
      cpuPhases.push({
        phase: name,
        seconds: round(sec, 1),
        checks,
        instancesUsPerCheck: perCheck(used),
        instancesIdleUsPerCheck: perCheck(idlePerInstanceSec * sec * pids.filter((p, i) => p > 0 && servers[i]).length),
        redisUsPerCheck: perCheck(s1.redis - s0.redis),
        postgresUsPerCheck: perCheck(s1.postgres - s0.postgres),
        machineBusyCores: round((machineBusySeconds() - m0) / sec, 2),
      });
      return r;
    };
    for (const i of all)
      drivers.push(
        new Driver(
          i,
          clients[i]!,
          o.rpsPerInstance,
          o.inFlightPerInstance,
          () => (current && !refusedOn.has(i) ? current : undefined),
          record,
        ),
      );

    // 1. Revocation.
    const { rounds } = await phase('revocation', async () => {
      const out: RevocationRound[] = [];
      for (let r = 0; r < o.revocations; r++) {
        const id = `fleet-revoke-${r}`;
        const key = await insertKey(id, ['tools:read_*']);
        // Each round from its own client address: the refusals after a revocation are failed
        // authentications, and must not add up to a lockout across rounds.
        const tag = `revoke-${r}`;
        refusedOn.clear();
        current = { req: call('read_file', key, `10.9.${r >> 8}.${r & 255}`), tag };
        // Warm: every instance has allowed the key several times (looked up once, then cached).
        await until(
          `instances to allow ${id}`,
          () => all.every((i) => (seenOf(tag, i, 'allow')?.n ?? 0) >= 5),
          deadline,
        );
        const sent = performance.now();
        await admin!.query(
          `UPDATE ${SCHEMA}.api_keys SET revoked_at = coalesce(revoked_at, now()), updated_at = now() WHERE id = $1`,
          [id],
        );
        const acked = performance.now();
        await until(`every instance to refuse ${id}`, () => all.every((i) => refusedOn.has(i)), deadline);
        current = undefined;
        // Let the answers in flight land before the next round's key.
        await until('the load to drain', () => drivers.every((d) => d.inFlight === 0), deadline);
        const mine = answers.filter((a) => a.tag === tag);
        const other = count(mine.map((a) => a.outcome).filter((x) => x !== 'allow' && x !== REVOKED));
        // A Check in flight when the statement was sent may be refused (decided after it); one answered before cannot.
        const early = mine.filter((a) => a.outcome === REVOKED && a.doneMs < sent);
        if (early.length)
          throw new Error(
            `fleet: ${id} refused before it was revoked: ${JSON.stringify(mine.map((a) => [a.instance, round(a.sentMs - sent, 1), round(a.doneMs - sent, 1), a.outcome]))}`,
          );
        const refusedAfterMs = all.map((i) => round(seenOf(tag, i, REVOKED)!.firstDoneMs - sent, 1));
        await until(
          `the notification of ${id} at the harness`,
          () => (notified.get(hashApiKey(key)) ?? []).some((t) => t >= sent),
          deadline,
        );
        const notifiedAfterMs = round(notified.get(hashApiKey(key))!.find((t) => t >= sent)! - sent, 1);
        const allowedAfterCommit = all.map(
          (i) => mine.filter((a) => a.instance === i && a.outcome === 'allow' && a.sentMs > acked).length,
        );
        out.push({
          key: id,
          statementMs: round(acked - sent, 1),
          notifiedAfterMs,
          refusedAfterMs,
          allowedAfterCommit,
          other,
        });
        o.log(
          `fleet: revocation ${r + 1}/${o.revocations}: refused after ${refusedAfterMs.join(', ')} ms (statement ${round(acked - sent, 1)} ms, notification ${notifiedAfterMs} ms)${Object.keys(other).length ? `; other answers ${JSON.stringify(other)}` : ''}`,
        );
      }
      return { rounds: out, extraChecks: 0 };
    });
    const flat = rounds.flatMap((r) => r.refusedAfterMs);

    // The load goes on with a key that stays valid, while the bursts below run beside it.
    const steadyKey = await insertKey('fleet-steady', ['tools:read_*']);
    refusedOn.clear();
    current = { req: call('read_file', steadyKey, '10.7.0.1'), tag: 'steady' };

    // 2a. A quota of N calls, from every instance at once.
    const quota = await phase('quota', async () => {
      const key = await insertKey('fleet-quota', ['tools:*']);
      const total = Math.max(2 * o.quota, o.quota + 8 * clients.length);
      const t0 = performance.now();
      const got = await burst(clients, total, 4, () => call('write_note', key, '10.6.0.1'));
      const refill = Math.floor(((performance.now() - t0) / 1000) * QUOTA_RPS);
      const outcomes = got.map((a) => a.outcome);
      const allowed = outcomes.filter((x) => x === 'allow').length;
      const exceeded = outcomes.filter((x) => x === QUOTA).length;
      const other = count(outcomes.filter((x) => x !== 'allow' && x !== QUOTA));
      return {
        configured: o.quota,
        refill,
        sent: total,
        allowed,
        exceeded,
        other,
        perInstanceAllowed: all.map((i) => got.filter((a) => a.instance === i && a.outcome === 'allow').length),
        exact: allowed === o.quota && Object.keys(other).length === 0,
        overBy: Math.max(0, allowed - o.quota - refill),
        extraChecks: total,
      };
    });
    o.log(`fleet: quota ${o.quota}: ${quota.allowed} allowed of ${quota.sent} sent (${quota.exceeded} quota_exceeded)`);

    // 2b. The lockout after L failed authentications from one address, from every instance at once.
    const lockout = await phase('lockout', async () => {
      const source = '10.5.0.1';
      const total = Math.max(4 * o.lockoutAttempts, o.lockoutAttempts + 8 * clients.length);
      const got = await burst(clients, total, 4, () => call('read_file', generateApiKey(), source));
      const outcomes = got.map((a) => a.outcome);
      const tried = outcomes.filter((x) => x === REVOKED).length;
      const lockedOut = outcomes.filter((x) => x === LOCKED).length;
      // The lock, asked of every instance with a key that is valid: refused on each.
      const held = await Promise.all(
        clients.map(async (c) => classify(await c.check(call('read_file', steadyKey, source), 30_000))),
      );
      return {
        configured: o.lockoutAttempts,
        sent: total,
        tried,
        lockedOut,
        other: count(outcomes.filter((x) => x !== REVOKED && x !== LOCKED)),
        perInstanceTried: all.map((i) => got.filter((a) => a.instance === i && a.outcome === REVOKED).length),
        heldEverywhere: held.every((x) => x === LOCKED),
        exact: tried === o.lockoutAttempts,
        overBy: Math.max(0, tried - o.lockoutAttempts),
        extraChecks: total + clients.length,
      };
    });
    o.log(
      `fleet: lockout after ${o.lockoutAttempts}: ${lockout.tried} bad attempts tried of ${lockout.sent} (${lockout.lockedOut} locked out); held everywhere: ${lockout.heldEverywhere}`,
    );

    const strip = <T extends { extraChecks: number }>(x: T): Omit<T, 'extraChecks'> => {
      const { extraChecks: _, ...rest } = x;
      return rest;
    };
    // 3. One instance's loss, with a quota spent across it.
    let loss: FleetResult['loss'];
    if (o.lossWindowSec > 0 && o.instances > 1) {
      const lossRun = await phase('loss', async () => {
        const killed = o.instances - 1;
        const key = await insertKey('fleet-loss-quota', ['tools:*']);
        // Beside the steady load, quota calls on every instance (a tenth of the rate each).
        const quotaAnswers: Answer[] = [];
        const quotaDrivers = all.map(
          (i) =>
            new Driver(
              i,
              clients[i]!,
              lossQuotaRps(o),
              1,
              () => ({ req: call('append_note', key, '10.4.0.1'), tag: 'loss-quota' }),
              (a) => quotaAnswers.push(a),
            ),
        );
        const tq = performance.now();
        const from = performance.now();
        await until(
          'the window before the kill',
          () => performance.now() - from >= o.lossWindowSec * 1000,
          deadline + o.lossWindowSec * 1000,
        );
        const killAt = performance.now();
        const inFlight = drivers[killed]!.inFlight + quotaDrivers[killed]!.inFlight;
        process.kill(-servers[killed]!.pid, 'SIGKILL');
        // Its clients stop sending new calls (Envoy ejects the host); the calls in flight end as they end.
        const stopping = [drivers[killed]!.stop(), quotaDrivers[killed]!.stop()];
        await servers[killed]!.exited;
        servers[killed] = undefined;
        await Promise.all(stopping);
        await until(
          'the window after the kill',
          () => performance.now() - killAt >= o.lossWindowSec * 1000,
          deadline + o.lossWindowSec * 1000,
        );
        const endAt = performance.now();
        await Promise.all(quotaDrivers.map((d) => d.stop()));
        // Spend the rest of the quota on the survivors.
        const survivors = all.filter((i) => i !== killed);
        const rest = await burst(
          survivors.map((i) => clients[i]!),
          lossQuota + 8 * survivors.length,
          4,
          () => call('append_note', key, '10.4.0.1'),
        );
        const refill = Math.floor(((performance.now() - tq) / 1000) * QUOTA_RPS);
        const qOut = [...quotaAnswers, ...rest].map((a) => a.outcome);
        const allowed = qOut.filter((x) => x === 'allow').length;
        const unanswered = quotaAnswers.filter((a) => a.instance === killed && a.outcome.startsWith('error')).length;
        const killedAnswers = [...answers, ...quotaAnswers].filter((a) => a.instance === killed && a.doneMs >= killAt);
        const survivorAll = [...answers, ...quotaAnswers].filter(
          (a) => a.instance !== killed && a.doneMs >= from && a.doneMs < endAt,
        );
        const before = windowOf(answers, all, from, killAt);
        const after = windowOf(answers, survivors, killAt, endAt);
        return {
          killed,
          before,
          after,
          killedInFlight: inFlight,
          killedAnswers: count(killedAnswers.map((a) => a.outcome)),
          survivorErrors: survivorAll.filter((a) => a.outcome.startsWith('error')).length,
          survivorUnexpected: count(
            survivorAll.map((a) => a.outcome).filter((x) => x !== 'allow' && x !== QUOTA && !x.startsWith('error')),
          ),
          quota: {
            configured: lossQuota,
            refill,
            allowed,
            unanswered,
            exceeded: qOut.filter((x) => x === QUOTA).length,
            consistent: allowed <= lossQuota + refill && allowed + unanswered >= lossQuota,
          },
          extraChecks: quotaAnswers.length + rest.length,
        };
      });
      loss = strip(lossRun);
      o.log(
        `fleet: instance ${loss.killed} killed: ${loss.killedInFlight} calls in flight on it (${JSON.stringify(loss.killedAnswers)}); survivors: ${loss.survivorErrors} errors; quota ${loss.quota.allowed} allowed of ${loss.quota.configured} (${loss.quota.unanswered} unanswered)`,
      );
    }

    await Promise.all(drivers.map((d) => d.stop()));
    // Limiter calls Redis did not answer in time, decided on an instance's own counters instead:
    // none means every count above was Redis's.
    let localAnswers = 0;
    for (const [i, port] of httpPorts.entries()) {
      if (!servers[i]) continue;
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      for (const m of text.matchAll(/^mcp_authz_limiter_local_answers_total\{[^}]*\} (\d+(?:\.\d+)?)$/gm))
        localAnswers += Number(m[1]);
    }
    const harness = process.cpuUsage(harness0);
    const observedEverywhere =
      rounds.length === o.revocations && rounds.every((r) => r.refusedAfterMs.every(Number.isFinite));
    const revocationClean = rounds.every((r) => Object.keys(r.other).length === 0);
    const lossOk =
      loss === undefined ||
      (loss.survivorErrors === 0 && Object.keys(loss.survivorUnexpected).length === 0 && loss.quota.consistent);
    return {
      config: {
        instances: o.instances,
        revocations: o.revocations,
        rpsPerInstance: o.rpsPerInstance,
        inFlightPerInstance: o.inFlightPerInstance,
        quota: o.quota,
        lockoutAttempts: o.lockoutAttempts,
        lossWindowSec: o.lossWindowSec,
        redisCommandTimeoutMs: o.redisCommandTimeoutMs ?? 250,
        postgresQueryTimeoutMs: o.postgresQueryTimeoutMs ?? 2000,
      },
      tools: versions,
      revocation: {
        rounds,
        refusedAfterMs: percentiles(flat),
        notifiedAfterMs: percentiles(rounds.map((r) => r.notifiedAfterMs)),
        perInstance: all.map((i) => percentiles(rounds.map((r) => r.refusedAfterMs[i]!))),
        observedEverywhere,
        allowedAfterCommit: rounds.reduce((a, r) => a + r.allowedAfterCommit.reduce((x, y) => x + y, 0), 0),
      },
      quota: strip(quota),
      lockout: strip(lockout),
      ...(loss ? { loss } : {}),
      limiterLocalAnswers: localAnswers,
      cpu: {
        phases: cpuPhases,
        idleMsPerSecond: round(idlePerInstanceSec * 1000, 2),
        harnessCpuSec: round((harness.user + harness.system) / 1e6, 2),
      },
      loadAverage: { start: loadStart, end: loadAverage() },
      passed: observedEverywhere && revocationClean && quota.exact && lockout.exact && lockout.heldEverywhere && lossOk,
    };
  } finally {
    await Promise.all(drivers.map((d) => d.stop()));
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s?.stop()));
    await admin?.end().catch(() => undefined);
    await listener?.end().catch(() => undefined);
    await Promise.all([db?.stop(), redis?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** redis-server's version, from INFO on a fresh connection. */
async function redisVersion(port: number): Promise<string> {
  const { Socket } = await import('node:net');
  return new Promise((resolve) => {
    const sock = new Socket();
    let buf = '';
    const done = (v: string) => {
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(2000, () => done('unknown'));
    sock.once('error', () => done('unknown'));
    sock.connect(port, '127.0.0.1', () => sock.write('INFO server\r\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      const m = /redis_version:([^\r\n]+)/.exec(buf);
      if (m) done(m[1]!);
    });
  });
}

export function printFleet(command: string, r: FleetResult): void {
  const w = (s: string) => process.stdout.write(`${s}\n`);
  const p = (x: Percentiles) => `p50 ${x.p50} ms, p99 ${x.p99} ms, max ${x.max} ms (n ${x.n})`;
  w(
    `\n${command}: ${r.config.instances} instances (--workers 1), one redis-server ${r.tools.redis}, one PostgreSQL ${r.tools.postgres}`,
  );
  w(`  steady load: ${r.config.rpsPerInstance} Checks/s per instance, ${r.config.inFlightPerInstance} in flight`);
  w(`  revocation → first refusal, every instance: ${p(r.revocation.refusedAfterMs)}; target within 1000 ms`);
  w(`    revocation → its notification at a listener of the harness: ${p(r.revocation.notifiedAfterMs)}`);
  r.revocation.perInstance.forEach((x, i) => w(`    instance ${i}: ${p(x)}`));
  w(`    allowed after the statement was acknowledged: ${r.revocation.allowedAfterCommit}`);
  const q = r.quota;
  w(
    `  quota ${q.configured}: ${q.allowed} allowed of ${q.sent} (per instance ${q.perInstanceAllowed.join('/')}), ${q.exact ? 'exact' : `over by ${q.overBy}`}`,
  );
  const l = r.lockout;
  w(
    `  lockout after ${l.configured}: ${l.tried} tried of ${l.sent} (per instance ${l.perInstanceTried.join('/')}), ${l.exact ? 'exact' : `over by ${l.overBy}`}; held on every instance: ${l.heldEverywhere}`,
  );
  if (r.loss) {
    const x = r.loss;
    w(
      `  instance ${x.killed} killed (SIGKILL): ${x.killedInFlight} in flight on it, how they ended: ${JSON.stringify(x.killedAnswers)}`,
    );
    for (const [name, win] of [
      ['before', x.before],
      ['after', x.after],
    ] as const)
      w(
        `    ${name} (${win.seconds} s): ${win.perInstance.map((i) => `#${i.instance} ${i.rps}/s p99 ${i.p99Ms} ms`).join(', ')}`,
      );
    w(
      `    survivors: ${x.survivorErrors} errors, unexpected ${JSON.stringify(x.survivorUnexpected)}; quota ${x.quota.allowed} allowed of ${x.quota.configured} (${x.quota.unanswered} unanswered): ${x.quota.consistent ? 'consistent' : 'INCONSISTENT'}`,
    );
  }
  w(`  limiter calls answered locally (Redis too slow or away): ${r.limiterLocalAnswers}`);
  for (const c of r.cpu.phases)
    w(
      `  cpu ${c.phase}: ${c.checks} Checks in ${c.seconds} s; µs per Check: instances ${c.instancesUsPerCheck} (of which idle ${c.instancesIdleUsPerCheck}), redis ${c.redisUsPerCheck}, postgresql ${c.postgresUsPerCheck}; machine ${c.machineBusyCores} cores busy`,
    );
  w(`  an idle instance: ${r.cpu.idleMsPerSecond} ms CPU per second`);
  w(
    `  load average ${r.loadAverage.start.join(' ')} → ${r.loadAverage.end.join(' ')}; harness ${r.cpu.harnessCpuSec} s CPU`,
  );
  w(`  ${r.passed ? 'PASSED' : 'FAILED'}`);
}
