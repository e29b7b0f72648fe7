// The MCP request headers of Streamable HTTP (MCP 2026-07-28, "HTTP Header Standardization"):
// MCP-Protocol-Version, Mcp-Method, Mcp-Name and Mcp-Param-{Name}, read and cross-checked with
// the JSON-RPC body the way docs/mcp-protocol.md describes. A request whose headers and body
// could be read two ways is refused with the JSON-RPC error MCP clients are written for:
// -32020 HeaderMismatch or -32022 UnsupportedProtocolVersion, carrying the request's id.
import type { DenyCode } from '../contracts/codes.js';
import type { JsonRpcId } from '../contracts/outcome.js';
import { RequestRejected } from '../contracts/request-rejected.js';
import { header, ITEM_METHODS, type HeaderMap, type McpCall } from '../contracts/request.js';
import { normalizeResourceUri } from './normalize-resource-uri.js';

/** The revision from which the headers are required, checked, and may stand without a body. */
export const MODERN_PROTOCOL_VERSION = '2026-07-28';
/** What a request without MCP-Protocol-Version is read as (the spec's MAY for pre-2025-06-18 clients). */
export const DEFAULT_PROTOCOL_VERSION = '2025-03-26';
/**
 * The revisions the service reads, newest first. 2024-11-05 (HTTP+SSE) stays: current SDK
 * clients send it in MCP-Protocol-Version when an old server negotiated it.
 */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly string[] = Object.freeze([
  '2026-07-28',
  '2025-11-25',
  '2025-06-18',
  '2025-03-26',
  '2024-11-05',
]);
/** The `params._meta` key that carries a 2026-07-28 request's protocol version. */
export const PROTOCOL_VERSION_META = 'io.modelcontextprotocol/protocolVersion';

const SUPPORTED = new Set(SUPPORTED_PROTOCOL_VERSIONS);
const PARAM_PREFIX = 'mcp-param-';
const SENTINEL_START = '=?base64?';
const SENTINEL_END = '?=';
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// JSON's number grammar: the decimal forms an integer header may take ("42", "42.0", "4.2e1").
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Values quoted in error messages and data are cut to this many characters. */
const QUOTE_LIMIT = 200;

/** The params member Mcp-Name mirrors for a method; undefined where Mcp-Name is not defined. */
export function nameSource(method: string): 'name' | 'uri' | 'taskId' | undefined {
  switch (method) {
    case 'tools/call':
    case 'prompts/get':
      return 'name';
    case 'resources/read':
      return 'uri';
    // The Tasks extension (io.modelcontextprotocol/tasks): SDK clients mirror params.taskId.
    case 'tasks/get':
    case 'tasks/update':
    case 'tasks/cancel':
      return 'taskId';
    default:
      return undefined;
  }
}

/** Methods whose 2026-07-28 requests must carry Mcp-Name. */
function requiresName(method: string): boolean {
  return method === 'tools/call' || method === 'prompts/get' || method === 'resources/read';
}

/**
 * Decodes an Mcp-Name or Mcp-Param-* value: `=?base64?…?=` is canonical Base64 of UTF-8,
 * anything else is the value itself. Throws mcp_header_invalid for characters HTTP does not
 * allow in a plain value, for a plain value with leading or trailing whitespace (a client
 * must encode those), and for encodings that are not canonical or not UTF-8 — readers could
 * decode those differently.
 */
export function decodeHeaderValue(raw: string, label: string, id?: JsonRpcId): string {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c > 0x7e) {
      throw invalid(
        `${label} has a character outside visible ASCII, space and tab; values like that are sent as =?base64?…?=.`,
        label,
        id,
      );
    }
  }
  if (raw.startsWith(SENTINEL_START) && raw.endsWith(SENTINEL_END)) {
    if (raw.length < SENTINEL_START.length + SENTINEL_END.length)
      throw invalid(`${label} is a truncated =?base64?…?= value.`, label, id);
    const b64 = raw.slice(SENTINEL_START.length, -SENTINEL_END.length);
    const bytes = CANONICAL_BASE64.test(b64) ? Buffer.from(b64, 'base64') : undefined;
    // Re-encoding catches non-zero padding bits, which lenient decoders drop and strict ones refuse.
    if (bytes === undefined || bytes.toString('base64') !== b64) {
      throw invalid(`${label} is not canonical Base64 (RFC 4648 alphabet, padded) inside =?base64?…?=.`, label, id);
    }
    try {
      return STRICT_UTF8.decode(bytes);
    } catch {
      throw invalid(`${label} decodes to bytes that are not UTF-8.`, label, id);
    }
  }
  const last = raw.length - 1;
  if (last >= 0 && (raw[0] === ' ' || raw[0] === '\t' || raw[last] === ' ' || raw[last] === '\t')) {
    throw invalid(`${label} has leading or trailing whitespace; such values are sent as =?base64?…?=.`, label, id);
  }
  return raw;
}

