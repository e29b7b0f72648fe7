// The MCP answer that sends the user to a URL before a request can go on (URL-mode
// elicitation), in the shape the request's protocol revision defines:
//
//   2025-11-25 and earlier  the JSON-RPC error -32042 URLElicitationRequiredError, whose
//                           `data.elicitations` lists `{mode: "url", elicitationId, url, message}`
//   2026-07-28              -32042 is retired; the request's result is an InputRequiredResult
//                           (`resultType: "input_required"`) whose `inputRequests` maps an id to
//                           an `elicitation/create` request with `{mode: "url", message, url}`.
//                           Only tools/call, prompts/get and resources/read may be answered so,
//                           and only to a client that declared the `elicitation.url` capability
//                           in the request's `_meta` (multi round-trip requests).
//
// Both are answered with HTTP 200: MCP clients read a JSON-RPC response only from a 2xx.
// Pure: no I/O, the caller supplies the id and the URL.

export const URL_ELICITATION_REQUIRED = -32042;
const MODERN = '2026-07-28';
const INPUT_REQUIRED_METHODS = new Set(['tools/call', 'prompts/get', 'resources/read']);
const CAPABILITIES_META = 'io.modelcontextprotocol/clientCapabilities';

export interface UrlElicitation {
  /** Shown to the user: why the URL must be opened. */
  message: string;
  url: string;
  /** Names this elicitation (2025-11-25 `elicitationId`; the `inputRequests` key in 2026-07-28). */
  elicitationId: string;
  /** The request's MCP-Protocol-Version (undefined: an older client that sends none). */
  protocolVersion: string | undefined;
  /** The JSON-RPC request id the answer echoes. */
  id: string | number;
}

/** Whether the revision answers with an InputRequiredResult rather than the -32042 error. */
export function usesInputRequired(protocolVersion: string | undefined): boolean {
  return protocolVersion !== undefined && protocolVersion >= MODERN;
}

/**
 * Whether a 2026-07-28 request can be answered with a URL elicitation: a method that may carry
 * an InputRequiredResult, from a client whose `_meta` declares `elicitation.url`. Earlier
 * revisions declare capabilities at initialize, which a gateway does not see: always true.
 */
export function canElicitUrl(protocolVersion: string | undefined, method: string, params: unknown): boolean {
  if (!usesInputRequired(protocolVersion)) return true;
  if (!INPUT_REQUIRED_METHODS.has(method)) return false;
  const meta = isRecord(params) && isRecord(params._meta) ? params._meta : undefined;
  const caps = meta !== undefined && isRecord(meta[CAPABILITIES_META]) ? meta[CAPABILITIES_META] : undefined;
  const elicitation = caps !== undefined && isRecord(caps.elicitation) ? caps.elicitation : undefined;
  return elicitation !== undefined && isRecord(elicitation.url);
}

/** The JSON-RPC response body (HTTP 200, application/json). */
export function urlElicitationBody(e: UrlElicitation): string {
  if (usesInputRequired(e.protocolVersion)) {
    return JSON.stringify({
      jsonrpc: '2.0',
      id: e.id,
      result: {
        resultType: 'input_required',
        inputRequests: {
          [e.elicitationId]: {
            method: 'elicitation/create',
            params: { mode: 'url', message: e.message, url: e.url },
          },
        },
      },
    });
  }
  return JSON.stringify({
    jsonrpc: '2.0',
    id: e.id,
    error: {
      code: URL_ELICITATION_REQUIRED,
      message: e.message,
      data: { elicitations: [{ mode: 'url', elicitationId: e.elicitationId, url: e.url, message: e.message }] },
    },
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
