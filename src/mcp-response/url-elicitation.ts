// The MCP answer that sends a person to a URL before a call can go on (URL-mode elicitation),
// in the form each protocol revision reads:
//   2025-11-25  the JSON-RPC error -32042 (URL elicitation required) with `data.elicitations`;
//   2026-07-28  a result of type `input_required` whose `inputRequests` holds one
//               `elicitation/create` in URL mode, and `requestState` to send back on the retry;
//   older       a JSON-RPC error whose message names the URL (-32001, implementation-defined).
// Pure: it builds the JSON-RPC message's text; the caller decides how it travels.

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
  const form = elicitationForm(e.protocolVersion);
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
