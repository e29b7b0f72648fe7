// The checks every request body passes before its JSON-RPC is read, in one documented order
// (docs/json-bodies.md "The order of the checks"): when a body has several problems, the
// answer names the first problem of this list, whatever the transport (gRPC Check, Envoy's
// HTTP authorization service, ext_proc) and wherever the problems sit in the body. A body the
// service cannot see whole must never pass: compressed, truncated by Envoy, announced
// (Content-Length, Transfer-Encoding) but not sent, whatever the method.
import type { DenyCode } from '../contracts/codes.js';
import { RequestRejected } from '../contracts/request-rejected.js';
import { header, type McpView, type Request } from '../contracts/request.js';

/**
 * The body problems, first answered first. The first five are checked here, on the headers
 * and bytes; the JSON ones by the body's reader (json-rpc.ts, json-body-scan.ts), which
 * ranks its findings by this list. Then come the JSON-RPC checks, message by message.
 */
export const BODY_CHECK_ORDER = [
  'invalid_content_length',
  'unsupported_content_encoding',
  'body_truncated',
  'body_too_large',
  'invalid_utf8',
  'json_too_deep',
  'invalid_json',
  'lone_surrogate',
  'duplicate_json_key',
  'ambiguous_json_key',
] as const satisfies readonly DenyCode[];

export type BodyCheckCode = (typeof BODY_CHECK_ORDER)[number];

const RANK = new Map<string, number>(BODY_CHECK_ORDER.map((code, i) => [code, i]));

/** The position of a body problem in BODY_CHECK_ORDER (lower is answered first). */
export function bodyCheckRank(code: BodyCheckCode): number {
  return RANK.get(code)!;
}

/** The header- and byte-level checks of BODY_CHECK_ORDER, in that order; throws RequestRejected. */
export function checkBodyIntegrity(req: Request, maxBodyBytes: number): void {
  const declared = declaredLength(req);
  const encoding = header(req.headers, 'content-encoding');
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity' && (req.hasBody || declared > 0)) {
    throw new RequestRejected(
      'unsupported_content_encoding',
      `The request body is encoded with "${encoding}"; mcp-authz must read MCP requests uncompressed. Send them without Content-Encoding (or with identity).`,
    );
  }
  if (header(req.headers, 'x-envoy-auth-partial-body')?.toLowerCase() === 'true') {
    throw truncated(`Envoy sent only the first ${req.bodyBytes} bytes of the body`);
  }
  if (declared > req.bodyBytes) {
    throw truncated(
      req.hasBody
        ? `Content-Length is ${declared} but Envoy sent ${req.bodyBytes} bytes`
        : `the request has a ${declared}-byte body but Envoy sent none (set with_request_body on the ext_authz filter)`,
    );
  }
  const chunked = header(req.headers, 'transfer-encoding');
  if (chunked !== undefined && !req.hasBody) {
    throw truncated(
      `the request declares a body (Transfer-Encoding: ${chunked}) but Envoy sent none (set with_request_body on the ext_authz filter)`,
    );
  }
  if (req.bodyBytes > maxBodyBytes) {
    throw new RequestRejected(
      'body_too_large',
      `The request body (${req.bodyBytes} bytes) exceeds the service's limit of ${maxBodyBytes} bytes (limits.maxBodyBytes).`,
    );
  }
  // A decoder that reads bytes puts U+FFFD in place of bad ones, as Go does; Python refuses the body.
  if (req.bodyInvalidUtf8 === true) {
    throw new RequestRejected(
      'invalid_utf8',
      'The request body is not valid UTF-8; JSON-RPC bodies must be UTF-8 (RFC 8259), and readers disagree on what invalid bytes mean.',
    );
  }
}

/**
 * An MCP POST always carries a JSON-RPC message. One that reached the service without a body
 * (and without the 2026-07-28 headers that may stand in for it) either has none or Envoy did
 * not forward it: either way its call is unknown, so it is refused.
 */
export function requireMessage(req: Request, view: McpView): void {
  if (req.method === 'POST' && !req.hasBody && view.source === 'none') {
    throw new RequestRejected(
      'missing_body',
      "The POST reached mcp-authz without a body: an MCP POST carries a JSON-RPC message. If the client sent one, set with_request_body on Envoy's ext_authz filter so the authorizer sees it.",
    );
  }
}

function declaredLength(req: Request): number {
  const v = header(req.headers, 'content-length');
  if (v === undefined) return 0;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RequestRejected('invalid_content_length', `Content-Length ${JSON.stringify(v)} is not a valid length.`);
  return n;
}

function truncated(what: string): RequestRejected {
  return new RequestRejected(
    'body_truncated',
    `The request body was not seen whole (${what}). Raise max_request_bytes in Envoy's ext_authz with_request_body so that whole MCP requests reach the authorizer.`,
  );
}
