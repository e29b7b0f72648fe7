// The MCP JSON-RPC view of a request: what is being called, read from the body and
// cross-checked with the MCP request headers (src/request/mcp-headers.ts).
import type { DenyCode } from '../contracts/codes.js';
import { RequestRejected } from '../contracts/request-rejected.js';
import { ITEM_METHODS, type HeaderMap, type McpCall, type McpRef, type McpView } from '../contracts/request.js';
import { scanJson, type JsonFinding } from './json-body-scan.js';
import { callFromHeaders, checkHeadersWithBody } from './mcp-headers.js';
import { normalizeResourceTemplate, normalizeResourceUri } from './normalize-resource-uri.js';

/** Default of `limits.maxJsonDepth`: objects and arrays nested deeper are refused. */
export const DEFAULT_MAX_JSON_DEPTH = 64;

const NO_MCP: McpView = Object.freeze({
  present: false,
  batch: false,
  protocolVersion: undefined,
  calls: [],
  source: 'none',
}) as McpView;

export interface ParsedBody {
  view: McpView;
  /** The parsed JSON, for the opa-envoy-plugin compatible `parsed_body` input. */
  json: unknown;
}

/**
 * Builds the MCP view from the body (when there is one) and the MCP headers.
 * Throws RequestRejected (400) for bodies that are not JSON-RPC, that JSON readers could
 * read differently (docs/json-bodies.md), or whose MCP headers disagree with them or name a
 * protocol revision the service does not read (docs/mcp-protocol.md).
 */
export function parseMcp(
  body: string,
  hasBody: boolean,
  headers: HeaderMap,
  maxJsonDepth = DEFAULT_MAX_JSON_DEPTH,
): ParsedBody {
  if (!hasBody || body.length === 0) {
    const { protocolVersion, call } = callFromHeaders(headers);
    if (call !== undefined)
      return {
        view: { present: true, batch: false, protocolVersion, calls: [call], source: 'headers' },
        json: undefined,
      };
    return { view: protocolVersion === undefined ? NO_MCP : { ...NO_MCP, protocolVersion }, json: undefined };
  }

  // The JSON checks in their documented order (body-integrity.ts BODY_CHECK_ORDER): nesting
  // past the bound is refused before JSON.parse spends time on it, then text that does not
  // parse, then what the scan found that readers would read differently.
  const finding = scanJson(body, maxJsonDepth);
  if (finding?.code === 'json_too_deep') throw refusal(finding, maxJsonDepth);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    throw bad(
      'invalid_json',
      `The request body is not valid JSON (${(err as Error).message}); MCP requests are JSON-RPC 2.0 objects or arrays.`,
    );
  }
  if (finding !== undefined) throw refusal(finding, maxJsonDepth);

  const batch = Array.isArray(json);
  const elements = batch ? (json as unknown[]) : [json];
  if (batch && elements.length === 0) throw bad('invalid_jsonrpc', 'An empty JSON-RPC batch is not a valid request.');
  const calls = elements.map((e, i) => toCall(e, batch ? i : undefined));
  const protocolVersion = checkHeadersWithBody(headers, elements, calls, batch);
  return { view: { present: true, batch, protocolVersion, calls, source: 'body' }, json };
}

