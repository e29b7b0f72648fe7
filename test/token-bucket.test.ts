// The per-client rate and per-tool quota buckets (src/limits/token-bucket.ts) against a
// reference token bucket written independently here: for random rps/burst and random
// sequences of single calls and batches (on one rule, or on two rules at once), every
// decision equals the reference's — in process and through the cluster primary on a fake
// clock, and in a real Redis with rates so low that time cannot matter.
import test from 'ava';
import fc from 'fast-check';
import { silentLogger } from '../src/log/logger.js';
import { BucketHost, ClusterBuckets, type BucketMessage } from '../src/limits/cluster-buckets.js';
import { RedisBuckets } from '../src/limits/redis-buckets.js';
import { RedisLimiterStore } from '../src/limits/redis-store.js';
import { bucketShape, MemoryBuckets, type BucketStore, type Take } from '../src/limits/token-bucket.js';
import { startRedis } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

/**
 * The reference: a bucket holds up to `burst` tokens (one second's worth, at least one, when
 * burst is smaller), starts full, gains rps tokens per second, and a request takes n tokens
 * from each of its buckets only if every one of them has n. Levels are counted in
 * milliseconds of refill (a token is 1000/rps of them) so the arithmetic is exact.
 */
class ReferenceBuckets {
  private readonly level = new Map<string, number>();
  private readonly at = new Map<string, number>();

  constructor(private readonly specs: Record<string, { rps: number; burst: number }>) {}

  private tokenMs(rule: string): number {
    return 1000 / this.specs[rule]!.rps;
  }

  private capacityMs(rule: string): number {
    const { rps, burst } = this.specs[rule]!;
    return Math.max(burst, Math.floor(rps), 1) * this.tokenMs(rule);
  }

  private levelAt(rule: string, now: number): number {
    const last = this.at.get(rule);
    const level = this.level.get(rule) ?? this.capacityMs(rule);
    return last === undefined ? level : Math.min(this.capacityMs(rule), level + (now - last));
  }

  /** The first want its bucket cannot give, or -1. */
  missing(wants: [rule: string, n: number][], now: number): number {
    return wants.findIndex(([rule, n]) => this.levelAt(rule, now) < n * this.tokenMs(rule));
  }

  take(wants: [rule: string, n: number][], now: number): boolean {
    const fits = this.missing(wants, now) === -1;
    for (const [rule] of wants) {
      this.level.set(rule, this.levelAt(rule, now));
      this.at.set(rule, now);
    }
    if (fits) for (const [rule, n] of wants) this.level.set(rule, this.level.get(rule)! - n * this.tokenMs(rule));
    return fits;
  }
}

// Rates whose token is a whole number of milliseconds, so the fake clock is exact.
const rps = fc.constantFrom(0.25, 0.5, 1, 2, 4, 5, 10, 0.001);
const spec = fc.record({ rps, burst: fc.integer({ min: 0, max: 6 }) });
/** One step: wait `wait` ms, then ask for n calls of rule a, and of rule b too when `both`. */
const step = fc.record({
  wait: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5000 })),
  n: fc.integer({ min: 1, max: 8 }),
  both: fc.boolean(),
  m: fc.integer({ min: 1, max: 8 }),
});

function takes(
  specs: { a: { rps: number; burst: number }; b: { rps: number; burst: number } },
  s: { n: number; both: boolean; m: number },
  principal: string,
): { takes: Take[]; wants: [string, number][] } {
  const wants: [string, number][] = [['a', s.n]];
  if (s.both) wants.push(['b', s.m]);
  return {
    wants,
    takes: wants.map(([rule, n]) => ({
      key: `quota:e:${rule}|${principal}`,
      n,
      shape: bucketShape(specs[rule as 'a' | 'b']),
    })),
  };
}

async function agrees(
  store: BucketStore,
  clock: { now: number } | undefined,
  specs: { a: { rps: number; burst: number }; b: { rps: number; burst: number } },
  steps: { wait: number; n: number; both: boolean; m: number }[],
  principal: string,
): Promise<string | undefined> {
  const ref = new ReferenceBuckets(specs);
  let now = 0;
  for (const [i, s] of steps.entries()) {
    if (clock) clock.now += s.wait;
    now += clock ? s.wait : 0;
    const { takes: t, wants } = takes(specs, s, principal);
    const got = await store.take(t);
    const missing = ref.missing(wants, now);
    const want = ref.take(wants, now);
    if (got.ok !== want) return `step ${i}: ${JSON.stringify(wants)} at ${now} ms: store ${got.ok}, reference ${want}`;
    if (!got.ok && got.index !== missing) return `step ${i}: refused by take ${got.index}, the reference by ${missing}`;
  }
  return undefined;
}

