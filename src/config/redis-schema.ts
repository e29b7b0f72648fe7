// A Redis connection, as every feature that shares state through Redis configures it (rate
// limits, pins, approvals, user connections): one server, or a Redis Cluster reached through
// seed nodes. Part of the one config schema (schema.ts); src/config/redis-client.ts builds the
// client from it.
import { z } from 'zod';

const redisUrl = z.string().regex(/^rediss?:\/\//, 'expected redis:// or rediss:// URL');

/** `{url, cluster, nodes, keyPrefix, commandTimeoutMs}`; the timeout's default and ceiling are the feature's. */
export function redisConnectionSchema(timeout: { defaultMs: number; maxMs: number }) {
  return z
    .object({
      /**
       * redis:// or rediss:// (TLS), with the user name and password when Redis asks for them.
       * With `cluster`, one node of the cluster (a seed): the others are discovered, and the URL's
       * credentials and TLS apply to every node.
       */
      url: redisUrl,
      /** The URL names a node of a Redis Cluster (cluster mode enabled), not a single server. */
      cluster: z.boolean().default(false),
      /** More seed nodes of the cluster (redis://host:port, no credentials), tried when the URL's node does not answer at start. */
      nodes: z.array(redisUrl).optional(),
      keyPrefix: z.string().default('mcp-authz'),
      /** How long one command may wait for Redis before the feature's fallback answers. */
      commandTimeoutMs: z.number().int().min(10).max(timeout.maxMs).default(timeout.defaultMs),
    })
    .strict()
    .superRefine((r, ctx) => {
      if (!r.cluster) {
        if (r.nodes !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['nodes'],
            message: 'nodes are seed nodes of a Redis Cluster: set cluster: true',
          });
        return;
      }
      // The service puts hash tags ({...}) in key names so that keys used together share a slot.
      if (/[{}]/.test(r.keyPrefix))
        ctx.addIssue({
          code: 'custom',
          path: ['keyPrefix'],
          message:
            'with cluster: true, keyPrefix must not contain "{" or "}" (the service places the hash tags itself)',
        });
      const db = databaseOf(r.url);
      if (db !== undefined && db !== '0')
        ctx.addIssue({
          code: 'custom',
          path: ['url'],
          message: `a Redis Cluster has only database 0: remove "/${db}" from the URL`,
        });
      const tls = r.url.startsWith('rediss:');
      (r.nodes ?? []).forEach((n, i) => {
        let u: URL;
        try {
          u = new URL(n);
        } catch {
          ctx.addIssue({ code: 'custom', path: ['nodes', i], message: 'not a URL' });
          return;
        }
        if (u.username || u.password)
          ctx.addIssue({
            code: 'custom',
            path: ['nodes', i],
            message: 'seed nodes carry no credentials: the user name and password of url apply to every node',
          });
        if (n.startsWith('rediss:') !== tls)
          ctx.addIssue({
            code: 'custom',
            path: ['nodes', i],
            message: `every node of a cluster is reached the same way: ${tls ? 'rediss://' : 'redis://'} like url`,
          });
      });
    });
}

export type RedisConnectionConfig = z.infer<ReturnType<typeof redisConnectionSchema>>;

function databaseOf(url: string): string | undefined {
  try {
    const path = new URL(url).pathname;
    return path.length > 1 ? path.slice(1) : undefined;
  } catch {
    return undefined;
  }
}
