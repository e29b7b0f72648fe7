// The failed-authentication ledger and its cluster protocol (src/limits/failure-ledger.ts,
// cluster-failures.ts), without processes: workers' counters and the primary's host joined by
// in-memory channels whose messages a property test delivers in any order the channels allow
// (each channel first in, first out, as node:cluster's IPC is). Whatever the interleaving,
// exactly min(F, N) of F failures are under or at the limit, exactly one is at it when F ≥ N,
// and the rest are over — the lockout's "exactly N tried", with most failures counted by the
// workers themselves.
import test from 'ava';
import fc from 'fast-check';
import { ClusterFailureCounter, FailureLedgerHost, type FailureMessage } from '../src/limits/cluster-failures.js';
import { FailureLedger, MAX_LEASE, type Counted } from '../src/limits/failure-ledger.js';
import { LocalFailureCounter } from '../src/limits/failure-counter.js';
import { silentLogger } from '../src/log/logger.js';

test('one process: the first N failures are under, the Nth at, the rest over; a new window starts after the last', (t) => {
  const ledger = new FailureLedger(3, 1000, 0);
  const tallies = [0, 1, 2, 3, 4].map(() => (ledger.count('k', 0, 5000) as Counted).tally);
  t.deepEqual(tallies, ['under', 'under', 'at', 'over', 'over']);
  t.is((ledger.count('other', 0, 5000) as Counted).tally, 'under', 'per key');
  t.is((ledger.count('k', 0, 6000) as Counted).tally, 'under', 'the window (from the first failure) ended');
  t.deepEqual(ledger.peek('k', 6000), { tally: 'under', windowEnd: 7000 });
});

test('leases never reach the limit, and are revoked before a failure that could', (t) => {
  const ledger = new FailureLedger(100, 60_000, 2);
  const first = ledger.count('k', 1, 0) as Counted;
  t.is(first.tally, 'under');
  t.true(first.lease > 0 && first.lease <= MAX_LEASE);
  // Other holders keep asking until the room left is too small to lend.
  let asks = 1;
  let r: Counted | { revoke: number[] } = first;
  for (;;) {
    r = ledger.count('k', 2, 0);
    asks++;
    if ('revoke' in r) break;
    t.not(r.tally, 'at', 'a holder is never told "at" while leases are out');
  }
  t.deepEqual(r.revoke.sort(), [1, 2], `after ${asks} asks every holder with a lease is asked to give it back`);
});

test('a lease spent in part comes back in part; a lease of an ended window settles nothing', (t) => {
  const ledger = new FailureLedger(1000, 60_000, 1);
  const a = ledger.count('k', 1, 0) as Counted;
  t.true(a.lease > 10);
  // The holder used 3 of it: the rest comes back, so the limit is 1 + 3 failures away from where it was.
  ledger.returned('k', 1, { lent: a.lease, used: 3, windowEnd: a.windowEnd }, 0);
  let tries = 0;
  while ((ledger.count('k', 2, 0, false) as Counted).tally === 'under') tries++;
  t.is(tries, 1000 - 1 - 3 - 1, 'the 1000th failure is "at": one counted, three spent, then the rest');
  const stale = new FailureLedger(3, 1000, 1);
  const s = stale.count('k', 1, 0) as Counted;
  stale.returned('k', 1, { lent: 50, used: 0, windowEnd: 999_999 }, 10);
  t.is(s.lease, 0, 'nothing to lend this close to a limit of 3');
  t.is((stale.count('k', 1, 10) as Counted).tally, 'under', 'a lease from another window is ignored');
});

test('the last resort answers when the primary does not, and says so once', async (t) => {
  const warnings: string[] = [];
  const logger = { ...silentLogger(), warn: (_o: unknown, msg: string) => warnings.push(msg) } as unknown as ReturnType<typeof silentLogger>;
  const counter = new ClusterFailureCounter(2, 60, () => undefined, logger, 20);
  const keepAlive = setInterval(() => undefined, 1000);
  const tallies = [];
  for (let i = 0; i < 3; i++) tallies.push((await counter.count('k')).tally);
  clearInterval(keepAlive);
  t.deepEqual(tallies, ['under', 'at', 'over']);
  t.is(warnings.length, 1);
});

