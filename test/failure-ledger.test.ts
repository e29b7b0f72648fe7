// The failed-authentication ledger and its cluster protocol (src/limits/failure-ledger.ts,
// cluster-failures.ts), without processes: workers' counters and the primary's host joined by
// in-memory channels whose messages a property test delivers in any order the channels allow
// (each channel first in, first out, as node:cluster's IPC is). Whatever the interleaving,
// exactly min(F, N) of F failures are under or at the limit, exactly one is at it when F ≥ N,
// and the rest are over — the lockout's "exactly N tried", with most failures counted by the
// workers themselves.
import { mock } from 'node:test';
import test from 'ava';
import fc from 'fast-check';
import { ClusterFailureCounter, FailureLedgerHost, type FailureMessage } from '../src/limits/cluster-failures.js';
import { FailureLedger, leaseBound, MAX_LEASE, type Counted, type Tally } from '../src/limits/failure-ledger.js';
import { LocalFailureCounter } from '../src/limits/failure-counter.js';
import { silentLogger } from '../src/log/logger.js';

test('one process: the first N failures are under, the Nth at, the rest over; a new window starts after the last', (t) => {
  const ledger = new FailureLedger(3, 1000, 0);
  const tallies = [0, 1, 2, 3, 4].map(() => (ledger.count('k', 5000) as Counted).tally);
  t.deepEqual(tallies, ['under', 'under', 'at', 'over', 'over']);
  t.is((ledger.count('other', 5000) as Counted).tally, 'under', 'per key');
  t.is((ledger.count('k', 6000) as Counted).tally, 'under', 'the window (from the first failure) ended');
  t.deepEqual(ledger.peek('k', 6000), { tally: 'under', windowEnd: 7000 });
  t.is(ledger.lend('k', 1, 6000), undefined, 'a ledger without holders lends nothing');
});

/** Counts one failure of `key` and lends `holder` what the answer would carry. */
function countAndLend(ledger: FailureLedger, key: string, holder: number, now: number): Counted | { revoke: number[] } {
  const r = ledger.count(key, now);
  if ('revoke' in r || r.tally !== 'under') return r;
  return ledger.lend(key, holder, now) ?? r;
}

test('leases never reach the limit, and are revoked before a failure that could', (t) => {
  const ledger = new FailureLedger(100, 60_000, 2);
  const first = countAndLend(ledger, 'k', 1, 0) as Counted;
  t.is(first.tally, 'under');
  t.true(first.lease > 0 && first.lease <= MAX_LEASE);
  // Other holders keep asking until the room left is too small to lend.
  let asks = 1;
  let r: Counted | { revoke: number[] } = first;
  for (;;) {
    r = countAndLend(ledger, 'k', 2, 0);
    asks++;
    if ('revoke' in r) break;
    t.not(r.tally, 'at', 'a holder is never told "at" while leases are out');
  }
  t.deepEqual(r.revoke.sort(), [1, 2], `after ${asks} asks every holder with a lease is asked to give it back`);
});

test('a lease spent in part comes back in part; a lease of an ended window settles nothing', (t) => {
  const ledger = new FailureLedger(1000, 60_000, 1);
  const a = countAndLend(ledger, 'k', 1, 0) as Counted;
  t.true(a.lease > 10);
  // The holder used 3 of it: the rest comes back, so the limit is 1 + 3 failures away from where it was.
  ledger.returned('k', 1, { lent: a.lease, used: 3, windowEnd: a.windowEnd }, 0);
  let tries = 0;
  while ((ledger.count('k', 0) as Counted).tally === 'under') tries++;
  t.is(tries, 1000 - 1 - 3 - 1, 'the 1000th failure is "at": one counted, three spent, then the rest');
  const stale = new FailureLedger(3, 1000, 1);
  const s = countAndLend(stale, 'k', 1, 0) as Counted;
  stale.returned('k', 1, { lent: 50, used: 0, windowEnd: 999_999 }, 10);
  t.is(s.lease, 0, 'nothing to lend this close to a limit of 3');
  t.is((stale.count('k', 10) as Counted).tally, 'under', 'a lease from another window is ignored');
});

test('the last resort answers when the primary does not, and says so once', async (t) => {
  const warnings: string[] = [];
  const logger = { ...silentLogger(), warn: (_o: unknown, msg: string) => warnings.push(msg) } as unknown as ReturnType<
    typeof silentLogger
  >;
  const counter = new ClusterFailureCounter(2, 60, () => undefined, logger, 20);
  const keepAlive = setInterval(() => undefined, 1000);
  const tallies = [];
  for (let i = 0; i < 3; i++) tallies.push((await counter.count('k')).tally);
  clearInterval(keepAlive);
  t.deepEqual(tallies, ['under', 'at', 'over']);
  t.is(warnings.length, 1);
});

