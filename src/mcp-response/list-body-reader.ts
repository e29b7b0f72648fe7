// Filters an `application/json` list response from its bytes in one pass: a single scan
// validates the JSON, checks every object's keys for exact and case-folded repeats, and
// notes where each listed item and its name (or URI) sit, so the body is never parsed
// whole nor turned into one string. Only the kept items and the message around the lists
// are parsed, and the answer is re-encoded from them exactly as filterJsonBody would.
//
// The scan only ever says yes to the plain case: ASCII keys without escapes, no `params`
// in a message, nothing filterJsonBody would refuse. Everything else — every body the
// reader of list-filter.ts refuses, and the unusual ones it accepts — goes to that reader,
// so what is refused, and why, stays exactly its answer (test/list-body-reader.test.ts
// reads generated bodies both ways).
import { isUtf8 } from 'node:buffer';
import {
  failure,
  filterJsonBody,
  looselyListed,
  MAX_RESPONSE_DEPTH,
  type FilterFailure,
  type FilterStats,
} from './list-filter.js';
import {
  LIST_SHAPES,
  type ListCalls,
  type ListedItem,
  type ListMethod,
  type RequestId,
  type VisibilityFor,
} from './list-methods.js';

export interface FilteredBytes {
  readonly ok: true;
  /** The body to send instead of the upstream's; undefined: the upstream's own bytes. */
  readonly body: Buffer | undefined;
  readonly changed: boolean;
  readonly stats: FilterStats;
}

/** Filters a list response body given as bytes: invalid UTF-8 is refused as the JSON reader refuses it. */
export function filterJsonBytes(
  bytes: Uint8Array,
  calls: ListCalls,
  visibleFor: VisibilityFor,
): FilteredBytes | FilterFailure {
  // Readers disagree on invalid UTF-8 (U+FFFD, an error): such a list is not shown.
  if (!isUtf8(bytes)) return failure('invalid_json', 'the body is not valid UTF-8');
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fast = readPlainList(buf, calls, visibleFor);
  if (fast !== undefined) return fast;
  const r = filterJsonBody(buf.toString('utf8'), calls, visibleFor);
  if (!r.ok) return r;
  return { ok: true, body: r.changed ? Buffer.from(r.body, 'utf8') : undefined, changed: r.changed, stats: r.stats };
}

// What a container is, for what the scan notes about it.
const enum Ctx {
  Other,
  Batch,
  Message,
  Result,
  List,
  Item,
}

const LIST_KEYS = ['tools', 'prompts', 'resources', 'resourceTemplates'] as const;
const LIST_FOLDS = new Map<string, string>(LIST_KEYS.map((k) => [k.toLowerCase(), k]));
const LIST_EXACT: ReadonlySet<string> = new Set(LIST_KEYS);
const MESSAGE_FOLDS = new Map<string, string>(
  ['jsonrpc', 'id', 'method', 'params', 'result', 'error'].map((k) => [k.toLowerCase(), k]),
);
const ITEM_KEYS = ['name', 'uri', 'uriTemplate'] as const;

interface ItemSpan {
  start: number;
  end: number;
  /** The string values of `name`, `uri`, `uriTemplate` (absent: missing or not a string). */
  keys: (string | undefined)[];
}

interface ListSpan {
  start: number;
  end: number;
  /** undefined when an element is not an object. */
  items: ItemSpan[] | undefined;
}

interface MessageScan {
  /** Index in the batch (0 for a single message). */
  index: number;
  idStart: number;
  idEnd: number;
  hasResult: boolean;
  hasError: boolean;
  /** The result is an object (its lists are noted below). */
  resultObject: boolean;
  /** The result has a member that folds to a list member. */
  listShaped: boolean;
  lists: Map<string, ListSpan>;
}

// The scan's stack, reused across calls (it is synchronous): per open container its kind,
// where its value started, its current key (for messages, results and items), and its keys
// for the repeat check (start, length and hash of the ASCII-folded bytes).
const ctxs = new Uint8Array(MAX_RESPONSE_DEPTH + 1);
const keyNames: string[] = [];
const firstKey = new Int32Array(MAX_RESPONSE_DEPTH + 1);
const bigObjects: (Map<number, number> | undefined)[] = [];
let keyStarts = new Int32Array(1024);
let keyLens = new Int32Array(1024);
let keyHashes = new Int32Array(1024);
const SMALL_OBJECT = 12;

