// Outcome → envoy.service.auth.v3.CheckResponse (proto field names, for proto-loader). The
// google.rpc.Status code is what tells Envoy allow (OK) from deny (anything else): a deny
// carries its code's gRPC code (docs/errors.md), and so does a direct answer, which Envoy
// sends to the client as its denied response with HTTP status 200.
import { responseBody, responseContentType, type HeaderToSet, type Outcome } from '../contracts/outcome.js';

function headerOption(h: HeaderToSet) {
  return { header: { key: h.name, value: h.value }, append: { value: h.append } };
}

export function toCheckResponse(o: Outcome, now?: Date): Record<string, unknown> {
  if (o.allow) {
    const ok: Record<string, unknown> = {};
    if (o.headers.length) ok.headers = o.headers.map(headerOption);
    if (o.headersToRemove.length) ok.headers_to_remove = o.headersToRemove;
    if (o.queryParamsToRemove.length) ok.query_parameters_to_remove = o.queryParamsToRemove;
    if (o.responseHeaders.length) ok.response_headers_to_add = o.responseHeaders.map(headerOption);
    const res: Record<string, unknown> = { status: { code: 0 }, ok_response: ok };
    if (o.dynamicMetadata) res.dynamic_metadata = toStruct(o.dynamicMetadata);
    return res;
  }
  const headers = [headerOption({ name: 'content-type', value: responseContentType(o), append: false }), ...o.headers.map(headerOption)];
  const res: Record<string, unknown> = {
    status: { code: o.grpc, message: o.code },
    denied_response: { status: { code: o.status }, headers, body: responseBody(o, now) },
  };
  if (o.kind === 'deny' && o.dynamicMetadata) res.dynamic_metadata = toStruct(o.dynamicMetadata);
  return res;
}

/** A plain object → google.protobuf.Struct in proto-loader's object form. */
export function toStruct(obj: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const k of Object.keys(obj)) fields[k] = toValue(obj[k]);
  return { fields };
}

function toValue(v: unknown): Record<string, unknown> {
  if (v === null || v === undefined) return { null_value: 'NULL_VALUE' };
  if (typeof v === 'number') return { number_value: v };
  if (typeof v === 'string') return { string_value: v };
  if (typeof v === 'boolean') return { bool_value: v };
  if (Array.isArray(v)) return { list_value: { values: v.map(toValue) } };
  if (typeof v === 'object') return { struct_value: toStruct(v as Record<string, unknown>) };
  return { string_value: String(v) };
}
