// Faults under load: a worker of `serve --workers 2` killed with SIGKILL while real gRPC load
// runs against the port — failed authentications from one client driven through its lockout,
// calls against a per-tool quota, and other clients' traffic, on eight connections. The
// supervisor replaces the worker, the port keeps answering, and the counts held by the primary
// survive: never more failures tried than the limit, never more quota calls allowed than the
// burst, and the lockout reaches the new worker. What the dead worker took with it is bounded
// and counted (docs/rate-limits.md, "Workers"). No timing is assumed: every step waits on an
// answer, a log line or a metric.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { clientConstructors } from '../src/envoy/protos.js';
import { sumOf } from './helpers/prometheus.js';
import { checkRequest, deniedBody, deniedStatus, headerValue, rpc, type CheckResponse } from './helpers/service.js';
import { startServe, type ServeProcess } from './helpers/subprocess-service.js';
import { waitFor } from './helpers/wait.js';

const withTestAuth = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'serve-with-test-auth.ts');
const WORKERS = 2;
const MAX = 40;
/** The largest lease of one client's failures a worker holds (docs/rate-limits.md). */
const LEASE = Math.floor((MAX - 1) / (2 * WORKERS));
const BURST = 24;
const CONNECTIONS = 8;
const LOOPS = 12;
const ATTACKER = '10.40.0.1';

const config = {
  rateLimit: {
    failedAuth: { maxAttempts: MAX, windowSeconds: 600 },
    // One call per 1000 s after the burst: nothing refills while the test runs.
    perTool: [{ name: 'deletes', match: 'tools:delete_*', rps: 0.001, burst: BURST }],
  },
  endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true } }],
};

type Kind = 'fail' | 'tryGood' | 'delete' | 'filler';
const KINDS: Kind[] = ['fail', 'filler', 'delete', 'fail', 'tryGood', 'filler'];

function request(kind: Kind, n: number): Record<string, unknown> {
  switch (kind) {
    case 'fail':
      return checkRequest({ method: 'GET', path: '/mcp/files', source: ATTACKER, headers: { 'x-test-auth': 'fail' } });
    case 'tryGood':
      return checkRequest({
        method: 'GET',
        path: '/mcp/files',
        source: ATTACKER,
        headers: { 'x-test-auth': 'ok', 'x-test-key': 'attacker' },
      });
    case 'delete':
      return checkRequest({
        path: '/mcp/files',
        source: '10.42.0.1',
        body: rpc('tools/call', { name: 'delete_file' }, n),
        headers: { 'x-test-auth': 'ok', 'x-test-key': 'agent' },
      });
    case 'filler':
      return checkRequest({
        method: 'GET',
        path: '/mcp/files',
        source: `10.41.${(n >> 8) & 255}.${n & 255}`,
        headers: { 'x-test-auth': 'ok', 'x-test-key': 'filler' },
      });
  }
}

interface Outcome {
  kind: Kind;
  conn: number;
  /** 'allow', an HTTP status, or the gRPC error code. */
  result: 'allow' | number | `grpc:${number}`;
  /** The worker that answered, when the answer says (allows and 401s name it). */
  pid?: string;
  /** Whether the killed worker was gone when this request was sent. */
  afterKill: boolean;
}

const isError = (o: Outcome) => typeof o.result === 'string' && o.result.startsWith('grpc:');

function pidOf(res: CheckResponse): string | undefined {
  const principal = headerValue(res.ok_response?.headers, 'x-mcp-principal');
  if (principal) return principal.split('@')[1];
  return /pid=(\d+)/.exec(String(deniedBody(res)?.error_description ?? ''))?.[1];
}

type Send = (req: Record<string, unknown>) => Promise<CheckResponse>;

