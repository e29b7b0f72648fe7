// Filters the results of MCP list calls (tools/list, prompts/list, resources/list,
// resources/templates/list) in a JSON-RPC response so a caller sees only the items it may
// use. Pure: the visibility decision comes in as a function, the bytes come in as text.
//
// Fail closed: anything two JSON readers could read differently (invalid JSON, duplicate
// keys, keys equal under Go's case-insensitive field matching, an `id` that matches only
// as a string) and any list result of an unexpected shape is a failure, which the caller
// turns into a JSON-RPC error instead of passing the upstream's bytes through.
import type { WithheldReason } from '../contracts/codes.js';
import { scanJson } from '../request/json-body-scan.js';
import { foldKey } from '../request/json-key-fold.js';
import {
  LIST_SHAPES,
  type FilterFailure,
  type ListCalls,
  type ListedItem,
  type ListMethod,
  type RequestId,
  type VisibilityFor,
} from './list-methods.js';

/** Why a list cannot be shown: the catalogue's withheld reasons (src/contracts/codes.ts). */
export type FilterFailureCode = WithheldReason;

export type { FilterFailure };

export interface FilterStats {
  /** List results filtered. */
  results: number;
  /** Items left in them. */
  shown: number;
  /** Items removed. */
  hidden: number;
}

export interface FilteredMessage {
  readonly ok: true;
  /** The message with every list result filtered; the same object when nothing was a listed call's result. */
  readonly message: unknown;
  /** Whether any list result was filtered (and the message must be re-encoded). */
  readonly changed: boolean;
  readonly stats: FilterStats;
}

export interface FilteredBody {
  readonly ok: true;
  /** The body to send: the upstream's own bytes when it held no list result. */
  readonly body: string;
  readonly changed: boolean;
  readonly stats: FilterStats;
}

/** Set on every HTTP response whose body carries a filtered list: shared caches must not give it to another caller. */
export const PRIVATE_CACHE_HEADER = Object.freeze({ name: 'cache-control', value: 'private' });

/** JSON-RPC "Internal error": the server side could not produce an answer it may show. */
export const WITHHELD_LIST_ERROR_CODE = -32603;

/** Tool input schemas nest; a list response deeper than this is not one any client needs. */
export const MAX_RESPONSE_DEPTH = 256;

export function failure(code: FilterFailureCode, detail: string): FilterFailure {
  return { ok: false, code, detail };
}

/**
 * Parses a body or an SSE event's data as JSON-RPC: strict JSON, no duplicate keys, and
 * the top-level members of every message spelled exactly as JSON-RPC spells them.
 */
export function parseJsonRpc(text: string): { ok: true; value: unknown } | FilterFailure {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return failure('invalid_json', `not JSON: ${(err as Error).message}`);
  }
  // The request side's reader rules: exact or case-folded duplicate keys anywhere, JSON-RPC
  // members in another spelling, lone surrogates, runaway nesting.
  const found = scanJson(text, MAX_RESPONSE_DEPTH);
  if (found !== undefined) {
    switch (found.code) {
      case 'duplicate_json_key':
        return failure('duplicate_json_key', `the key at ${found.path} is repeated`);
      case 'ambiguous_json_key':
        return found.member !== undefined
          ? failure(
              'ambiguous_member',
              `the member at ${found.path} would be read as "${found.member}" by case-insensitive readers`,
            )
          : failure(
              'duplicate_json_key',
              `the key at ${found.path} equals an earlier one under case-insensitive matching`,
            );
      case 'lone_surrogate':
        return failure('invalid_json', `a string at ${found.path || 'the top level'} has an unpaired surrogate escape`);
      case 'json_too_deep':
        return failure('invalid_json', `nested deeper than ${MAX_RESPONSE_DEPTH} levels`);
    }
  }
  return { ok: true, value };
}

/** A response to a listed call that carries a result. */
export interface ListResponse {
  /** The response object inside the message. */
  response: Record<string, unknown>;
  method: ListMethod;
}

export interface ListResponses {
  /** The responses carrying a result, to filter. */
  readonly targets: ListResponse[];
  /** Every listed call this message answers (with a result or an error). */
  readonly ids: RequestId[];
}

