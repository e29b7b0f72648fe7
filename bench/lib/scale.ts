// `npm run bench -- --scale`: how costs grow with the tenant count. Each point is measured
// in one run of this command:
// - endpoint choice: CPU µs per Check spent choosing the endpoint (the registry's match,
//   as the pipeline calls it) among 10 → 100,000 path-only or host-based endpoints, over
//   1,024 distinct requests that all hit an endpoint;
// - API key lookup: CPU µs per Check to hash a presented key and find its record among
//   10,000 → 1,000,000 keys (1,024 distinct keys);
// - keys-file load: `mcp-authz serve --check-config` on a config whose keys file holds
//   10,000 → 1,000,000 keys (6 fields, 2 grants each, as `keys create` writes them): the
//   process's CPU seconds and peak RSS, read at its exit (bench/lib/report-usage.mjs),
//   beside the same command with an empty keys file (start-up and config alone);
// - keys-file reload: the p99 of a steady Check load while `serve` reloads a keys file of
//   1,000,000 keys, against its steady p99 (bench/lib/scale-keys-reload.ts).
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { round } from './ghz.js';
import { measurePgKeys, type PgKeysPoint } from './scale-postgres.js';
import { measureKeysReload, type KeysReloadPoint } from './scale-keys-reload.js';
import { mcpAuthzCli, out, root } from './paths.js';
import { run } from './processes.js';

export interface EndpointPoint {
  shape: 'path-only' | 'host-based';
  endpoints: number;
  /** CPU µs per endpoint choice. */
  us: number;
}

export interface KeyLookupPoint {
  keys: number;
  /** CPU µs per presented key: SHA-256 and the registry lookup. */
  us: number;
}

export interface KeysLoadPoint {
  keys: number;
  fileMiB: number;
  /** `serve --check-config`: wall seconds, the process's CPU seconds, its peak RSS. */
  wallSec: number;
  cpuSec: number;
  peakRssMiB: number;
  ok: boolean;
}

export interface ScaleResult {
  endpoints: EndpointPoint[];
  keyLookup: KeyLookupPoint[];
  keysLoad: KeysLoadPoint[];
  /** The PostgreSQL key store (bench/lib/scale-postgres.ts); empty with --scale-pg-keys none. */
  pgKeys: PgKeysPoint[];
  /** Checks during a reload of the keys file against the steady state; null with --scale-keys-reload none. */
  keysReload: KeysReloadPoint | null;
}

export interface ScaleOptions {
  endpointCounts: number[];
  keyCounts: number[];
  /** Key counts for the PostgreSQL store's points. */
  pgKeyCounts: number[];
  /** Keys in the file the reload point reloads; undefined: no reload point. */
  keysReload?: number | undefined;
  log: (msg: string) => void;
}

const load = <T>(path: string): Promise<T> => import(pathToFileURL(join(root, 'dist', path)).href) as Promise<T>;

/** CPU µs per call of fn over `calls` calls, the best of three runs (the machine is shared). */
function cpuPerCall(fn: (i: number) => unknown, calls: number): number {
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    const start = process.cpuUsage();
    for (let i = 0; i < calls; i++) fn(i);
    const used = process.cpuUsage(start);
    best = Math.min(best, (used.user + used.system) / calls);
  }
  return best;
}

