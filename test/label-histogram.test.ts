// check_duration_seconds is recorded by src/metrics/label-histogram.ts instead of
// prom-client's Histogram: for any observations, /metrics (text), the JSON the workers send
// the primary, and the primary's aggregation of two workers are those prom-client writes.
import test from 'ava';
import fc from 'fast-check';
import { AggregatorRegistry, Histogram, Registry } from 'prom-client';
import { LabelHistogram } from '../src/metrics/label-histogram.js';
import { DECISIONS, LATENCY_BUCKETS } from '../src/metrics/service-metrics.js';

const NAME = 'mcp_authz_check_duration_seconds';
const HELP = 'Time to decide one Check call, from request decode to decision.';

type Obs = [number, number][];

function both(obs: Obs) {
  const theirs = new Registry();
  const h = new Histogram({
    name: NAME,
    help: HELP,
    labelNames: ['decision'],
    buckets: LATENCY_BUCKETS,
    registers: [theirs],
  });
  for (const decision of DECISIONS) h.zero({ decision });
  const ours = new Registry();
  const l = new LabelHistogram(NAME, HELP, 'decision', DECISIONS, LATENCY_BUCKETS, [ours]);
  for (const [d, v] of obs) {
    h.labels(DECISIONS[d]!).observe(v);
    l.observeAt(l.indexOf(DECISIONS[d]!), v);
  }
  return { theirs, ours };
}

const json = async (r: Registry) => JSON.parse(JSON.stringify(await r.getMetricsAsJSON()));

// Values on the bounds themselves, just past them, beyond the last one, and anywhere.
const value = fc.oneof(
  fc.constantFrom(0, ...LATENCY_BUCKETS),
  fc.constantFrom(...LATENCY_BUCKETS).map((b) => b * (1 + 1e-12)),
  fc.double({ min: 0, max: 3, noNaN: true }),
);
const observations = fc.array(fc.tuple(fc.integer({ min: 0, max: DECISIONS.length - 1 }), value), { maxLength: 200 });

test('text and JSON are what prom-client writes, for any observations', async (t) => {
  await fc.assert(
    fc.asyncProperty(observations, async (obs) => {
      const { theirs, ours } = both(obs);
      t.is(await ours.metrics(), await theirs.metrics());
      t.deepEqual(await json(ours), await json(theirs));
    }),
    { numRuns: 200 },
  );
});

test("the primary's aggregation of two workers is prom-client's", async (t) => {
  await fc.assert(
    fc.asyncProperty(observations, observations, async (a, b) => {
      const x = both(a);
      const y = both(b);
      const theirs = AggregatorRegistry.aggregate([await json(x.theirs), await json(y.theirs)]);
      const ours = AggregatorRegistry.aggregate([await json(x.ours), await json(y.ours)]);
      t.is(await ours.metrics(), await theirs.metrics());
    }),
    { numRuns: 50 },
  );
});

test('reset empties every series; a value that is not a number, or a label value without a series, is refused', async (t) => {
  const { theirs, ours } = both([]);
  const l = new LabelHistogram('x_seconds', 'x', 'decision', DECISIONS, LATENCY_BUCKETS, [new Registry()]);
  l.observeAt(0, 0.001);
  l.reset();
  t.deepEqual(
    l.get().values.filter((v) => v.value !== 0),
    [],
  );
  t.throws(() => l.observeAt(0, Number.NaN), { instanceOf: TypeError });
  t.throws(() => l.indexOf('maybe' as never), { message: /no series for decision="maybe"/ });
  t.is(await ours.metrics(), await theirs.metrics());
});
