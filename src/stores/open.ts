// Opens the PostgreSQL stores the config selects (stores.keys / stores.endpoints: postgres):
// migrations first when stores.postgres.migrate is on, then the key store's channel.
import pg from 'pg';
import type { Config } from '../config/schema.js';
import type { PostgresStoreConfig } from '../config/stores-schema.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { migrate } from './migrate.js';
import { clientConfig } from './postgres-connection.js';
import { PostgresKeyStore } from './postgres-keys.js';

/** Runs the shipped migrations on one connection of its own. */
export async function migratePostgres(c: PostgresStoreConfig, logger?: Logger) {
  const client = new pg.Client(clientConfig(c, 'mcp-authz migrate'));
  client.on('error', () => undefined);
  await client.connect();
  try {
    const result = await migrate(client, { schema: c.schema });
    logger?.info({ store: 'postgres', applied: result.applied, version: result.current }, 'PostgreSQL store migrated');
    return result;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The key store, connected: start-up waits for its first connection up to the query timeout
 * (times four), then goes on — Checks with keys are refused with key_store_unavailable until
 * the database answers.
 */
export async function openPostgresKeyStore(
  config: Config,
  logger: Logger,
  events: ServiceEvents,
): Promise<PostgresKeyStore> {
  const pgc = config.stores.postgres!;
  if (pgc.migrate) await migratePostgres(pgc, logger);
  const store = new PostgresKeyStore({ postgres: pgc, cache: config.stores.keyCache, logger, events });
  await store.start(false);
  let timer: NodeJS.Timeout | undefined;
  const waited = await Promise.race([
    store.whenUp().then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), pgc.queryTimeoutMs * 4);
    }),
  ]);
  clearTimeout(timer);
  if (!waited)
    logger.warn(
      { store: 'postgres' },
      'the API key store is not reachable yet: Checks with API keys are refused (key_store_unavailable) until it is',
    );
  return store;
}