function toCall(e: unknown, index: number | undefined): McpCall {
  const where = index === undefined ? 'The request body' : `Batch element ${index}`;
  if (e === null || typeof e !== 'object' || Array.isArray(e)) {
    throw bad('invalid_jsonrpc', `${where} is not a JSON-RPC object.`);
  }
  const o = e as Record<string, unknown>;
  if (o.jsonrpc !== '2.0') throw bad('invalid_jsonrpc', `${where} lacks "jsonrpc": "2.0".`);
  // Go reads a null id, result or error as absent, JavaScript and Python as present: the
  // kind of message would differ, so only values every reader sees alike are accepted.
  const hasId = Object.hasOwn(o, 'id');
  if (hasId && typeof o.id !== 'string' && typeof o.id !== 'number') {
    throw bad('invalid_jsonrpc', `${where} has an "id" that is not a string or a number.`);
  }
  // The response is matched to the request by its id: an id a server echoes as another value
  // (1e400 → null in JavaScript, Infinity in Python; past 2^53 rounded by JavaScript alone)
  // could not be matched, and a list answered under it could not be filtered.
  if (typeof o.id === 'number' && !echoedAlike(o.id)) {
    throw bad(
      'invalid_request_id',
      `${where} has a numeric "id" that servers would echo as another value (${Number.isFinite(o.id) ? 'an integer beyond ±(2^53−1): JavaScript rounds it, Python keeps it' : 'beyond the range of a 64-bit float: JavaScript echoes null, Python Infinity'}); use a string, or an integer within ±(2^53−1).`,
    );
  }
  const hasResult = Object.hasOwn(o, 'result');
  const hasError = Object.hasOwn(o, 'error');
  if ((hasResult && o.result === null) || (hasError && o.error === null)) {
    throw bad('invalid_jsonrpc', `${where} has a null "result" or "error".`);
  }
  if (!Object.hasOwn(o, 'method')) {
    if (hasResult === hasError)
      throw bad('invalid_jsonrpc', `${where} has neither "method" nor exactly one of "result"/"error".`);
    if (!hasId) throw bad('invalid_jsonrpc', `${where} is a response without an "id".`);
    return { method: '', kind: 'response' };
  }
  if (typeof o.method !== 'string' || o.method.length === 0) {
    throw bad('invalid_jsonrpc', `${where} has a "method" that is not a non-empty string.`);
  }
  if (hasResult || hasError)
    throw bad(
      'invalid_jsonrpc',
      `${where} has both "method" and "result"/"error": it is neither a request nor a response.`,
    );
  const call: McpCall = { method: o.method, kind: hasId ? 'request' : 'notification' };
  const params = o.params;
  if (params !== undefined && (params === null || typeof params !== 'object' || Array.isArray(params))) {
    throw bad('invalid_jsonrpc', `${where} has "params" that is not an object.`);
  }
  const p = (params ?? {}) as Record<string, unknown>;
  if (typeof p.name === 'string') call.name = p.name;
  // A resource URI is normalized before any grant sees it; other methods' uri is not a target.
  if (typeof p.uri === 'string' && call.method.startsWith('resources/')) call.uri = normalizeResourceUri(p.uri);
  const target = ITEM_METHODS.get(call.method);
  if (target === 'ref') call.ref = refOf(p.ref, where);
  else if (target === 'resourceSubscriptions') {
    const subscriptions = subscriptionsOf(p.notifications, where);
    if (subscriptions !== undefined) call.resourceSubscriptions = subscriptions;
  } else if (target === undefined && (Object.hasOwn(p, 'name') || Object.hasOwn(p, 'uri') || Object.hasOwn(p, 'ref'))) {
    // What a method the service does not know names, it cannot tell: the policy is told so.
    call.unknownTarget = true;
  }
  if (
    (call.method === 'tools/call' || call.method === 'prompts/get') &&
    p.arguments !== undefined &&
    p.arguments !== null
  ) {
    call.arguments = argumentsOf(p.arguments, where, call.method);
  }
  // A tool, prompt or resource call whose target is missing or not a string must not pass unnamed.
  if (target === 'name' && call.name === undefined) {
    throw bad('invalid_jsonrpc', `${where}: ${call.method} needs a string params.name.`);
  }
  if (target === 'uri' && call.uri === undefined) {
    throw bad('invalid_jsonrpc', `${where}: ${call.method} needs a string params.uri.`);
  }
  return call;
}

/**
 * params.ref of completion/complete: the prompt (by name) or the resource (by URI or URI
 * template) whose argument is completed. A completion is a call on that item, so a ref the
 * service cannot name an item from is refused, not passed unnamed.
 */
function refOf(ref: unknown, where: string): McpRef {
  const r =
    ref !== null && typeof ref === 'object' && !Array.isArray(ref) ? (ref as Record<string, unknown>) : undefined;
  if (r?.type === 'ref/prompt' && typeof r.name === 'string') return { type: 'ref/prompt', name: r.name };
  if (r?.type === 'ref/resource' && typeof r.uri === 'string')
    return { type: 'ref/resource', uri: normalizeResourceTemplate(r.uri) };
  throw bad(
    'invalid_jsonrpc',
    `${where}: completion/complete needs params.ref {"type": "ref/prompt", "name": <string>} or {"type": "ref/resource", "uri": <string>}; it names the item whose argument is completed, and no other kind of ref can be authorized.`,
  );
}

