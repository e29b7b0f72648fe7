// Endpoints from PostgreSQL (stores.endpoints: postgres): the rows of <schema>.endpoints are
// read whole at start — endpoints are few — and added to the config's endpoints[], and the
// config is validated again as one, so a row is held to every rule an endpoint in the file is
// (names unique, routes distinct, OAuth needs issuers…). A row the schema refuses stops
// start-up with the row's name and the field, as a bad config file does.
import pg from 'pg';
import { ConfigError, type LoadedConfig, validateConfig } from '../config/load.js';
import type { PostgresStoreConfig } from '../config/stores-schema.js';
import { clientConfig, schemaName } from './postgres-connection.js';

interface EndpointRow {
  name: string;
  owner: string | null;
  definition: Record<string, unknown>;
}

export async function readStoreEndpoints(c: PostgresStoreConfig): Promise<Record<string, unknown>[]> {
  const client = new pg.Client(clientConfig(c, 'mcp-authz endpoints'));
  client.on('error', () => undefined);
  await client.connect();
  try {
    const res = await client.query<EndpointRow>(
      `SELECT name, owner, definition FROM ${schemaName(c)}.endpoints ORDER BY name`,
    );
    // The columns win over the same keys in the definition.
    return res.rows.map((r) => ({ ...r.definition, name: r.name, ...(r.owner !== null ? { owner: r.owner } : {}) }));
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The loaded config with the store's endpoints after the file's; unchanged when endpoints come from the file. */
export async function withStoreEndpoints(
  loaded: LoadedConfig,
  env: Record<string, string | undefined> = process.env,
): Promise<LoadedConfig> {
  const { config } = loaded;
  if (config.stores.endpoints !== 'postgres') return loaded;
  const rows = await readStoreEndpoints(config.stores.postgres!);
  const raw = structuredClone((loaded.raw ?? {}) as Record<string, unknown>);
  const fileEndpoints = Array.isArray(raw.endpoints) ? raw.endpoints : [];
  raw.endpoints = [...fileEndpoints, ...rows];
  const source = `${loaded.file ?? 'config'} with the endpoints of PostgreSQL`;
  try {
    return { ...loaded, config: validateConfig(raw, source, loaded.baseDir, env), raw };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // endpoints.N beyond the file's are rows: name them.
    const named = err.problems.map((p) =>
      p.replace(/^endpoints\.(\d+)/, (all, i: string) => {
        const n = Number(i) - fileEndpoints.length;
        return n >= 0 ? `endpoints row ${JSON.stringify(rows[n]?.name)}` : all;
      }),
    );
    throw new ConfigError(source, named);
  }
}