/**
 * The filtered body when the bytes are the plain case; undefined when the general reader
 * must decide (anything unusual, and every body it would refuse).
 */
export function readPlainList(
  b: Buffer,
  calls: ListCalls,
  visibleFor: VisibilityFor,
): FilteredBytes | FilterFailure | undefined {
  const scan = scanBody(b);
  if (scan === undefined) return undefined;
  const { messages, batch } = scan;

  // The decisions of findListResponses, on the notes; any failure is left to it.
  const ids: RequestId[] = [];
  const targets: { message: MessageScan; method: ListMethod; list: ListSpan }[] = [];
  for (const m of messages) {
    if (m.idStart < 0) {
      if (m.hasResult && m.listShaped) return undefined;
      continue;
    }
    if (!m.hasResult && !m.hasError) continue;
    const id = JSON.parse(b.toString('utf8', m.idStart, m.idEnd)) as unknown;
    const method = typeof id === 'string' || typeof id === 'number' ? calls.get(id) : undefined;
    if (method === undefined) {
      if (looselyListed(id, calls) || (m.hasResult && m.listShaped)) return undefined;
      continue;
    }
    if (m.hasResult && m.hasError) return undefined;
    if (ids.includes(id as RequestId)) return undefined;
    ids.push(id as RequestId);
    if (!m.hasResult) continue;
    const { arrayKey } = LIST_SHAPES.get(method)!;
    const list = m.resultObject ? m.lists.get(arrayKey) : undefined;
    if (list?.items === undefined) return undefined;
    targets.push({ message: m, method, list });
  }
  const stats: FilterStats = { results: 0, shown: 0, hidden: 0 };
  if (targets.length === 0) return { ok: true, body: undefined, changed: false, stats };

  const items: ListedItem[] = [];
  for (const t of targets) {
    const k = ITEM_KEYS.indexOf(LIST_SHAPES.get(t.method)!.itemKey);
    for (const it of t.list.items!) {
      const key = it.keys[k];
      if (key === undefined) return undefined;
      items.push(new SpanItem(t.method, key, b, it.start, it.end));
    }
  }
  const visible = visibleFor(items);
  if (typeof visible !== 'function') return visible;

  // The message with each filtered list emptied, parsed; then the kept items, parsed.
  const cuts = targets.map((t) => t.list).sort((x, y) => x.start - y.start);
  let skeleton = '';
  let at = 0;
  for (const c of cuts) {
    skeleton += `${b.toString('utf8', at, c.start)}[]`;
    at = c.end;
  }
  skeleton += b.toString('utf8', at, b.length);
  const message = JSON.parse(skeleton) as unknown;
  let out = message;
  let next = 0;
  for (const t of targets) {
    const { arrayKey } = LIST_SHAPES.get(t.method)!;
    const response = (batch ? (message as unknown[])[t.message.index] : message) as Record<string, unknown>;
    const result = response.result as Record<string, unknown>;
    const listed = t.list.items!;
    let text = '[';
    let kept = 0;
    for (let i = 0; i < listed.length; i++) {
      const item = items[next + i]!;
      if (!visible({ method: item.method, key: item.key })) continue;
      if (kept++ > 0) text += ',';
      text += b.toString('utf8', listed[i]!.start, listed[i]!.end);
    }
    next += listed.length;
    const filtered: Record<string, unknown> = { ...result, [arrayKey]: JSON.parse(`${text}]`) };
    // MCP 2026-07-28 cacheable results: a per-caller list must not be served to another user.
    if ('ttlMs' in result || 'cacheScope' in result) filtered.cacheScope = 'private';
    const replaced = { ...response, result: filtered };
    if (batch) (message as unknown[])[t.message.index] = replaced;
    else out = replaced;
    stats.results++;
    stats.shown += kept;
    stats.hidden += listed.length - kept;
  }
  return { ok: true, body: Buffer.from(JSON.stringify(out), 'utf8'), changed: true, stats };
}

