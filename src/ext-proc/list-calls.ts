// The list calls of a request (tools/list, prompts/list, resources/list,
// resources/templates/list): JSON-RPC id → method, read from the body the pipeline parsed
// and checked. Their responses are the ones filtered; a request without any costs nothing
// on the response path.
import { isListMethod, type ListCalls, type ListMethod, type RequestId } from '../mcp-response/list-methods.js';

/** The list calls in a parsed JSON-RPC body (one message or a batch); undefined when there are none. */
export function listCallsOf(parsedBody: unknown): ListCalls | undefined {
  let calls: Map<RequestId, ListMethod> | undefined;
  for (const e of Array.isArray(parsedBody) ? parsedBody : [parsedBody]) {
    if (e === null || typeof e !== 'object' || Array.isArray(e)) continue;
    const { method, id } = e as { method?: unknown; id?: unknown };
    // Notifications (no id) get no response; the pipeline refused other id types.
    if (typeof method !== 'string' || !isListMethod(method) || (typeof id !== 'string' && typeof id !== 'number'))
      continue;
    (calls ??= new Map()).set(id, method);
  }
  return calls;
}
