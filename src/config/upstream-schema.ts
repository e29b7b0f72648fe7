// endpoints[].upstream: the credential an allowed request carries to the MCP server behind
// the gateway (docs/upstream-credentials.md). Part of the one config schema (schema.ts).
import { z } from 'zod';
import { redisConnectionSchema } from './redis-schema.js';

const headerName = z
  .string()
  .toLowerCase()
  .regex(/^[!#$%&'*+\-.^_`|~0-9a-z]{1,128}$/, "a header name: letters, digits and !#$%&'*+-.^_`|~ only");

/** How the service authenticates to the token endpoint as its own OAuth client. */
const ClientAuthSchema = z
  .object({
    id: z.string().min(1),
    /** client_secret_basic: a file holding the client secret (a mounted Secret), reloaded on change. */
    secretFile: z.string().min(1).optional(),
    /** private_key_jwt (RFC 7523): a file holding the PEM PKCS#8 private key that signs the client assertion. */
    privateKeyFile: z.string().min(1).optional(),
    /** The assertion's `kid` header (the key's id at the authorization server). */
    keyId: z.string().min(1).optional(),
    algorithm: z.enum(['RS256', 'PS256', 'ES256', 'EdDSA']).default('RS256'),
    /** The assertion's `aud`: the token endpoint by default; some servers want their issuer. */
    assertionAudience: z.string().min(1).optional(),
  })
  .strict()
  .refine(
    (c) => (c.secretFile === undefined) !== (c.privateKeyFile === undefined),
    'set exactly one of secretFile (client_secret_basic) and privateKeyFile (private_key_jwt)',
  );

/** What every token-endpoint mode shares: where, as whom, for what, and how long to wait. */
const tokenEndpointFields = {
  /** The authorization server's token endpoint (https; http only for a loopback address). */
  tokenEndpoint: z
    .url()
    .refine(
      (u) => u.startsWith('https://') || /^http:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost)(:\d+)?\//.test(u),
      "the token endpoint receives the client secret and callers' tokens: https, or http on a loopback address only",
    ),
  client: ClientAuthSchema,
  /** The `audience` parameter: the upstream's name at the authorization server. */
  audience: z.string().min(1).optional(),
  /** The RFC 8707 `resource` parameter: the upstream's URI. */
  resource: z.url().optional(),
  scope: z
    .array(
      z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope token (RFC 6749 3.3: no spaces, quotes or backslashes)'),
    )
    .default([]),
  /** How long a token request may take before the Check is denied (upstream_token_unavailable). */
  timeoutMs: z.number().int().min(100).max(60_000).default(5000),
  /** A cached token is used until this long before it expires. */
  expirySkewSeconds: z.number().int().min(0).max(3600).default(30),
  /** The most tokens kept for this endpoint; the least recently used go first. */
  cacheSize: z.number().int().min(1).max(1_000_000).default(10_000),
};

export const TokenExchangeSchema = z
  .object({
    mode: z.literal('tokenExchange'),
    ...tokenEndpointFields,
    /** The RFC 8693 requested_token_type. */
    requestedTokenType: z.string().min(1).default('urn:ietf:params:oauth:token-type:access_token'),
    /** The service's own token, sent as actor_token (a mounted workload token), reloaded on change. */
    actorTokenFile: z.string().min(1).optional(),
    actorTokenType: z.string().min(1).default('urn:ietf:params:oauth:token-type:jwt'),
  })
  .strict();

export const ClientCredentialsSchema = z
  .object({
    mode: z.literal('clientCredentials'),
    ...tokenEndpointFields,
    /** The header the upstream reads the caller's identity from (the principal id); a client's own copy is replaced. */
    identityHeader: headerName.default('x-mcp-principal'),
  })
  .strict();

export const StaticCredentialSchema = z
  .object({
    mode: z.literal('static'),
    /** The header set on the upstream request, replacing any the client sent. */
    header: headerName.default('authorization'),
    /** A file holding the header's value (a mounted Secret), reloaded on change. */
    valueFile: z.string().min(1),
    /** Put before the file's contents, e.g. "Bearer " (the file then holds only the token). */
    prefix: z
      .string()
      .regex(/^[\x20-\x7e]*$/, 'printable ASCII only')
      .default(''),
    pollIntervalMs: z.number().int().min(100).default(5000),
  })
  .strict();

const httpsOrLoopback = (what: string) =>
  z
    .url()
    .refine(
      (u) => u.startsWith('https://') || /^http:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost)(:\d+)?(\/|$)/.test(u),
      `${what}: https, or http on a loopback address only`,
    );