/** Workers' counters and the primary's host, joined by in-memory channels the test delivers. */
class World {
  readonly host: FailureLedgerHost;
  readonly workers: ClusterFailureCounter[];
  /** primary → worker i, and worker i → primary: first in, first out. */
  readonly toWorker: FailureMessage[][];
  readonly toPrimary: FailureMessage[][];
  /** Each key's failures, in the order they happened. */
  readonly failures = new Map<string, Promise<Counted>[]>();

  /** What the host reported: lease units forfeited, and lockouts it decided. */
  readonly forfeited: [number, string][] = [];
  readonly locked: string[] = [];
  /** Messages the primary sent to workers that had exited. */
  readonly toTheDead: FailureMessage[] = [];
  private readonly dead = new Set<number>();

  constructor(n: number, max: number, revokeTimeoutMs = 60_000, answerTimeoutMs = 60_000) {
    this.toWorker = Array.from({ length: n }, () => []);
    this.toPrimary = Array.from({ length: n }, () => []);
    const events = {
      forfeited: (units: number, reason: string) => this.forfeited.push([units, reason]),
      locked: (key: string) => this.locked.push(key),
    };
    const send = (id: number, m: FailureMessage) =>
      this.dead.has(id) ? this.toTheDead.push(m) : this.toWorker[id]!.push(m);
    this.host = new FailureLedgerHost(new FailureLedger(max, 60_000, n), send, revokeTimeoutMs, events);
    this.workers = Array.from(
      { length: n },
      (_, i) => new ClusterFailureCounter(max, 60, (m) => this.toPrimary[i]!.push(m), silentLogger(), answerTimeoutMs),
    );
  }

  /** Worker i exits: what it had sent is lost, and the primary is told (as node:cluster's exit event does). */
  kill(i: number): void {
    this.dead.add(i);
    this.toPrimary[i]!.length = 0;
    this.toTheDead.push(...this.toWorker[i]!.splice(0));
    this.host.holderGone(i);
  }

  /** `times` failures of `key` on worker `i`, in this turn of its event loop. */
  fail(i: number, key: string, times = 1): void {
    const list = this.failures.get(key) ?? [];
    for (let k = 0; k < times; k++) list.push(Promise.resolve(this.workers[i]!.count(key)));
    this.failures.set(key, list);
  }

  /** Delivers the next message from worker i to the primary (or the other way); false when there is none. */
  deliver(i: number, toPrimary: boolean): boolean {
    const m = (toPrimary ? this.toPrimary[i]! : this.toWorker[i]!).shift();
    if (!m) return false;
    if (toPrimary) this.host.heard(i, m);
    else this.workers[i]!.heard(m);
    return true;
  }

  next(i: number, toPrimary: boolean): FailureMessage['type'] | undefined {
    return (toPrimary ? this.toPrimary[i]! : this.toWorker[i]!)[0]?.type;
  }

  /** Flushes every worker's turn and delivers everything, until nothing moves. */
  async quiesce(): Promise<void> {
    const n = this.workers.length;
    for (let round = 0; round < 1000; round++) {
      await tick();
      let moved = false;
      for (let i = 0; i < n; i++) moved = this.deliver(i, true) || this.deliver(i, false) || moved;
      if (!moved && this.toPrimary.every((q) => q.length === 0) && this.toWorker.every((q) => q.length === 0)) {
        await tick();
        if (this.toPrimary.every((q) => q.length === 0)) return;
      }
    }
    throw new Error('the messages never stopped');
  }

