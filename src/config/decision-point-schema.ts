// Two ways of asking the policy beyond the Check: a shadow policy evaluated beside the one in
// force (docs/shadow.md), and the AuthZEN Authorization API on the HTTP port (docs/authzen.md).
import { z } from 'zod';
import { BundleSourceSchema } from './management.js';

export const ShadowSchema = z
  .object({
    /** A candidate bundle (.tar.gz) or unpacked bundle folder, reloaded on change. */
    bundle: z.string().optional(),
    /** A .rego folder, compiled with opa on load and on change. */
    rego: z.string().optional(),
    /** A candidate bundle polled from a bundle service in `services` (OPA's bundle API, signatures verified). */
    remote: BundleSourceSchema.optional(),
    /** Decisions waiting for the shadow policy; past it new ones are dropped and counted (mcp_authz_shadow_dropped_total). */
    queueSize: z.number().int().min(1).max(1_000_000).default(1000),
  })
  .strict()
  .refine((s) => [s.bundle, s.rego, s.remote].filter((x) => x !== undefined).length === 1, {
    message: 'name the shadow policy in one place: bundle, rego or remote',
  });

/** SPIFFE IDs ("spiffe://td/ns/x/sa/gw") or prefixes ending in "/*". */
const spiffePattern = z
  .string()
  .regex(/^spiffe:\/\/[^/\s]+(\/[^\s*]*)*(\/\*)?$/, 'a SPIFFE ID, or a prefix ending in "/*"');

export const AuthzenSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** A file holding the shared secret the caller sends as `Authorization: Bearer <secret>`; read again when it changes. */
    secretFile: z.string().optional(),
    /** mTLS callers (tls.http: mtls), by the SPIFFE ID of their client certificate. */
    mtlsClients: z.array(spiffePattern).optional(),
    /** The PDP identifier (`policy_decision_point`); default publicBaseUrl, else the request's own origin. */
    issuer: z.url().optional(),
    /**
     * Questions about something other than an MCP request (a resource type other than tool,
     * prompt, resource, task, mcp_server) go to the policy as `input.authzen`; off, they are refused (400).
     */
    genericEvaluations: z.boolean().default(false),
    /** At most this many evaluations in one batch request. */
    maxEvaluations: z.number().int().min(1).max(10_000).default(100),
    /** The largest request body accepted. */
    maxBodyBytes: z
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024)
      .default(1024 * 1024),
  })
  .strict()
  .refine((a) => !a.enabled || a.secretFile !== undefined || (a.mtlsClients?.length ?? 0) > 0, {
    message: 'the AuthZEN endpoint answers authenticated callers only: set secretFile, mtlsClients, or both',
  });

export type ShadowConfig = z.infer<typeof ShadowSchema>;
export type AuthzenConfig = z.infer<typeof AuthzenSchema>;
