// The shipped migrations (migrations/postgres/NNNN_name.sql), applied in order, each in its own
// transaction with its row in <schema>.schema_migrations, under an advisory lock so that
// replicas starting together apply each one once. A migration already recorded is never run
// again; one recorded here that the shipped set does not have (a newer release ran) stops
// the run rather than guessing.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { MIGRATIONS_DIR } from '../config/paths.mjs';
import { schemaName } from './postgres-connection.js';

/** Arbitrary, fixed: the advisory lock every replica takes around migrations. */
const LOCK_KEY = 727_274_001;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function shippedMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({
      version: Number(f.slice(0, 4)),
      name: f.slice(5, -4),
      sql: readFileSync(join(dir, f), 'utf8'),
    }));
}

export interface MigrateResult {
  applied: string[];
  current: number;
}

/**
 * Applies the migrations the database has not recorded. The shipped SQL names the schema
 * mcp_authz; another configured schema is substituted for it.
 */
export async function migrate(
  client: pg.Client | pg.PoolClient,
  opts: { schema: string; migrations?: Migration[] },
): Promise<MigrateResult> {
  const schema = schemaName(opts);
  const migrations = opts.migrations ?? shippedMigrations();
  await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (
         version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set(
      (await client.query<{ version: number }>(`SELECT version FROM ${schema}.schema_migrations`)).rows.map(
        (r) => r.version,
      ),
    );
    const known = new Set(migrations.map((m) => m.version));
    const unknown = [...done].filter((v) => !known.has(v));
    if (unknown.length > 0)
      throw new Error(
        `the database has migrations this release does not ship (${unknown.join(', ')}): run the newer release's mcp-authz db migrate`,
      );
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      const sql = m.sql.replace(/\bmcp_authz(?=[.;])/g, schema);
      await client.query('BEGIN');
      try {
        await client.query(sql);
        await client.query(`INSERT INTO ${schema}.schema_migrations (version, name) VALUES ($1, $2)`, [
          m.version,
          m.name,
        ]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`);
      }
      applied.push(`${String(m.version).padStart(4, '0')}_${m.name}`);
    }
    return {
      applied,
      current: Math.max(0, ...done, ...migrations.filter((m) => !done.has(m.version)).map((m) => m.version)),
    };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
  }
}