  /** Each failure's tally, from the `from`th on (a dead worker's are never answered). */
  async tallies(key: string, from = 0): Promise<Tally[]> {
    return (await Promise.all((this.failures.get(key) ?? []).slice(from))).map((r) => r.tally);
  }
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** Exactly min(F, max) of a key's F failures are tried (under or at the limit), and one is at it once F ≥ max. */
function exact(tallies: readonly Tally[], max: number): string | undefined {
  const f = tallies.length;
  const tried = tallies.filter((x) => x !== 'over').length;
  const at = tallies.filter((x) => x === 'at').length;
  if (tried === Math.min(f, max) && at === (f >= max ? 1 : 0)) return undefined;
  return `${tried} of ${f} failures tried and ${at} at the limit of ${max}`;
}

test('a lease is never granted to a worker a revoke of its key is waiting on: its answer to the revoke covers all it was lent', async (t) => {
  const max = 40;
  const w = new World(2, max);
  w.fail(0, 'k');
  await tick();
  w.fail(1, 'k');
  await tick();
  w.fail(1, 'k', 22); // asked before worker 1 has its lease
  await tick();
  t.true(w.deliver(0, true) && w.deliver(0, false), 'worker 0 takes a lease');
  t.true(w.deliver(1, true) && w.deliver(1, false), 'worker 1 takes a lease');
  // The 22nd of worker 1's second batch could reach the limit: both leases are revoked.
  t.true(w.deliver(1, true));
  t.is(w.next(0, false), 'mcp-authz:failure-revoke');
  t.is(w.next(1, false), 'mcp-authz:failure-revoke');
  t.true(w.deliver(0, false) && w.deliver(1, false), 'both workers answer');
  // Worker 0 gives back enough for the waiting failure to be decided before worker 1's answer arrives.
  t.true(w.deliver(0, true));
  t.is(w.next(1, false), 'mcp-authz:failures-counted');
  t.true(w.deliver(1, true));
  await w.quiesce();
  // The client goes on through worker 0 only: a lease worker 1 holds and never uses must not count.
  for (let k = 0; k < 30; k++) {
    w.fail(0, 'k');
    await w.quiesce();
  }
  t.is(exact(await w.tallies('k'), max), undefined);
});

test("two workers' batches held back by each other's keys are answered without a timeout, and neither key locks out early", async (t) => {
  const max = 40;
  const w = new World(2, max); // revokes time out after a minute: a wait on one would hang the test
  // Key y: worker 1 holds a lease, and y is one failure from needing it back.
  w.fail(1, 'y');
  await w.quiesce();
  w.fail(0, 'y', 29);
  await w.quiesce();
  // Worker 0 counts x (fresh) and y in one batch: y waits for worker 1's lease.
  w.fail(0, 'x');
  w.fail(0, 'y');
  await tick();
  t.true(w.deliver(0, true));
  t.is(w.next(1, false), 'mcp-authz:failure-revoke');
  // Worker 1 counts x up to where worker 0 would have to give back whatever it holds of x.
  w.fail(1, 'x', 30);
  await tick();
  t.true(w.deliver(1, false), 'worker 1 answers the revoke of y');
  await w.quiesce();
  for (let k = 0; k < 16; k++) {
    w.fail(k % 2, 'x');
    w.fail((k + 1) % 2, 'y');
    await w.quiesce();
  }
  t.is(exact(await w.tallies('x'), max), undefined, 'x');
  t.is(exact(await w.tallies('y'), max), undefined, 'y');
});

test.serial(
  'a revoke that times out counts the lease as spent whole, and the late answer to it changes nothing',
  async (t) => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const max = 40;
      const w = new World(2, max, 1000);
      w.fail(0, 'k');
      await tick();
      w.fail(0, 'k'); // a second batch, asked before the first is answered
      await tick();
      w.fail(1, 'k');
      await tick();
      w.fail(1, 'k', 22);
      await tick();
      t.true(w.deliver(0, true) && w.deliver(0, false), 'worker 0 takes a lease of 9');
      t.true(w.deliver(1, true) && w.deliver(1, false), 'worker 1 takes a lease of 7');
      t.true(w.deliver(1, true), 'worker 1 needs both leases back');
      t.true(w.deliver(1, false) && w.deliver(1, true), 'worker 1 answers at once');
      // Worker 0 does not answer within the timeout: its lease of 9 counts as spent, unused as it is.
      mock.timers.tick(1000);
      t.true(w.deliver(0, true), "worker 0's second batch is counted (and may carry a new lease)");
      t.true(w.deliver(0, false), 'worker 0 answers the revoke late');
      await w.quiesce();
      for (let k = 0; k < 20; k++) {
        w.fail(k % 2, 'k');
        await w.quiesce();
      }
      // 26 failures were counted before; the 9 forfeited units bring the limit that much closer.
      const tallies = await w.tallies('k');
      t.is(tallies.filter((x) => x !== 'over').length, max - 9);
      t.is(tallies.filter((x) => x === 'at').length, 1);
      t.deepEqual(w.forfeited, [[9, 'revoke_timeout']]);
    } finally {
      mock.timers.reset();
    }
  },
);