/**
 * The MCP view of a request without a body: from 2026-07-28 its Mcp-Method / Mcp-Name /
 * Mcp-Param-* headers are the call (an intermediary that routes on them sees the same);
 * before, headers alone are not trusted. Undefined: no call (the caller decides what that means).
 */
export function callFromHeaders(headers: HeaderMap): {
  protocolVersion: string | undefined;
  call: McpCall | undefined;
} {
  const version = protocolVersion(headers, undefined);
  const method = single(headers, 'mcp-method', 'Mcp-Method', undefined);
  const rawName = single(headers, 'mcp-name', 'Mcp-Name', undefined);
  if (method === undefined || version !== MODERN_PROTOCOL_VERSION) return { protocolVersion: version, call: undefined };
  const call: McpCall = { method, kind: 'request' };
  const source = nameSource(method);
  // completion/complete, resources/subscribe and resources/unsubscribe name their item only in
  // the body (no header mirrors params.ref, or their params.uri): without it they name nothing.
  const target = ITEM_METHODS.get(method);
  if (source === undefined && (target === 'ref' || target === 'uri')) {
    throw new RequestRejected(
      'missing_body',
      `The POST reached mcp-authz without a body: a ${method} request names its ${target === 'ref' ? 'prompt or resource in params.ref' : 'resource in params.uri'}, which no header carries. If the client sent a body, set with_request_body on Envoy's ext_authz filter so the authorizer sees it.`,
    );
  }
  if (rawName === undefined) {
    if (requiresName(method)) {
      throw mismatch(
        `Header mismatch: Mcp-Method "${method}" needs the Mcp-Name header (the params.${source} it calls) when the body is not sent.`,
        undefined,
        { header: 'Mcp-Name', headerValue: null },
      );
    }
  } else {
    if (source === undefined) throw nameNotDefined(method, undefined);
    const name = decodeHeaderValue(rawName, 'Mcp-Name');
    if (source === 'uri') call.uri = normalizeResourceUri(name);
    else if (source === 'name') call.name = name;
  }
  if (method === 'tools/call') {
    const params = headerParams(headers, false, undefined, undefined);
    if (params !== undefined) call.headerParams = params;
  }
  return { protocolVersion: version, call };
}

/**
 * Cross-checks the MCP headers with a parsed body (`messages`: the JSON-RPC message, or the
 * elements of a batch, with their calls) and returns the protocol version header. Sets
 * `headerParams` on a tools/call's call. Throws RequestRejected with the JSON-RPC error.
 */
