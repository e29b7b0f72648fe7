// A Redis connection, as every feature that shares state through Redis configures it (rate
// limits, pins, approvals, user connections). Part of the one config schema (schema.ts).
import { z } from 'zod';

/** `{url, keyPrefix, commandTimeoutMs}`; the timeout's default and ceiling are the feature's. */
export function redisConnectionSchema(timeout: { defaultMs: number; maxMs: number }) {
  return z
    .object({
      url: z.string().regex(/^rediss?:\/\//, 'expected redis:// or rediss:// URL'),
      keyPrefix: z.string().default('mcp-authz'),
      /** How long one command may wait for Redis before the feature's fallback answers. */
      commandTimeoutMs: z.number().int().min(10).max(timeout.maxMs).default(timeout.defaultMs),
    })
    .strict();
}