test.serial(
  'a worker whose last resort answered still takes the leases of the late answer: nothing it was lent is lost',
  async (t) => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const max = 40;
      const w = new World(2, max, 60_000, 1000);
      w.fail(0, 'k');
      await tick();
      // The primary is slow: the worker's last resort answers first.
      mock.timers.tick(1000);
      t.deepEqual(await w.tallies('k'), ['under']);
      t.true(w.deliver(0, true) && w.deliver(0, false), 'the late answer, with a lease of 9');
      // The nine are counted by the worker itself: it asks nothing.
      w.fail(0, 'k', 9);
      await tick();
      t.deepEqual(w.toPrimary[0], [], 'no ask: the lease was taken');
      // The rest through worker 1: the limit falls on the 40th failure, the lease fully used.
      for (let k = 0; k < 35; k++) {
        w.fail(1, 'k');
        await w.quiesce();
      }
      const tallies = await w.tallies('k');
      t.is(tallies.filter((x) => x !== 'over').length, max);
      t.is(tallies.filter((x) => x === 'at').length, 1);
    } finally {
      mock.timers.reset();
    }
  },
);

type Step = 'fail' | 'peek' | 'deliver' | 'tick';

/** Plays `steps` (failures, lookups, deliveries on one channel, turns of the event loop), then delivers everything. */
async function play(w: World, steps: readonly (readonly [Step, number, boolean, string?])[]): Promise<void> {
  const n = w.workers.length;
  for (const [action, which, dir, key = 'client'] of steps) {
    const i = which % n;
    if (action === 'fail') w.fail(i, key);
    else if (action === 'peek') void w.workers[i]!.peek(key);
    else if (action === 'deliver') w.deliver(i, dir);
    else await tick();
  }
  await w.quiesce();
}

/** Runs of the properties below (FAILURE_LEDGER_RUNS overrides, FAILURE_LEDGER_SEED replays one seed). */
const RUNS = Number(process.env.FAILURE_LEDGER_RUNS ?? 300);
const SEED = process.env.FAILURE_LEDGER_SEED ? { seed: Number(process.env.FAILURE_LEDGER_SEED) } : {};

test('property: across workers, whatever the order of failures and messages, exactly min(F, N) failures are tried and one reaches the limit', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 2, max: 3 }),
      fc.integer({ min: 1, max: 60 }),
      fc.array(fc.tuple(fc.constantFrom<Step>('fail', 'deliver', 'tick'), fc.nat(), fc.boolean()), {
        minLength: 20,
        maxLength: 400,
      }),
      async (n, max, steps) => {
        const w = new World(n, max);
        await play(w, steps);
        // Thrown rather than asserted, so that fast-check shrinks to the smallest interleaving.
        const wrong = exact(await w.tallies('client'), max);
        if (wrong) throw new Error(`${wrong}, ${n} workers`);
      },
    ),
    { numRuns: RUNS, ...SEED },
  );
  t.pass();
});

test("property: with two keys and lookups before authentication, each key's lockout is exact", async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 2, max: 3 }),
      fc.integer({ min: 6, max: 20 }),
      fc.array(
        fc.tuple(
          fc.constantFrom<Step>('fail', 'fail', 'peek', 'deliver', 'deliver', 'tick'),
          fc.nat(),
          fc.boolean(),
          fc.constantFrom('x', 'y'),
        ),
        { minLength: 20, maxLength: 200 },
      ),
      async (n, max, steps) => {
        const w = new World(n, max);
        await play(w, steps);
        for (const key of ['x', 'y']) {
          const wrong = exact(await w.tallies(key), max);
          if (wrong) throw new Error(`key ${key}: ${wrong}, ${n} workers`);
        }
      },
    ),
    { numRuns: RUNS, ...SEED },
  );
  t.pass();
});

test('a worker holds at most one lease of a client, however many of its asks are in flight', async (t) => {
  const max = 1000;
  const w = new World(2, max);
  for (let k = 0; k < 6; k++) {
    w.fail(0, 'k'); // a turn each: six batches before the first answer arrives
    await tick();
  }
  while (w.deliver(0, true));
  const lent = w.toWorker[0]!.flatMap((m) =>
    m.type === 'mcp-authz:failures-counted' ? m.results.map((r) => r.lease) : [],
  );
  t.is(
    lent.reduce((a, b) => a + b, 0),
    leaseBound(max, 2),
    `leases ${lent.join(', ')}`,
  );
  t.is(leaseBound(max, 2), 249);
  t.is(leaseBound(100_000, 2), MAX_LEASE);
  t.is(leaseBound(40, 2), 9);
});

