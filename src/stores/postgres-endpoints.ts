// Endpoints from PostgreSQL (stores.endpoints: postgres, docs/stores.md): the rows of
// <schema>.endpoints are read whole — endpoints are few — and added to the config's
// endpoints[], and the config is validated again as one, so a row is held to every rule an
// endpoint in the file is (names unique, routes distinct, OAuth needs issuers…).
//
// - At start, a row the rules refuse stops start-up with the row's name and the field, as a
//   bad config file does.
// - Then the store LISTENs on mcp_authz_endpoints: a notification (bursts coalesced) reads
//   the rows again, and a changed set is validated the same way and handed to `apply`, which
//   builds the new runtime off to the side and swaps it in. A set the rules refuse is not
//   applied: the previous one keeps serving, the error names the row, and it is counted.
// - The channel lost: the last set keeps serving (fail-static); it reconnects with backoff,
//   LISTENs, and reads the rows again (a full resync), so a change made meanwhile is applied.
import { createHash } from 'node:crypto';
import pg from 'pg';
import { ConfigError, type LoadedConfig, validateConfig } from '../config/load.js';
import type { PostgresStoreConfig } from '../config/stores-schema.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { clientConfig, watchChannel, schemaName } from './postgres-connection.js';

export const ENDPOINTS_CHANNEL = 'mcp_authz_endpoints';

/** Notifications this close together are read as one change. */
const COALESCE_MS = 50;
const MAX_BACKOFF_MS = 5000;

interface EndpointRow {
  name: string;
  owner: string | null;
  definition: Record<string, unknown>;
}

type Env = Record<string, string | undefined>;

async function readRows(client: pg.Client, c: PostgresStoreConfig): Promise<Record<string, unknown>[]> {
  const res = await client.query<EndpointRow>(
    `SELECT name, owner, definition FROM ${schemaName(c)}.endpoints ORDER BY name`,
  );
  // The columns win over the same keys in the definition.
  return res.rows.map((r) => ({ ...r.definition, name: r.name, ...(r.owner !== null ? { owner: r.owner } : {}) }));
}

