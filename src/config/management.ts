// OPA's management configuration — `services`, `bundles`, `keys`, `decision_logs`, `status`,
// `labels` — in OPA's own key names, so the sections of an existing OPA config paste in
// unchanged (docs/bundles.md, docs/decision-logs.md). Only what mcp-authz implements is
// accepted: anything else is refused by name rather than silently ignored.
import { z } from 'zod';

const seconds = (min: number, max: number) => z.number().int().min(min).max(max);

export const ServiceSchema = z
  .object({
    /** The service's base URL; bundle resources, `/logs` and `/status` are paths under it. */
    url: z.url().refine((u) => /^https?:\/\//i.test(u), 'expected an http:// or https:// URL'),
    /** Extra request headers (never a credential: use credentials.bearer.token_path). */
    headers: z.record(z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'a header name'), z.string()).default({}),
    /** How long to wait for the response headers (long polls add their own timeout to it). */
    response_header_timeout_seconds: seconds(1, 600).default(10),
    tls: z
      .object({
        /** PEM file of the CA(s) the service's certificate must chain to (instead of the system's). */
        ca_cert: z.string().optional(),
      })
      .strict()
      .optional(),
    credentials: z
      .object({
        bearer: z
          .object({
            /** A file holding the token; read again for every request, so a rotated token is used at once. */
            token_path: z.string().optional(),
            /** OPA's inline `token`: refused here, a token in the config ends up in ConfigMaps and logs. */
            token: z
              .never({
                error:
                  'a token in the config ends up in ConfigMaps and logs: put it in a file (a mounted Secret) and name it in token_path',
              })
              .optional(),
            scheme: z
              .string()
              .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/)
              .default('Bearer'),
          })
          .strict()
          .refine((b) => b.token_path !== undefined, {
            message: 'bearer credentials need token_path',
            path: ['token_path'],
          })
          .optional(),
        /** A client certificate for mTLS to the service (PEM files, read again for every connection). */
        client_tls: z.object({ cert: z.string(), private_key: z.string() }).strict().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export const BundleSourceSchema = z
  .object({
    /** The name of the service in `services` that serves the bundle. */
    service: z.string(),
    /** The bundle's path under the service URL (default `bundles/<name>`, as OPA's). */
    resource: z.string().optional(),
    polling: z
      .object({
        min_delay_seconds: seconds(1, 86_400).default(60),
        max_delay_seconds: seconds(1, 86_400).default(120),
        /** Ask the server to hold the request until the bundle changes (OPA's long polling). */
        long_polling_timeout_seconds: seconds(1, 3600).optional(),
      })
      .strict()
      .refine((p) => p.max_delay_seconds >= p.min_delay_seconds, {
        message: 'max_delay_seconds must be at least min_delay_seconds',
        path: ['max_delay_seconds'],
      })
      .default({ min_delay_seconds: 60, max_delay_seconds: 120 }),
    /** Set: every bundle must carry a valid `.signatures.json` (JWS over its files' hashes). */
    signing: z
      .object({
        /** The key in `keys` that verifies the bundle (overrides the token's own `kid`, as in OPA). */
        keyid: z.string().optional(),
        /** The scope the token must carry. */
        scope: z.string().optional(),
      })
      .strict()
      .optional(),
    /** A bundle larger than this (compressed or unpacked) is refused. */
    size_limit_bytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024 * 1024)
      .default(64 * 1024 * 1024),
  })
  .strict();

const keyAlgorithms = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'HS256',
  'HS384',
  'HS512',
] as const;

export const VerificationKeySchema = z
  .object({
    /** A PEM public key (SPKI), or the shared secret for HS256/384/512. */
    key: z.string().min(1),
    algorithm: z.enum(keyAlgorithms).default('RS256'),
    scope: z.string().optional(),
  })
  .strict();

export const DecisionLogsSchema = z
  .object({
    /** The service in `services` that receives the events (POST, gzip-compressed JSON arrays). */
    service: z.string(),
    resource: z.string().default('/logs'),
    reporting: z
      .object({
        /** Events waiting to be sent are held up to this many bytes; past it the oldest are dropped and counted. */
        buffer_size_limit_bytes: z
          .number()
          .int()
          .min(1024)
          .default(8 * 1024 * 1024),
        /** One upload carries up to this many (uncompressed) bytes of events. */
        upload_size_limit_bytes: z
          .number()
          .int()
          .min(1024)
          .max(64 * 1024 * 1024)
          .default(32 * 1024),
        min_delay_seconds: seconds(1, 86_400).default(5),
        max_delay_seconds: seconds(1, 86_400).default(10),
      })
      .strict()
      .refine((r) => r.max_delay_seconds >= r.min_delay_seconds, {
        message: 'max_delay_seconds must be at least min_delay_seconds',
        path: ['max_delay_seconds'],
      })
      .default({
        buffer_size_limit_bytes: 8 * 1024 * 1024,
        upload_size_limit_bytes: 32 * 1024,
        min_delay_seconds: 5,
        max_delay_seconds: 10,
      }),
    /**
     * Paths removed from every event before it leaves, as OPA's mask rule answers them:
     * "/input/…" or "/result/…" (JSON Pointer). Credentials are already redacted from the input.
     */
    mask: z
      .array(
        z
          .string()
          .regex(
            /^\/(input|result)(\/[^/]+)*$/,
            'a JSON Pointer under /input or /result, e.g. /input/attributes/request/http/headers/cookie',
          ),
      )
      .default([]),
  })
  .strict();

export const StatusSchema = z
  .object({
    /** The service in `services` that receives status reports (POST `/status`). */
    service: z.string(),
  })
  .strict();

/** The management sections of the config schema (spread into it). */
export const managementShape = {
  services: z
    .record(z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'letters, digits, "_", "." and "-" only'), ServiceSchema)
    .default({}),
  /** At most one bundle: the policy in force. Set, it replaces policy.bundle and policy.rego. */
  bundles: z
    .record(
      z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'letters, digits, "_", "." and "-" only (used as a metric label)'),
      BundleSourceSchema,
    )
    .refine(
      (b) => Object.keys(b).length <= 1,
      'mcp-authz enforces one policy: configure one bundle (OPA merges several by roots; here one bundle is the whole policy)',
    )
    .default({}),
  keys: z.record(z.string(), VerificationKeySchema).default({}),
  decision_logs: DecisionLogsSchema.optional(),
  status: StatusSchema.optional(),
  /** Labels sent with every decision-log event and status report (besides `id` and `version`). */
  labels: z.record(z.string(), z.string()).default({}),
};

