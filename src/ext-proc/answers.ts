// Outcomes → ext_proc answers (ProcessingResponse parts, src/ext-proc/wire.ts). A deny
// or a direct answer is an ImmediateResponse with the status, headers and body the Check
// deny has; an allow is a HeaderMutation with the Check allow's headers. Values travel in
// `raw_value` (Envoy reads only that field while the send_header_raw_value guard is on) and
// every header names `append`, which ext_proc honours (it ignores append_action).
import {
  responseBody,
  responseContentType,
  type Allow,
  type Answer,
  type Deny,
  type HeaderToSet,
  type Outcome,
} from '../contracts/outcome.js';
import type { Request } from '../contracts/request.js';
import { removeQueryParams } from '../request/remove-query-params.js';
import type { WireHeaderMutation, WireHeaderValueOption, WireImmediateResponse } from './wire.js';
import { decisionMetadata, toStruct } from '../ext-authz/answer.js';

export function headerOption(name: string, value: string, append = false): WireHeaderValueOption {
  return { header: { key: name, raw_value: Buffer.from(value, 'utf8') }, append: { value: append } };
}

const option = (h: HeaderToSet) => headerOption(h.name, h.value, h.append);

/** The deny or answer Envoy sends itself: the Check deny's status, content-type, headers and body. */
export function immediateResponse(o: Deny | Answer, now: Date = new Date()): WireImmediateResponse {
  return {
    status: { code: o.status },
    headers: { set_headers: [headerOption('content-type', responseContentType(o)), ...o.headers.map(option)] },
    body: Buffer.from(responseBody(o, now), 'utf8'),
    // Envoy's response code details (access logs): the decision code.
    details: `mcp_authz_${o.code}`,
  };
}

export interface RequestMutationExtras {
  /** Request headers removed besides the allow's own (e.g. accept-encoding before a list response). */
  remove?: readonly string[];
}

/**
 * The allow's changes to the request: its headers set, its headers removed, and — since
 * ext_proc cannot remove query parameters — `:path` rewritten without the credential
 * parameters (src/request/remove-query-params.ts).
 */
export function requestHeaderMutation(
  o: Allow,
  request: Pick<Request, 'rawPath'>,
  extras: RequestMutationExtras = {},
): WireHeaderMutation {
  const set = o.headers.map(option);
  if (o.queryParamsToRemove.length > 0) {
    const path = removeQueryParams(request.rawPath, o.queryParamsToRemove);
    if (path !== request.rawPath) set.push(headerOption(':path', path));
  }
  const remove =
    extras.remove && extras.remove.length > 0 ? [...o.headersToRemove, ...extras.remove] : o.headersToRemove;
  const m: WireHeaderMutation = {};
  if (set.length > 0) m.set_headers = set;
  if (remove.length > 0) m.remove_headers = [...remove];
  return m;
}

/** Headers added to the response (the policy's response_headers, the list's cache-control). */
export function responseHeaderMutation(
  set: readonly HeaderToSet[],
  remove: readonly string[] = [],
): WireHeaderMutation | undefined {
  if (set.length === 0 && remove.length === 0) return undefined;
  const m: WireHeaderMutation = {};
  if (set.length > 0) m.set_headers = set.map(option);
  if (remove.length > 0) m.remove_headers = [...remove];
  return m;
}

/** The namespace the answers' dynamic metadata is written to: the filter's own name, as ext_authz's is. */
export const EXT_PROC_METADATA_NAMESPACE = 'envoy.filters.http.ext_proc';

/**
 * ProcessingResponse.dynamic_metadata: the policy's metadata and the decision id (set last, as
 * in Check answers) under one namespace. Envoy reads the Struct's top-level fields as
 * namespaces and keeps only those its `metadata_options.receiving_namespaces` lists.
 */
export function extProcDynamicMetadata(
  o: Outcome,
  decisionId: string | undefined,
): Record<string, unknown> | undefined {
  const metadata = decisionMetadata(o, decisionId);
  return metadata ? toStruct({ [EXT_PROC_METADATA_NAMESPACE]: metadata }) : undefined;
}
