// The one configuration schema: source of the TypeScript types, the docs table and the
// Helm values schema. Every key is optional; the defaults are the README's "Configuration".
import { z } from 'zod';
import { trimSlash } from '../contracts/trim-slash.js';
import { isSpiffePattern } from '../contracts/spiffe-id.js';
import { IDENTITY_HEADER_NAMES, headerNameMatches } from '../contracts/upstream-headers.js';
import { canonicalOrigin } from '../contracts/web-origin.js';
import { ArgumentRulesSchema } from './argument-rules.js';
import { AuthzenSchema, ShadowSchema } from './decision-point-schema.js';
import { checkManagement, managementShape } from './management.js';
import { STORES_DEFAULT, StoresSchema } from './stores-schema.js';
import { ApprovalsSchema } from './approvals-schema.js';
import { redisConnectionSchema } from './redis-schema.js';
import { UpstreamCredentialSchema, upstreamHeaderNames } from './upstream-schema.js';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:]+):\d{1,5}$/, 'expected host:port, e.g. 0.0.0.0:9191');

/** The longest Unix socket path Linux takes (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH_BYTES = 107;

/** host:port, or a Unix domain socket: unix:/absolute/path (gRPC's unix:///absolute/path too), as Envoy's `pipe` address. */
const listenAddress = z.union(
  [
    hostPort,
    z
      .string()
      .regex(/^unix:(\/\/)?\/\S+$/, 'expected host:port (e.g. 0.0.0.0:9191) or unix:/absolute/path/to.sock')
      .refine(
        (a) => Buffer.byteLength(a.replace(/^unix:(\/\/(?=\/))?/, '')) <= MAX_SOCKET_PATH_BYTES,
        `a Unix socket path is at most ${MAX_SOCKET_PATH_BYTES} bytes`,
      ),
  ],
  { error: 'expected host:port (e.g. 0.0.0.0:9191) or unix:/absolute/path/to.sock' },
);

/** What a port serves: cleartext, TLS, or TLS that requires a client certificate signed by tls.clientCaFile. */
const TlsMode = z.enum(['off', 'tls', 'mtls']);
export type TlsMode = z.infer<typeof TlsMode>;

/**
 * TLS from mounted files, reloaded when they change (docs/envoy.md "TLS"). The gRPC and
 * HTTP authorization ports default to mTLS when a client CA is given, else TLS; the HTTP
 * port (probes, /metrics) stays cleartext unless set.
 */
export const TlsSchema = z
  .object({
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
    /** Clients must present a certificate this CA bundle signed (mTLS) on the ports set to mtls. */
    clientCaFile: z.string().min(1).optional(),
    grpc: TlsMode.optional(),
    extAuthzHttp: TlsMode.optional(),
    http: TlsMode.default('off'),
    /** Polling interval of the files, besides fs.watch (a safety net for filesystems without events). */
    pollIntervalMs: z.number().int().min(100).default(5000),
  })
  .strict()
  .transform((t) => {
    const fallback: TlsMode = t.clientCaFile !== undefined ? 'mtls' : 'tls';
    return { ...t, grpc: t.grpc ?? fallback, extAuthzHttp: t.extAuthzHttp ?? fallback };
  })
  .superRefine((t, ctx) => {
    const modes = { grpc: t.grpc, extAuthzHttp: t.extAuthzHttp, http: t.http };
    for (const [port, mode] of Object.entries(modes)) {
      if (mode === 'mtls' && t.clientCaFile === undefined)
        ctx.addIssue({
          code: 'custom',
          path: [port],
          message: 'mtls needs tls.clientCaFile: the CA bundle client certificates must be signed by',
        });
    }
    if (t.clientCaFile !== undefined && !Object.values(modes).includes('mtls')) {
      ctx.addIssue({
        code: 'custom',
        path: ['clientCaFile'],
        message:
          'a client CA is set but no port asks for client certificates: set a port to mtls, or leave clientCaFile out',
      });
    }
  });