/**
 * userConnections: each user connects their own account at the upstream's authorization
 * server (authorization code + PKCE on the service's /connect/<provider> page); the service
 * keeps the user's refresh token, encrypted, and sends the user's access token upstream.
 */
export const UserConnectionsSchema = z
  .object({
    mode: z.literal('userConnections'),
    /** Names the connection in /connect/<provider>, the store, metrics and the CLI; endpoints that share it share users' connections. */
    provider: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'a provider name: a-z, 0-9, "_" and "-", 1 to 63 characters'),
    /** The upstream's authorization server: its RFC 8414 / OpenID metadata is read at start. */
    issuer: httpsOrLoopback('the issuer').optional(),
    /** Or its endpoints, given explicitly (no discovery). */
    authorizationEndpoint: httpsOrLoopback('the authorization endpoint').optional(),
    tokenEndpoint: httpsOrLoopback('the token endpoint receives the client secret and refresh tokens').optional(),
    client: z
      .object({
        id: z.string().min(1),
        /** client_secret_basic: a file holding the client secret (a mounted Secret), reloaded on change. */
        secretFile: z.string().min(1),
      })
      .strict(),
    scope: z
      .array(
        z
          .string()
          .regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope token (RFC 6749 3.3: no spaces, quotes or backslashes)'),
      )
      .default([]),
    /** The RFC 8707 `resource` parameter: the upstream MCP server's URI. */
    resource: z.url().optional(),
    /**
     * A file of encryption keys, one per line: `<key id> <base64 of 32 bytes>`. The first line
     * seals new records; every line opens records sealed with it (key rotation).
     */
    encryptionKeyFile: z.string().min(1),
    /** Where users' connections are kept: Redis (replicas share it) or this process's memory. */
    store: z
      .object({
        redis: redisConnectionSchema({ defaultMs: 1000, maxMs: 60_000 }).optional(),
      })
      .strict()
      .default({}),
    /** An access token is refreshed this long before it expires. */
    expirySkewSeconds: z.number().int().min(0).max(3600).default(60),
    /** How long a request to the token endpoint may take before the Check is denied. */
    timeoutMs: z.number().int().min(100).max(60_000).default(5000),
    /** How long the connect link in an elicitation stays usable (it is single-use). */
    connectLinkSeconds: z.number().int().min(30).max(3600).default(600),
  })
  .strict()
  .refine(
    (c) => (c.issuer !== undefined) !== (c.authorizationEndpoint !== undefined && c.tokenEndpoint !== undefined),
    'set issuer (discovery), or both authorizationEndpoint and tokenEndpoint',
  );

export const UpstreamCredentialSchema = z.discriminatedUnion('mode', [
  TokenExchangeSchema,
  ClientCredentialsSchema,
  StaticCredentialSchema,
  UserConnectionsSchema,
]);

export type UpstreamCredentialConfig = z.infer<typeof UpstreamCredentialSchema>;
export type TokenExchangeConfig = z.infer<typeof TokenExchangeSchema>;
export type ClientCredentialsConfig = z.infer<typeof ClientCredentialsSchema>;
export type StaticCredentialConfig = z.infer<typeof StaticCredentialSchema>;
export type UserConnectionsConfig = z.infer<typeof UserConnectionsSchema>;
export type TokenEndpointConfig = TokenExchangeConfig | ClientCredentialsConfig;

/** The request headers an endpoint's upstream credential sets. */
export function upstreamHeaderNames(u: UpstreamCredentialConfig): string[] {
  switch (u.mode) {
    case 'tokenExchange':
      return ['authorization'];
    case 'clientCredentials':
      return ['authorization', u.identityHeader];
    case 'static':
      return [u.header];
    case 'userConnections':
      return ['authorization'];
  }
}
