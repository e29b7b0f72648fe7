// What JSON.parse accepts but mainstream JSON readers do not all read alike, found in one
// pass over the text before it is parsed (docs/json-bodies.md has the rules and why):
//   - nesting deeper than the configured bound (refused before any parser spends time on it);
//   - two keys of one object that are equal, or equal under Go's case-insensitive matching
//     (JavaScript and Python keep the last exact spelling, Go fills one field from either);
//   - in a JSON-RPC message, its `params`, `params.ref` and `params.notifications`, a key that Go reads as one of the
//     members the decision depends on but that is not spelled exactly ("Method", "paramſ");
//   - escaped lone surrogates ("\ud800"): Go reads U+FFFD, JavaScript and Python the surrogate.
// Of several findings the one answered is the first in the documented order of body checks
// (body-integrity.ts BODY_CHECK_ORDER), wherever each sits in the text: nesting past the bound
// ends the scan at once; the others let it go on in case a finding ranked before them follows.
import { bodyCheckRank } from './body-integrity.js';
import { foldKey } from './json-key-fold.js';

export type JsonFindingCode = 'json_too_deep' | 'duplicate_json_key' | 'ambiguous_json_key' | 'lone_surrogate';

export interface JsonFinding {
  code: JsonFindingCode;
  /** Where in the document: `params.Name`, `[1].params`; "" for the top level. */
  path: string;
  /** The key concerned (duplicate or ambiguous keys). */
  key?: string;
  /** The earlier key of the same object it collides with. */
  sibling?: string;
  /** The member name Go reads it as, when it is not spelled exactly. */
  member?: string;
}

const enum Role {
  Other,
  Message,
  Params,
  Ref,
  Notifications,
}

// Members each reader must agree on; a key that folds to one of them must be spelled exactly.
const MEMBERS: readonly (ReadonlyMap<string, string> | undefined)[] = [
  undefined,
  memberMap(['jsonrpc', 'id', 'method', 'params', 'result', 'error']),
  memberMap(['name', 'uri', 'arguments', 'ref', 'notifications', '_meta']),
  memberMap(['type', 'name', 'uri']),
  memberMap(['resourceSubscriptions']),
];

function memberMap(names: string[]): ReadonlyMap<string, string> {
  return new Map(names.map((n) => [foldKey(n), n]));
}

// One frame per open container; reused across calls (the scan is synchronous).
const isObject: boolean[] = [];
const roles: Role[] = [];
const currentKey: string[] = [];
const index: number[] = [];
// The keys of the open objects, innermost last: folded and as sent. An object's keys start at
// firstKey[level]; past SMALL_OBJECT keys they are also indexed in a Map.
const folds: string[] = [];
const exacts: string[] = [];
const firstKey: number[] = [];
const bigObjects: (Map<string, string> | undefined)[] = [];
let keyTop = 0;
const SMALL_OBJECT = 12;

/** Returns the finding ranked first, or undefined. Never throws; invalid JSON is left to JSON.parse. */
export function scanJson(text: string, maxDepth: number): JsonFinding | undefined {
  const finding = scan(text, maxDepth);
  // Keep no large body's keys alive until the next call.
  if (exacts.length > 1024) {
    folds.length = 0;
    exacts.length = 0;
  }
  return finding;
}

function scan(text: string, maxDepth: number): JsonFinding | undefined {
  // Raw surrogates cannot come out of a UTF-8 decoder, only from in-process callers.
  let best: JsonFinding | undefined = (text as string & { isWellFormed(): boolean }).isWellFormed()
    ? undefined
    : { code: 'lone_surrogate', path: '' };
  const n = text.length;
  keyTop = 0;
  let depth = 0;
  let expectKey = false;
  let quote = -1; // next '"' at or after the scan position (cached: indexOf runs once per quote)
  let backslash = -1; // next '\' likewise; n when there is none
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      let end: number;
      for (;;) {
        if (quote < j) quote = text.indexOf('"', j);
        if (quote < 0) return best; // unterminated: JSON.parse will say so
        if (backslash < j) {
          backslash = text.indexOf('\\', j);
          if (backslash < 0) backslash = n;
        }
        if (backslash > quote) {
          end = quote;
          break;
        }
        escaped = true;
        if (text.charCodeAt(backslash + 1) !== 0x75 /* u */) {
          j = backslash + 2;
          continue;
        }
        const unit = hex4(text, backslash + 2);
        if (unit >= 0xd800 && unit <= 0xdfff) {
          const low =
            unit <= 0xdbff && text.charCodeAt(backslash + 6) === 0x5c && text.charCodeAt(backslash + 7) === 0x75
              ? hex4(text, backslash + 8)
              : -1;
          if (low < 0xdc00 || low > 0xdfff) {
            best = better(best, { code: 'lone_surrogate', path: pathTo(expectKey ? depth - 1 : depth) });
            j = backslash + 6;
          } else {
            j = backslash + 12;
          }
        } else {
          if (unit < 0) return best; // not an escape JSON.parse accepts
          j = backslash + 6;
        }
      }
      if (expectKey && depth > 0) {
        const key = escaped ? unescapeKey(text.slice(i, end + 1)) : text.slice(i + 1, end);
        if (key === undefined) return best;
        const finding = addKey(depth - 1, key);
        if (finding) best = better(best, finding);
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      // First in the order of the JSON findings: refused before anything else reads further.
      if (depth >= maxDepth) return { code: 'json_too_deep', path: '' };
      const obj = c === 0x7b;
      isObject[depth] = obj;
      roles[depth] = obj ? childRole(depth) : Role.Other;
      firstKey[depth] = keyTop;
      bigObjects[depth] = undefined;
      currentKey[depth] = '';
      index[depth] = 0;
      depth++;
      expectKey = obj;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (depth > 0) keyTop = firstKey[--depth]!;
      expectKey = false;
    } else if (c === 0x2c /* , */ && depth > 0) {
      expectKey = isObject[depth - 1]!;
      if (!expectKey) index[depth - 1]!++;
    }
  }
  return best;
}

