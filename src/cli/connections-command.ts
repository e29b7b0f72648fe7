// `mcp-authz connections list|revoke`: users' upstream connections (userConnections), read
// and removed where replicas keep them — the provider's store.redis. A revoked connection is
// gone for every replica on the next call (each call reads the store), and the user is asked
// to connect again.
//
// A provider without store.redis keeps connections in the memory of the process that serves
// it: nothing outside that process can reach them, so the command says so (they end when the
// process stops; use store.redis to revoke one user's connection while it runs).
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load.js';
import type { UserConnectionsConfig } from '../config/upstream-schema.js';
import { RedisConnectionStore } from '../upstream/connections-store.js';

export class ConnectionsUsageError extends Error {}

export async function connectionsCommand(
  args: string[],
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  const [verb, ...rest] = args;
  if (verb !== 'list' && verb !== 'revoke')
    throw new ConnectionsUsageError(`connections: expected "list" or "revoke", got ${JSON.stringify(verb ?? '')}`);
  const { values } = parseArgs({
    args: rest,
    options: {
      config: { type: 'string', short: 'c' },
      provider: { type: 'string' },
      user: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const configFile = values.config;
  if (configFile === undefined)
    throw new ConnectionsUsageError("connections: --config FILE is required (the service's config)");
  if (verb === 'revoke' && (values.user === undefined || values.provider === undefined))
    throw new ConnectionsUsageError('connections revoke: --user and --provider are required');
  const { config } = loadConfigFile(configFile);
  const providers = new Map<string, UserConnectionsConfig>();
  for (const e of config.endpoints)
    if (e.upstream?.mode === 'userConnections') providers.set(e.upstream.provider, e.upstream);
  if (providers.size === 0) {
    err(`${configFile}: no endpoint uses userConnections\n`);
    return 1;
  }
  const wanted = values.provider !== undefined ? [values.provider] : [...providers.keys()];
  for (const name of wanted) {
    if (!providers.has(name)) {
      err(`${configFile}: no userConnections provider "${name}" (known: ${[...providers.keys()].join(', ')})\n`);
      return 1;
    }
    if (providers.get(name)!.store.redis === undefined) {
      err(
        `provider "${name}" keeps connections in the memory of the running service (no store.redis): they cannot be listed or revoked from outside it, and end when it restarts. Configure store.redis to revoke one user's connection while the service runs.\n`,
      );
      return 1;
    }
  }
  const rows: { provider: string; user: string }[] = [];
  for (const name of wanted) {
    const redis = providers.get(name)!.store.redis!;
    const store = await RedisConnectionStore.connect(redis);
    try {
      if (verb === 'list') rows.push(...(await store.list(name)));
      else {
        const removed = await store.delete({ provider: name, user: values.user! });
        if (values.json) out(`${JSON.stringify({ provider: name, user: values.user, revoked: removed })}\n`);
        else
          out(
            removed
              ? `revoked: ${values.user}'s connection to ${name}; the next call asks them to connect again\n`
              : `${values.user} has no connection to ${name}\n`,
          );
        return removed ? 0 : 3;
      }
    } finally {
      await store.close();
    }
  }
  if (values.json) out(`${JSON.stringify(rows)}\n`);
  else if (rows.length === 0) out('no connections\n');
  else for (const r of rows) out(`${r.provider}\t${r.user}\n`);
  return 0;
}