export function checkHeadersWithBody(
  headers: HeaderMap,
  messages: readonly unknown[],
  calls: McpCall[],
  batch: boolean,
): string | undefined {
  const first = messages[0] as Record<string, unknown>;
  const id = !batch && (typeof first.id === 'string' || typeof first.id === 'number') ? first.id : undefined;
  const version = protocolVersion(headers, id);
  const method = single(headers, 'mcp-method', 'Mcp-Method', id);
  const rawName = single(headers, 'mcp-name', 'Mcp-Name', id);

  // Every message that declares its version in _meta must declare the header's.
  for (const m of messages) {
    const declared = metaVersion(m);
    if (declared !== undefined && declared !== version) {
      throw mismatch(
        version === undefined
          ? `Header mismatch: the body declares protocol version ${quote(declared)} in params._meta but the MCP-Protocol-Version header is missing.`
          : `Header mismatch: MCP-Protocol-Version header ${quote(version)} does not match the body's params._meta protocol version ${quote(declared)}.`,
        id,
        {
          header: 'MCP-Protocol-Version',
          headerValue: version ?? null,
          bodyField: `params._meta["${PROTOCOL_VERSION_META}"]`,
          bodyValue: clip(declared),
        },
      );
    }
  }

  const c = calls[0]!;
  if ((version ?? DEFAULT_PROTOCOL_VERSION) === MODERN_PROTOCOL_VERSION) {
    if (batch || c.kind === 'response') {
      throw mismatch(
        'Header mismatch: a 2026-07-28 POST carries one JSON-RPC request or notification, which its headers describe; not a batch or a response.',
        id,
        { header: 'Mcp-Method', headerValue: method ?? null },
      );
    }
    // The headers are required on requests; the revision defines none for notifications.
    if (c.kind === 'request') {
      if (method === undefined) throw missing('Mcp-Method', 'method', c.method, id);
      if (metaVersion(first) === undefined) {
        throw mismatch(
          `Header mismatch: a 2026-07-28 request declares its protocol version in params._meta["${PROTOCOL_VERSION_META}"] as well as in MCP-Protocol-Version.`,
          id,
          {
            header: 'MCP-Protocol-Version',
            headerValue: version,
            bodyField: `params._meta["${PROTOCOL_VERSION_META}"]`,
            bodyValue: null,
          },
        );
      }
      if (rawName === undefined && requiresName(c.method))
        throw missing('Mcp-Name', `params.${nameSource(c.method)}`, paramsOf(first)[nameSource(c.method)!], id);
    }
  }

  if (method !== undefined) {
    if (batch || c.kind === 'response') {
      throw mismatch(
        'Header mismatch: Mcp-Method is set but the body is not a single JSON-RPC request or notification.',
        id,
        { header: 'Mcp-Method', headerValue: clip(method) },
      );
    }
    if (c.method !== method) {
      throw mismatch(
        `Header mismatch: Mcp-Method header ${quote(method)} does not match the body's method ${quote(c.method)}.`,
        id,
        {
          header: 'Mcp-Method',
          headerValue: clip(method),
          bodyField: 'method',
          bodyValue: clip(c.method),
        },
      );
    }
  }
  if (rawName !== undefined) {
    if (method === undefined)
      throw mismatch('Header mismatch: Mcp-Name is set without Mcp-Method.', id, {
        header: 'Mcp-Method',
        headerValue: null,
      });
    const source = nameSource(c.method);
    if (source === undefined) throw nameNotDefined(c.method, id);
    const name = decodeHeaderValue(rawName, 'Mcp-Name', id);
    // Compared with the body's value as sent (before URI normalization): the server compares those.
    const bodyValue = paramsOf(first)[source];
    if (name !== bodyValue) {
      throw mismatch(
        `Header mismatch: Mcp-Name header ${quote(name)} does not match the body's params.${source} ${quote(bodyValue)}.`,
        id,
        {
          header: 'Mcp-Name',
          headerValue: clip(name),
          bodyField: `params.${source}`,
          bodyValue: typeof bodyValue === 'string' ? clip(bodyValue) : (bodyValue ?? null),
        },
      );
    }
  }
  if (!batch && c.method === 'tools/call') {
    const params = headerParams(headers, true, paramsOf(first).arguments, id);
    if (params !== undefined) c.headerParams = params;
  }
  return version;
}

/**
 * The Mcp-Param-{Name} headers of a tools/call, decoded, by lower-cased Name. Without the
 * tool's inputSchema the service cannot know which argument an `x-mcp-header` annotation
 * names, so (docs/mcp-protocol.md) a header is checked against the top-level argument whose
 * key equals Name ignoring ASCII case: a string must be equal, an integer numerically equal,
 * a boolean "true"/"false"; a mismatch is refused. A header with no such argument, or whose
 * argument is null, an object or an array, is forwarded unchecked and not shown to the
 * policy. Without a body (`withBody` false) the headers are all there is.
 */
function headerParams(
  headers: HeaderMap,
  withBody: boolean,
  args: unknown,
  id: JsonRpcId | undefined,
): Record<string, string> | undefined {
  const argObject =
    args !== null && typeof args === 'object' && !Array.isArray(args) ? (args as Record<string, unknown>) : undefined;
  let out: Record<string, string> | undefined;
  for (const name of Object.keys(headers)) {
    if (name.length <= PARAM_PREFIX.length || name.charCodeAt(0) !== 0x6d || !name.startsWith(PARAM_PREFIX)) continue;
    const key = name.slice(PARAM_PREFIX.length);
    const label = `Mcp-Param-${key}`;
    const raw = single(headers, name, label, id)!;
    const value = decodeHeaderValue(raw, label, id);
    if (!withBody) {
      (out ??= {})[key] = value;
      continue;
    }
    const argKey = argObject === undefined ? undefined : asciiCaseInsensitiveKey(argObject, key);
    if (argKey === undefined) continue;
    const bodyValue = argObject![argKey];
    if (bodyValue === null || typeof bodyValue === 'object') continue;
    const canonical = mirrored(bodyValue);
    if (canonical === undefined || !sameValue(value, bodyValue)) {
      throw mismatch(
        `Header mismatch: ${label} header ${quote(value)} does not match the body's params.arguments.${argKey} ${quote(bodyValue)}.`,
        id,
        {
          header: label,
          headerValue: clip(value),
          bodyField: `params.arguments.${argKey}`,
          bodyValue: typeof bodyValue === 'string' ? clip(bodyValue) : bodyValue,
        },
      );
    }
    (out ??= {})[key] = canonical;
  }
  return out;
}