test('property: in process, with a fake clock, the buckets decide every single call and batch as the reference token bucket does', async (t) => {
  await fc.assert(
    fc.asyncProperty(spec, spec, fc.array(step, { maxLength: 40 }), async (a, b, steps) => {
      const clock = { now: 1_700_000_000_000 };
      const why = await agrees(new MemoryBuckets(() => clock.now), clock, { a, b }, steps, 'key:p');
      if (why) t.log(why);
      return why === undefined;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test("property: across workers, the primary's buckets decide as the reference does (each take in one message, all or nothing)", async (t) => {
  await fc.assert(
    fc.asyncProperty(spec, spec, fc.array(step, { maxLength: 30 }), async (a, b, steps) => {
      const clock = { now: 1_700_000_000_000 };
      let worker: ClusterBuckets;
      // The IPC channel, as JSON crosses it, answered on a later turn as the primary does.
      const host = new BucketHost(
        (_id, m) => setImmediate(() => worker.heard(JSON.parse(JSON.stringify(m)) as BucketMessage)),
        new MemoryBuckets(() => clock.now),
      );
      worker = new ClusterBuckets(
        (m) => setImmediate(() => host.heard(1, JSON.parse(JSON.stringify(m)) as BucketMessage)),
        silentLogger(),
        60_000,
      );
      const why = await agrees(worker, clock, { a, b }, steps, 'key:p');
      if (why) t.log(why);
      return why === undefined;
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('a refused take is answered with the time until it would fit; one larger than the bucket with the time until the bucket is full', (t) => {
  const clock = { now: 1_000_000 };
  const buckets = new MemoryBuckets(() => clock.now);
  const shape = bucketShape({ rps: 1, burst: 3 });
  const take = (n: number) => buckets.take([{ key: 'k', n, shape }]);
  t.deepEqual(take(3), { ok: true });
  t.deepEqual(take(1), { ok: false, index: 0, retryMs: 1000 });
  t.deepEqual(take(2), { ok: false, index: 0, retryMs: 2000 });
  t.deepEqual(take(4), { ok: false, index: 0, retryMs: 3000 }, 'never fits: retry when full');
  clock.now += 1000;
  t.deepEqual(take(1), { ok: true });
});

test('buckets that are full again are forgotten: memory stays bounded by the clients active within a refill', (t) => {
  const clock = { now: 0 };
  const buckets = new MemoryBuckets(() => clock.now);
  const shape = bucketShape({ rps: 10, burst: 2 });
  for (let i = 0; i < 20_000; i++) {
    clock.now += 1;
    buckets.take([{ key: `k${i}`, n: 1, shape }]);
  }
  // Each bucket is full again 100 ms after its take: far fewer than 20,000 are held.
  t.true(buckets.size < 8200, `${buckets.size} buckets held`);
});

test("bucket shapes: burst tokens, or one second's worth when burst is smaller, at least one", (t) => {
  t.deepEqual(bucketShape({ rps: 1, burst: 3 }), { intervalMs: 1000, capacity: 3 });
  t.deepEqual(bucketShape({ rps: 20, burst: 0 }), { intervalMs: 50, capacity: 20 });
  t.deepEqual(bucketShape({ rps: 20, burst: 5 }), { intervalMs: 50, capacity: 20 });
  t.deepEqual(bucketShape({ rps: 0.5, burst: 0 }), { intervalMs: 2000, capacity: 1 });
  t.deepEqual(bucketShape({ rps: 0.001, burst: 5 }), { intervalMs: 1_000_000, capacity: 5 });
});

test('property: in a real Redis, the buckets decide as the reference does (one token per 1000 s: time cannot matter)', async (t) => {
  const redis = await startRedis();
  const store = new RedisLimiterStore({ url: redis.url, logger: silentLogger(), onState: () => undefined });
  t.teardown(async () => {
    await store.close();
    await redis.stop();
  });
  await waitFor('Redis to be ready', () => store.current === 'shared');
  const local = new MemoryBuckets();
  const buckets = new RedisBuckets(store, 'test', local, silentLogger());
  const slow = fc.record({ rps: fc.constant(0.001), burst: fc.integer({ min: 0, max: 6 }) });
  const noWait = fc.record({
    wait: fc.constant(0),
    n: fc.integer({ min: 1, max: 8 }),
    both: fc.boolean(),
    m: fc.integer({ min: 1, max: 8 }),
  });
  let run = 0;
  await fc.assert(
    fc.asyncProperty(slow, slow, fc.array(noWait, { maxLength: 20 }), async (a, b, steps) => {
      const why = await agrees(buckets, undefined, { a, b }, steps, `key:p${run++}`);
      if (why) t.log(why);
      return why === undefined;
    }),
    { numRuns: 150 },
  );
  t.is(local.size, 0, "every decision was Redis's: the local buckets were never asked");
});
