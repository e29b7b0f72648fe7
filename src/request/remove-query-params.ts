// Query parameters removed before a request goes upstream (an API key sent as `?api_key=`).
//
// The service reads parameter names form-decoded (src/request/parse-query.ts), so one
// credential can be spelled several ways on the wire (`api_key`, `api%5Fkey`, `api%5fkey`).
// Envoy's ext_authz filter removes `query_parameters_to_remove` by the name as written, so
// the allow names every spelling present (rawParamNames). Envoy then rebuilds the query from
// what is left: it parses it without decoding into a map ordered by name, and writes each
// `name=value` in that order, values of one name in their order
// (source/common/http/utility.cc: QueryParamsMulti::parseQueryString, remove, toString).
// ext_proc has no such field: its allow rewrites `:path` to the same bytes (removeQueryParams),
// so the MCP server gets the same request through either filter.

/** Every spelling, as written in the query, of the parameters whose decoded name is one of `names`. */
export function rawParamNames(rawQuery: string, names: readonly string[]): string[] {
  if (rawQuery === '' || names.length === 0) return [];
  const out: string[] = [];
  for (const part of rawQuery.split('&')) {
    const raw = rawKey(part);
    if (!out.includes(raw) && names.includes(decodedName(part))) out.push(raw);
  }
  return out;
}

/**
 * The path after Envoy's ext_authz removes the parameters named `rawNames` (as written):
 * the query parsed and rebuilt as Envoy does; the path unchanged when nothing is removed.
 */
export function removeQueryParams(rawPath: string, rawNames: readonly string[]): string {
  const q = rawPath.indexOf('?');
  if (q < 0 || rawNames.length === 0) return rawPath;
  const query = rawPath.slice(q + 1);
  const params = new Map<string, string[]>();
  for (let start = 0; start < query.length; ) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    const param = query.slice(start, end);
    const eq = param.indexOf('=');
    const name = eq < 0 ? param : param.slice(0, eq);
    const value = eq < 0 ? '' : param.slice(eq + 1);
    const values = params.get(name);
    if (values) values.push(value);
    else params.set(name, [value]);
    start = end + 1;
  }
  for (const name of rawNames) params.delete(name);
  // Envoy's map orders names as bytes compare (std::string); UTF-8 byte order is code point order.
  const ordered = [...params.keys()].sort(compareBytes);
  let out = rawPath.slice(0, q);
  let delim = '?';
  for (const name of ordered) {
    for (const value of params.get(name)!) {
      out += `${delim}${name}=${value}`;
      delim = '&';
    }
  }
  return out;
}

/** The name of a `name=value` part as written. */
function rawKey(part: string): string {
  const eq = part.indexOf('=');
  return eq < 0 ? part : part.slice(0, eq);
}

/** The parameter's name as URLSearchParams (parseQuery) decodes it; "" for an empty part. */
function decodedName(part: string): string {
  for (const [name] of new URLSearchParams(part)) return name;
  return '';
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
