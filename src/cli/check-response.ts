// `mcp-authz check --response @file`: what the ext_proc service would make of a sample list
// response for the sample request — which items the caller sees, which the visibility rule
// hides, the body Envoy would send on, or why the list would be withheld.
import type { CheckTrace, ListTrace } from '../decision/context.js';
import { ListResponse, type ResponseForm } from '../ext-proc/list-response.js';
import { listCallsOf } from '../ext-proc/list-calls.js';
import type { Runtime } from '../pipeline/runtime.js';
import { fanOut } from '../pipeline/observers.js';

export type ResponseTypeFlag = ResponseForm | 'auto';

/** JSON when the text starts as JSON does, else an event stream. */
export function responseFormOf(text: string, flag: ResponseTypeFlag): ResponseForm {
  if (flag !== 'auto') return flag;
  const first = text.trimStart()[0];
  return first === '{' || first === '[' ? 'json' : 'sse';
}

export function explainResponse(
  rt: Runtime,
  trace: CheckTrace,
  text: string,
  flag: ResponseTypeFlag,
): Record<string, unknown> {
  const o = trace.outcome;
  if (!o.allow) return { evaluated: false, why: `the request is not allowed (${o.code}): nothing would be listed` };
  const calls = listCallsOf(trace.ctx?.parsedBody);
  if (calls === undefined)
    return {
      evaluated: false,
      why: 'the request has no list call (tools/list, prompts/list, resources/list, resources/templates/list with an id): its response passes untouched',
    };
  const form = responseFormOf(text, flag);
  let listed: ListTrace | undefined;
  const observer = rt.observer;
  rt.observer = fanOut([observer, { decided: () => undefined, listed: (t) => (listed = t) }]);
  try {
    const list = new ListResponse(rt, trace, calls, trace.ctx?.mcp.batch === true, form, { keepDecisions: true });
    const bytes = Buffer.from(text, 'utf8');
    let body: string;
    if (form === 'json') {
      const out = list.json(bytes);
      body = out.body ? out.body.toString('utf8') : text;
    } else {
      const out = list.sse(bytes, true);
      body = out.out.toString('utf8');
    }
    return {
      evaluated: true,
      form,
      listCalls: Object.fromEntries([...calls].map(([id, method]) => [String(id), method])),
      result: listed?.result ?? 'filtered',
      ...(listed?.reason !== undefined ? { reason: listed.reason, why: listed.detail } : {}),
      items: (list.visibility.decisions ?? []).map((d) => ({
        method: d.method,
        item: d.key,
        call: d.call ?? null,
        visible: d.visible,
      })),
      lists: listed?.methods ?? [],
      dryRun: list.visibility.dryRun,
      policy: (listed?.policy ?? []).map((p) => ({
        revision: p.revision,
        items: p.items,
        durationMs: p.durationNs / 1e6,
      })),
      body,
    };
  } finally {
    rt.observer = observer;
  }
}