export async function readStoreEndpoints(c: PostgresStoreConfig): Promise<Record<string, unknown>[]> {
  const client = new pg.Client(clientConfig(c, 'mcp-authz endpoints'));
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await readRows(client, c);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The loaded config with the store's endpoints after the file's; unchanged when endpoints come from the file. */
export async function withStoreEndpoints(loaded: LoadedConfig, env: Env = process.env): Promise<LoadedConfig> {
  if (loaded.config.stores.endpoints !== 'postgres') return loaded;
  return joinRows(loaded, await readStoreEndpoints(loaded.config.stores.postgres!), env);
}

/** The config file's endpoints and these rows, validated as one; a ConfigError names a bad row. */
function joinRows(loaded: LoadedConfig, rows: Record<string, unknown>[], env: Env): LoadedConfig {
  const fileRaw = loaded.storeEndpoints?.fileRaw ?? loaded.raw ?? {};
  const raw = structuredClone(fileRaw) as Record<string, unknown>;
  const fileEndpoints = Array.isArray(raw.endpoints) ? raw.endpoints : [];
  raw.endpoints = [...fileEndpoints, ...rows];
  const source = `${loaded.file ?? 'config'} with the endpoints of PostgreSQL`;
  try {
    const config = validateConfig(raw, source, loaded.baseDir, env);
    return { ...loaded, config, raw, storeEndpoints: { fileRaw, rows } };
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

export interface EndpointWatchOptions {
  logger: Logger;
  events: ServiceEvents;
  /** Builds the runtime for this config and puts it in force; resolves with its endpoint count, throws when it cannot. */
  apply(loaded: LoadedConfig): Promise<number>;
  env?: Env;
}

/**
 * Watches the endpoint rows of `loaded` (as withStoreEndpoints made it) from now on. Resolves
 * at once: the rows of start-up serve until the channel is up and reports a change.
 */
export async function watchStoreEndpoints(
  loaded: LoadedConfig,
  opts: EndpointWatchOptions,
): Promise<{ close(): Promise<void> }> {
  const watcher = new EndpointWatcher(loaded, opts);
  watcher.connect();
  return watcher;
}

class EndpointWatcher {
  private readonly pg: PostgresStoreConfig;
  /** The rows in force (their digest), and the last set refused (not tried again until it changes). */
  private applied: string;
  private refused: string | undefined;
  private listener: pg.Client | undefined;
  private coalesce: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private backoffMs = 100;
  private syncing: Promise<void> | undefined;
  private again = false;
  private up = false;
  private closed = false;
  /** When the first notification of the change being read arrived (ms), for the applied log line. */
  private notifiedAt: number | undefined;

  constructor(
    private readonly loaded: LoadedConfig,
    private readonly opts: EndpointWatchOptions,
  ) {
    this.pg = loaded.config.stores.postgres!;
    this.applied = digest(loaded.storeEndpoints?.rows ?? []);
    opts.events.endpointStore?.('down');
  }

  connect(): void {
    if (this.closed) return;
    const client = new pg.Client({
      ...clientConfig(this.pg, 'mcp-authz endpoints listener'),
      query_timeout: this.pg.queryTimeoutMs,
    });
    this.listener = client;
    const channel = watchChannel(
      client,
      ENDPOINTS_CHANNEL,
      () => this.notified(),
      (why) => {
        if (this.listener === client) this.listener = undefined;
        this.channelLost(why);
      },
    );
    (async () => {
      await client.connect();
      await client.query(`LISTEN ${ENDPOINTS_CHANNEL}`);
      if (channel.gone || this.closed) return;
      this.backoffMs = 100;
      this.up = true;
      this.opts.events.endpointStore?.('up');
      this.opts.logger.info({ store: 'postgres' }, 'endpoint store listening for changes');
      // A full resync: whatever changed while the channel was down (or since start-up) is applied now.
      await this.sync();
    })().catch((err: Error) => channel.fail(err.message));
  }

  private channelLost(why: string): void {
    if (this.closed) return;
    if (this.up) {
      this.up = false;
      this.opts.events.endpointStore?.('down');
      this.opts.logger.warn(
        { store: 'postgres', why },
        'endpoint store connection lost; the last endpoint set keeps serving until it is back',
      );
    }
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), this.backoffMs);
    this.reconnectTimer.unref();
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
  }

  /** A burst of notifications is read once, COALESCE_MS after its first. */
  private notified(): void {
    this.notifiedAt ??= performance.now();
    if (this.coalesce) return;
    this.coalesce = setTimeout(() => {
      this.coalesce = undefined;
      void this.sync();
    }, COALESCE_MS);
  }

  /** Reads the rows and applies a changed set; one at a time, and once more when asked meanwhile. */
  private sync(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      do {
        this.again = false;
        await this.syncOnce();
      } while (this.again && !this.closed);
      this.syncing = undefined;
    })();
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    const client = this.listener;
    if (!client || this.closed) return;
    const since = this.notifiedAt;
    this.notifiedAt = undefined;
    let rows: Record<string, unknown>[];
    try {
      rows = await readRows(client, this.pg);
    } catch (err) {
      // Ended, the connection is made again, and the reconnection reads the rows again: a
      // change is never left unread because one read failed.
      this.opts.logger.warn({ store: 'postgres', err: (err as Error).message }, 'cannot read the endpoint rows');
      await client.end().catch(() => undefined);
      return;
    }
    const d = digest(rows);
    if (d === this.applied || d === this.refused || this.closed) return;
    let next: LoadedConfig;
    try {
      next = joinRows(this.loaded, rows, this.opts.env ?? process.env);
      refuseUpstreamChanges(this.loaded.config, next.config);
    } catch (err) {
      this.refused = d;
      this.rejected(err instanceof ConfigError ? err.problems : [(err as Error).message]);
      return;
    }
    try {
      const endpoints = await this.opts.apply(next);
      this.applied = d;
      this.refused = undefined;
      this.opts.events.endpointStoreUpdate?.('applied');
      this.opts.logger.info(
        {
          store: 'postgres',
          endpoints,
          rows: rows.length,
          // From the notification to the swap; absent for a change found by a resync.
          ...(since !== undefined ? { ms: Math.round(performance.now() - since) } : {}),
        },
        'endpoint store change applied',
      );
    } catch (err) {
      this.refused = d;
      this.rejected([(err as Error).message]);
    }
  }

  private rejected(problems: string[]): void {
    this.opts.events.endpointStoreUpdate?.('rejected');
    this.opts.logger.error(
      { store: 'postgres', problems },
      'endpoint store change refused; the previous endpoint set keeps serving',
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.coalesce);
    const l = this.listener;
    this.listener = undefined;
    await this.syncing?.catch(() => undefined);
    await l?.end().catch(() => undefined);
  }
}

/** Upstream credentials are set up at start (secret files watched, tokens cached): a change of them needs a restart. */
function refuseUpstreamChanges(before: LoadedConfig['config'], after: LoadedConfig['config']): void {
  const upstreams = (c: LoadedConfig['config']) =>
    new Map(c.endpoints.map((e) => [e.name, JSON.stringify(e.upstream ?? null)]));
  const was = upstreams(before);
  const now = upstreams(after);
  for (const name of new Set([...was.keys(), ...now.keys()])) {
    if ((was.get(name) ?? 'null') !== (now.get(name) ?? 'null'))
      throw new Error(
        `endpoints row ${JSON.stringify(name)}.upstream: an upstream credential is set up at start; restart to change it`,
      );
  }
}

function digest(rows: readonly Record<string, unknown>[]): string {
  return createHash('sha256').update(JSON.stringify(rows)).digest('hex');
}
