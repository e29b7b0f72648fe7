// The MCP answer that sends a person to a URL before a request can go on (URL-mode
// elicitation), in the form each protocol revision reads:
//   2025-11-25  the JSON-RPC error -32042 (URL elicitation required) with `data.elicitations`
//               listing `{mode: "url", elicitationId, url, message}`;
//   2026-07-28  -32042 is retired: the request's result is an InputRequiredResult
//               (`resultType: "input_required"`) whose `inputRequests` maps an id to an
//               `elicitation/create` request in URL mode, with `requestState` to send back on
//               the retry. Only tools/call, prompts/get and resources/read may be answered so,
//               and only to a client that declared the `elicitation.url` capability in the
//               request's `_meta` (multi round-trip requests);
//   older       (or no MCP-Protocol-Version: a client before 2025-06-18, or an initialize
//               request) a JSON-RPC error whose message names the URL (-32001,
//               implementation-defined).
// Approvals (docs/approvals.md) and per-user upstream connections (docs/upstream-credentials.md)
// answer with it. Pure: it builds the JSON-RPC message's text; the caller decides how it travels.

export const URL_ELICITATION_REQUIRED = -32042;
/** Implementation-defined JSON-RPC error (-32000..-32019) for revisions without URL elicitation. */
export const URL_REQUIRED_LEGACY = -32001;

export interface UrlElicitation {
  /** Why the person is sent there, in one sentence. */
  message: string;
  url: string;
  /** Opaque to the client; names the interaction (the approval's id). */
  elicitationId: string;
  /** MCP-Protocol-Version of the request; undefined for the first request of a session. */
  protocolVersion: string | undefined;
  /** The JSON-RPC id to answer; undefined for a notification (answered as an error without one). */
  requestId: string | number | undefined;
  /**
   * Whether the client can take a URL elicitation where the revision asks it to declare so
   * (canElicitUrl); false: the error naming the URL instead. Default true.
   */
  urlCapable?: boolean;
}

export type ElicitationForm = 'error_-32042' | 'input_required' | 'error_with_url';

export function elicitationForm(protocolVersion: string | undefined): ElicitationForm {
  if (protocolVersion === undefined) return 'error_with_url';
  if (protocolVersion >= '2026-07-28') return 'input_required';
  if (protocolVersion >= '2025-11-25') return 'error_-32042';
  return 'error_with_url';
}

/** The JSON-RPC message (text) that carries the elicitation to the client. */
export function urlElicitationMessage(e: UrlElicitation): { form: ElicitationForm; body: string } {
  const asked = elicitationForm(e.protocolVersion);
  const form = asked === 'input_required' && e.urlCapable === false ? 'error_with_url' : asked;
  const id = e.requestId === undefined ? {} : { id: e.requestId };
  let message: unknown;
  if (form === 'input_required') {
    message = {
      jsonrpc: '2.0',
      ...id,
      result: {
        resultType: 'input_required',
        inputRequests: {
          [e.elicitationId]: { method: 'elicitation/create', params: { mode: 'url', message: e.message, url: e.url } },
        },
        requestState: e.elicitationId,
      },
    };
  } else if (form === 'error_-32042') {
    message = {
      jsonrpc: '2.0',
      ...id,
      error: {
        code: URL_ELICITATION_REQUIRED,
        message: e.message,
        data: { elicitations: [{ mode: 'url', elicitationId: e.elicitationId, url: e.url, message: e.message }] },
      },
    };
  } else {
    message = {
      jsonrpc: '2.0',
      ...id,
      error: {
        code: URL_REQUIRED_LEGACY,
        message: `${e.message} Open ${e.url} to continue, then retry the call.`,
        data: { url: e.url, elicitationId: e.elicitationId },
      },
    };
  }
  return { form, body: JSON.stringify(message) };
}

const INPUT_REQUIRED_METHODS = new Set(['tools/call', 'prompts/get', 'resources/read']);
const CAPABILITIES_META = 'io.modelcontextprotocol/clientCapabilities';

/**
 * Whether a request can be answered with a URL elicitation: before 2026-07-28 always (clients
 * declare capabilities at initialize, which a gateway does not see); in 2026-07-28 only a
 * method that may carry an InputRequiredResult, from a client whose `_meta` declares
 * `elicitation.url`.
 */
export function canElicitUrl(protocolVersion: string | undefined, method: string, params: unknown): boolean {
  if (elicitationForm(protocolVersion) !== 'input_required') return true;
  if (!INPUT_REQUIRED_METHODS.has(method)) return false;
  const meta = isRecord(params) && isRecord(params._meta) ? params._meta : undefined;
  const caps = meta !== undefined && isRecord(meta[CAPABILITIES_META]) ? meta[CAPABILITIES_META] : undefined;
  const elicitation = caps !== undefined && isRecord(caps.elicitation) ? caps.elicitation : undefined;
  return elicitation !== undefined && isRecord(elicitation.url);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