/** params.notifications.resourceSubscriptions of subscriptions/listen: each URI subscribed to is a read of it. */
function subscriptionsOf(notifications: unknown, where: string): string[] | undefined {
  if (notifications === undefined) return undefined;
  if (notifications === null || typeof notifications !== 'object' || Array.isArray(notifications)) {
    throw bad('invalid_jsonrpc', `${where}: params.notifications of subscriptions/listen must be an object.`);
  }
  const uris = (notifications as Record<string, unknown>).resourceSubscriptions;
  if (uris === undefined) return undefined;
  if (!Array.isArray(uris) || !uris.every((u) => typeof u === 'string')) {
    throw bad(
      'invalid_jsonrpc',
      `${where}: params.notifications.resourceSubscriptions of subscriptions/listen must be an array of resource URIs.`,
    );
  }
  return uris.map((u: string) => normalizeResourceUri(u));
}

/**
 * params.arguments as the policy sees it. Null reads as no arguments (Go and Python read it
 * so; the TypeScript SDK refuses it). JSON.parse reads a number beyond float64 as Infinity,
 * which the policy input would carry as null while Python reads inf and Go refuses the body.
 */
function argumentsOf(a: unknown, where: string, method: string): Record<string, unknown> {
  if (typeof a !== 'object' || Array.isArray(a)) {
    throw bad(
      'invalid_arguments',
      `${where}: params.arguments of ${method} must be an object of argument name → value.`,
    );
  }
  if (!finiteNumbers(a)) {
    throw bad(
      'invalid_arguments',
      `${where}: params.arguments of ${method} holds a number too large for a 64-bit float; JSON readers disagree on what it is.`,
    );
  }
  return a as Record<string, unknown>;
}

// Depth is bounded by limits.maxJsonDepth: the body scan refused deeper nesting before JSON.parse.
function finiteNumbers(v: unknown): boolean {
  if (typeof v === 'number') return Number.isFinite(v);
  if (v === null || typeof v !== 'object') return true;
  if (Array.isArray(v)) {
    for (const x of v) if (!finiteNumbers(x)) return false;
    return true;
  }
  for (const k in v) if (!finiteNumbers((v as Record<string, unknown>)[k])) return false;
  return true;
}

/** A numeric id every reader holds as the same number, and so echoes in a form that reads back as it. */
function echoedAlike(id: number): boolean {
  return Number.isFinite(id) && (!Number.isInteger(id) || Number.isSafeInteger(id));
}

function refusal(f: JsonFinding, maxJsonDepth: number): RequestRejected {
  const at = f.path === '' ? '' : ` at ${f.path}`;
  switch (f.code) {
    case 'json_too_deep':
      return bad(
        f.code,
        `The request body nests objects and arrays deeper than ${maxJsonDepth} levels (limits.maxJsonDepth).`,
      );
    case 'lone_surrogate':
      return bad(
        f.code,
        `The request body has a string or key${at} with an unpaired UTF-16 surrogate escape (such as "\\ud800"); JSON readers disagree on what it means (Go reads U+FFFD). Send well-formed Unicode.`,
      );
    case 'duplicate_json_key':
      return bad(
        f.code,
        `The request body repeats the key ${f.path}; duplicate keys are refused because readers may disagree on which one counts.`,
      );
    case 'ambiguous_json_key':
      return bad(
        f.code,
        f.member !== undefined
          ? `The request body's key ${f.path} is read as "${f.member}" by case-insensitive JSON readers (Go's encoding/json) but not by others; spell JSON-RPC and MCP members exactly.`
          : `The request body's key ${f.path} and the key ${JSON.stringify(shorten(f.sibling ?? ''))} before it in the same object are one key to case-insensitive JSON readers (Go's encoding/json) and two to others; keys of an object must differ by more than case.`,
      );
  }
}

function shorten(key: string): string {
  return key.length > 64 ? `${key.slice(0, 64)}…` : key;
}

function bad(code: DenyCode, description: string): RequestRejected {
  return new RequestRejected(code, description);
}