test('far from the limit most failures are counted by the workers themselves, at most one message a turn each', async (t) => {
  const w = new World(2, 1_000_000);
  let local = 0;
  let asked = 0;
  let messages = 0;
  for (let round = 0; round < 20; round++) {
    const pending: Promise<Counted>[] = [];
    for (let k = 0; k < 50; k++) {
      for (const c of w.workers) {
        const r = c.count('client');
        if (r instanceof Promise) {
          asked++;
          pending.push(r);
        } else local++;
      }
    }
    await tick();
    for (let i = 0; i < 2; i++) {
      messages += w.toPrimary[i]!.length;
      while (w.toPrimary[i]!.length) w.host.heard(i, w.toPrimary[i]!.shift()!);
    }
    for (let i = 0; i < 2; i++) while (w.toWorker[i]!.length) w.workers[i]!.heard(w.toWorker[i]!.shift()!);
    await Promise.all(pending);
  }
  t.true(local > asked * 4, `${local} counted locally, ${asked} asked of the primary`);
  t.true(messages <= 2 * 20, `${messages} messages for ${local + asked} failures`);
});

test('a worker that goes away does not hold the others up: its lease counts as spent, so the lockout comes at most that lease early', async (t) => {
  const w = new World(2, 40);
  // Worker 0 takes a lease and disappears without giving it back.
  const first = w.workers[0]!.count('client');
  await tick();
  w.host.heard(0, w.toPrimary[0]!.shift()!);
  w.workers[0]!.heard(w.toWorker[0]!.shift()!);
  t.is((await first).lease, 9, 'a lease of (40 - 1 - 1) / (2 × 2) failures');
  // Worker 1 counts until it needs the lease back.
  const tallies: string[] = [];
  for (let i = 0; i < 60; i++) {
    const r = w.workers[1]!.count('client');
    if (r instanceof Promise) {
      await tick();
      while (w.toPrimary[1]!.length) w.host.heard(1, w.toPrimary[1]!.shift()!);
      if (w.toWorker[0]!.length) w.host.holderGone(0); // the revoke goes unanswered: the worker is gone
      while (w.toWorker[1]!.length) w.workers[1]!.heard(w.toWorker[1]!.shift()!);
    }
    tallies.push((await r).tally);
  }
  t.is(
    tallies.filter((x) => x !== 'over').length,
    40 - 1 - 9,
    "worker 0's one failure and its unused lease of 9 count",
  );
  t.is(tallies.filter((x) => x === 'at').length, 1);
  t.deepEqual(w.forfeited, [[9, 'worker_exit']], 'the nine are counted as forfeited');
});

test('a worker that exited is lent nothing more: its batch still waiting is counted, and its answer carries no lease', async (t) => {
  const max = 40;
  const w = new World(2, max);
  // Key y: worker 1 holds a lease, and y is one failure from needing it back.
  w.fail(1, 'y');
  await w.quiesce();
  w.fail(0, 'y', 29);
  await w.quiesce();
  // Worker 0 counts x (fresh) and y in one batch: y waits for worker 1's lease; then worker 0 exits.
  w.fail(0, 'x');
  w.fail(0, 'y');
  await tick();
  t.true(w.deliver(0, true));
  w.kill(0);
  await w.quiesce();
  const answers = w.toTheDead.filter((m) => m.type === 'mcp-authz:failures-counted');
  t.is(answers.length, 1, "worker 0's batch was counted");
  t.deepEqual(
    answers.flatMap((m) => m.results.map((r) => r.lease)),
    [0, 0],
    'and lends nothing to a worker that is gone',
  );
  t.deepEqual(
    w.toTheDead.filter((m) => m.type === 'mcp-authz:failure-revoke'),
    [],
  );
  for (let k = 0; k < 45; k++) {
    w.fail(1, 'x');
    await w.quiesce();
  }
  const x = await w.tallies('x', 1); // worker 0's failure of x was counted, but its answer was lost
  t.is(
    x.filter((r) => r !== 'over').length,
    max - 1,
    'x locks out on its 40th failure: nothing of it is out with the dead worker',
  );
  t.deepEqual(w.forfeited, []);
});

test('the primary reports each failure that reaches or passes the limit as it decides it, before the asking worker hears', async (t) => {
  const w = new World(2, 6);
  for (let k = 0; k < 8; k++) {
    w.fail(k % 2, 'k');
    await w.quiesce();
  }
  t.deepEqual(await w.tallies('k'), ['under', 'under', 'under', 'under', 'under', 'at', 'over', 'over']);
  t.deepEqual(w.locked, ['k', 'k', 'k']);
  // Decided with the sixth failure, reported before its answer left the primary.
  w.fail(0, 'other', 6);
  await tick();
  t.true(w.deliver(0, true));
  t.deepEqual(w.locked.slice(3), ['other'], 'reported as the primary decided it');
});

test('a local counter counts exactly, with no lease', (t) => {
  const c = new LocalFailureCounter(2, 60);
  t.deepEqual([c.count('a').tally, c.count('a').tally, c.count('a').tally], ['under', 'at', 'over']);
});