/** A listed item whose definition is parsed from its bytes only when asked (pins). */
class SpanItem implements ListedItem {
  private parsed: Record<string, unknown> | undefined;
  constructor(
    readonly method: ListMethod,
    readonly key: string,
    private readonly b: Buffer,
    private readonly start: number,
    private readonly end: number,
  ) {}
  get item(): Readonly<Record<string, unknown>> {
    this.parsed ??= JSON.parse(this.b.toString('utf8', this.start, this.end)) as Record<string, unknown>;
    return this.parsed;
  }
}

interface BodyScan {
  batch: boolean;
  messages: MessageScan[];
}

/** The notes on a plain body; undefined for anything else. */
function scanBody(b: Buffer): BodyScan | undefined {
  const n = b.length;
  let i = skipSpace(b, 0);
  if (i >= n) return undefined; // empty: the general reader passes it
  const top = b[i];
  if (top !== 0x7b && top !== 0x5b) return undefined; // a scalar body: the general reader decides
  const batch = top === 0x5b;
  const messages: MessageScan[] = [];
  let message: MessageScan | undefined;
  let list: ListSpan | undefined;
  let item: ItemSpan | undefined;
  let depth = 0;
  let keyTop = 0;
  let batchIndex = 0;
  // Expecting: a value; a key (or, right after '{', the close); ':'; ',' or the close.
  let state = VALUE;
  let fresh = false; // right after an open: the close may come at once

  for (;;) {
    i = skipSpace(b, i);
    if (i >= n) return depth === 0 && state === AFTER ? { batch, messages } : undefined;
    const c = b[i]!;
    if (state === AFTER || fresh) {
      if (state === AFTER && depth === 0) return undefined; // trailing bytes
      const obj = isObj[depth - 1] === 1;
      if (state === AFTER && c === 0x2c) {
        state = obj ? KEY : VALUE;
        i++;
        continue;
      }
      if (c === (obj ? 0x7d : 0x5d)) {
        fresh = false;
        depth--;
        keyTop = firstKey[depth]!;
        const kind = ctxs[depth]!;
        if (kind === Ctx.Item) {
          item!.end = i + 1;
          list!.items?.push(item!);
          item = undefined;
        } else if (kind === Ctx.List) {
          list!.end = i + 1;
          list = undefined;
        } else if (kind === Ctx.Message) message = undefined;
        i++;
        if (depth > 0) noteValue(depth - 1, valueStarts[depth]!, i);
        state = AFTER;
        continue;
      }
      if (state === AFTER) return undefined;
      fresh = false;
    }
    if (state === KEY) {
      if (c !== 0x22) return undefined;
      // An ASCII key without escapes, hashed as folded to lower case.
      let h = 0x811c9dc5 | 0;
      let j = i + 1;
      for (;;) {
        if (j >= n) return undefined;
        const k = b[j]!;
        if (k === 0x22) break;
        if (k === 0x5c || k < 0x20 || k >= 0x80) return undefined;
        h = Math.imul(h ^ (k >= 0x41 && k <= 0x5a ? k + 0x20 : k), 0x01000193);
        j++;
      }
      const start = i + 1;
      const level = depth - 1;
      if (!addKey(b, level, start, j - start, h, keyTop)) return undefined;
      keyTop++;
      const kind = ctxs[level]!;
      if (kind === Ctx.Message || kind === Ctx.Result || kind === Ctx.Item) {
        const key = b.toString('latin1', start, j);
        if (kind === Ctx.Message) {
          // A member in another spelling, and `params` (whose members have rules of their own), are the general reader's.
          const member = MESSAGE_FOLDS.get(key.toLowerCase());
          if ((member !== undefined && member !== key) || key === 'params') return undefined;
          if (key === 'result') message!.hasResult = true;
          else if (key === 'error') message!.hasError = true;
        } else if (kind === Ctx.Result) {
          const member = LIST_FOLDS.get(key.toLowerCase());
          if (member !== undefined) {
            if (member !== key) return undefined;
            message!.listShaped = true;
          }
        }
        keyNames[level] = key;
      }
      i = skipSpace(b, j + 1);
      if (b[i] !== 0x3a) return undefined;
      i++;
      state = VALUE;
      continue;
    }
    // A value.
    const parent = depth - 1;
    const parentKind = depth > 0 ? ctxs[parent]! : Ctx.Other;
    if (c === 0x7b || c === 0x5b) {
      if (depth >= MAX_RESPONSE_DEPTH) return undefined;
      const obj = c === 0x7b;
      let kind = Ctx.Other;
      if (depth === 0) kind = obj ? Ctx.Message : Ctx.Batch;
      else if (parentKind === Ctx.Batch) kind = obj ? Ctx.Message : Ctx.Other;
      else if (parentKind === Ctx.Message && keyNames[parent] === 'result') {
        if (obj) {
          kind = Ctx.Result;
          message!.resultObject = true;
        }
      } else if (parentKind === Ctx.Result && !obj && LIST_EXACT.has(keyNames[parent]!)) {
        kind = Ctx.List;
        list = { start: i, end: i, items: [] };
        message!.lists.set(keyNames[parent]!, list);
      } else if (parentKind === Ctx.List) {
        if (obj) {
          kind = Ctx.Item;
          item = { start: i, end: i, keys: [undefined, undefined, undefined] };
        } else list!.items = undefined;
      }
      if (kind === Ctx.Message) {
        message = {
          index: depth === 0 ? 0 : batchIndex,
          idStart: -1,
          idEnd: -1,
          hasResult: false,
          hasError: false,
          resultObject: false,
          listShaped: false,
          lists: new Map(),
        };
        messages.push(message);
      }
      if (parentKind === Ctx.Batch) batchIndex++;
      ctxs[depth] = kind;
      isObj[depth] = obj ? 1 : 0;
      firstKey[depth] = keyTop;
      bigObjects[depth] = undefined;
      valueStarts[depth] = i;
      depth++;
      i++;
      state = obj ? KEY : VALUE;
      fresh = true;
      continue;
    }
    const start = i;
    if (c === 0x22) {
      i = skipString(b, i);
      if (i < 0) return undefined;
      if (parentKind === Ctx.Item) {
        const k = ITEM_KEYS.indexOf(keyNames[parent] as (typeof ITEM_KEYS)[number]);
        if (k >= 0) item!.keys[k] = stringValue(b, start, i);
      }
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      i = skipNumber(b, i);
      if (i < 0) return undefined;
    } else if (c === 0x74) {
      if (b[i + 1] !== 0x72 || b[i + 2] !== 0x75 || b[i + 3] !== 0x65) return undefined;
      i += 4;
    } else if (c === 0x66) {
      if (b[i + 1] !== 0x61 || b[i + 2] !== 0x6c || b[i + 3] !== 0x73 || b[i + 4] !== 0x65) return undefined;
      i += 5;
    } else if (c === 0x6e) {
      if (b[i + 1] !== 0x75 || b[i + 2] !== 0x6c || b[i + 3] !== 0x6c) return undefined;
      i += 4;
    } else return undefined;
    if (parentKind === Ctx.Batch) batchIndex++;
    else if (parentKind === Ctx.List) list!.items = undefined;
    noteValue(parent, start, i);
    state = AFTER;
  }

  /** A value of the container at `level` spans [start, end): a message's id is noted. */
  function noteValue(level: number, start: number, end: number): void {
    if (ctxs[level] === Ctx.Message && keyNames[level] === 'id') {
      const m = messages[messages.length - 1]!;
      m.idStart = start;
      m.idEnd = end;
    }
  }
}

