// A body the service cannot see whole must never pass: compressed, truncated by Envoy,
// announced (Content-Length, Transfer-Encoding) but not sent, whatever the method.
import { RequestRejected } from '../contracts/request-rejected.js';
import { header, type McpView, type Request } from '../contracts/request.js';

export function checkBodyIntegrity(req: Request): void {
  const encoding = header(req.headers, 'content-encoding');
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity' && (req.hasBody || declaredLength(req) > 0)) {
    throw new RequestRejected('unsupported_content_encoding', `The request body is encoded with "${encoding}"; mcp-authz must read MCP requests uncompressed. Send them without Content-Encoding (or with identity).`);
  }
  if (header(req.headers, 'x-envoy-auth-partial-body')?.toLowerCase() === 'true') {
    throw truncated(`Envoy sent only the first ${req.bodyBytes} bytes of the body`);
  }
  const declared = declaredLength(req);
  if (declared > req.bodyBytes) {
    throw truncated(req.hasBody
      ? `Content-Length is ${declared} but Envoy sent ${req.bodyBytes} bytes`
      : `the request has a ${declared}-byte body but Envoy sent none (set with_request_body on the ext_authz filter)`);
  }
  const chunked = header(req.headers, 'transfer-encoding');
  if (chunked !== undefined && !req.hasBody) {
    throw truncated(`the request declares a body (Transfer-Encoding: ${chunked}) but Envoy sent none (set with_request_body on the ext_authz filter)`);
  }
}

/**
 * An MCP POST always carries a JSON-RPC message. One that reached the service without a body
 * (and without the 2026-07-28 headers that may stand in for it) either has none or Envoy did
 * not forward it: either way its call is unknown, so it is refused.
 */
export function requireMessage(req: Request, view: McpView): void {
  if (req.method === 'POST' && !req.hasBody && view.source === 'none') {
    throw new RequestRejected('missing_body', 'The POST reached mcp-authz without a body: an MCP POST carries a JSON-RPC message. If the client sent one, set with_request_body on Envoy\'s ext_authz filter so the authorizer sees it.');
  }
}

function declaredLength(req: Request): number {
  const v = header(req.headers, 'content-length');
  if (v === undefined) return 0;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new RequestRejected('invalid_content_length', `Content-Length ${JSON.stringify(v)} is not a valid length.`);
  return n;
}

function truncated(what: string): RequestRejected {
  return new RequestRejected('body_truncated', `The request body was not seen whole (${what}). Raise max_request_bytes in Envoy's ext_authz with_request_body so that whole MCP requests reach the authorizer.`);
}
