// Reads one sample out of a Prometheus text exposition, matching the full label set.

export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
      .map((x) => [x[1]!, x[2]!] as const)
      .sort(([a], [b]) => a.localeCompare(b));
    if (got.length === want.length && got.every(([k, v], i) => want[i]![0] === k && want[i]![1] === v))
      return Number(m[3]);
  }
  return undefined;
}

/** Sum of every sample of a metric whose labels include `labels`. */
export function sumOf(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]),
    );
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) total += Number(m[3]);
  }
  return total;
}

/**
 * GETs a /metrics URL until it answers 200 (at most `deadlineMs`). With workers, the primary
 * asks each worker for its metrics and answers 500 when one has not answered within
 * prom-client's 5 s — on a machine as busy as CI's, that happens — so a failed scrape is
 * taken again, as Prometheus would at its next interval.
 */
export async function scrapeMetrics(url: string, deadlineMs = 120_000): Promise<string> {
  let last = '';
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
      const text = await res.text();
      if (res.status === 200) return text;
      last = `${url} answered ${res.status}: ${text.slice(0, 200)}`;
    } catch (err) {
      last = `${url}: ${(err as Error).message}`;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`no /metrics scrape succeeded: ${last}`);
}
