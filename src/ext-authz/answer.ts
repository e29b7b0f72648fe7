// Outcome → envoy.service.auth.v3.CheckResponse (proto field names, for proto-loader). The
// google.rpc.Status code is what tells Envoy allow (OK) from deny (anything else): a deny
// carries its code's gRPC code (docs/errors.md), and so does a direct answer, which Envoy
// sends to the client as its denied response with HTTP status 200. Every response carries the
// decision id as dynamic metadata, so Envoy's access log can print
// %DYNAMIC_METADATA(envoy.filters.http.ext_authz:decision_id)%.
import { responseBody, responseContentType, type HeaderToSet, type Outcome } from '../contracts/outcome.js';

function headerOption(h: HeaderToSet) {
  return { header: { key: h.name, value: h.value }, append: { value: h.append } };
}

/** The key of the decision id in the dynamic metadata (docs/tracing.md). */
export const DECISION_ID_KEY = 'decision_id';

/**
 * The decision's metadata, whichever protocol answers: the policy's dynamic metadata, with the
 * decision id set last so a policy can never replace it. Undefined when there is neither.
 */
export function decisionMetadata(o: Outcome, decisionId: string | undefined): Record<string, unknown> | undefined {
  const policy = o.kind === 'answer' ? undefined : o.dynamicMetadata;
  if (decisionId === undefined) return policy;
  if (policy === undefined) return { [DECISION_ID_KEY]: decisionId };
  return { ...policy, [DECISION_ID_KEY]: decisionId };
}

export function toCheckResponse(o: Outcome, decisionId?: string, now?: Date): Record<string, unknown> {
  const metadata = decisionMetadata(o, decisionId);
  if (o.allow) {
    const ok: Record<string, unknown> = {};
    if (o.headers.length) ok.headers = o.headers.map(headerOption);
    if (o.headersToRemove.length) ok.headers_to_remove = o.headersToRemove;
    if (o.queryParamsToRemove.length) ok.query_parameters_to_remove = o.queryParamsToRemove;
    if (o.responseHeaders.length) ok.response_headers_to_add = o.responseHeaders.map(headerOption);
    const res: Record<string, unknown> = { status: { code: 0 }, ok_response: ok };
    if (metadata) res.dynamic_metadata = toStruct(metadata);
    return res;
  }
  const headers = [
    headerOption({ name: 'content-type', value: responseContentType(o), append: false }),
    ...o.headers.map(headerOption),
  ];
  const res: Record<string, unknown> = {
    status: { code: o.grpc, message: o.code },
    denied_response: { status: { code: o.status }, headers, body: responseBody(o, now) },
  };
  if (metadata) res.dynamic_metadata = toStruct(metadata);
  return res;
}

/**
 * A plain object → google.protobuf.Struct in proto-loader's object form. Struct and Value are
 * protobufjs's bundled well-known types, whose field names are camelCase whatever keepCase
 * says: `string_value` would be dropped silently, leaving an empty Value.
 */
export function toStruct(obj: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const k of Object.keys(obj)) fields[k] = toValue(obj[k]);
  return { fields };
}

function toValue(v: unknown): Record<string, unknown> {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  if (typeof v === 'object') return { structValue: toStruct(v as Record<string, unknown>) };
  return { stringValue: String(v) };
}