export type TlsConfig = z.infer<typeof TlsSchema>;

const asymmetricAlgorithms = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'] as const;

export const Algorithm = z.enum(asymmetricAlgorithms, {
  error: (issue) =>
    `unsupported algorithm ${JSON.stringify(issue.input)}: only asymmetric algorithms are accepted (${asymmetricAlgorithms.join(', ')}); HS* and none are refused`,
});

const grant = z
  .string()
  .regex(/^(\*|(tools|prompts|resources):.+)$/, 'a grant is "*" or "<tools|prompts|resources>:<glob>"');

/** A per-tool quota rule (docs/quotas.md): calls a grant pattern names, per principal. */
export const QuotaRuleSchema = z
  .object({
    /** The metric label and the name in the 429: letters, digits, "_", "." and "-". */
    name: z
      .string()
      .regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'letters, digits, "_", "." and "-" only, at most 64 (used as a metric label)'),
    /** Which calls count: "tools:<glob>", "prompts:<glob>", "resources:<glob>", or "*" for every named call. */
    match: grant,
    rps: z.number().positive(),
    /** Calls allowed at once before the rate applies (0: the rate's whole window, at least 1). */
    burst: z.number().int().min(0).default(0),
  })
  .strict();

const quotaRules = z
  .array(QuotaRuleSchema)
  .max(64)
  .superRefine((rules, ctx) => {
    const seen = new Set<string>();
    rules.forEach((r, i) => {
      if (seen.has(r.name))
        ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate quota rule name "${r.name}"` });
      seen.add(r.name);
    });
  });

/** One API key registry entry (the keys file, `apiKeys.keys`, and MCP_API_KEYS after hashing): hashes only. */
export const ApiKeyEntrySchema = z
  .object({
    id: z
      .string()
      .regex(
        /^[a-zA-Z0-9_.:-]{1,64}$/,
        'letters, digits, "_", ".", ":" and "-" only, at most 64 (used in logs and metrics)',
      ),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'expected the 64 hex digits of the SHA-256 of the key (never the key itself)')
      .transform((h) => h.toLowerCase()),
    name: z.string().min(1).optional(),
    userId: z.string().min(1).optional(),
    role: z.string().min(1).optional(),
    permissions: z.array(grant).default([]),
    expiresAt: z
      .union([z.string(), z.date()])
      .transform((v, ctx) => {
        const d = v instanceof Date ? v : new Date(v);
        if (Number.isNaN(d.getTime())) {
          ctx.addIssue({ code: 'custom', message: 'expected an ISO 8601 date-time, e.g. 2027-01-01T00:00:00Z' });
          return z.NEVER;
        }
        return d.toISOString();
      })
      .optional(),
    disabled: z.boolean().default(false),
  })
  .strict();

/** Browser origins allowed to call an endpoint (docs/origins.md): canonical origins, or ["*"] for any. */
const allowedOrigins = z
  .array(z.string())
  .min(1, "list at least one origin, or leave allowedOrigins out for the default (no Origin, or the endpoint's own)")
  .transform((list, ctx) => {
    if (list.includes('*')) {
      if (list.length > 1) ctx.addIssue({ code: 'custom', message: '"*" allows every origin: it stands alone' });
      return ['*'];
    }
    return list.map((o, i) => {
      if (o.trim().toLowerCase() === 'null') {
        ctx.addIssue({
          code: 'custom',
          path: [i],
          message:
            '"null" is the origin of sandboxed frames, file: pages and some redirects — any site can send it, so it cannot be allowed',
        });
        return o;
      }
      const c = canonicalOrigin(o);
      if (c === undefined)
        ctx.addIssue({
          code: 'custom',
          path: [i],
          message: `expected an origin: scheme://host[:port], without a path or trailing "/" (e.g. https://dash.example.com), got ${JSON.stringify(o)}`,
        });
      return c ?? o;
    });
  });