/** Sends Checks on several connections from many loops, and keeps what each was answered. */
class Load {
  readonly outcomes: Outcome[] = [];
  private readonly conns: Send[] = [];
  /** Per connection: the worker it was last seen on, and an epoch that changes when it breaks. */
  private readonly bound: { pid?: string; epoch: number }[] = [];
  /** Per connection: the worker that refused the attacker's failure with 429 there, and in which epoch. */
  private readonly lockedOn: ({ pid: string; epoch: number } | undefined)[] = [];
  /** Allows of the attacker's good credential by a worker that had already refused it as locked out on that connection. */
  readonly violations: string[] = [];
  killed = false;
  private running = true;
  private sent = 0;
  private loops: Promise<void>[] = [];

  constructor(private readonly svc: ServeProcess) {
    // As Envoy does, a Check waits for its connection to be back rather than failing at once;
    // a deadline far beyond any answer makes one that never comes back fail the test instead of hanging it.
    for (let c = 0; c < CONNECTIONS; c++)
      this.add((req) => svc.check(req, c, { deadlineMs: 60_000, waitForReady: true }));
  }

  addConnections(clients: (grpc.Client & Record<string, any>)[]): void {
    for (const client of clients) this.add((req) => checkOn(client, req));
  }

  start(): void {
    this.loops = Array.from({ length: LOOPS }, () => this.loop());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  count(pred: (o: Outcome) => boolean): number {
    return this.outcomes.filter(pred).length;
  }

  private add(send: Send): void {
    this.conns.push(send);
    this.bound.push({ epoch: 0 });
    this.lockedOn.push(undefined);
  }

  private async loop(): Promise<void> {
    while (this.running && this.svc.proc.exitCode === null && this.svc.proc.signalCode === null) {
      // Each connection gets runs of every kind in turn.
      const n = this.sent++;
      const kind = KINDS[n % KINDS.length]!;
      const conn = Math.floor(n / KINDS.length) % this.conns.length;
      const at = { ...this.bound[conn]! };
      const afterKill = this.killed;
      let outcome: Outcome;
      try {
        const res = await this.conns[conn]!(request(kind, n));
        const pid = pidOf(res);
        outcome = {
          kind,
          conn,
          result: res.ok_response ? 'allow' : deniedStatus(res)!,
          afterKill,
          ...(pid ? { pid } : {}),
        };
      } catch (err) {
        outcome = { kind, conn, result: `grpc:${(err as grpc.ServiceError).code}`, afterKill };
      }
      this.outcomes.push(outcome);
      this.observe(outcome, at);
    }
  }

  private observe(o: Outcome, at: { pid?: string; epoch: number }): void {
    const b = this.bound[o.conn]!;
    if (isError(o)) {
      b.pid = undefined;
      b.epoch++;
      return;
    }
    if (o.pid) {
      if (b.pid !== o.pid) b.epoch++;
      b.pid = o.pid;
    }
    // A 429 to the attacker's failure, sent and answered on one unbroken connection to one worker:
    // that worker knows the lockout from then on.
    if (o.kind === 'fail' && o.result === 429 && at.pid !== undefined && at.pid === b.pid && at.epoch === b.epoch) {
      this.lockedOn[o.conn] = { pid: at.pid, epoch: at.epoch };
    }
    const locked = this.lockedOn[o.conn];
    if (o.kind === 'tryGood' && o.result === 'allow' && locked && locked.pid === o.pid && locked.epoch === at.epoch) {
      this.violations.push(`worker ${o.pid} allowed the locked-out client on connection ${o.conn}`);
    }
  }
}

function connect(port: number): grpc.Client & Record<string, any> {
  const { Authorization } = clientConstructors();
  return new Authorization(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  }) as grpc.Client & Record<string, any>;
}

function checkOn(client: grpc.Client & Record<string, any>, req: Record<string, unknown>): Promise<CheckResponse> {
  return new Promise((resolve, reject) =>
    client.Check(
      req,
      { deadline: Date.now() + 60_000, waitForReady: true },
      (err: grpc.ServiceError | null, res: CheckResponse) => (err ? reject(err) : resolve(res)),
    ),
  );
}