const VALUE = 0;
const KEY = 1;
const AFTER = 2;
const isObj = new Uint8Array(MAX_RESPONSE_DEPTH + 1);
const valueStarts = new Int32Array(MAX_RESPONSE_DEPTH + 1);

/** Adds a key to the object at `level`; false when it equals an earlier one, exactly or folded (or the check is unsure). */
function addKey(b: Buffer, level: number, start: number, len: number, h: number, keyTop: number): boolean {
  const first = firstKey[level]!;
  const big = bigObjects[level];
  if (big !== undefined) {
    // A hash seen before: a repeat, or two keys the scan leaves to the general reader.
    if (big.has(h)) return false;
    big.set(h, keyTop);
  } else {
    for (let k = first; k < keyTop; k++) {
      if (keyHashes[k] === h && keyLens[k] === len && foldedEqual(b, keyStarts[k]!, start, len)) return false;
    }
    if (keyTop - first >= SMALL_OBJECT) {
      const map = new Map<number, number>();
      for (let k = first; k < keyTop; k++) {
        if (map.has(keyHashes[k]!)) return false;
        map.set(keyHashes[k]!, k);
      }
      if (map.has(h)) return false;
      map.set(h, keyTop);
      bigObjects[level] = map;
    }
  }
  if (keyTop >= keyStarts.length) {
    const grow = (a: Int32Array) => {
      const g = new Int32Array(a.length * 2);
      g.set(a);
      return g;
    };
    keyStarts = grow(keyStarts);
    keyLens = grow(keyLens);
    keyHashes = grow(keyHashes);
  }
  keyStarts[keyTop] = start;
  keyLens[keyTop] = len;
  keyHashes[keyTop] = h;
  return true;
}

