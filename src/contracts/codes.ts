// Every code a Check decision can carry, declared once with its HTTP status, its gRPC code
// and its meaning. The same code is the JSON `error`, the decision log's `reason` and the
// `code` label of mcp_authz_denies_total; docs/errors.md is generated from this table
// (`npm run gen:docs`) and a test keeps the two equal. A policy may choose its own code
// (PolicyCode): such denies are labelled `_policy` in metrics.
import { Status, statusName } from '../grpc/wire.js';

/** google.rpc.Code values a CheckResponse carries (named as in the gRPC status table). */
const GRPC_CODES = [
  Status.OK,
  Status.INVALID_ARGUMENT,
  Status.NOT_FOUND,
  Status.PERMISSION_DENIED,
  Status.RESOURCE_EXHAUSTED,
  Status.INTERNAL,
  Status.UNAVAILABLE,
  Status.UNAUTHENTICATED,
] as const;
export const GRPC_CODE_NAMES = Object.fromEntries(GRPC_CODES.map((c) => [c, statusName(c)])) as {
  [C in (typeof GRPC_CODES)[number]]: string;
};

export type GrpcCode = keyof typeof GRPC_CODE_NAMES;

/** Which phase answers with the code. */
export type CodeKind = 'request' | 'auth' | 'limit' | 'policy' | 'pin' | 'service' | 'answer';

interface CodeEntry {
  status: number;
  grpc: GrpcCode;
  kind: CodeKind;
  meaning: string;
  /** Answered as a JSON-RPC error response with this error code (MCP clients read those), not the JSON error body. */
  jsonRpc?: number;
  /**
   * A deny answered with HTTP 200 and an MCP message the client acts on (a URL elicitation):
   * MCP clients read JSON-RPC only from a 2xx. Its gRPC code stays non-OK, so Envoy answers
   * instead of forwarding.
   */
  mcpAnswer?: true;
}

