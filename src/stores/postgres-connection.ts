// How the service and the CLI reach PostgreSQL: stores.postgres (a URL without the password,
// the password from a file — a mounted Secret — read at each new connection), else the libpq
// variables node-postgres reads itself (PGHOST, PGUSER, PGPASSWORD…).
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import type { PostgresStoreConfig } from '../config/stores-schema.js';

/** The tables' schema, quoted: validated as a lower-case identifier by the config schema. */
export function schemaName(c: Pick<PostgresStoreConfig, 'schema'>): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(c.schema)) throw new Error(`not a schema name: ${JSON.stringify(c.schema)}`);
  return `"${c.schema}"`;
}

/** The password file's content without a trailing newline; throws naming the file (never the content). */
export function readPasswordFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot read the PostgreSQL password file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  return text.replace(/\r?\n$/, '');
}

export function clientConfig(c: PostgresStoreConfig, applicationName = 'mcp-authz'): pg.ClientConfig {
  const passwordFile = c.passwordFile;
  return {
    ...(c.url !== undefined ? { connectionString: c.url } : {}),
    // A function: a rotated Secret is used by the next connection without a restart.
    ...(passwordFile !== undefined ? { password: () => readPasswordFile(passwordFile) } : {}),
    connectionTimeoutMillis: c.queryTimeoutMs,
    application_name: applicationName,
    keepAlive: true,
  };
}

export function poolConfig(c: PostgresStoreConfig, applicationName = 'mcp-authz'): pg.PoolConfig {
  return {
    ...clientConfig(c, applicationName),
    max: c.poolSize,
    query_timeout: c.queryTimeoutMs,
    idleTimeoutMillis: 60_000,
  };
}

/** A LISTEN connection's state: `fail` ends it (once); `gone` once it has ended. */
export interface Channel {
  fail(why: string): void;
  readonly gone: boolean;
}

/**
 * Wires a notification client: each notification on `channel` goes to `notified`; the first
 * error or end (or a `fail` from the caller) ends the client and goes to `lost`, once.
 */
export function watchChannel(
  client: pg.Client,
  channel: string,
  notified: (payload: string | undefined) => void,
  lost: (why: string) => void,
): Channel {
  let gone = false;
  const fail = (why: string) => {
    if (gone) return;
    gone = true;
    client.removeAllListeners('notification');
    client.end().catch(() => undefined);
    lost(why);
  };
  client.on('error', (err) => fail(err.message));
  client.on('end', () => fail('connection ended'));
  client.on('notification', (msg) => {
    if (msg.channel === channel) notified(msg.payload);
  });
  return {
    fail,
    get gone() {
      return gone;
    },
  };
}