/**
 * The responses in a parsed message that answer listed calls. `answered` holds the ids
 * already answered earlier on the same HTTP response: a second answer is a failure.
 */
export function findListResponses(
  message: unknown,
  calls: ListCalls,
  answered: ReadonlySet<RequestId>,
): ListResponses | FilterFailure {
  const targets: ListResponse[] = [];
  const ids: RequestId[] = [];
  for (const element of Array.isArray(message) ? message : [message]) {
    if (!isObject(element)) continue;
    if (!('id' in element)) {
      if ('result' in element && isListShaped(element.result))
        return failure('unmatched_response', 'a list result without an id');
      continue;
    }
    const isResponse = 'result' in element || 'error' in element;
    if (!isResponse) continue;
    const id = element.id;
    const method = typeof id === 'string' || typeof id === 'number' ? calls.get(id) : undefined;
    if (method === undefined) {
      if (looselyListed(id, calls)) {
        return failure(
          'ambiguous_response',
          `the response id ${JSON.stringify(id)} equals a listed call's id only as text`,
        );
      }
      // A list the service cannot match to a list call it saw could not be filtered: an id a
      // server echoed as another value (1e400 → null), or a list on a stream that asked none.
      if ('result' in element && isListShaped(element.result)) {
        return failure(
          'unmatched_response',
          `a list result answers ${JSON.stringify(id)}, which is no list call of the request`,
        );
      }
      continue;
    }
    if ('result' in element && 'error' in element) {
      return failure('ambiguous_response', `the response to ${JSON.stringify(id)} has both a result and an error`);
    }
    if (answered.has(id as RequestId) || ids.includes(id as RequestId)) {
      return failure('ambiguous_response', `the call ${JSON.stringify(id)} is answered twice`);
    }
    ids.push(id as RequestId);
    if ('result' in element) targets.push({ response: element, method });
  }
  return { targets, ids };
}

/** The result members that hold a list's items, as Go's case-insensitive matching reads them. */
const LIST_ARRAY_KEYS: ReadonlySet<string> = new Set([...LIST_SHAPES.values()].map((s) => foldKey(s.arrayKey)));

/** A result any reader could take for a list: an object with `tools`, `prompts`, `resources` or `resourceTemplates`, in any case. */
export function isListShaped(result: unknown): boolean {
  if (!isObject(result)) return false;
  for (const key of Object.keys(result)) if (LIST_ARRAY_KEYS.has(foldKey(key))) return true;
  return false;
}

/** Whether a parsed message carries a list result, under any spelling of `result`. */
export function carriesListResult(message: unknown): boolean {
  for (const element of Array.isArray(message) ? message : [message]) {
    if (!isObject(element)) continue;
    for (const key of Object.keys(element)) {
      if (foldKey(key) === 'result' && isListShaped(element[key])) return true;
    }
  }
  return false;
}

/** Whether a parsed message answers a listed call, in any way a reader could take it. */
export function mentionsListedCall(message: unknown, calls: ListCalls): boolean {
  for (const element of Array.isArray(message) ? message : [message]) {
    if (!isObject(element)) continue;
    for (const key of Object.keys(element)) {
      if (foldKey(key) === 'id' && looselyListed(element[key], calls)) return true;
    }
  }
  return false;
}

/** The items of the listed results, in order, for one visibility decision. */
export function listedItems(targets: readonly ListResponse[]): ListedItem[] | FilterFailure {
  const items: ListedItem[] = [];
  for (const t of targets) {
    const list = itemsArray(t);
    if (!Array.isArray(list)) return list;
    const { itemKey } = LIST_SHAPES.get(t.method)!;
    for (let i = 0; i < list.length; i++) {
      const item = list[i];
      const key = isObject(item) ? item[itemKey] : undefined;
      if (typeof key !== 'string') {
        return failure('malformed_list_result', `${t.method} item ${i} has no string "${itemKey}"`);
      }
      items.push({ method: t.method, key, item: item as Record<string, unknown> });
    }
  }
  return items;
}

/**
 * Filters every list result a message carries for the listed calls. The message is the value
 * parseJsonRpc returned, so no object in it repeats a key, exactly or case-folded. It is not
 * modified: filtered responses are copies. The ids it answers are added to `answered` only
 * when it could be filtered.
 */
