// `mcp-authz keys create|revoke --store postgres` and `mcp-authz db migrate`: the PostgreSQL
// store (docs/stores.md) from the command line. The connection: --database-url, else the
// config's stores.postgres (--config), else $MCP_AUTHZ_DATABASE_URL, else the libpq variables
// (PGHOST, PGUSER…); the password from --password-file or stores.postgres.passwordFile, never
// from the command line. Every value goes to the database as a query parameter.
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadConfigFile } from '../config/load.js';
import { PostgresStoreSchema, type PostgresStoreConfig } from '../config/stores-schema.js';
import { migratePostgres } from '../stores/open.js';
import { clientConfig, schemaName } from '../stores/postgres-connection.js';
import { createKey } from './keys-command.js';
import { USAGE } from './usage.js';

const CONNECTION_OPTIONS = {
  store: { type: 'string' },
  'database-url': { type: 'string' },
  'password-file': { type: 'string' },
  schema: { type: 'string' },
  config: { type: 'string', short: 'c' },
} as const;

type ConnectionValues = {
  store?: string | undefined;
  'database-url'?: string | undefined;
  'password-file'?: string | undefined;
  schema?: string | undefined;
  config?: string | undefined;
};

/** The connection the flags, the config and the environment name, validated as the service's config is. */
export function connectionOf(
  v: ConnectionValues,
  env: Readonly<Record<string, string | undefined>> = process.env,
): PostgresStoreConfig {
  const fromConfig = v.config !== undefined ? loadConfigFile(v.config, env).config.stores.postgres : undefined;
  const raw: Record<string, unknown> = { ...fromConfig };
  const url = v['database-url'] ?? fromConfig?.url ?? env.MCP_AUTHZ_DATABASE_URL;
  if (url !== undefined) raw.url = url;
  if (v['password-file'] !== undefined) raw.passwordFile = v['password-file'];
  if (v.schema !== undefined) raw.schema = v.schema;
  const parsed = PostgresStoreSchema.safeParse(raw);
  if (!parsed.success)
    throw new Error(parsed.error.issues.map((i) => `${i.path.join('.') || 'connection'}: ${i.message}`).join('\n'));
  // A password in the URL would sit in shell history and process lists.
  if (parsed.data.url !== undefined && /^postgres(ql)?:\/\/[^/@]*:[^/@]*@/.test(parsed.data.url))
    throw new Error('--database-url: keep the password out of the URL; use --password-file (or PGPASSWORD)');
  return parsed.data;
}

async function withClient<T>(c: PostgresStoreConfig, f: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(clientConfig(c, 'mcp-authz cli'));
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await f(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** keys create|revoke|list with --store postgres. */
export async function keysStoreCommand(
  args: string[],
  out: (s: string) => void,
  env: Readonly<Record<string, string | undefined>> = process.env,
  now: () => number = Date.now,
): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: {
      ...CONNECTION_OPTIONS,
      name: { type: 'string' },
      id: { type: 'string' },
      user: { type: 'string' },
      role: { type: 'string' },
      permission: { type: 'string', multiple: true },
      expires: { type: 'string' },
      json: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.store !== 'postgres') throw new Error(`--store: expected "postgres", got ${JSON.stringify(values.store)}`);
  const conn = connectionOf(values, env);
  const table = `${schemaName(conn)}.api_keys`;
  if (sub === 'create') {
    if (!values.name) throw new Error('keys create needs --name');
    const created = createKey({
      name: values.name,
      ...(values.id !== undefined ? { id: values.id } : {}),
      ...(values.user !== undefined ? { userId: values.user } : {}),
      ...(values.role !== undefined ? { role: values.role } : {}),
      ...(values.permission !== undefined ? { permissions: values.permission } : {}),
      ...(values.expires !== undefined ? { expires: values.expires } : {}),
    });
    const e = created.entry;
    if (e.expiresAt !== undefined && Date.parse(e.expiresAt) <= now())
      throw new Error(`--expires: ${values.expires} (${e.expiresAt}) is not in the future`);
    await withClient(conn, async (client) => {
      try {
        await client.query(
          `INSERT INTO ${table} (id, sha256, name, owner, role, grants, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [e.id, e.sha256, e.name ?? null, e.userId ?? null, e.role ?? null, e.permissions, e.expiresAt ?? null],
        );
      } catch (err) {
        if ((err as { code?: string }).code === '23505')
          throw new Error(`a key with id ${JSON.stringify(e.id)} already exists (choose another --id)`);
        throw err;
      }
    });
    if (values.json) out(`${JSON.stringify({ key: created.key, entry: e }, null, 2)}\n`);
    else
      out(
        `New API key for "${e.name}" (shown only now; mcp-authz keeps only its SHA-256):\n\n` +
          `  ${created.key}\n\n` +
          `Stored in PostgreSQL as "${e.id}"; every replica accepts it on its next Check.\n` +
          (e.userId === undefined ? 'No --user: a public key (it cannot reach private endpoints).\n' : ''),
      );
    return 0;
  }
  if (sub === 'revoke') {
    if (!values.id) throw new Error('keys revoke needs --id');
    const n = await withClient(conn, async (client) => {
      const res = await client.query(
        `UPDATE ${table} SET revoked_at = coalesce(revoked_at, now()), updated_at = now() WHERE id = $1`,
        [values.id],
      );
      return res.rowCount ?? 0;
    });
    if (n === 0) throw new Error(`no key with id ${JSON.stringify(values.id)} in ${table}`);
    out(
      values.json
        ? `${JSON.stringify({ revoked: values.id })}\n`
        : `Revoked "${values.id}"; every replica refuses it on its next Check.\n`,
    );
    return 0;
  }
  throw new Error(`keys: unknown subcommand ${JSON.stringify(sub)}`);
}

/** db migrate: applies the shipped migrations. */
export async function dbCommand(
  args: string[],
  out: (s: string) => void,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h' || rest.includes('--help') || rest.includes('-h')) {
    out(USAGE.db);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'migrate') throw new Error(`db: expected "migrate", got ${JSON.stringify(sub ?? '')}`);
  const { values } = parseArgs({
    args: rest,
    options: { ...CONNECTION_OPTIONS, json: { type: 'boolean' } },
    strict: true,
  });
  const conn = connectionOf(values, env);
  const result = await migratePostgres(conn);
  if (values.json) out(`${JSON.stringify(result)}\n`);
  else
    out(
      result.applied.length === 0
        ? `Up to date (version ${result.current}).\n`
        : `Applied ${result.applied.join(', ')}; now at version ${result.current}.\n`,
    );
  return 0;
}