/** Waits for `cond`, failing at once (with the service's log) if the service exits meanwhile. */
function until(svc: ServeProcess, what: string, cond: () => boolean, deadlineMs: number): Promise<void> {
  return waitFor(
    what,
    () => {
      if (svc.proc.exitCode !== null || svc.proc.signalCode !== null)
        throw new Error(
          `serve exited (${svc.proc.exitCode ?? svc.proc.signalCode}) while waiting for ${what}:\n${svc.logs().slice(-4000)}`,
        );
      return cond();
    },
    deadlineMs,
    20,
  );
}

test.serial(
  'a worker killed with SIGKILL under load: replaced, the port keeps answering, and the lockout and quota counts survive it',
  async (t) => {
    t.timeout(600_000); // a generous bound: two clusters boot on a machine that may be busy
    const svc = await startServe(config, ['--workers', String(WORKERS)], { entry: withTestAuth, clients: CONNECTIONS });
    t.teardown(async () => void (await svc.stop()));

    // Every connection's worker, before the load.
    const before = new Map<number, string>();
    for (let c = 0; c < CONNECTIONS; c++) before.set(c, pidOf(await svc.check(request('filler', 60_000 + c), c))!);
    t.is(new Set(before.values()).size, WORKERS, 'the connections are spread over both workers');
    const victim = before.get(0)!;
    const survivor = [...before.values()].find((p) => p !== victim)!;

    const load = new Load(svc);
    load.start();
    t.teardown(() => load.stop());
    const tried = () => load.count((o) => o.kind === 'fail' && o.result === 401);
    const deleted = () => load.count((o) => o.kind === 'delete' && o.result === 'allow');
    // Midway through both counts, with failures of the attacker counted on both workers.
    await until(
      svc,
      'the counts to be under way',
      () =>
        tried() >= MAX / 2 &&
        deleted() >= BURST / 2 &&
        new Set(load.outcomes.filter((o) => o.kind === 'fail' && o.result === 401).map((o) => o.pid)).size === WORKERS,
      300_000,
    );
    load.killed = true;
    process.kill(Number(victim), 'SIGKILL');

    await until(svc, 'the supervisor to notice', () => /"msg":"worker exited unexpectedly"/.test(svc.logs()), 300_000);
    // Workers 1 and 2 started with the service; the replacement is worker 3.
    await until(
      svc,
      'the replacement to serve',
      () => /"worker":3,[^\n]*"msg":"mcp-authz serving"/.test(svc.logs()),
      300_000,
    );
    // The load's connections stay where they are (as Envoy's do); new connections reach the
    // replacement, and go on under the load until it has answered some of each kind.
    const extra = Array.from({ length: 4 }, () => connect(svc.grpcPort));
    t.teardown(() => extra.forEach((c) => c.close()));
    const fresh = (o: Outcome) => o.pid !== undefined && o.pid !== victim && o.pid !== survivor;
    load.addConnections(extra);
    const settled = load.outcomes.length;
    await until(
      svc,
      'the replacement to answer, and the limits to hold after it',
      () => {
        const since = load.outcomes.slice(settled);
        return (
          since.some(fresh) &&
          since.filter((o) => o.kind === 'fail' && o.result === 429).length >= 20 &&
          since.filter((o) => o.kind === 'delete' && o.result === 429).length >= 10
        );
      },
      300_000,
    );
    await load.stop();

    // The port kept answering: every connection the killed worker did not hold answered every Check.
    const errors = load.outcomes.filter(isError);
    for (const e of errors)
      t.is(e.result, `grpc:${grpc.status.UNAVAILABLE}`, 'a Check cut by the kill is UNAVAILABLE, never an answer');
    const survivorConns = [...before].filter(([, pid]) => pid === survivor).map(([c]) => c);
    t.deepEqual(
      errors.filter((e) => survivorConns.includes(e.conn)),
      [],
      "the surviving worker's connections never failed",
    );
    t.true(
      load.outcomes.some((o) => o.afterKill && o.pid === survivor),
      'the surviving worker answered after the kill',
    );
    t.regex(svc.logs(), /"signal":"SIGKILL"/);
    t.is((await svc.http('/readyz')).status, 200);

    // Lockout: the failures before the kill still count after it. Never more than MAX are tried;
    // at most the dead worker's lease comes off the limit, and the metric says how much.
    const m = (await svc.http('/metrics')).text;
    const forfeited = sumOf(m, 'mcp_authz_failed_auth_lease_forfeited_total');
    const lostFails = load.count((o) => o.kind === 'fail' && isError(o));
    t.true(tried() <= MAX, `${tried()} failures tried, limit ${MAX}`);
    t.true(
      tried() + lostFails + forfeited >= MAX,
      `${tried()} tried, ${lostFails} lost with the worker, ${forfeited} forfeited`,
    );
    t.true(forfeited <= LEASE, `at most one lease of ${LEASE} forfeited, ${forfeited} were`);
    t.is(
      sumOf(m, 'mcp_authz_failed_auth_lease_forfeited_total', { cause: 'revoke_timeout' }),
      0,
      'no worker was too slow to give a lease back',
    );
    t.deepEqual(load.violations, []);
    t.true(load.count((o) => o.kind === 'fail' && o.result === 429) > 0);
    t.deepEqual(
      new Set(
        load.outcomes
          .filter(
            (o) => (o.kind === 'fail' || o.kind === 'tryGood') && typeof o.result === 'number' && o.result !== 401,
          )
          .map((o) => o.result),
      ),
      new Set([429]),
      "the attacker's requests are only ever tried (401) or refused (429)",
    );

    // Quota: the calls allowed before and after the kill add up to at most the burst.
    const lostDeletes = load.count((o) => o.kind === 'delete' && isError(o));
    t.log(
      `${load.outcomes.length} Checks, ${errors.length} cut by the kill; failures: ${tried()} tried, ${lostFails} lost, ${forfeited} forfeited; quota: ${deleted()} allowed, ${lostDeletes} lost`,
    );
    t.true(deleted() <= BURST, `${deleted()} calls allowed, burst ${BURST}`);
    t.true(deleted() + lostDeletes >= BURST, `${deleted()} allowed and ${lostDeletes} lost with the worker`);

    // New connections reach the replacement too, and it refuses the locked-out client.
    const probes = Array.from({ length: 8 }, () => connect(svc.grpcPort));
    t.teardown(() => probes.forEach((p) => p.close()));
    const seen = new Set<string>();
    for (const p of probes) {
      const pid = pidOf(await checkOn(p, request('filler', 70_000)))!;
      seen.add(pid);
      t.is(deniedStatus(await checkOn(p, request('fail', 0))), 429, `worker ${pid} refuses the attacker's failure`);
      t.is(
        deniedStatus(await checkOn(p, request('tryGood', 0))),
        429,
        `worker ${pid} refuses the attacker's good credential`,
      );
      t.is(
        deniedBody(await checkOn(p, request('delete', 0))).error,
        'quota_exceeded',
        `worker ${pid} refuses the call past the quota`,
      );
    }
    t.false(seen.has(victim));
    t.true(
      [...seen].some((pid) => pid !== survivor),
      `new connections reach the replacement (${[...seen].join(', ')})`,
    );
  },
);