export const EndpointSchema = z
  .object({
    name: z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'letters, digits, "_", "." and "-" only (used as a metric label)'),
    match: z
      .object({
        pathPrefix: z
          .string()
          .startsWith('/', 'must start with "/"')
          .refine(
            (p) => !p.split('/').some((s) => s === '.' || s === '..' || s.startsWith('.;') || s.startsWith('..;')),
            'must not contain "." or ".." segments',
          )
          .refine(
            (p) => !/[?#%\\\0]/.test(p),
            'must be a decoded path without "?", "#", "%", "\\" or NUL (requests are matched after decoding)',
          )
          .optional(),
        // Envoy's virtual host domains: an exact host, "*.suffix" or "prefix.*"; the port is not part of it.
        host: z
          .string()
          .toLowerCase()
          .regex(
            /^(\*[a-z0-9.-]+|[a-z0-9.-]+\*|[a-z0-9.-]+|\[[0-9a-f:.]+\])$/,
            'an exact host ("files.mcp.example.com"), "*.example.com" or "mcp.*", without a port or scheme',
          )
          .optional(),
      })
      .strict()
      .refine((m) => m.pathPrefix !== undefined || m.host !== undefined, 'set pathPrefix, host, or both'),
    owner: z.string().min(1).optional(),
    auth: z
      .object({
        apiKey: z.boolean().default(true),
        oauth: z.boolean().default(false),
        queryParamKeys: z.boolean().default(false),
        /** Accept the mTLS peer's SPIFFE ID (Envoy's source.principal) when the request carries no key or token. */
        mtls: z.boolean().default(false),
        /** Accept an OAuth JWT from this cookie (browser sessions; needs allowedOrigins). Off when unset. */
        jwtCookie: z
          .string()
          .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/, "a cookie name: letters, digits and !#$%&'*+-.^_`|~ only")
          .optional(),
      })
      .strict()
      .default({ apiKey: true, oauth: false, queryParamKeys: false, mtls: false }),
    resource: z.url().optional(),
    /** Browser origins allowed to call the endpoint; unset: requests without Origin and from the endpoint's own origin. */
    allowedOrigins: allowedOrigins.optional(),
    scopes: z.array(z.string().min(1)).default([]),
    /** mTLS workloads the shipped policy admits (auth.mtls), by SPIFFE ID or "<prefix>/*", with their grants (docs/workload-identity.md). */
    workloads: z
      .record(z.string(), z.array(grant))
      .superRefine((m, ctx) => {
        for (const pattern of Object.keys(m)) {
          if (isSpiffePattern(pattern)) continue;
          ctx.addIssue({
            code: 'custom',
            path: [pattern],
            message:
              'expected a workload\'s SPIFFE ID (spiffe://<trust domain>/<path>) or a prefix ending in "/*" (spiffe://cluster.local/ns/agents/*); "*" has no other meaning',
          });
        }
      })
      .optional(),
    /** Tool names metrics label individually (with the scopes' non-glob tools:<name>); others are "_other". */
    tools: z.array(z.string().min(1).max(128)).max(1000).default([]),
    /** Overrides rateLimit.perClient (rps, burst) and rateLimit.perTool (perTool: [] turns the quotas off) for this endpoint. */
    rateLimit: z
      .object({
        rps: z.number().min(0).optional(),
        burst: z.number().int().min(0).optional(),
        perTool: quotaRules.optional(),
      })
      .strict()
      .refine((r) => r.burst === undefined || r.rps !== undefined, { message: 'burst needs rps', path: ['burst'] })
      .optional(),
    /** The credential an allowed request carries to the MCP server (docs/upstream-credentials.md); unset: none is added. */
    upstream: UpstreamCredentialSchema.optional(),
    /** Arguments (by name, at any depth) the approval page masks: passwords, tokens (docs/approvals.md). */
    secretArguments: z.array(z.string().min(1).max(128)).max(100).optional(),
    /** Free-form, handed to the policy; `arguments` holds the shipped policy's argument rules (validated). */
    data: z.object({ arguments: ArgumentRulesSchema.optional() }).catchall(z.unknown()).default({}),
  })
  .strict();