export const CODES = {
  invalid_check_request: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning:
      "The CheckRequest could not be decoded, or has no HTTP request attributes (it is not from Envoy's ext_authz HTTP filter).",
  },
  headers_too_large: {
    status: 431,
    grpc: 3,
    kind: 'request',
    meaning: 'More request headers, or more header bytes, than `limits.maxHeaders` / `limits.maxHeaderBytes`.',
  },
  body_too_large: { status: 413, grpc: 3, kind: 'request', meaning: 'The body is larger than `limits.maxBodyBytes`.' },
  body_truncated: {
    status: 413,
    grpc: 3,
    kind: 'request',
    meaning:
      'The body was not seen whole: Envoy sent part of it, or none of a declared body (raise `max_request_bytes`, set `with_request_body`).',
  },
  invalid_content_length: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning: 'Content-Length is not a non-negative whole number.',
  },
  unsupported_content_encoding: {
    status: 415,
    grpc: 3,
    kind: 'request',
    meaning: 'The body is compressed (Content-Encoding other than identity): it cannot be read.',
  },
  missing_body: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning: 'An MCP POST without a body (and without the 2026-07-28 headers that may stand in for it).',
  },
  invalid_path: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning:
      'The path cannot be read one way only: `..` segments, encoded `/` `\\` `?` `#` or NUL, a backslash, a bad escape.',
  },
  invalid_utf8: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning: 'A `raw_body` that is not valid UTF-8: readers disagree on what the bad bytes mean.',
  },
  invalid_json: { status: 400, grpc: 3, kind: 'request', meaning: 'The body is not valid JSON.' },
  json_too_deep: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning: 'Objects and arrays nested deeper than `limits.maxJsonDepth`.',
  },
  lone_surrogate: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning: 'A string or key with half a UTF-16 surrogate pair: Go reads U+FFFD where others read the surrogate.',
  },
  duplicate_json_key: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning: 'The body repeats a key in one object: readers disagree on which one counts.',
  },
  ambiguous_json_key: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning:
      "Keys equal under Go's case folding, or a member spelled other than exactly (`Method`, `Name`): Go reads them differently (docs/json-bodies.md).",
  },
  invalid_jsonrpc: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning: 'The body is JSON but not a JSON-RPC 2.0 message or batch, or a named call lacks its target.',
  },
  invalid_request_id: {
    status: 400,
    grpc: 3,
    kind: 'request',
    jsonRpc: -32600,
    meaning:
      'A JSON-RPC `id` that servers would echo as another value: a number beyond a 64-bit float (`1e400`: JavaScript reads Infinity and echoes `null`, Python echoes `Infinity`) or an integer beyond ±(2^53−1) (JavaScript rounds it, Python and Java keep it). A response could not be matched to its request. Answered as the JSON-RPC error -32600 Invalid Request.',
  },
  mcp_header_mismatch: {
    status: 400,
    grpc: 3,
    kind: 'request',
    jsonRpc: -32020,
    meaning:
      'MCP request headers (MCP-Protocol-Version, Mcp-Method, Mcp-Name, Mcp-Param-*) disagree with the body, are repeated, or a required one is missing; answered as the JSON-RPC error -32020 HeaderMismatch (docs/mcp-protocol.md).',
  },
  mcp_header_invalid: {
    status: 400,
    grpc: 3,
    kind: 'request',
    jsonRpc: -32020,
    meaning:
      'An Mcp-Name or Mcp-Param-* value with characters outside visible ASCII, space and tab, or a `=?base64?…?=` value that is not canonical Base64 of UTF-8; answered as the JSON-RPC error -32020 HeaderMismatch.',
  },
  unsupported_protocol_version: {
    status: 400,
    grpc: 3,
    kind: 'request',
    jsonRpc: -32022,
    meaning:
      'MCP-Protocol-Version names a revision the service does not read; answered as the JSON-RPC error -32022 UnsupportedProtocolVersion with `data.supported`.',
  },
  invalid_arguments: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning:
      '`params.arguments` of a tools/call or prompts/get is not an object, or holds a number beyond the range of a 64-bit float (readers disagree on it).',
  },
  invalid_resource_uri: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning:
      'A resource URI that readers could resolve differently (dot segments left, encoded `/` or `\\`, no scheme).',
  },
  query_not_removable: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning:
      "Envoy's HTTP authorization service cannot remove query parameters, and this allow must remove some (an API key in the query): send the key in a header, or use the gRPC service.",
  },
  discovery_not_routed: {
    status: 404,
    grpc: 5,
    kind: 'request',
    meaning:
      'A discovery document asked of the HTTP authorization service, which cannot answer with a 200 of its own: route `/.well-known/oauth-protected-resource` to the HTTP port (docs/envoy-http.md).',
  },
  origin_not_allowed: {
    status: 403,
    grpc: 7,
    kind: 'request',
    meaning:
      "A browser request from an Origin the endpoint does not allow (`allowedOrigins`; `null`, malformed or repeated Origins never are): the MCP transport's guard against DNS rebinding and cross-site use (docs/origins.md).",
  },
  not_found: {
    status: 404,
    grpc: 5,
    kind: 'request',
    meaning:
      'No endpoint is configured at this host and path (after authentication only), or a discovery document the service does not publish (OAuth authorization server, OpenID configuration, protected resource metadata of an endpoint without OAuth: before authentication, with `supported_methods`).',
  },
  authentication_required: {
    status: 401,
    grpc: 16,
    kind: 'auth',
    meaning: 'No credential the endpoint accepts; `supported_methods` lists them.',
  },
  invalid_api_key: {
    status: 401,
    grpc: 16,
    kind: 'auth',
    meaning:
      'API-key endpoint: the key is unknown, expired, disabled, malformed or ambiguous (`auth_detail` says which).',
  },
  invalid_token: {
    status: 401,
    grpc: 16,
    kind: 'auth',
    meaning:
      'OAuth endpoint (bearer token or JWT cookie): the token failed verification (`auth_detail` says which check).',
  },
  invalid_credentials: {
    status: 401,
    grpc: 16,
    kind: 'auth',
    meaning:
      'Endpoint taking several kinds of credential (keys, tokens, mTLS), an mTLS-only endpoint, or an unknown path: the credential is not valid (`auth_detail` says why).',
  },
  too_many_requests: {
    status: 429,
    grpc: 8,
    kind: 'limit',
    meaning: 'Failed-authentication lockout: too many failed attempts from this client; see Retry-After.',
  },
  rate_limited: { status: 429, grpc: 8, kind: 'limit', meaning: 'Per-client request rate exceeded; see Retry-After.' },
  quota_exceeded: {
    status: 429,
    grpc: 8,
    kind: 'limit',
    meaning:
      'A per-tool quota (`rateLimit.perTool`) is used up for this client; `quota` names the rule, see Retry-After. Counted only for requests the policy allowed.',
  },
  access_denied: {
    status: 403,
    grpc: 7,
    kind: 'policy',
    meaning: 'The policy denied the request (also: it made no decision, deny by default).',
  },
  insufficient_scope: {
    status: 403,
    grpc: 7,
    kind: 'policy',
    meaning: 'The shipped policy: the token lacks the scope a call needs; the challenge names it (step-up).',
  },
  argument_denied: {
    status: 403,
    grpc: 7,
    kind: 'policy',
    meaning:
      "The shipped policy: an argument of a tools/call or prompts/get breaks the endpoint's argument rules; the description names the tool, the argument and the constraint, never the value.",
  },
  policy_error: {
    status: 503,
    grpc: 14,
    kind: 'policy',
    meaning: 'The policy failed to evaluate or returned a malformed decision; denied.',
  },
  policy_unavailable: {
    status: 503,
    grpc: 14,
    kind: 'service',
    meaning: 'No policy is loaded yet; every Check is denied until one loads.',
  },
  internal_error: {
    status: 503,
    grpc: 14,
    kind: 'service',
    meaning: 'The service failed to decide; denied, with a `request_id` to report.',
  },
  header_not_forwardable: {
    status: 500,
    grpc: 13,
    kind: 'service',
    meaning:
      "Envoy's HTTP authorization service: the allow must set a request header that the filter's `allowed_upstream_headers` does not copy upstream, as `extAuthzHttp.upstreamHeaders` declares it (the Cookie header without the session cookie, a policy's header), so the client's own value would reach the MCP server; or a policy response header has a name it would copy upstream too. Name the header in both (docs/envoy-http.md).",
  },
  upstream_token_unavailable: {
    status: 503,
    grpc: 14,
    kind: 'service',
    meaning:
      "The endpoint's upstream credential (`endpoints[].upstream`, tokenExchange or clientCredentials) could not be had: the token endpoint was unreachable, did not answer within `timeoutMs`, or answered a server error. The request is denied; the caller's own token never goes upstream instead (docs/upstream-credentials.md).",
  },
  upstream_token_refused: {
    status: 502,
    grpc: 13,
    kind: 'service',
    meaning:
      'The token endpoint refused to issue the upstream credential (an OAuth error such as `invalid_grant`, `invalid_client` or `invalid_target`; its `error` is in the log, never a token). The request is denied (docs/upstream-credentials.md).',
  },
  upstream_token_invalid: {
    status: 502,
    grpc: 13,
    kind: 'service',
    meaning:
      'The token endpoint answered something that is not a usable token response (not JSON, too large, no `access_token`, a `token_type` other than Bearer, an expiry already past). The request is denied (docs/upstream-credentials.md).',
  },
  upstream_secret_unavailable: {
    status: 503,
    grpc: 14,
    kind: 'service',
    meaning:
      "A file the endpoint's upstream credential needs (`static` `valueFile`, a client secret or key, an actor token) is missing, empty or unreadable and no earlier value was ever loaded. The request is denied (docs/upstream-credentials.md).",
  },
  invalid_processing_request: {
    status: 500,
    grpc: 13,
    kind: 'service',
    meaning:
      "ext_proc: Envoy did not send the request the way the service decides on it (request headers first, then the whole body in one `BUFFERED` message, before the response): check the filter's `processing_mode` (docs/ext_proc.md).",
  },
  // Keys and endpoints from a store (docs/stores.md).
  key_store_unavailable: {
    status: 503,
    grpc: 14,
    kind: 'service',
    meaning:
      'The API key store (PostgreSQL) cannot be reached and the key was not seen before, or was seen longer ago than `stores.keyCache.maxStaleSeconds`: it can be neither accepted nor refused as unknown. Not counted as a failed authentication.',
  },
  // userConnections (docs/upstream-credentials.md): a user who has not connected the upstream account.
  upstream_not_connected: {
    status: 403,
    grpc: 7,
    kind: 'service',
    meaning:
      "The endpoint sends each user's own upstream token (`userConnections`) and this caller has no connection to the provider (never connected, revoked, refresh refused, or a stored record that does not open). MCP callers get `upstream_connection_required` instead; this JSON error, whose description carries the connect link, is what a transport that cannot answer in place (Envoy's HTTP authorization service) or a request that cannot carry an elicitation receives.",
  },
  upstream_connection_required: {
    status: 200,
    grpc: 7,
    kind: 'answer',
    meaning:
      'Not an allow: the URL-mode elicitation sending the user to /connect/<provider> (`userConnections`): the JSON-RPC error -32042 with `data.elicitations` (MCP 2025-11-25 and earlier), or an `input_required` result whose `inputRequests` holds the `elicitation/create` (MCP 2026-07-28). Answered with HTTP 200 so MCP clients read it.',
  },
  // Approvals (docs/approvals.md): the policy holds a tools/call for a person's approval.
  approval_required: {
    status: 200,
    grpc: 7,
    kind: 'policy',
    mcpAnswer: true,
    meaning:
      "The policy holds this tools/call for a person's approval: the caller gets the MCP answer that sends a person to the approval page (a URL-mode elicitation: the JSON-RPC error -32042 in 2025-11-25, an `input_required` result in 2026-07-28, a JSON-RPC error naming the URL before). Answered with HTTP 200 so MCP clients read the JSON-RPC message (docs/approvals.md).",
  },
  approval_rejected: {
    status: 403,
    grpc: 7,
    kind: 'policy',
    meaning:
      'An approver rejected this exact call (same caller, endpoint, tool, arguments and policy revision); a call with other arguments asks again (docs/approvals.md).',
  },
  approval_not_bindable: {
    status: 400,
    grpc: 3,
    kind: 'request',
    meaning:
      'The policy requires approval for a call that cannot be bound to one: a batch, a method other than tools/call, a call without a JSON-RPC body, or arguments the MCP servers would read differently (an integer beyond ±(2^53−1)). Send the call alone, in a body, with plain numbers (docs/approvals.md).',
  },
  approval_unavailable: {
    status: 503,
    grpc: 14,
    kind: 'service',
    meaning:
      'The policy requires approval and the approval store cannot be reached (Redis down) or approvals are not configured (`approvals`): the call is denied, never passed without its approval (docs/approvals.md).',
  },
  // Tool-definition pinning (docs/pinning.md).
  tool_definition_changed: {
    status: 403,
    grpc: 7,
    kind: 'pin',
    meaning:
      "The definition the MCP server last listed for this tool (or prompt) is not its pin: it changed since it was reviewed. Refused until the pin is recorded again (`mcp-authz pins diff`, `pins record`); the decision log's `drift` line has both digests.",
  },
  tool_not_pinned: {
    status: 403,
    grpc: 7,
    kind: 'pin',
    meaning:
      'The endpoint pins its tools (`enforce`) and this tool (or prompt) has no pin in the pins file: it was never reviewed. Record it (`mcp-authz pins record`).',
  },
  tool_definition_unseen: {
    status: 403,
    grpc: 7,
    kind: 'pin',
    meaning:
      'The endpoint pins its tools and no list from the MCP server has shown this tool yet, so the service cannot tell whether the definition the client uses is the pinned one: list the tools (`tools/list`) first, then call.',
  },
  pin_state_unavailable: {
    status: 503,
    grpc: 14,
    kind: 'service',
    meaning:
      'The shared pin state (Redis, `pins.redis`) did not answer: a call to a pinned endpoint cannot be checked against what was listed, so it is refused.',
  },
  protected_resource_metadata: {
    status: 200,
    grpc: 7,
    kind: 'answer',
    meaning: 'Not a deny: the RFC 9728 document, answered directly (a non-OK gRPC status is what makes Envoy send it).',
  },
} as const satisfies Record<string, CodeEntry>;

