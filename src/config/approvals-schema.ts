// approvals: calls the policy holds for a person's approval (docs/approvals.md): where the
// approval page is reached, how approvers sign in, how long approvals live, where they are
// kept, how approvers are told, and the key that signs the receipts. Part of the one config
// schema (schema.ts).
import { z } from 'zod';
import { redisConnectionSchema } from './redis-schema.js';

const seconds = (min: number, max: number, fallback: number) => z.number().int().min(min).max(max).default(fallback);

export const ApprovalsSchema = z
  .object({
    /** The service's HTTP port as approvers' browsers reach it; the page is <publicUrl>/approvals/<id>. */
    publicUrl: z
      .url()
      .refine((u) => /^https?:\/\//.test(u), 'an http(s) URL')
      .transform((u) => u.replace(/\/+$/, '')),
    /** How long a held call waits for a decision before the approval expires. */
    pendingSeconds: seconds(30, 7 * 24 * 3600, 900),
    /** How long a grant stays usable when the policy's rule sets no window_seconds. */
    grantSeconds: seconds(1, 7 * 24 * 3600, 600),
    /** The OpenID Connect provider approvers sign in at (authorization code + PKCE). */
    oidc: z
      .object({
        issuer: z.url(),
        clientId: z.string().min(1),
        /** A file holding the client secret (client_secret_basic); unset: a public client (PKCE only). */
        clientSecretFile: z.string().min(1).optional(),
        /** The ID token claim that lists the approver's groups (a string or an array of strings). */
        groupsClaim: z.string().min(1).default('groups'),
        /** The ID token claim that names the approver in receipts and logs (falls back to sub). */
        nameClaim: z.string().min(1).default('email'),
        scopes: z.array(z.string().min(1)).default(['openid', 'email', 'profile']),
      })
      .strict(),
    /** PEM PKCS#8 private key (EC P-256 or Ed25519) that signs approval receipts (JWS). */
    receiptKeyFile: z.string().min(1),
    /** 32+ random bytes that sign the approvers' sign-in cookies; unset: random per process (one replica only). */
    sessionKeyFile: z.string().min(1).optional(),
    /** Told of every pending approval: a JSON POST with a Slack-compatible `text`. */
    webhook: z
      .object({
        url: z.url(),
        timeoutMs: z.number().int().min(100).max(60_000).default(3000),
      })
      .strict()
      .optional(),
    /** Where approvals are kept; unset: rateLimit.redis when set, else in the process (one replica only). */
    redis: redisConnectionSchema({ defaultMs: 250, maxMs: 600_000 }).optional(),
  })
  .strict();

export type ApprovalsConfig = z.infer<typeof ApprovalsSchema>;