function foldedEqual(b: Buffer, x: number, y: number, len: number): boolean {
  for (let k = 0; k < len; k++) {
    let p = b[x + k]!;
    let q = b[y + k]!;
    if (p >= 0x41 && p <= 0x5a) p += 0x20;
    if (q >= 0x41 && q <= 0x5a) q += 0x20;
    if (p !== q) return false;
  }
  return true;
}

function skipSpace(b: Buffer, i: number): number {
  const n = b.length;
  while (i < n) {
    const c = b[i]!;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** The end (past the closing quote) of the string at `i`; -1 for anything JSON.parse refuses or the scan leaves (lone surrogates). */
function skipString(b: Buffer, i: number): number {
  const n = b.length;
  let j = i + 1;
  while (j < n) {
    const c = b[j]!;
    if (c === 0x22) return j + 1;
    if (c < 0x20) return -1;
    if (c !== 0x5c) {
      j++;
      continue;
    }
    const e = b[j + 1];
    if (e === 0x75) {
      const unit = hex4(b, j + 2);
      if (unit < 0) return -1;
      if (unit >= 0xd800 && unit <= 0xdfff) {
        if (unit > 0xdbff || b[j + 6] !== 0x5c || b[j + 7] !== 0x75) return -1;
        const low = hex4(b, j + 8);
        if (low < 0xdc00 || low > 0xdfff) return -1;
        j += 12;
      } else j += 6;
    } else if (
      e === 0x22 ||
      e === 0x5c ||
      e === 0x2f ||
      e === 0x62 ||
      e === 0x66 ||
      e === 0x6e ||
      e === 0x72 ||
      e === 0x74
    ) {
      j += 2;
    } else return -1;
  }
  return -1;
}

/** The end of the number at `i` (JSON's grammar); -1 when it is not one. */
function skipNumber(b: Buffer, i: number): number {
  const n = b.length;
  if (b[i] === 0x2d) i++;
  if (i >= n) return -1;
  if (b[i] === 0x30) i++;
  else if (b[i]! >= 0x31 && b[i]! <= 0x39) while (i < n && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
  else return -1;
  if (b[i] === 0x2e) {
    i++;
    const d = i;
    while (i < n && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
    if (i === d) return -1;
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    const d = i;
    while (i < n && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
    if (i === d) return -1;
  }
  return i;
}

/** The string at [start, end) (quotes included), as JSON reads it. */
function stringValue(b: Buffer, start: number, end: number): string {
  let ascii = true;
  for (let k = start + 1; k < end - 1; k++) {
    const c = b[k]!;
    if (c === 0x5c) return JSON.parse(b.toString('utf8', start, end)) as string;
    if (c >= 0x80) ascii = false;
  }
  return b.toString(ascii ? 'latin1' : 'utf8', start + 1, end - 1);
}

function hex4(b: Buffer, at: number): number {
  let v = 0;
  for (let k = at; k < at + 4; k++) {
    const h = b[k];
    if (h === undefined) return -1;
    const d =
      h >= 0x30 && h <= 0x39 ? h - 0x30 : h >= 0x61 && h <= 0x66 ? h - 0x57 : h >= 0x41 && h <= 0x46 ? h - 0x37 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}