export type DecisionCode = keyof typeof CODES;
/** The codes of answers that are not denies (a direct 200 document). */
export type AnswerCode = { [K in DecisionCode]: (typeof CODES)[K]['kind'] extends 'answer' ? K : never }[DecisionCode];
export type DenyCode = Exclude<DecisionCode, AnswerCode>;
export type AuthCode = { [K in DecisionCode]: (typeof CODES)[K]['kind'] extends 'auth' ? K : never }[DecisionCode];

/** The JSON-RPC error code a deny code is answered with, or undefined for the JSON error body. */
export function jsonRpcErrorCode(code: DecisionCode): number | undefined {
  return (CODES[code] as CodeEntry).jsonRpc;
}

export function isDenyCode(s: string): s is DenyCode {
  return Object.hasOwn(CODES, s) && CODES[s as DecisionCode].kind !== 'answer';
}

/** A code a policy chose that is not in the catalogue (validated: a short token). */
export type PolicyCode = string & { readonly policyCode: unique symbol };

const POLICY_CODE = /^[a-z0-9_.-]{1,64}$/i;

/** The policy's `error` as a code: a catalogue code, a valid PolicyCode, or undefined when it is not a short token. */
export function policyCode(s: string): DenyCode | PolicyCode | undefined {
  if (isDenyCode(s)) return s;
  return POLICY_CODE.test(s) ? (s as PolicyCode) : undefined;
}

