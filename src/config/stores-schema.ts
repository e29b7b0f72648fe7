// stores: where API keys and endpoints come from (docs/stores.md). The files (apiKeys.file,
// endpoints[]) are the default; PostgreSQL is chosen per kind. Part of the one config schema
// (schema.ts).
import { z } from 'zod';

export const PostgresStoreSchema = z
  .object({
    /**
     * postgres://user@host:5432/database?sslmode=require. Unset: the libpq variables
     * (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE…). Keep the password out of it: passwordFile.
     */
    url: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// or postgresql:// URL')
      .optional(),
    /** A file holding the password (a mounted Secret), read at each new connection. */
    passwordFile: z.string().min(1).optional(),
    /** The schema holding the tables (migrations/postgres/). */
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case SQL identifier')
      .default('mcp_authz'),
    /** Connections for key lookups, per process (the LISTEN connection is one more). */
    poolSize: z.number().int().min(1).max(100).default(4),
    /** How long a lookup waits for a connection and its answer before the key counts as unknown-while-down. */
    queryTimeoutMs: z.number().int().min(10).max(60_000).default(2000),
    /** Apply the shipped migrations at start (one replica at a time: an advisory lock); else `mcp-authz db migrate`. */
    migrate: z.boolean().default(false),
  })
  .strict();

export const KeyCacheSchema = z
  .object({
    /** Keys (seen, or seen unknown) held per process; the least recently fetched go first. */
    maxEntries: z.number().int().min(1).default(100_000),
    /** A known key is fetched again after this long even without a notification (a safety net for a lost NOTIFY). */
    ttlSeconds: z.number().int().min(1).default(300),
    /** An unknown key is asked for again after this long (a new key also arrives by notification). */
    negativeTtlSeconds: z.number().int().min(1).default(30),
    /**
     * While the database cannot be reached, keys seen before keep their last answer for this
     * long after the connection was lost (fail-static); then, and for keys never seen, Checks
     * are refused with key_store_unavailable. 0: refuse at once.
     */
    maxStaleSeconds: z.number().int().min(0).default(900),
  })
  .strict();

export const StoresSchema = z
  .object({
    /** Where API keys come from: the keys file and apiKeys.keys ("file"), or the PostgreSQL store. */
    keys: z.enum(['file', 'postgres']).default('file'),
    /** Where endpoints come from: endpoints[] ("file"), or endpoints[] and the PostgreSQL store's rows. */
    endpoints: z.enum(['file', 'postgres']).default('file'),
    postgres: PostgresStoreSchema.optional(),
    keyCache: KeyCacheSchema.default({
      maxEntries: 100_000,
      ttlSeconds: 300,
      negativeTtlSeconds: 30,
      maxStaleSeconds: 900,
    }),
  })
  .strict()
  .superRefine((s, ctx) => {
    for (const kind of ['keys', 'endpoints'] as const)
      if (s[kind] === 'postgres' && s.postgres === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['postgres'],
          message: `stores.${kind} is "postgres": set stores.postgres (at least {} to use the PG* variables)`,
        });
  });

export type StoresConfig = z.infer<typeof StoresSchema>;
export type PostgresStoreConfig = z.infer<typeof PostgresStoreSchema>;
export type KeyCacheConfig = z.infer<typeof KeyCacheSchema>;

export const STORES_DEFAULT: StoresConfig = {
  keys: 'file',
  endpoints: 'file',
  keyCache: { maxEntries: 100_000, ttlSeconds: 300, negativeTtlSeconds: 30, maxStaleSeconds: 900 },
};
