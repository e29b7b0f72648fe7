// `npm run bench -- --scale`: the PostgreSQL key store's point of the keys curve. A real
// PostgreSQL (Debian's, started as the tests start it) holds n keys; the store
// (src/stores/postgres-keys.ts) is asked for 1,024 distinct keys among them:
// - warm: every key cached (the channel up): CPU µs per Check to hash the key and answer
//   from the cache — what the file registry costs;
// - cold: a cache of one entry, so every lookup is a query: the service's CPU µs per lookup
//   (the client side; the database's own CPU is not counted) and the wall µs of one lookup
//   at a time (a loopback round trip, the query, the row turned into a principal).
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startPostgres } from '../../test/helpers/postgres.js';
import { round } from './ghz.js';
import { root } from './paths.js';

export interface PgKeysPoint {
  keys: number;
  /** CPU µs per lookup with the key cached. */
  warmUs: number;
  /** The service's CPU µs per lookup that queries the database. */
  coldCpuUs: number;
  /** Wall µs per lookup that queries the database, one at a time. */
  coldWallUs: number;
  /** Seconds to insert the rows (server side, one statement): setup, not a product figure. */
  insertSec: number;
}

const load = <T>(path: string): Promise<T> => import(pathToFileURL(join(root, 'dist', path)).href) as Promise<T>;
const silent = {
  info() {},
  warn() {},
  error() {},
  debug() {},
  trace() {},
  fatal() {},
  child() {
    return silent;
  },
};

export async function measurePgKeys(counts: number[], log: (msg: string) => void): Promise<PgKeysPoint[]> {
  const { PostgresKeyStore } =
    await load<typeof import('../../src/stores/postgres-keys.js')>('stores/postgres-keys.js');
  const { migratePostgres } = await load<typeof import('../../src/stores/open.js')>('stores/open.js');
  const { hashApiKey } = await load<typeof import('../../src/contracts/api-key.js')>('contracts/api-key.js');
  const db = await startPostgres({ settings: { shared_buffers: '128MB' } });
  const points: PgKeysPoint[] = [];
  try {
    const pgc = {
      url: `postgres://postgres@127.0.0.1:${db.port}/postgres`,
      schema: 'mcp_authz',
      poolSize: 2,
      queryTimeoutMs: 10_000,
      migrate: false,
    };
    await migratePostgres(pgc);
    const admin = await db.connect();
    let have = 0;
    for (const n of counts) {
      const t0 = performance.now();
      await admin.query(
        `INSERT INTO mcp_authz.api_keys (id, sha256, name, owner, role, grants)
         SELECT 'tenant-' || i || '-key', encode(sha256(convert_to('mcp_pgscale_' || i, 'UTF8')), 'hex'),
                'key of tenant ' || i, 'user-' || (i % 5000), 'developer', ARRAY['tools:read_*', 'resources:file://docs/*']
         FROM generate_series($1::int, $2::int - 1) AS i`,
        [have, n],
      );
      await admin.query('ANALYZE mcp_authz.api_keys');
      const insertSec = (performance.now() - t0) / 1000;
      have = n;
      const keys = Array.from({ length: 1024 }, (_, i) => `mcp_pgscale_${(i * 7919) % n}`);
      const hashes = keys.map((k) => hashApiKey(k));
      const events = {};
      const cache = { maxEntries: 100_000, ttlSeconds: 3600, negativeTtlSeconds: 3600, maxStaleSeconds: 900 };
      const warm = new PostgresKeyStore({ postgres: pgc, cache, logger: silent as never, events });
      await warm.start();
      for (const h of hashes) {
        const r = await warm.lookup(h);
        if (r === undefined || r === 'unavailable') throw new Error(`${n} keys: a generated key is not found`);
      }
      let best = Infinity;
      for (let r = 0; r < 3; r++) {
        const start = process.cpuUsage();
        for (let i = 0; i < 100_000; i++) {
          const a = warm.lookup(hashApiKey(keys[i & 1023]!));
          if (a instanceof Promise) throw new Error('a warm lookup queried the database');
        }
        const used = process.cpuUsage(start);
        best = Math.min(best, (used.user + used.system) / 100_000);
      }
      await warm.close();

      const cold = new PostgresKeyStore({
        postgres: pgc,
        cache: { ...cache, maxEntries: 1 },
        logger: silent as never,
        events,
      });
      await cold.start();
      for (let i = 0; i < 200; i++) await cold.lookup(hashes[i & 1023]!); // connections and the prepared statement
      let cpu = Infinity;
      let wall = Infinity;
      for (let r = 0; r < 3; r++) {
        const calls = 3000;
        const start = process.cpuUsage();
        const w0 = performance.now();
        for (let i = 0; i < calls; i++) {
          const a = await cold.lookup(hashApiKey(keys[(i * 31) & 1023]!));
          if (a === undefined || a === 'unavailable') throw new Error('a cold lookup found nothing');
        }
        const used = process.cpuUsage(start);
        cpu = Math.min(cpu, (used.user + used.system) / calls);
        wall = Math.min(wall, ((performance.now() - w0) * 1000) / calls);
      }
      await cold.close();
      const point = {
        keys: n,
        warmUs: round(best, 3),
        coldCpuUs: round(cpu, 1),
        coldWallUs: round(wall, 1),
        insertSec: round(insertSec, 1),
      };
      points.push(point);
      log(
        `PostgreSQL keys, ${n} keys: warm ${point.warmUs} µs CPU; cold ${point.coldCpuUs} µs CPU, ${point.coldWallUs} µs wall per lookup`,
      );
    }
    await admin.end();
  } finally {
    await db.stop();
  }
  return points;
}