/** google.rpc.Code for a status a policy chose: what Envoy logs (never OK: OK would be an allow). */
export function grpcCodeForStatus(status: number): GrpcCode {
  switch (status) {
    case 400:
    case 413:
    case 415:
    case 431:
      return 3;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 5;
    case 429:
      return 8;
    case 503:
      return 14;
    default:
      return status >= 500 ? 13 : 7;
  }
}

/** The code of a bad credential on an endpoint with this auth mode (undefined: no endpoint matched). */
export function badCredentialCode(
  auth: { apiKey: boolean; oauth: boolean; mtls?: boolean; jwtCookie?: string } | undefined,
): AuthCode {
  if (auth === undefined) return 'invalid_credentials';
  // A JWT cookie is a token like a bearer one.
  const tokens = auth.oauth || auth.jwtCookie !== undefined;
  if (Number(auth.apiKey) + Number(tokens) + Number(auth.mtls === true) !== 1) return 'invalid_credentials';
  return tokens ? 'invalid_token' : auth.apiKey ? 'invalid_api_key' : 'invalid_credentials';
}

/** Which credential an authentication failure detail is about (the metric `method` of the endpoints it can occur on). */
export type DetailCredential = 'none' | 'api_key' | 'oauth' | 'cookie' | 'mtls' | 'any';