test('a message sent to a worker that has just died does not end the primary', async (t) => {
  t.timeout(300_000);
  // The fixture's primary writes to a worker that has exited and has not been noticed yet:
  // Node.js emits the EPIPE on the worker, and an error nobody hears ends the process.
  const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'supervisor-send-after-exit.ts');
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve) => {
      execFile(process.execPath, ['--import', 'tsx', fixture], { timeout: 300_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
      );
    },
  );
  t.is(code, 0, stderr);
  t.regex(stdout, /primary alive/);
  t.regex(stderr, /"msg":"a message to a worker that has exited was not delivered"/);
  t.regex(stderr, /"code":"(EPIPE|ERR_IPC_CHANNEL_CLOSED)"/);
});

test.serial(
  'a worker killed while the primary is not reading: answering its last requests into the closed channel does not take the primary down',
  async (t) => {
    t.timeout(600_000); // a generous bound: two clusters boot on a machine that may be busy
    const svc = await startServe(config, ['--workers', String(WORKERS)], { entry: withTestAuth, clients: CONNECTIONS });
    t.teardown(async () => {
      if (svc.proc.signalCode === null && svc.proc.exitCode === null) svc.proc.kill('SIGCONT');
      await svc.stop();
    });
    const victim = pidOf(await svc.check(request('filler', 80_000), 0))!;
    // Which worker id the victim is: its decision log lines carry both.
    await until(
      svc,
      'the victim to log a decision',
      () => new RegExp(`"worker":\\d+,[^\\n]*"principal":"filler@${victim}"`).test(svc.logs()),
      300_000,
    );
    const victimId = new RegExp(`"worker":(\\d+),[^\\n]*"principal":"filler@${victim}"`).exec(svc.logs())![1]!;

    const load = new Load(svc);
    load.start();
    t.teardown(() => load.stop());
    await until(svc, 'the load to run', () => load.count((o) => o.kind === 'delete') >= 10, 300_000);

    // The primary stops reading; the victim's requests to it (quota counts, failed
    // authentications) wait in the channel until it gives up on them and says so.
    svc.proc.kill('SIGSTOP');
    const gaveUp = (id: string) =>
      new RegExp(`"worker":${id},[^\\n]*"msg":"limiter store failed: this process limits on its own counters"`).test(
        svc.logs(),
      );
    const survivorId = victimId === '1' ? '2' : '1';
    await waitFor(
      'both workers to give up waiting on the stopped primary',
      () => gaveUp(victimId) && gaveUp(survivorId),
      300_000,
      20,
    );
    process.kill(Number(victim), 'SIGKILL');
    // Once the victim is gone, the primary reads what it had sent and answers into the closed channel.
    // Its parent is stopped, so it stays a zombie: exited, its channel closed, not yet reaped.
    await waitFor(
      'the victim to have exited',
      () => !existsSync(`/proc/${victim}/stat`) || readFileSync(`/proc/${victim}/stat`, 'utf8').split(' ')[2] === 'Z',
      300_000,
      20,
    );
    svc.proc.kill('SIGCONT');

    await until(svc, 'the supervisor to notice', () => /"msg":"worker exited unexpectedly"/.test(svc.logs()), 300_000);
    await until(
      svc,
      'the replacement to serve',
      () => /"worker":3,[^\n]*"msg":"mcp-authz serving"/.test(svc.logs()),
      300_000,
    );
    const answered = load.outcomes.length;
    await until(
      svc,
      'Checks to be answered again',
      () => load.outcomes.slice(answered).filter((o) => !isError(o)).length >= 50,
      300_000,
    );
    await load.stop();
    t.is(svc.proc.exitCode, null, 'the primary is still running');
    t.is((await svc.http('/readyz')).status, 200);
    // While the primary was stopped, the workers limited on their own counters, and counted it.
    t.true(sumOf((await svc.http('/metrics')).text, 'mcp_authz_limiter_local_answers_total', { store: 'cluster' }) > 0);
    // Whether an answer was written before the primary noticed depends on how the kernel hands it
    // the dead worker's last bytes; the test before this one makes it happen every time.
    t.log(
      /"msg":"a message to a worker that has exited was not delivered"/.test(svc.logs())
        ? 'an answer to the dead worker was not delivered'
        : 'the primary noticed before answering',
    );
  },
);