/** Of two findings, the one the documented order answers first (the earlier in the text on a tie). */
function better(a: JsonFinding | undefined, b: JsonFinding): JsonFinding {
  return a === undefined || bodyCheckRank(b.code) < bodyCheckRank(a.code) ? b : a;
}

/** The role of an object opened at `depth` (0 = the top level). */
function childRole(depth: number): Role {
  if (depth === 0) return Role.Message;
  const parent = depth - 1;
  if (!isObject[parent]) return parent === 0 ? Role.Message : Role.Other; // a batch element
  const key = currentKey[parent];
  if (roles[parent] === Role.Message && key === 'params') return Role.Params;
  if (roles[parent] === Role.Params && key === 'ref') return Role.Ref;
  if (roles[parent] === Role.Params && key === 'notifications') return Role.Notifications;
  return Role.Other;
}

function addKey(level: number, key: string): JsonFinding | undefined {
  const folded = foldKey(key);
  const first = firstKey[level]!;
  let seen: string | undefined;
  const big = bigObjects[level];
  if (big !== undefined) {
    seen = big.get(folded);
    big.set(folded, key);
  } else {
    for (let k = first; k < keyTop; k++) {
      if (folds[k] === folded) {
        seen = exacts[k];
        break;
      }
    }
    if (keyTop - first >= SMALL_OBJECT) {
      const map = new Map<string, string>();
      for (let k = first; k < keyTop; k++) map.set(folds[k]!, exacts[k]!);
      map.set(folded, key);
      bigObjects[level] = map;
    }
  }
  // The key is kept as the object's current key either way: the scan goes on after a finding.
  currentKey[level] = key;
  if (seen !== undefined) {
    return {
      code: seen === key ? 'duplicate_json_key' : 'ambiguous_json_key',
      path: pathTo(level, key),
      key,
      sibling: seen,
    };
  }
  folds[keyTop] = folded;
  exacts[keyTop] = key;
  keyTop++;
  const member = MEMBERS[roles[level]!]?.get(folded);
  if (member !== undefined && member !== key)
    return { code: 'ambiguous_json_key', path: pathTo(level, key), key, member };
  return undefined;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const MAX_SEGMENT = 64;

/** The JSON path through the first `levels` open containers, then `key` if given. */
function pathTo(levels: number, key?: string): string {
  let out = '';
  for (let d = 0; d < levels; d++) out += isObject[d] ? segment(currentKey[d]!, out === '') : `[${index[d]}]`;
  return key === undefined ? out : out + segment(key, out === '');
}

function segment(key: string, first: boolean): string {
  const k = key.length > MAX_SEGMENT ? `${key.slice(0, MAX_SEGMENT)}…` : key;
  return IDENTIFIER.test(k) ? (first ? k : `.${k}`) : `[${JSON.stringify(k)}]`;
}

function hex4(text: string, at: number): number {
  let v = 0;
  for (let k = at; k < at + 4; k++) {
    const h = text.charCodeAt(k);
    const d =
      h >= 0x30 && h <= 0x39 ? h - 0x30 : h >= 0x61 && h <= 0x66 ? h - 0x57 : h >= 0x41 && h <= 0x46 ? h - 0x37 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

function unescapeKey(quoted: string): string | undefined {
  try {
    return JSON.parse(quoted) as string;
  } catch {
    return undefined;
  }
}