export async function measureScale(opts: ScaleOptions): Promise<ScaleResult> {
  const { EndpointRegistry } = await load<typeof import('../../src/endpoints/registry.js')>('endpoints/registry.js');
  const { loadKeysFileSync } = await load<typeof import('../../src/auth/key-registry.js')>('auth/key-registry.js');
  const { hashApiKey } = await load<typeof import('../../src/contracts/api-key.js')>('contracts/api-key.js');
  const endpoints: EndpointPoint[] = [];
  for (const n of opts.endpointCounts) {
    for (const shape of ['path-only', 'host-based'] as const) {
      const configs = Array.from({ length: n }, (_, i) => ({
        name: `e${i}`,
        match: shape === 'path-only' ? { pathPrefix: `/t/tenant-${i}/mcp` } : { host: `tenant-${i}.mcp.example.com` },
      })) as unknown as ConstructorParameters<typeof EndpointRegistry>[0];
      const registry = new EndpointRegistry(configs);
      const pick = (i: number) => (i * 7919) % n;
      const requests = Array.from({ length: 1024 }, (_, i) =>
        shape === 'path-only'
          ? { path: `/t/tenant-${pick(i)}/mcp/sse`, host: 'mcp.example.com:443' }
          : { path: '/mcp', host: `tenant-${pick(i)}.mcp.example.com:443` },
      );
      for (const r of requests)
        if (registry.match(r.path, r.host) === undefined)
          throw new Error(`${shape} ${n}: ${r.host}${r.path} chose no endpoint`);
      const us = cpuPerCall((i) => {
        const r = requests[i & 1023]!;
        return registry.match(r.path, r.host);
      }, 200_000);
      endpoints.push({ shape, endpoints: n, us: round(us, 3) });
      opts.log(`endpoint choice, ${shape}, ${n} endpoints: ${us.toFixed(3)} µs`);
    }
  }

  const dir = join(out, 'scale');
  mkdirSync(dir, { recursive: true });
  const keyLookup: KeyLookupPoint[] = [];
  const keysLoad: KeysLoadPoint[] = [];
  // 0 keys first: the process's own start-up and config load, the floor of every load figure.
  for (const n of [0, ...opts.keyCounts]) {
    const file = join(dir, `keys-${n}.yaml`);
    const fileBytes = await writeKeysFile(file, n);
    const config = join(dir, `config-${n}.yaml`);
    writeFileSync(
      config,
      `apiKeys:\n  file: keys-${n}.yaml\nendpoints:\n  - name: files\n    match: { pathPrefix: /mcp/files }\n`,
    );
    const [cmd, ...cliArgs] = mcpAuthzCli;
    const args = [
      cliArgs[0]!,
      '--import',
      pathToFileURL(join(root, 'bench', 'lib', 'report-usage.mjs')).href,
      ...cliArgs.slice(1),
      'serve',
      '--check-config',
      '--config',
      config,
    ];
    const t0 = performance.now();
    const r = await run(cmd!, args, { timeoutMs: 600_000 });
    const wallSec = (performance.now() - t0) / 1000;
    const usage = /__usage__(\{.*\})/.exec(r.stderr);
    const u = usage ? (JSON.parse(usage[1]!) as { maxRssKiB: number; userUs: number; systemUs: number }) : undefined;
    const point = {
      keys: n,
      fileMiB: round(fileBytes / 2 ** 20, 1),
      wallSec: round(wallSec, 2),
      cpuSec: u ? round((u.userUs + u.systemUs) / 1e6, 2) : NaN,
      peakRssMiB: u ? round(u.maxRssKiB / 1024, 0) : NaN,
      ok: r.code === 0,
    };
    keysLoad.push(point);
    opts.log(
      `keys-file load, ${n} keys (${point.fileMiB} MiB): ${point.cpuSec} s CPU, ${point.wallSec} s wall, peak RSS ${point.peakRssMiB} MiB${point.ok ? '' : ` — FAILED: ${r.stderr.slice(0, 300)}`}`,
    );

    if (n === 0) continue;
    const { registry } = loadKeysFileSync(file, [], file);
    const keys = Array.from({ length: 1024 }, (_, i) => keyOf((i * 7919) % n));
    for (const k of keys)
      if (registry.lookup(hashApiKey(k)) === undefined) throw new Error(`${n} keys: a generated key is not found`);
    const us = cpuPerCall((i) => registry.lookup(hashApiKey(keys[i & 1023]!)), 100_000);
    keyLookup.push({ keys: n, us: round(us, 3) });
    opts.log(`API key lookup, ${n} keys: ${us.toFixed(3)} µs`);
  }
  let keysReload: KeysReloadPoint | null = null;
  if (opts.keysReload !== undefined) {
    const n = opts.keysReload;
    const file = join(dir, `keys-${n}.yaml`);
    if (!opts.keyCounts.includes(n)) await writeKeysFile(file, n);
    keysReload = await measureKeysReload({ keys: n, keysFile: file, keyOf, dir, log: opts.log });
  }
  const pgKeys = opts.pgKeyCounts.length > 0 ? await measurePgKeys(opts.pgKeyCounts, opts.log) : [];
  return { endpoints, keyLookup, keysLoad, pgKeys, keysReload };
}

