// How Envoy applies an allow to the request before it goes upstream, one model per transport
// mcp-authz answers on, for the Envoy stand-ins (this folder) and the transport parity test
// (test/transport-parity.test.ts). Each step cites the sentence of Envoy's API documentation
// it follows (the proto comments, as go-control-plane v1.40.0 carries them), or, where the
// documentation is silent, the source file that decides it.
//
// A request is what Envoy holds between filters: `:path` and the header entries in order,
// names lower-case, values as bytes (held as Latin-1 text, one character per byte).

export type HeaderList = [string, string][];

export interface EnvoyRequest {
  path: string;
  headers: HeaderList;
}

/** The request as the MCP server would read it: the path, and per header name its values joined with "," in order (RFC 9110 §5.3), names sorted. */
export function upstreamView(r: EnvoyRequest): { path: string; headers: [string, string][] } {
  const byName = new Map<string, string[]>();
  for (const [k, v] of r.headers) (byName.get(k) ?? byName.set(k, []).get(k)!).push(v);
  return {
    path: r.path,
    headers: [...byName]
      .map(([k, vs]) => [k, vs.join(',')] as [string, string])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  };
}

export const bytesOf = (utf8: string) => Buffer.from(utf8, 'utf8').toString('latin1');

// ---------------------------------------------------------------- Envoy's header map
// source/common/http/header_map_impl.cc: setCopy replaces every entry of the name by one
// (where the first was), addCopy adds an entry, appendCopy joins the value to the first entry
// with "," (adding one when there is none), remove drops every entry of the name.

export function setCopy(h: HeaderList, name: string, value: string): void {
  const at = h.findIndex(([k]) => k === name);
  removeAll(h, name);
  h.splice(at < 0 ? h.length : at, 0, [name, value]);
}

export function addCopy(h: HeaderList, name: string, value: string): void {
  h.push([name, value]);
}

export function appendCopy(h: HeaderList, name: string, value: string): void {
  const e = h.find(([k]) => k === name);
  if (e) e[1] = `${e[1]},${value}`;
  else h.push([name, value]);
}

export function removeAll(h: HeaderList, name: string): void {
  for (let i = h.length - 1; i >= 0; i--) if (h[i]![0] === name) h.splice(i, 1);
}

/** headers_to_remove: "Pseudo headers (such as :authority, :method, :path etc), as well as the header Host, may not be removed … these special headers will be ignored." */
const removable = (name: string) => !name.startsWith(':') && name !== 'host';

// ---------------------------------------------------------------- query parameters
// query_parameters_to_remove: "which query parameters should be removed from the original
// request before it is sent upstream. Each element in this list is a case-sensitive query
// parameter name to be removed." How the rest is written back is the source's
// (source/common/http/utility.cc): the query is parsed without decoding into a map ordered
// by name (QueryParamsMulti::parseQueryString, an absl::btree_map), the names removed, and
// each `name=value` written in the map's order (toString, replaceQueryString).