interface World {
  host: FailureLedgerHost;
  workers: ClusterFailureCounter[];
  /** primary → worker i, and worker i → primary: first in, first out. */
  toWorker: FailureMessage[][];
  toPrimary: FailureMessage[][];
}

function world(workers: number, max: number): World {
  const toWorker: FailureMessage[][] = Array.from({ length: workers }, () => []);
  const toPrimary: FailureMessage[][] = Array.from({ length: workers }, () => []);
  const host = new FailureLedgerHost(new FailureLedger(max, 60_000, workers), (id, m) => toWorker[id]!.push(m), 60_000);
  const counters = Array.from({ length: workers }, (_, i) => new ClusterFailureCounter(max, 60, (m) => toPrimary[i]!.push(m), silentLogger(), 60_000));
  return { host, workers: counters, toWorker, toPrimary };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

test('property: across workers, whatever the order of failures and messages, exactly min(F, N) failures are tried and one reaches the limit', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 2, max: 3 }),
      fc.integer({ min: 1, max: 60 }),
      fc.array(fc.tuple(fc.constantFrom('fail', 'deliver', 'tick'), fc.nat(), fc.boolean()), { minLength: 20, maxLength: 400 }),
      async (n, max, steps) => {
        const w = world(n, max);
        const results: Promise<Counted>[] = [];
        let local = 0;
        const deliver = (i: number, toPrimary: boolean) => {
          const q = toPrimary ? w.toPrimary[i]! : w.toWorker[i]!;
          const m = q.shift();
          if (!m) return false;
          if (toPrimary) w.host.heard(i, m);
          else w.workers[i]!.heard(m);
          return true;
        };
        for (const [action, which, dir] of steps) {
          const i = which % n;
          if (action === 'fail') {
            const r = w.workers[i]!.count('client');
            if (!(r instanceof Promise)) local++;
            results.push(Promise.resolve(r));
          } else if (action === 'deliver') deliver(i, dir);
          else await tick();
        }
        // Quiesce: flush every worker's turn and deliver everything.
        for (let round = 0; round < 1000; round++) {
          await tick();
          let moved = false;
          for (let i = 0; i < n; i++) moved = deliver(i, true) || deliver(i, false) || moved;
          if (!moved && w.toPrimary.every((q) => q.length === 0) && w.toWorker.every((q) => q.length === 0)) {
            await tick();
            if (w.toPrimary.every((q) => q.length === 0)) break;
          }
        }
        const tallies = (await Promise.all(results)).map((r) => r.tally);
        const f = tallies.length;
        t.is(tallies.filter((x) => x !== 'over').length, Math.min(f, max), `${f} failures, limit ${max}, ${n} workers`);
        t.is(tallies.filter((x) => x === 'at').length, f >= max ? 1 : 0);
        return local >= 0;
      },
    ),
    { numRuns: 150 },
  );
});

test('far from the limit most failures are counted by the workers themselves, at most one message a turn each', async (t) => {
  const w = world(2, 1_000_000);
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

test('a worker that goes away does not hold the others up: its leases count as spent', async (t) => {
  const w = world(2, 40);
  // Worker 0 takes a lease and disappears without giving it back.
  const first = w.workers[0]!.count('client');
  await tick();
  w.host.heard(0, w.toPrimary[0]!.shift()!);
  w.workers[0]!.heard(w.toWorker[0]!.shift()!);
  await first;
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
  t.true(tallies.includes('over'), 'the count went on to the limit');
  t.true(tallies.filter((x) => x !== 'over').length <= 40);
});

test('a local counter counts exactly, with no lease', (t) => {
  const c = new LocalFailureCounter(2, 60);
  t.deepEqual([c.count('a').tally, c.count('a').tally, c.count('a').tally], ['under', 'at', 'over']);
});