/** How a client writes a body value in its header (string as-is, integer in decimal, boolean); undefined for values no header mirrors. */
function mirrored(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  return undefined;
}

function sameValue(headerValue: string, bodyValue: unknown): boolean {
  if (typeof bodyValue === 'number') return JSON_NUMBER.test(headerValue) && Number(headerValue) === bodyValue;
  return headerValue === mirrored(bodyValue);
}

/** The key of `o` equal to `lowerKey` when A–Z are lower-cased (and nothing else is folded). */
function asciiCaseInsensitiveKey(o: Record<string, unknown>, lowerKey: string): string | undefined {
  for (const k of Object.keys(o)) {
    if (k.length !== lowerKey.length) continue;
    let same = true;
    for (let i = 0; i < k.length && same; i++) {
      let c = k.charCodeAt(i);
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      same = c === lowerKey.charCodeAt(i);
    }
    if (same) return k;
  }
  return undefined;
}

/** The version header, when sent: a revision the service does not read is -32022. */
function protocolVersion(headers: HeaderMap, id: JsonRpcId | undefined): string | undefined {
  const v = single(headers, 'mcp-protocol-version', 'MCP-Protocol-Version', id);
  if (v !== undefined && !SUPPORTED.has(v)) {
    throw new RequestRejected(
      'unsupported_protocol_version',
      `Unsupported protocol version ${quote(v)}: this gateway reads MCP ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')}.`,
      {
        id,
        data: { supported: SUPPORTED_PROTOCOL_VERSIONS, requested: clip(v) },
      },
    );
  }
  return v;
}

/** A header that may appear at most once (HTTP/2 and Envoy's header_map keep repeats apart). */
function single(headers: HeaderMap, name: string, label: string, id: JsonRpcId | undefined): string | undefined {
  const values = headers[name];
  if (values !== undefined && values.length > 1)
    throw mismatch(`Header mismatch: ${label} may appear at most once.`, id, { header: label });
  return header(headers, name);
}

function metaVersion(message: unknown): string | undefined {
  const meta = paramsOf(message)._meta;
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta) || !Object.hasOwn(meta, PROTOCOL_VERSION_META))
    return undefined;
  const v = (meta as Record<string, unknown>)[PROTOCOL_VERSION_META];
  // A non-string can equal no header; JSON text of it shows what was sent.
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function paramsOf(message: unknown): Record<string, unknown> {
  if (message === null || typeof message !== 'object') return {};
  const p = (message as Record<string, unknown>).params;
  return p !== null && typeof p === 'object' && !Array.isArray(p) ? (p as Record<string, unknown>) : {};
}

function missing(label: string, bodyField: string, bodyValue: unknown, id: JsonRpcId | undefined): RequestRejected {
  return mismatch(`Header mismatch: a 2026-07-28 request carries the ${label} header (the body's ${bodyField}).`, id, {
    header: label,
    headerValue: null,
    bodyField,
    bodyValue: typeof bodyValue === 'string' ? clip(bodyValue) : (bodyValue ?? null),
  });
}

function nameNotDefined(method: string, id: JsonRpcId | undefined): RequestRejected {
  return mismatch(
    `Header mismatch: Mcp-Name is defined only for tools/call, prompts/get, resources/read (and the Tasks extension's tasks/*), not for ${quote(method)}.`,
    id,
    { header: 'Mcp-Name' },
  );
}

function mismatch(description: string, id: JsonRpcId | undefined, data: Record<string, unknown>): RequestRejected {
  return rejected('mcp_header_mismatch', description, id, data);
}

function invalid(description: string, label: string, id: JsonRpcId | undefined): RequestRejected {
  return rejected('mcp_header_invalid', `Header mismatch: ${description}`, id, { header: label });
}

function rejected(
  code: DenyCode,
  description: string,
  id: JsonRpcId | undefined,
  data: Record<string, unknown>,
): RequestRejected {
  return new RequestRejected(code, description, id === undefined ? { data } : { id, data });
}

function clip(s: string): string {
  return s.length > QUOTE_LIMIT ? `${s.slice(0, QUOTE_LIMIT)}…` : s;
}

function quote(v: unknown): string {
  return typeof v === 'string'
    ? JSON.stringify(clip(v))
    : v === undefined
      ? 'absent'
      : (JSON.stringify(v) ?? String(v));
}