export function envoyRemoveQueryParameters(path: string, names: readonly string[]): string {
  const q = path.indexOf('?');
  const params = new Map<string, string[]>();
  if (q >= 0) {
    const data = path.slice(q + 1);
    let start = 0;
    while (start < data.length) {
      let end = data.indexOf('&', start);
      if (end === -1) end = data.length;
      const param = data.slice(start, end);
      const equal = param.indexOf('=');
      const [k, v] = equal === -1 ? [param, ''] : [param.slice(0, equal), param.slice(equal + 1)];
      (params.get(k) ?? params.set(k, []).get(k)!).push(v);
      start = end + 1;
    }
  }
  for (const n of names) params.delete(n);
  const base = q >= 0 ? path.slice(0, q) : path;
  const keys = [...params.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
  const parts = keys.flatMap((k) => params.get(k)!.map((v) => `${k}=${v}`));
  return parts.length === 0 ? base : `${base}?${parts.join('&')}`;
}

// ---------------------------------------------------------------- ext_authz, gRPC service

export interface WireHeaderOption {
  header?: { key?: string; value?: string; raw_value?: Buffer };
  append?: { value?: boolean } | null;
  append_action?: string | number;
}

export interface WireOkResponse {
  headers?: WireHeaderOption[];
  headers_to_remove?: string[];
  query_parameters_to_set?: { key: string; value: string }[];
  query_parameters_to_remove?: string[];
}

const APPEND_ACTIONS = [
  'APPEND_IF_EXISTS_OR_ADD',
  'ADD_IF_ABSENT',
  'OVERWRITE_IF_EXISTS_OR_ADD',
  'OVERWRITE_IF_EXISTS',
];

/** A HeaderValueOption's value as bytes: raw_value when set, else the UTF-8 of value. */
export function optionValue(o: WireHeaderOption): string {
  const raw = o.header?.raw_value;
  return raw && raw.length > 0 ? Buffer.from(raw).toString('latin1') : bytesOf(o.header?.value ?? '');
}

/**
 * OkHttpResponse applied as Envoy's ext_authz filter does (envoy/service/auth/v3/external_auth.proto):
 * - headers: "Note that the append field in HeaderValueOption defaults to false when used in
 *   this message. By setting the append field to true, the filter will append the correspondent
 *   header value to the matched request header. By leaving append as false, the filter will
 *   either add a new header, or override an existing one if there is a match." append_action,
 *   when the deprecated append is unset, as config/core/v3/base.proto defines it.
 * - headers_to_remove: "HTTP entity headers to remove from the original request before
 *   dispatching it to the upstream", pseudo-headers and Host ignored; removed after the headers
 *   are set (source/extensions/filters/http/ext_authz/ext_authz.cc, onComplete).
 * - query_parameters_to_set / _to_remove, then the path rebuilt (above).
 */
export function applyCheckOk(r: EnvoyRequest, ok: WireOkResponse): EnvoyRequest {
  const headers: HeaderList = r.headers.map(([k, v]) => [k, v]);
  for (const o of ok.headers ?? []) {
    const name = (o.header?.key ?? '').toLowerCase();
    if (!name) continue;
    const value = optionValue(o);
    if (o.append !== undefined && o.append !== null && o.append.value !== undefined) {
      if (o.append.value) appendCopy(headers, name, value);
      else setCopy(headers, name, value);
      continue;
    }
    const action =
      typeof o.append_action === 'number'
        ? APPEND_ACTIONS[o.append_action]
        : (o.append_action ?? 'APPEND_IF_EXISTS_OR_ADD');
    const present = headers.some(([k]) => k === name);
    if (action === 'APPEND_IF_EXISTS_OR_ADD') addCopy(headers, name, value);
    else if (action === 'ADD_IF_ABSENT') {
      if (!present) addCopy(headers, name, value);
    } else if (action === 'OVERWRITE_IF_EXISTS') {
      if (present) setCopy(headers, name, value);
    } else setCopy(headers, name, value);
  }
  for (const raw of ok.headers_to_remove ?? []) {
    const name = raw.toLowerCase();
    if (removable(name)) removeAll(headers, name);
  }
  let path = r.path;
  const set = ok.query_parameters_to_set ?? [];
  const remove = ok.query_parameters_to_remove ?? [];
  if (set.length > 0) throw new Error('query_parameters_to_set is not modelled: mcp-authz never sends it');
  if (remove.length > 0) path = envoyRemoveQueryParameters(path, remove);
  return { path, headers };
}

// ---------------------------------------------------------------- ext_authz, HTTP service

/** One pattern of a type.matcher.v3.ListStringMatcher. */
export interface StringMatcher {
  exact?: string;
  prefix?: string;
  suffix?: string;
  contains?: string;
  safe_regex?: { regex: string };
  ignore_case?: boolean;
}

export function matchesAny(patterns: readonly StringMatcher[], name: string): boolean {
  return patterns.some((p) => {
    const s = p.ignore_case ? name.toLowerCase() : name;
    const fold = (x: string) => (p.ignore_case ? x.toLowerCase() : x);
    if (p.exact !== undefined) return s === fold(p.exact);
    if (p.prefix !== undefined) return s.startsWith(fold(p.prefix));
    if (p.suffix !== undefined) return s.endsWith(fold(p.suffix));
    if (p.contains !== undefined) return s.includes(fold(p.contains));
    if (p.safe_regex !== undefined) return new RegExp(`^(?:${p.safe_regex.regex})$`).test(name);
    return false;
  });
}

/** The filter's http_service.authorization_response (envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto). */
export interface AuthorizationResponseConfig {
  allowed_upstream_headers?: { patterns: StringMatcher[] };
  allowed_upstream_headers_to_append?: { patterns: StringMatcher[] };
}

export const HEADERS_TO_REMOVE = 'x-envoy-auth-headers-to-remove';

/**
 * A 200 answer of the HTTP service applied as Envoy's ext_authz filter does (ext_authz.proto,
 * AuthorizationResponse; external_auth.proto, OkHttpResponse):
 * - allowed_upstream_headers: "When this list is set, authorization response headers that
 *   have a correspondent match will be added to the original client request. Note: Existing
 *   headers will be overridden." An answer header no pattern matches is not copied.
 * - allowed_upstream_headers_to_append: "… will be added to the original client request.
 *   Note: Existing headers will be appended." (a new entry: addCopy, ext_authz_http_impl.cc)
 * - headers_to_remove: "When using the HTTP service this must instead be set by the HTTP
 *   authorization service as a comma separated list like so:
 *   x-envoy-auth-headers-to-remove: one-auth-header, another-auth-header." Removed after the
 *   others are set (ext_authz.cc, onComplete); pseudo-headers and Host ignored.
 * - no query parameter can be removed: the answer has no way to say so.
 * `answer` is the answer's header lines as received (values as bytes).
 */
export function applyHttpServiceOk(
  r: EnvoyRequest,
  answer: HeaderList,
  config: AuthorizationResponseConfig,
): EnvoyRequest {
  const headers: HeaderList = r.headers.map(([k, v]) => [k, v]);
  const set = config.allowed_upstream_headers?.patterns ?? [];
  const append = config.allowed_upstream_headers_to_append?.patterns ?? [];
  const toRemove: string[] = [];
  const toAdd: HeaderList = [];
  for (const [rawName, value] of answer) {
    const name = rawName.toLowerCase();
    if (name === HEADERS_TO_REMOVE) {
      toRemove.push(
        ...value
          .split(',')
          .map((s) => s.trim().toLowerCase())
          .filter((s) => s !== ''),
      );
      continue;
    }
    if (matchesAny(set, name)) setCopy(headers, name, value);
    if (matchesAny(append, name)) toAdd.push([name, value]);
  }
  for (const [name, value] of toAdd) addCopy(headers, name, value);
  for (const name of toRemove) if (removable(name)) removeAll(headers, name);
  return { path: r.path, headers };
}

// ---------------------------------------------------------------- ext_proc

export interface WireHeaderMutation {
  set_headers?: WireHeaderOption[];
  remove_headers?: string[];
}

/**
 * A HeaderMutation applied as Envoy's ext_proc filter does (envoy/service/ext_proc/v3/external_processor.proto):
 * - set_headers: "Add or replace HTTP headers. Attempts to set the value of any x-envoy
 *   header, and attempts to set the :method, :authority, :scheme, or host headers will be
 *   ignored. The header value is encoded in the raw_value field. Note that the append field in
 *   HeaderValueOption defaults to false when used in this message." append true adds a value
 *   (addCopy; source/extensions/filters/http/ext_proc/mutation_utils.cc).
 * - remove_headers: "Remove these HTTP headers. Attempts to remove system headers -- any header
 *   starting with :, plus host -- will be ignored." (x-envoy-* too, by the default mutation
 *   rules.) Removals are applied before the sets (mutation_utils.cc).
 * Returns Envoy's error text instead when it would refuse the mutation (an invalid name or
 * value, both value and raw_value set), which fails the request.
 */
export function applyExtProcMutation(
  headers: HeaderList,
  m: WireHeaderMutation | undefined,
  opts: { rawValues?: boolean; skipContentLength?: boolean } = {},
): string | undefined {
  if (!m) return undefined;
  const rawValues = opts.rawValues ?? true;
  for (const raw of m.remove_headers ?? []) {
    const name = raw.toLowerCase();
    if (!validName(name)) return 'Invalid character in remove_headers mutation.';
    if (name.startsWith(':') || name === 'host' || name.startsWith('x-envoy')) continue;
    removeAll(headers, name);
  }
  for (const o of m.set_headers ?? []) {
    const h = o.header;
    if (!h) continue;
    const name = (h.key ?? '').toLowerCase();
    if (opts.skipContentLength && name === 'content-length') continue;
    const raw = h.raw_value && h.raw_value.length > 0 ? h.raw_value : undefined;
    if (raw && h.value) return 'Only one of value or raw_value in the HeaderValue message should be set.';
    const value = rawValues ? (raw ? Buffer.from(raw).toString('latin1') : '') : bytesOf(h.value ?? '');
    if (!validName(name) || /[\0\r\n]/.test(value)) return 'Invalid character in set_headers mutation.';
    if (
      name === ':method' ||
      name === ':authority' ||
      name === ':scheme' ||
      name === 'host' ||
      name.startsWith('x-envoy')
    )
      continue;
    if (name === ':status' && !/^[1-5][0-9][0-9]$/.test(value)) return `Invalid :status ${value}`;
    if (o.append?.value === true) addCopy(headers, name, value);
    else setCopy(headers, name, value);
  }
  return undefined;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

function validName(name: string): boolean {
  return TOKEN.test(name.startsWith(':') ? name.slice(1) : name);
}
