// The project's own request model. Protobuf stops at src/envoy/ (or any other transport's
// decoder); every phase after it works on these plain types.

/** Lower-cased header name → values in arrival order (duplicates kept). */
export type HeaderMap = Record<string, string[]>;
/** Query parameter name → values in arrival order. */
export type QueryMap = Record<string, string[]>;

/**
 * The item a `completion/complete` completes an argument of: a prompt by name, or a resource
 * by its URI or URI template (normalized: src/request/normalize-resource-uri.ts).
 */
export type McpRef = { type: 'ref/prompt'; name: string } | { type: 'ref/resource'; uri: string };

/**
 * The methods that name an item, and the params member that names it: each is grant-checked
 * as the item (docs/policies.md "Per-call grants"). `ref` is params.ref; `resourceSubscriptions`
 * is params.notifications.resourceSubscriptions (MCP 2026-07-28).
 */
export const ITEM_METHODS: ReadonlyMap<string, 'name' | 'uri' | 'ref' | 'resourceSubscriptions'> = new Map([
  ['tools/call', 'name'],
  ['prompts/get', 'name'],
  ['resources/read', 'uri'],
  ['resources/subscribe', 'uri'],
  ['resources/unsubscribe', 'uri'],
  ['completion/complete', 'ref'],
  ['subscriptions/listen', 'resourceSubscriptions'],
]);

export interface McpCall {
  /** JSON-RPC method; for a response element, "" (responses have none). */
  method: string;
  kind: 'request' | 'notification' | 'response';
  /** params.name when it is a string: the tool of tools/call, the prompt of prompts/get. */
  name?: string;
  /** params.uri of resources/* calls, normalized (src/request/normalize-resource-uri.ts). */
  uri?: string;
  /** params.ref of completion/complete. */
  ref?: McpRef;
  /** params.notifications.resourceSubscriptions of subscriptions/listen, each normalized. */
  resourceSubscriptions?: string[];
  /**
   * A method that is not one of ITEM_METHODS carries params.name, params.uri or params.ref:
   * the service cannot tell what it names (the shipped policy allows it only to `*`).
   */
  unknownTarget?: true;
  /**
   * tools/call on an endpoint with pins (docs/pinning.md): whether the tool's listed definition
   * is its pin, and its annotations — from the pinned definition, else MCP's conservative
   * defaults (readOnly false, destructive true, idempotent false, openWorld true).
   */
  tool?: {
    pinned: boolean;
    annotations: { readOnlyHint: boolean; destructiveHint: boolean; idempotentHint: boolean; openWorldHint: boolean };
  };
  /**
   * params.arguments of tools/call and prompts/get, as parsed (bounded by the body limits);
   * absent when the call sends none or null. docs/policies.md "Argument constraints".
   */
  arguments?: Record<string, unknown>;
  /**
   * tools/call: the Mcp-Param-{Name} headers by lower-cased Name, decoded — those checked
   * against params.arguments, or all of them when there is no body (docs/mcp-protocol.md).
   */
  headerParams?: Record<string, string>;
}

export interface McpView {
  /** True when the request carried a JSON-RPC body or trusted Mcp-Method headers. */
  present: boolean;
  batch: boolean;
  protocolVersion: string | undefined;
  calls: McpCall[];
  /** Where the calls came from: the body, or the 2026-07-28 Mcp-Method/Mcp-Name headers. */
  source: 'body' | 'headers' | 'none';
}

export interface Request {
  /** x-request-id, else Envoy's attributes.request.http.id, else generated. */
  id: string;
  method: string;
  scheme: string;
  /** :authority without port normalisation, lower-cased. */
  host: string;
  /** Path as Envoy sent it (with the query). */
  rawPath: string;
  /** Normalized path: query removed, percent-decoded once, "//" collapsed. */
  path: string;
  /** Raw query string, without "?". */
  rawQuery: string;
  query: QueryMap;
  headers: HeaderMap;
  /** The body as text ("" when Envoy sent none). */
  body: string;
  /** Size of the body Envoy sent, in bytes (beyond limits.maxBodyBytes, `body` is "" and this is the size). */
  bodyBytes: number;
  /** True when the body's bytes are not valid UTF-8 (`body` then shows them as U+FFFD); refused in the body phase. */
  readonly bodyInvalidUtf8?: boolean;
  /** Whether Envoy attached any body (with_request_body configured and a body present). */
  hasBody: boolean;
  sourceAddress: string;
  /**
   * The mTLS peer the transport verified (Envoy's attributes.source.principal: a SPIFFE ID in
   * Istio), and its certificate (URL-encoded PEM, with include_peer_certificate). Undefined or
   * "" when the connection was not mutual TLS. Never read from a header.
   */
  peerPrincipal?: string;
  peerCertificate?: string;
  /**
   * The transport's request attributes as a plain object — for Envoy, the CheckRequest's
   * AttributeContext as opa-envoy-plugin shows it (protojson) — built on first read; `{}`
   * where there are none. Read-only: shared by every reader of this request.
   */
  readonly attributes: Readonly<Record<string, unknown>>;
  receivedAt: bigint;
  /** What the transport's answer cannot carry; absent when it carries everything (gRPC Check). */
  readonly answerLimits?: AnswerLimits;
}

/**
 * Envoy's HTTP authorization service (ext_authz `http_service`) reads a 200 as "allow", has
 * no way to remove query parameters, and copies upstream only the answer's headers its
 * `allowed_upstream_headers` names: an allow that must remove a parameter or set another
 * header, and a document the service would answer itself, cannot be expressed there.
 */
export interface AnswerLimits {
  removesQueryParams: boolean;
  answersDirectly: boolean;
  /** Whether a request header of this (lower-case) name can be set upstream; absent: any. */
  setsRequestHeader?: (name: string) => boolean;
}

/** What a call names, as text for logs: its name, URI, ref's name or URI; undefined when none. */
export function callTargetText(c: McpCall): string | undefined {
  return c.name ?? c.uri ?? (c.ref === undefined ? undefined : c.ref.type === 'ref/prompt' ? c.ref.name : c.ref.uri);
}

/** First value of a header, or undefined. */
export function header(headers: HeaderMap, name: string): string | undefined {
  return headers[name]?.[0];
}
