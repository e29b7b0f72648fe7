// A body the service cannot see whole must never pass: compressed, truncated by Envoy,
// or announced longer than what arrived.
import { RequestRejected } from './reject.js';
import { header, type Request } from './types.js';

export function checkBodyIntegrity(req: Request): void {
  const encoding = header(req.headers, 'content-encoding');
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity' && (req.hasBody || declaredLength(req) > 0)) {
    throw new RequestRejected(415, 'unsupported_content_encoding', `The request body is encoded with "${encoding}"; mcp-authz must read MCP requests uncompressed. Send them without Content-Encoding (or with identity).`);
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
}

function declaredLength(req: Request): number {
  const v = header(req.headers, 'content-length');
  if (v === undefined) return 0;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new RequestRejected(400, 'invalid_content_length', `Content-Length ${JSON.stringify(v)} is not a valid length.`);
  return n;
}

function truncated(what: string): RequestRejected {
  return new RequestRejected(413, 'body_truncated', `The request body was not seen whole (${what}). Raise max_request_bytes in Envoy's ext_authz with_request_body so that whole MCP requests reach the authorizer.`);
}