export function filterMessage(
  message: unknown,
  calls: ListCalls,
  visibleFor: VisibilityFor,
  answered: Set<RequestId> = new Set(),
): FilteredMessage | FilterFailure {
  const found = findListResponses(message, calls, answered);
  if (!('targets' in found)) return found;
  const { targets, ids } = found;
  const stats: FilterStats = { results: 0, shown: 0, hidden: 0 };
  if (targets.length === 0) {
    for (const id of ids) answered.add(id);
    return { ok: true, message, changed: false, stats };
  }

  const items = listedItems(targets);
  if (!Array.isArray(items)) return items;
  const visible = visibleFor(items);
  if (typeof visible !== 'function') return visible;

  const replaced = new Map<Record<string, unknown>, Record<string, unknown>>();
  for (const t of targets) {
    const { arrayKey, itemKey } = LIST_SHAPES.get(t.method)!;
    const result = t.response.result as Record<string, unknown>;
    const list = result[arrayKey] as Record<string, unknown>[];
    const kept = list.filter((item) => visible({ method: t.method, key: item[itemKey] as string }));
    const filtered: Record<string, unknown> = { ...result, [arrayKey]: kept };
    // MCP 2026-07-28 cacheable results: a per-caller list must not be served to another user.
    if ('ttlMs' in result || 'cacheScope' in result) filtered.cacheScope = 'private';
    replaced.set(t.response, { ...t.response, result: filtered });
    stats.results++;
    stats.shown += kept.length;
    stats.hidden += list.length - kept.length;
  }
  for (const id of ids) answered.add(id);
  const out = Array.isArray(message)
    ? message.map((e) => replaced.get(e as Record<string, unknown>) ?? e)
    : replaced.get(message as Record<string, unknown>)!;
  return { ok: true, message: out, changed: true, stats };
}

/** Filters an `application/json` response body (one JSON-RPC message or a batch). An empty body passes. */
export function filterJsonBody(
  body: string,
  calls: ListCalls,
  visibleFor: VisibilityFor,
): FilteredBody | FilterFailure {
  if (body.trim() === '') return { ok: true, body, changed: false, stats: { results: 0, shown: 0, hidden: 0 } };
  const parsed = parseJsonRpc(body);
  if (!parsed.ok) return parsed;
  const filtered = filterMessage(parsed.value, calls, visibleFor);
  if (!filtered.ok) return filtered;
  return {
    ok: true,
    body: filtered.changed ? JSON.stringify(filtered.message) : body,
    changed: filtered.changed,
    stats: filtered.stats,
  };
}

/**
 * The JSON-RPC answer that replaces a list response which could not be filtered: an
 * error for each listed call, as one message or (for a batch request) an array.
 */
export function withheldListResponse(
  calls: ListCalls,
  why: FilterFailure,
  opts: { batch: boolean },
): unknown[] | Record<string, unknown> {
  const errors = [...calls.keys()].map((id) => ({
    jsonrpc: '2.0',
    id,
    error: {
      code: WITHHELD_LIST_ERROR_CODE,
      message: 'The list result was withheld: it could not be filtered for this caller.',
      data: { reason: why.code },
    },
  }));
  return opts.batch || errors.length !== 1 ? errors : errors[0]!;
}

function itemsArray(t: ListResponse): unknown[] | FilterFailure {
  const { arrayKey } = LIST_SHAPES.get(t.method)!;
  const result = t.response.result;
  if (!isObject(result)) return failure('malformed_list_result', `the result of ${t.method} is not an object`);
  const list = result[arrayKey];
  if (!Array.isArray(list))
    return failure('malformed_list_result', `the result of ${t.method} has no "${arrayKey}" array`);
  return list;
}

/** Whether `id` names one of the list calls under a lenient reading (a string for a number, spaces around it). */
export function looselyListed(id: unknown, calls: ListCalls): boolean {
  if (typeof id !== 'string' && typeof id !== 'number') return false;
  const text = String(id).trim();
  if (text === '') return false;
  for (const listed of calls.keys()) {
    if (listed === id || String(listed) === text || Number(listed) === Number(text)) return true;
  }
  return false;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
