// A histogram with one label whose values are known at start-up (check_duration_seconds by
// decision), recorded on every Check. prom-client's Histogram builds a label object and a
// hash string and validates the label on each observation — a few µs per Check, the largest
// item of the metrics in a profile. This one keeps each series in a typed array, found by
// index; it answers the registry (text and the cluster's JSON) in exactly the shape
// prom-client's Histogram does, so /metrics and the workers' aggregation are unchanged.
import type { Registry } from 'prom-client';

interface Series {
  /** Observations per bucket (not cumulative); those above every bound are only in `count`. */
  buckets: Float64Array;
  sum: number;
  count: number;
}

interface ValuePair {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName: string;
  /** prom-client's buckets carry `exemplar: null` when exemplars are off (this one has none). */
  exemplar?: null;
}

export class LabelHistogram<V extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: string[];
  private readonly bounds: number[];
  private readonly series: Series[];
  private readonly index = new Map<string, number>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly label: string,
    private readonly values: readonly V[],
    buckets: readonly number[],
    registers: Registry[],
  ) {
    this.labelNames = [label];
    this.bounds = [...buckets].sort((a, b) => a - b);
    this.series = values.map(() => ({ buckets: new Float64Array(this.bounds.length), sum: 0, count: 0 }));
    for (const [i, v] of values.entries()) this.index.set(v, i);
    // The registry takes any object with a name, get() and the formatting fields; its type names the one public class.
    for (const r of registers) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The index of a label value, for observeAt. */
  indexOf(value: V): number {
    const i = this.index.get(value);
    if (i === undefined) throw new Error(`${this.name}: no series for ${this.label}="${value}"`);
    return i;
  }

  /** One observation in the series of the label value at `i` (indexOf). */
  observeAt(i: number, value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`${this.name}: not a finite number: ${value}`);
    const s = this.series[i]!;
    const b = this.bounds;
    for (let k = 0; k < b.length; k++) {
      if (value <= b[k]!) {
        s.buckets[k]!++;
        break;
      }
    }
    s.sum += value;
    s.count++;
  }

  reset(): void {
    for (const s of this.series) {
      s.buckets.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }

  /** As prom-client's Histogram: le in `labels`, the series' own label in `sharedLabels`. */
  getForPromString() {
    const values: ValuePair[] = [];
    this.series.forEach((s, i) => {
      const shared = { [this.label]: this.values[i]! };
      const bucket = `${this.name}_bucket`;
      let acc = 0;
      this.bounds.forEach((le, k) => {
        acc += s.buckets[k]!;
        values.push({ labels: { le }, sharedLabels: shared, value: acc, metricName: bucket, exemplar: null });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: shared, value: s.count, metricName: bucket, exemplar: null });
      values.push({ labels: {}, sharedLabels: shared, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: shared, value: s.count, metricName: `${this.name}_count` });
    });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** As prom-client's Histogram.get(): each value's labels with the shared ones folded in. */
  get() {
    const data = this.getForPromString();
    return {
      ...data,
      values: data.values.map(({ sharedLabels, labels, ...rest }) => ({
        ...rest,
        labels: { ...labels, ...sharedLabels },
      })),
    };
  }
}
