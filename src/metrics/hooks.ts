// Events the phases report, for metrics and logs. Every member is optional so a phase can
// be used (in `mcp-authz check`, in unit tests) without anything listening.
export interface ServiceEvents {
  /** A policy bundle load or reload finished. */
  policyReload?(result: 'success' | 'failure', revision: string | undefined): void;
  /** A request to the bundle service finished: a new bundle, nothing new (304), or no answer. */
  bundleRequest?(bundle: string, result: 'modified' | 'not_modified' | 'failure'): void;
  /** A downloaded bundle was refused before activation (unsigned, bad signature, tampered, invalid). */
  bundleRefused?(bundle: string, reason: BundleRefusal): void;
  /** Decision-log events were sent to the remote service, or dropped (buffer full, upload refused). */
  decisionLogsShipped?(result: 'sent' | 'dropped', events: number): void;
  /** The shadow policy decided a Check the policy in force decided (docs/shadow.md). */
  shadowDecision?(endpoint: string, enforced: 'allow' | 'deny' | 'error', shadow: ShadowResult): void;
  /** A Check was not compared: the shadow queue was full. */
  shadowDropped?(): void;
  /** The shadow policy loaded or failed to. */
  shadowPolicyReload?(result: 'success' | 'failure'): void;
  /** One policy evaluation took this long. */
  policyEval?(seconds: number): void;
  /** A dry-run policy deny was turned into an allow. */
  dryRunDeny?(): void;
  /** A JWKS fetch for an issuer finished. */
  jwksRefresh?(issuer: string, result: 'success' | 'failure'): void;
  /** The pins file (re)loaded, with the number of pins in force. */
  pinsReload?(result: 'success' | 'failure', pins: number): void;
  /** The API key registry (re)loaded. */
  keysReload?(result: 'success' | 'failure', keys: number): void;
  /** A reload of the keys file finished one step (a slice of the file read, or of the index built) and yields to requests. */
  keysReloadStep?(phase: 'read' | 'index'): void;
  /** A request used an API key (by its non-secret id). */
  apiKeyUsed?(keyId: string): void;
  /** An ext_proc stream ended: completed, denied (immediate response), failed (ended with a gRPC error) or cancelled. */
  extProcStream?(result: ExtProcStreamResult): void;
  /** A per-tool quota rule counted a request's calls (allowed) or refused it (exceeded). */
  quota?(endpoint: string, rule: string, result: 'allowed' | 'exceeded'): void;
  /** The PostgreSQL key store's notification channel came up (listening, cache resynced) or was lost. */
  keyStore?(state: 'up' | 'down'): void;
  /** Where the key store's answer to a lookup came from (docs/stores.md). */
  keyStoreAnswer?(source: KeyStoreAnswerSource): void;
  /** A key change notification arrived. */
  keyStoreNotification?(): void;
  /** The key store read its cached keys again after (re)connecting. */
  keyStoreResync?(keys: number): void;
  /** The PostgreSQL endpoint store's notification channel came up (listening, rows read again) or was lost. */
  endpointStore?(state: 'up' | 'down'): void;
  /** A change of the endpoint store's rows was put in force, or refused (the previous endpoint set stays). */
  endpointStoreUpdate?(result: 'applied' | 'rejected'): void;
  /** The shared (Redis) limiter store became unavailable or came back. */
  limiterStore?(state: 'shared' | 'local_fallback'): void;
  /**
   * A limiter call the store that shares its count did not answer — Redis (unreachable, timed
   * out, connection cut) or the cluster primary (no answer in time) — was decided on this
   * process's side instead.
   */
  limiterLocalAnswer?(store: LimiterStoreName, limiter: LimiterName): void;
  /** An upstream credential was looked up in the cache: found, fetched, or joined a fetch in flight. */
  upstreamCache?(endpoint: string, mode: UpstreamTokenMode, result: 'hit' | 'miss' | 'joined'): void;
  /** A request to an upstream credential's token endpoint finished: "ok" or the deny code. */
  upstreamTokenRequest?(endpoint: string, mode: UpstreamTokenMode, result: 'ok' | UpstreamTokenResult): void;
  /** userConnections: a user's connection to a provider changed, or could not be used. */
  upstreamConnection?(provider: string, event: UpstreamConnectionEvent): void;
  /** userConnections: a refresh of a user's upstream access token finished ("ok", "joined" another replica's, or why not). */
  upstreamConnectionRefresh?(provider: string, result: UpstreamConnectionRefreshResult): void;
  /** A batch of spans went to the OTLP endpoint, or could not. */
  traceExport?(result: 'success' | 'failure', spans: number): void;
  /** The TLS files loaded (with the certificate's expiry, seconds since the epoch) or a reload was refused. */
  tlsReload?(result: 'success' | 'failure', notAfterSeconds: number | undefined): void;
  /** A client's TLS handshake failed on a port (no or a wrong client certificate, no common protocol). */
  tlsHandshakeFailure?(listener: TlsListener): void;
  /** An approval was requested, granted, rejected, used by a call, or expired undecided (docs/approvals.md). */
  approval?(event: ApprovalEvent): void;
}

export type ShadowResult = 'allow' | 'deny' | 'error' | 'unavailable';
export type ApprovalEvent = 'requested' | 'granted' | 'rejected' | 'used' | 'expired';
export const APPROVAL_EVENTS: readonly ApprovalEvent[] = ['requested', 'granted', 'rejected', 'used', 'expired'];

export type BundleRefusal = 'unsigned' | 'bad_signature' | 'tampered' | 'invalid';

/** The ports that can serve TLS. */
export type TlsListener = 'grpc' | 'ext_authz_http' | 'http';
export const TLS_LISTENERS: readonly TlsListener[] = ['grpc', 'ext_authz_http', 'http'];

export type ExtProcStreamResult = 'completed' | 'denied' | 'failed' | 'cancelled';

/** The limits, as metric labels. */
export type LimiterName = 'failed_auth' | 'per_client' | 'per_tool';

/** The stores that share limit counts: Redis across replicas, the cluster primary across workers. */
export type LimiterStoreName = 'redis' | 'cluster';
export type UpstreamTokenMode = 'tokenExchange' | 'clientCredentials';
export type UpstreamTokenResult =
  | 'upstream_token_unavailable'
  | 'upstream_token_refused'
  | 'upstream_token_invalid'
  | 'upstream_secret_unavailable';

/** cache: a current cached answer; database: a query; stale_cache: the database could not answer, the cached one did; unavailable: neither. */
export type KeyStoreAnswerSource = 'cache' | 'database' | 'stale_cache' | 'unavailable';
export const KEY_STORE_ANSWER_SOURCES: readonly KeyStoreAnswerSource[] = [
  'cache',
  'database',
  'stale_cache',
  'unavailable',
];
/** What happened to a user's connection (the `event` label of upstream_connection_events_total). */
export const UPSTREAM_CONNECTION_EVENTS = [
  'connected',
  'connect_failed',
  'missing',
  'unreadable',
  'removed_after_refresh',
  'store_unavailable',
] as const;
export type UpstreamConnectionEvent = (typeof UPSTREAM_CONNECTION_EVENTS)[number];
/** The `result` label of upstream_connection_refreshes_total. */
export const UPSTREAM_CONNECTION_REFRESH_RESULTS = [
  'ok',
  'joined',
  'invalid_grant',
  'upstream_token_unavailable',
  'upstream_token_refused',
  'upstream_token_invalid',
  'upstream_secret_unavailable',
] as const;
export type UpstreamConnectionRefreshResult = (typeof UPSTREAM_CONNECTION_REFRESH_RESULTS)[number];