interface DetailEntry {
  credential: DetailCredential;
  meaning: string;
}

/**
 * Why authentication failed, as a stable sub-code: the decision log's `auth_detail`, the
 * `authDetail` of `mcp-authz check` and the `detail` label of mcp_authz_auth_failures_total.
 * The prose beside it (`authWhy`) may change; these do not.
 */
export const AUTH_FAILURE_DETAILS = {
  credential_missing: { credential: 'none', meaning: 'No credential the endpoint reads.' },
  key_unknown: { credential: 'api_key', meaning: 'No registered API key has this hash.' },
  key_bad_checksum: {
    credential: 'api_key',
    meaning: 'An `mcp_` key whose checksum does not match: a typo or a truncated key.',
  },
  key_expired: { credential: 'api_key', meaning: 'The key is past its `expiresAt`.' },
  key_disabled: { credential: 'api_key', meaning: 'The key is registered with `disabled: true`.' },
  key_empty: { credential: 'api_key', meaning: 'The key header or key query parameter is empty.' },
  key_repeated: {
    credential: 'api_key',
    meaning: 'The key header appears more than once (or holds a comma-joined list).',
  },
  keys_conflict: { credential: 'api_key', meaning: 'Two different API keys in one request (headers, Bearer, query).' },
  key_in_query_not_enabled: {
    credential: 'api_key',
    meaning: 'A key in the query string where the endpoint does not enable `queryParamKeys`.',
  },
  bearer_empty: { credential: 'any', meaning: 'Authorization: Bearer without a value.' },
  bearer_several_values: { credential: 'any', meaning: 'Authorization: Bearer holding several values.' },
  authorization_repeated: { credential: 'any', meaning: 'The Authorization header appears more than once.' },
  token_too_large: { credential: 'oauth', meaning: 'The bearer token is larger than `oauth.maxTokenBytes`.' },
  token_not_jwt: { credential: 'oauth', meaning: 'The bearer value is not three base64url segments (a compact JWS).' },
  token_malformed: { credential: 'oauth', meaning: "The JWT's header or payload cannot be decoded." },
  token_issuer_unknown: { credential: 'oauth', meaning: "The token's `iss` is not a configured issuer." },
  token_issuer_mismatch: { credential: 'oauth', meaning: 'The verified `iss` claim does not match the issuer.' },
  token_algorithm: {
    credential: 'oauth',
    meaning: "The token's `alg` is not allowed for its issuer (HS* and none never are).",
  },
  token_kid_unknown: {
    credential: 'oauth',
    meaning: "No signing key of the issuer matches the token's `kid` (after one refetch per cooldown).",
  },
  token_kid_ambiguous: { credential: 'oauth', meaning: 'Several signing keys match a token without `kid`.' },
  token_signature: { credential: 'oauth', meaning: 'The signature does not verify: a forged or altered token.' },
  token_expired: { credential: 'oauth', meaning: '`exp` is past (beyond the clock tolerance).' },
  token_not_yet_valid: { credential: 'oauth', meaning: '`nbf` is in the future.' },
  token_issued_in_future: { credential: 'oauth', meaning: '`iat` is in the future (beyond the clock tolerance).' },
  token_audience: { credential: 'oauth', meaning: 'The token was not issued for this endpoint (`aud`).' },
  token_claim_missing: {
    credential: 'oauth',
    meaning: 'A required claim is absent (`iss`, `exp`, or `sub`/`client_id`).',
  },
  token_claim_invalid: { credential: 'oauth', meaning: 'A time claim (iat, nbf, exp) is not a number.' },
  token_unsupported: {
    credential: 'oauth',
    meaning: 'The token uses an algorithm or key type that cannot be verified here.',
  },
  token_verification_failed: {
    credential: 'oauth',
    meaning: 'Verification failed for another reason (logged as an error).',
  },
  jwks_unavailable: {
    credential: 'oauth',
    meaning: "The issuer's signing keys could not be fetched yet (IdP down or misconfigured).",
  },
  cookie_ambiguous: {
    credential: 'cookie',
    meaning:
      'The Cookie header can be read two ways for the session cookie (`auth.jwtCookie`): sent twice with different values, in another case, with spaces around its name, without "=", or inside another cookie.',
  },
  cookie_malformed: { credential: 'cookie', meaning: 'The session cookie is empty, quoted, or holds spaces or ",".' },
  cookie_cross_site: {
    credential: 'cookie',
    meaning:
      'A session cookie on a request that is not same-site from an allowed Origin: never used (answered `authentication_required`, not counted as a failure).',
  },
  peer_not_spiffe: {
    credential: 'mtls',
    meaning: "The mTLS peer's identity (Envoy's `source.principal`) is not the SPIFFE ID of a workload.",
  },
  peer_certificate_invalid: {
    credential: 'mtls',
    meaning:
      'The peer certificate Envoy sent cannot be read, does not carry exactly one URI SAN, or names another ID than `source.principal`.',
  },
  key_revoked: { credential: 'api_key', meaning: 'The key was revoked (`mcp-authz keys revoke --store postgres`).' },
  key_store_unavailable: {
    credential: 'api_key',
    meaning: 'The key store cannot be reached and holds no usable answer for this key (code `key_store_unavailable`).',
  },
  no_audience: {
    credential: 'oauth',
    meaning: 'The endpoint has no `resource` and its issuers no `audiences`: no token can be for it.',
  },
} as const satisfies Record<string, DetailEntry>;

