// The Cache-Control of a response whose list was filtered for one caller: `private`, so no
// shared cache gives it to another caller, keeping the upstream's other directives
// (`max-age`, `no-store`, …) and dropping those that address shared caches.

const SHARED_ONLY = new Set(['public', 'private', 's-maxage', 'proxy-revalidate']);

/** `upstream` values (all Cache-Control lines) → the value to send. */
export function privateCacheControl(upstream: readonly string[]): string {
  const kept: string[] = ['private'];
  // A quoted value may hold commas: rather than parse it, keep nothing but `private`.
  if (upstream.some((line) => line.includes('"'))) return 'private';
  for (const line of upstream) {
    for (const raw of line.split(',')) {
      const d = raw.trim();
      if (d === '') continue;
      const name = d.split('=', 1)[0]!.trim().toLowerCase();
      if (!SHARED_ONLY.has(name)) kept.push(d);
    }
  }
  return kept.join(', ');
}