interface ManagementConfig {
  services: Record<string, unknown>;
  bundles: Record<string, z.infer<typeof BundleSourceSchema>>;
  keys: Record<string, unknown>;
  decision_logs?: { service: string } | undefined;
  status?: { service: string } | undefined;
  policy?: { bundle?: string | undefined; rego?: string | undefined } | undefined;
}

/** Cross-references: services and keys named must exist; a remote bundle is the only policy source. */
export function checkManagement(cfg: ManagementConfig, ctx: z.RefinementCtx): void {
  const service = (path: (string | number)[], name: string) => {
    if (!(name in cfg.services))
      ctx.addIssue({
        code: 'custom',
        path,
        message: `no service "${name}" in services (${Object.keys(cfg.services).join(', ') || 'none configured'})`,
      });
  };
  for (const [name, b] of Object.entries(cfg.bundles)) {
    service(['bundles', name, 'service'], b.service);
    if (b.signing?.keyid !== undefined && !(b.signing.keyid in cfg.keys)) {
      ctx.addIssue({
        code: 'custom',
        path: ['bundles', name, 'signing', 'keyid'],
        message: `no key "${b.signing.keyid}" in keys`,
      });
    }
    if (b.signing && Object.keys(cfg.keys).length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['bundles', name, 'signing'],
        message: 'signed bundles need a verification key in keys',
      });
    }
    if (cfg.policy?.bundle !== undefined || cfg.policy?.rego !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['bundles', name],
        message: 'the policy comes from one place: remove policy.bundle / policy.rego, or this bundle',
      });
    }
  }
  if (cfg.decision_logs) service(['decision_logs', 'service'], cfg.decision_logs.service);
  if (cfg.status) service(['status', 'service'], cfg.status.service);
}

export type ServiceConfig = z.infer<typeof ServiceSchema>;
export type BundleSourceConfig = z.infer<typeof BundleSourceSchema>;
export type VerificationKeyConfig = z.infer<typeof VerificationKeySchema>;
export type DecisionLogsConfig = z.infer<typeof DecisionLogsSchema>;