export type AuthFailureDetail = keyof typeof AUTH_FAILURE_DETAILS;

/**
 * Why a list response was withheld (ext_proc, docs/ext_proc.md): the list is replaced with a
 * JSON-RPC error whose `data.reason` is one of these, never passed on unfiltered. The HTTP
 * status stays the upstream's; the reason is also the `reason` of the log line.
 */
export const WITHHELD_REASONS = {
  invalid_json:
    "The body or an SSE event's data is not strict JSON (NaN, a lone surrogate escape, nesting past 256 levels).",
  duplicate_json_key: "An object repeats a key, exactly or under Go's case-insensitive matching.",
  ambiguous_member: 'A JSON-RPC member spelled in another case (`Id`, `RESULT`): some readers would take it.',
  ambiguous_response:
    'A response to a list call readers could take differently: its id equal only as text, a result and an error, answered twice, a result inside an event that is not a `message`.',
  unmatched_response:
    "A list result (a result with `tools`, `prompts`, `resources` or `resourceTemplates`) whose id answers no list call of the request the service saw: an id echoed as another value (`null`), another call's id, or a list on a `GET` stream, which answers no request of its own.",
  legacy_sse_transport:
    'The MCP 2024-11-05 HTTP+SSE transport (an `endpoint` event on a stream): its results arrive on the `GET` stream for requests POSTed elsewhere, where no list could be matched to its request and filtered. The stream is ended before the event; use Streamable HTTP (docs/ext_proc.md).',
  malformed_list_result:
    'A list result without its item array, or with an item that is not an object naming itself (`name`, `uri`, `uriTemplate`).',
  event_too_large: 'An SSE event larger than the bound (1 MiB) before its end.',
  truncated_stream: 'The SSE stream ended inside an event.',
  ambiguous_sse_field:
    'An SSE field name or event type lenient readers would take for `data`, `event`, `id`, `retry` or `message`.',
  encoded_response:
    'The list response is compressed (`content-encoding`): it cannot be read, so it cannot be filtered.',
  visibility_unavailable:
    'No policy is loaded, or it has no visibility rule (`policy.visibleEntrypoint`, default `mcp/authz/visible`).',
  visibility_error: 'The visibility rule failed to evaluate, or answered something other than one boolean per item.',
} as const satisfies Record<string, string>;

export type WithheldReason = keyof typeof WITHHELD_REASONS;

/** What authentication found wrong, for logs, `mcp-authz check` and metrics; `why` never holds a secret. */
export interface AuthFailure {
  /** The deny's code: an authentication code (a test's stand-in authenticator may choose others). */
  code: DenyCode | PolicyCode;
  detail: AuthFailureDetail;
  why: string;
}