export const IssuerSchema = z
  .object({
    issuer: z.url(),
    jwksUri: z.url().optional(),
    audiences: z.array(z.string().min(1)).optional(),
    algorithms: z
      .array(Algorithm)
      .min(1)
      .default([...asymmetricAlgorithms]),
    userClaim: z.string().default('sub'),
    scopeClaims: z.array(z.string()).default(['scope', 'scp']),
    rolesClaim: z.string().default('roles'),
    /**
     * Whether this issuer's user ids name the same people as API keys' userId and endpoints'
     * owner ("shared"), or are its own ("namespaced": userId becomes "<issuer>#<id>").
     * Default: shared when it is the only issuer, namespaced when several are configured,
     * so a user "alice" at one IdP never owns another IdP's alice's endpoint.
     */
    userIds: z.enum(['shared', 'namespaced']).optional(),
  })
  .strict();

export const ConfigSchema = z
  .object({
    listen: z
      .object({
        grpc: listenAddress.default('0.0.0.0:9191'),
        http: listenAddress.default('0.0.0.0:9090'),
        /** Envoy's HTTP authorization service (ext_authz `http_service`): off unless set. */
        extAuthzHttp: listenAddress.optional(),
        /** The mode of Unix socket files (octal): who may connect is who may open the file. */
        socketMode: z
          .string()
          .regex(/^0?[0-7]{3}$/, 'an octal file mode, e.g. "0660"')
          .default('0660'),
      })
      .strict()
      .default({ grpc: '0.0.0.0:9191', http: '0.0.0.0:9090', socketMode: '0660' }),
    /** TLS (and mutual TLS) on the ports, from files reloaded on change; off unless set. */
    tls: TlsSchema.optional(),
    /**
     * The HTTP authorization service: the `path_prefix` Envoy's http_service puts before every
     * path, and the request headers its `authorization_response.allowed_upstream_headers`
     * copies upstream (exact names, or a prefix ending in "*"). An allow that must set another
     * header is refused: Envoy would drop the new value and pass the client's own.
     */
    extAuthzHttp: z
      .object({
        pathPrefix: z
          .string()
          .regex(/^(\/[^?#\s]*)?$/, 'empty, or a path starting with "/" (no query)')
          .default(''),
        upstreamHeaders: z
          .array(
            z.string().regex(/^[!#$%&'+\-.^_`|~0-9a-z]+\*?$/, 'a lower-case header name, or a prefix ending in "*"'),
          )
          .min(1)
          .refine(
            (names) => IDENTITY_HEADER_NAMES.every((h) => names.some((n) => headerNameMatches(n, h))),
            `must cover the identity headers (${IDENTITY_HEADER_NAMES.join(', ')}): "x-mcp-*" does`,
          )
          .default(['x-mcp-*']),
      })
      .strict()
      .default({ pathPrefix: '', upstreamHeaders: ['x-mcp-*'] }),
    publicBaseUrl: z.url().optional(),
    realm: z.string().default('mcp-authz'),
    reflection: z.boolean().default(false),
    /** What serves the gRPC port: the service's own server on node:http2, or grpc-js, the reference implementation (a supported choice). */
    grpcServer: z.enum(['lean', 'grpc-js']).default('lean'),
    limits: z
      .object({
        maxBodyBytes: z
          .number()
          .int()
          .positive()
          .default(1024 * 1024),
        maxHeaderBytes: z
          .number()
          .int()
          .positive()
          .default(64 * 1024),
        maxHeaders: z.number().int().positive().default(200),
        /** Objects and arrays nested deeper in a body are refused (400 json_too_deep). At most 1000: Python readers stop near it, and deeper input strains recursive serializers. */
        maxJsonDepth: z.number().int().min(4).max(1000).default(64),
      })
      .strict()
      .default({ maxBodyBytes: 1024 * 1024, maxHeaderBytes: 64 * 1024, maxHeaders: 200, maxJsonDepth: 64 }),
    apiKeys: z
      .object({
        file: z.string().optional(),
        header: z.string().toLowerCase().default('x-api-key'),
        queryParams: z.array(z.string().min(1)).default(['api_key', 'apikey']),
        /** Registry entries kept in the config itself (MCP_API_KEYS lands here, hashed). */
        keys: z.array(ApiKeyEntrySchema).default([]),
        /** Polling interval of the keys file, besides fs.watch (a safety net for filesystems without events). */
        pollIntervalMs: z.number().int().min(100).default(5000),
      })
      .strict()
      .default({ header: 'x-api-key', queryParams: ['api_key', 'apikey'], keys: [], pollIntervalMs: 5000 }),
    oauth: z
      .object({
        issuers: z.array(IssuerSchema).default([]),
        clockToleranceSeconds: z.number().int().min(0).max(600).default(30),
        jwksCooldownSeconds: z.number().int().min(1).default(30),
        jwksCacheMaxAgeSeconds: z.number().int().min(1).default(600),
        /** Verified tokens kept (0: none), so a repeated token skips its signature check; bounded by tokenCacheMaxBytes too. */
        tokenCacheSize: z.number().int().min(0).default(1_000_000),
        /** The verified-token cache's memory budget: 53 bytes per token plus each distinct identity's record (docs/oauth.md). */
        tokenCacheMaxBytes: z
          .number()
          .int()
          .min(0)
          .default(64 * 1024 * 1024),
        maxTokenBytes: z
          .number()
          .int()
          .positive()
          .default(16 * 1024),
      })
      .strict()
      .default({
        issuers: [],
        clockToleranceSeconds: 30,
        jwksCooldownSeconds: 30,
        jwksCacheMaxAgeSeconds: 600,
        tokenCacheSize: 1_000_000,
        tokenCacheMaxBytes: 64 * 1024 * 1024,
        maxTokenBytes: 16 * 1024,
      }),
    upstream: z
      .object({ removeCredentials: z.boolean().default(true) })
      .strict()
      .default({ removeCredentials: true }),
    policy: z
      .object({
        bundle: z.string().optional(),
        rego: z.string().optional(),
        entrypoint: z.string().default('mcp/authz/decision'),
        // The list visibility rule for ext_proc (docs/ext_proc.md); a bundle without it still decides requests.
        visibleEntrypoint: z.string().default('mcp/authz/visible'),
        dryRun: z.boolean().default(false),
        maxMemoryPages: z.number().int().min(2).max(65536).default(1024),
        // Unset: as the bundle declares in data.mcp_authz.input.envoy (the shipped policy: off), else on.
        envoyInput: z.boolean().optional(),
        /** What principal.permissions and principal.scopes hold: all the caller's grants, or only those that can apply to the request; unset, as the bundle declares in data.mcp_authz.input.grants (the shipped policy: applicable), else all (docs/policies.md "Grants in the input"). */
        grantsInput: z.enum(['all', 'applicable']).optional(),
        /** Give the policy the credential headers' values (a policy that verifies tokens itself); every output stays redacted (docs/policies.md). */
        rawCredentials: z.boolean().default(false),
        data: z.record(z.string(), z.unknown()).default({}),
      })
      .strict()
      .optional(),
    rateLimit: z
      .object({
        failedAuth: z
          .object({
            maxAttempts: z.number().int().min(0).default(20),
            windowSeconds: z.number().int().positive().default(60),
          })
          .strict()
          .default({ maxAttempts: 20, windowSeconds: 60 }),
        perClient: z
          .object({ rps: z.number().min(0).default(0), burst: z.number().int().min(0).default(0) })
          .strict()
          .default({ rps: 0, burst: 0 }),
        /** Per-tool quotas for every endpoint that does not set its own (endpoints[].rateLimit.perTool). */
        perTool: quotaRules.default([]),
        redis: redisConnectionSchema({ defaultMs: 250, maxMs: 600_000 }).optional(),
      })
      .strict()
      .default({ failedAuth: { maxAttempts: 20, windowSeconds: 60 }, perClient: { rps: 0, burst: 0 }, perTool: [] }),
    /** Tool-definition pinning (docs/pinning.md): the pins file and where run-time pin state is shared. */
    pins: z
      .object({
        /** The pins file (`mcp-authz pins record` writes it): per endpoint, a mode and the pinned definitions. Reloaded on change. */
        file: z.string().min(1),
        /** Polling interval of the pins file, besides fs.watch. */
        pollIntervalMs: z.number().int().min(100).default(5000),
        /** Where replicas share what each endpoint last listed and first-seen pins; unset: rateLimit.redis, else this process. */
        redis: redisConnectionSchema({ defaultMs: 250, maxMs: 600_000 }).optional(),
        /** The group (approvers' groups claim) whose members re-approve a changed definition on the approval page (needs approvals); unset: only the pins file decides. */
        approverGroup: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    clientAddress: z
      .object({
        from: z.enum(['source', 'x-forwarded-for', 'x-envoy-external-address']).default('source'),
        trustedHops: z.number().int().min(1).default(1),
      })
      .strict()
      .default({ from: 'source', trustedHops: 1 }),
    decisionLog: z
      .object({ enabled: z.boolean().default(true), sampleRate: z.number().min(0).max(1).default(1) })
      .strict()
      .default({ enabled: true, sampleRate: 1 }),
    endpoints: z.array(EndpointSchema).default([]),
    /** A candidate policy evaluated beside the one in force, never deciding (docs/shadow.md). */
    shadow: ShadowSchema.optional(),
    /** The OpenID AuthZEN Authorization API on the HTTP port (docs/authzen.md). */
    authzen: AuthzenSchema.default({
      enabled: false,
      genericEvaluations: false,
      maxEvaluations: 100,
      maxBodyBytes: 1024 * 1024,
    }),
    /** Where keys and endpoints come from: the files (default) or PostgreSQL (docs/stores.md). */
    stores: StoresSchema.default(STORES_DEFAULT),
    /** Calls the policy holds for a person's approval (docs/approvals.md); off unless set. */
    approvals: ApprovalsSchema.optional(),
    // OPA's management sections, in OPA's key names (src/config/management.ts).
    ...managementShape,
  })
  .strict()
  .superRefine((cfg, ctx) => {
    checkManagement(cfg, ctx);
    if (cfg.shadow?.remote && !(cfg.shadow.remote.service in cfg.services))
      ctx.addIssue({
        code: 'custom',
        path: ['shadow', 'remote', 'service'],
        message: `no service "${cfg.shadow.remote.service}" in services (${Object.keys(cfg.services).join(', ') || 'none configured'})`,
      });
    if (cfg.authzen.enabled && cfg.authzen.mtlsClients?.length && cfg.tls?.http !== 'mtls')
      ctx.addIssue({
        code: 'custom',
        path: ['authzen', 'mtlsClients'],
        message: 'mTLS callers need client certificates on the HTTP port: set tls.http to mtls',
      });
    if (cfg.stores.keys === 'postgres' && (cfg.apiKeys.file !== undefined || cfg.apiKeys.keys.length > 0)) {
      ctx.addIssue({
        code: 'custom',
        path: ['apiKeys', cfg.apiKeys.file !== undefined ? 'file' : 'keys'],
        message:
          'stores.keys is "postgres": keys come from the database only, so a keys file, apiKeys.keys or MCP_API_KEYS would be ignored — remove them (or import them with mcp-authz keys create --store postgres)',
      });
    }
    if (cfg.listen.extAuthzHttp !== undefined && cfg.clientAddress.from === 'source') {
      ctx.addIssue({
        code: 'custom',
        path: ['clientAddress', 'from'],
        message:
          "with listen.extAuthzHttp the authorization request comes from Envoy, not the client, so the source address would put every client in one lockout: set x-forwarded-for (with trustedHops) or x-envoy-external-address, and list that header in the ext_authz filter's allowed_headers (docs/envoy-http.md)",
      });
    }
    const seen = new Set<string>();
    const routes = new Map<string, string>();
    const providers = new Map<string, string>();
    cfg.endpoints.forEach((e, i) => {
      if (seen.has(e.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['endpoints', i, 'name'],
          message: `duplicate endpoint name "${e.name}"`,
        });
      }
      seen.add(e.name);
      const route = `${e.match.host ?? '*'} ${trimSlash(e.match.pathPrefix ?? '/') || '/'}`;
      const twin = routes.get(route);
      if (twin !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['endpoints', i, 'match'],
          message: `matches the same host and path prefix as endpoint "${twin}": requests could not be told apart`,
        });
      } else routes.set(route, e.name);
      if (e.workloads !== undefined && !e.auth.mtls) {
        ctx.addIssue({
          code: 'custom',
          path: ['endpoints', i, 'workloads'],
          message: 'workloads are the mTLS peers the endpoint admits: turn on auth.mtls',
        });
      }
      if (e.auth.jwtCookie !== undefined) {
        const where = ['endpoints', i, 'auth', 'jwtCookie'];
        if (cfg.oauth.issuers.length === 0)
          ctx.addIssue({
            code: 'custom',
            path: where,
            message: 'a JWT cookie is verified like a bearer token: configure oauth.issuers (or set MCP_OAUTH_ISSUER)',
          });
        if (!e.resource && !cfg.oauth.issuers.some((iss) => iss.audiences?.length)) {
          ctx.addIssue({
            code: 'custom',
            path: ['endpoints', i, 'resource'],
            message: 'an endpoint taking a JWT cookie needs its canonical resource URI (the token audience)',
          });
        }
        if (e.allowedOrigins === undefined || e.allowedOrigins.includes('*')) {
          ctx.addIssue({
            code: 'custom',
            path: ['endpoints', i, 'allowedOrigins'],
            message:
              'cookie authentication needs the list of origins allowed to use it (never "*"): a cross-site page must never authenticate with a user\'s cookie',
          });
        }
      }
      if (e.upstream !== undefined) checkUpstream(cfg, e, i, ctx);
      if (e.upstream?.mode === 'userConnections') checkUserConnections(cfg, e, i, providers, ctx);
      if (e.auth.oauth && cfg.oauth.issuers.length === 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['endpoints', i, 'auth', 'oauth'],
          message: 'oauth is on but no oauth.issuers are configured (or set MCP_OAUTH_ISSUER)',
        });
      }
      if (e.auth.oauth && !e.resource && !cfg.oauth.issuers.some((iss) => iss.audiences?.length)) {
        ctx.addIssue({
          code: 'custom',
          path: ['endpoints', i, 'resource'],
          message: 'an OAuth endpoint needs its canonical resource URI (the token audience)',
        });
      }
    });
  });

export type Config = z.infer<typeof ConfigSchema>;

/** An endpoint's upstream credential must be one its callers and its transport can carry. */
/** userConnections: a connect link needs the service's public URL; one provider name, one configuration. */
function checkUserConnections(
  cfg: Pick<Config, 'publicBaseUrl'>,
  e: EndpointConfig,
  i: number,
  providers: Map<string, string>,
  ctx: z.RefinementCtx,
): void {
  const u = e.upstream as Extract<EndpointConfig['upstream'], { mode: 'userConnections' }>;
  const where = ['endpoints', i, 'upstream'];
  if (cfg.publicBaseUrl === undefined)
    ctx.addIssue({
      code: 'custom',
      path: where,
      message:
        "userConnections sends users to /connect/<provider> on the service's public address: set publicBaseUrl (the URL Envoy serves /connect/* at)",
    });
  const same = JSON.stringify(u);
  const known = providers.get(u.provider);
  if (known === undefined) providers.set(u.provider, same);
  else if (known !== same)
    ctx.addIssue({
      code: 'custom',
      path: [...where, 'provider'],
      message: `provider "${u.provider}" is configured differently on another endpoint: endpoints that share a provider share its whole configuration`,
    });
}

function checkUpstream(
  cfg: Pick<Config, 'listen' | 'extAuthzHttp' | 'upstream'>,
  e: EndpointConfig,
  i: number,
  ctx: z.RefinementCtx,
): void {
  const u = e.upstream!;
  const where = ['endpoints', i, 'upstream'];
  if (u.mode === 'tokenExchange') {
    // The caller's verified token is the subject token: every caller must have one.
    if (!e.auth.oauth)
      ctx.addIssue({
        code: 'custom',
        path: [...where, 'mode'],
        message: "tokenExchange exchanges the caller's OAuth token: turn on auth.oauth",
      });
    if (e.auth.apiKey || e.auth.mtls) {
      ctx.addIssue({
        code: 'custom',
        path: [...where, 'mode'],
        message:
          'tokenExchange needs an OAuth token from every caller: set auth.apiKey and auth.mtls to false (API-key callers: use clientCredentials or static)',
      });
    }
  }
  if (u.mode === 'tokenExchange' && u.audience === undefined && u.resource === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: where,
      message: 'name the upstream the exchanged token is for: set audience, resource, or both',
    });
  }
  if (
    u.mode === 'clientCredentials' &&
    ['authorization', 'cookie', 'host', 'content-length', 'transfer-encoding'].includes(u.identityHeader)
  ) {
    ctx.addIssue({
      code: 'custom',
      path: [...where, 'identityHeader'],
      message: `${u.identityHeader} cannot carry the caller's identity: name a header of its own, e.g. x-forwarded-user`,
    });
  }
  if (!cfg.upstream.removeCredentials) {
    ctx.addIssue({
      code: 'custom',
      path: where,
      message: "an upstream credential replaces the caller's: it needs upstream.removeCredentials (the default, true)",
    });
  }
  if (cfg.listen.extAuthzHttp !== undefined) {
    const sets = cfg.extAuthzHttp.upstreamHeaders;
    for (const name of upstreamHeaderNames(u)) {
      if (!sets.some((p) => headerNameMatches(p, name))) {
        ctx.addIssue({
          code: 'custom',
          path: ['extAuthzHttp', 'upstreamHeaders'],
          message: `endpoint "${e.name}" sets the upstream request header ${name}, which Envoy's HTTP authorization filter copies upstream only when allowed_upstream_headers names it: add "${name}" to both (docs/envoy-http.md)`,
        });
      }
    }
  }
}
export type QuotaRule = z.infer<typeof QuotaRuleSchema>;

/** The quota rules in force on an endpoint: its own list, else the service's. */
export function quotaRulesFor(
  e: Pick<EndpointConfig, 'rateLimit'>,
  config: Pick<Config, 'rateLimit'>,
): readonly QuotaRule[] {
  return e.rateLimit?.perTool ?? config.rateLimit.perTool;
}
export type EndpointConfig = z.infer<typeof EndpointSchema>;
export type IssuerConfig = z.infer<typeof IssuerSchema>;
export type ApiKeyEntry = z.infer<typeof ApiKeyEntrySchema>;