const keyOf = (i: number) => `mcp_scale_${i.toString(36).padStart(8, '0')}`;

/** A keys file of n entries in the layout `keys create --append` writes; returns its size. */
async function writeKeysFile(file: string, n: number): Promise<number> {
  const stream = createWriteStream(file);
  let bytes = 0;
  const write = async (s: string) => {
    bytes += s.length;
    if (!stream.write(s)) await once(stream, 'drain');
  };
  await write(n === 0 ? 'keys: []\n' : 'keys:\n');
  for (let i = 0; i < n; i++) {
    const sha = createHash('sha256').update(keyOf(i)).digest('hex');
    await write(
      `  - id: tenant-${i}-key\n    sha256: ${sha}\n    name: key of tenant ${i}\n    userId: user-${i % 5000}\n    role: developer\n    permissions:\n      - tools:read_*\n      - resources:file://docs/*\n`,
    );
  }
  stream.end();
  await once(stream, 'finish');
  return bytes;
}

export function printScale(command: string, r: ScaleResult): void {
  const w = (line: string) => process.stdout.write(line + '\n');
  w('');
  w(`${command}`);
  w('  endpoint choice, CPU µs per Check:');
  const counts = [...new Set(r.endpoints.map((p) => p.endpoints))];
  w(`    ${'endpoints'.padEnd(12)}${counts.map((c) => String(c).padStart(10)).join('')}`);
  for (const shape of ['path-only', 'host-based'] as const) {
    w(
      `    ${shape.padEnd(12)}${counts.map((c) => String(r.endpoints.find((p) => p.shape === shape && p.endpoints === c)?.us ?? '-').padStart(10)).join('')}`,
    );
  }
  w('  API keys:');
  w(
    `    ${'keys'.padEnd(10)}${'lookup µs'.padStart(11)}${'file MiB'.padStart(10)}${'load CPU s'.padStart(12)}${'wall s'.padStart(9)}${'peak RSS MiB'.padStart(14)}`,
  );
  for (const l of r.keysLoad) {
    const lookup = r.keyLookup.find((k) => k.keys === l.keys);
    w(
      `    ${String(l.keys).padEnd(10)}${String(lookup?.us ?? '-').padStart(11)}${String(l.fileMiB).padStart(10)}${String(l.cpuSec).padStart(12)}${String(l.wallSec).padStart(9)}${String(l.peakRssMiB).padStart(14)}${l.ok ? '' : '  FAILED'}`,
    );
  }
  if (r.keysReload) {
    const k = r.keysReload;
    w(
      `  keys-file reload of ${k.keys} keys (${k.reloadWallSec} s, ${k.ratePerSec} Checks/s): p99 ${k.duringReload.p99Ms} ms during, ${k.steady.p99Ms} ms steady (×${k.p99Ratio}); peak RSS ${k.peakRssMiB} MiB${k.wrong ? `; ${k.wrong} WRONG answers` : ''}`,
    );
  }
  if (r.pgKeys.length > 0) {
    w('  API keys in PostgreSQL (1,024 distinct keys):');
    w(`    ${'keys'.padEnd(10)}${'warm µs'.padStart(11)}${'cold CPU µs'.padStart(13)}${'cold wall µs'.padStart(14)}`);
    for (const p of r.pgKeys)
      w(
        `    ${String(p.keys).padEnd(10)}${String(p.warmUs).padStart(11)}${String(p.coldCpuUs).padStart(13)}${String(p.coldWallUs).padStart(14)}`,
      );
  }
}
