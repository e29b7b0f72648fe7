// Three readings of one JSON-RPC body, as the MCP servers behind mcp-authz read it:
//   js      JSON.parse of Node's UTF-8 decoding (the TypeScript SDK): exact keys, last wins;
//   python  Python's json module: bytes decoded as UTF-8 with surrogatepass (an encoded
//           surrogate becomes a lone surrogate, any other bad byte fails the body), NaN and
//           Infinity accepted, exact keys, last wins;
//   go      encoding/json into structs with json.RawMessage / any fields (mcp-go): invalid
//           UTF-8 and lone surrogate escapes read as U+FFFD, a key fills the field it equals
//           exactly or under Go's case folding, the last key for a field wins, null is absent;
//           and, as mcp-go dispatches, a message with an id and a result is a response even
//           when it has a method.
// Each reading is reduced to what a decision depends on: batch shape, and per message its kind,
// method, params.name, params.uri and params.ref (its string type, name and uri).

export interface CallReading {
  kind: 'request' | 'notification' | 'response' | 'invalid';
  method?: string;
  name?: string;
  uri?: string;
  ref?: RefReading;
}

export interface RefReading {
  type?: string;
  name?: string;
  uri?: string;
}

export type Reading = { ok: true; batch: boolean; calls: CallReading[] } | { ok: false };

/** A parsed JSON value that keeps every key of an object, in order, duplicates included. */
export type Tree =
  | { t: 'obj'; pairs: [string, Tree][] }
  | { t: 'arr'; items: Tree[] }
  | { t: 'str'; s: string }
  | { t: 'num' }
  | { t: 'lit'; v: boolean | null };

// ---------------------------------------------------------------- JavaScript

export function readJs(bytes: Uint8Array): Reading {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { ok: false };
  }
  const batch = Array.isArray(v);
  return { ok: true, batch, calls: (batch ? (v as unknown[]) : [v]).map(jsCall) };
}

function jsCall(e: unknown): CallReading {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) return { kind: 'invalid' };
  const o = e as Record<string, unknown>;
  const has = (k: string) => Object.hasOwn(o, k);
  const str = (x: unknown) => (typeof x === 'string' ? x : undefined);
  const call: CallReading = { kind: 'invalid', method: str(o.method) };
  const p = o.params;
  if (p !== null && typeof p === 'object' && !Array.isArray(p)) {
    const params = p as Record<string, unknown>;
    call.name = str(params.name);
    call.uri = str(params.uri);
    const r = params.ref;
    if (r !== null && typeof r === 'object' && !Array.isArray(r)) {
      const ref = r as Record<string, unknown>;
      call.ref = cleanRef({ type: str(ref.type), name: str(ref.name), uri: str(ref.uri) });
    }
  }
  call.kind = kindOf(call.method, has('id'), has('result'), has('error'));
  return clean(call);
}

// ---------------------------------------------------------------- Python and Go

export function readPython(bytes: Uint8Array): Reading {
  const text = decodeSurrogatePass(bytes);
  if (text === undefined) return { ok: false };
  const tree = parseTree(text, { nonFinite: true, loneSurrogate: 'keep', maxDepth: 990 });
  return tree === undefined ? { ok: false } : readTree(tree, exactLookup, (v) => v !== undefined, kindOf);
}

export function readGo(bytes: Uint8Array, fold: (key: string) => string): Reading {
  const tree = parseTree(decodeGo(bytes), { nonFinite: false, loneSurrogate: 'replace', maxDepth: 10000 });
  if (tree === undefined) return { ok: false };
  const lookup = (pairs: [string, Tree][], name: string) => {
    const want = fold(name);
    let found: Tree | undefined;
    for (const [k, v] of pairs) if (fold(k) === want) found = v;
    return found;
  };
  return readTree(tree, lookup, (v) => v !== undefined && !(v.t === 'lit' && v.v === null), goKindOf);
}

/** Go's key folding from its table (rune → folded rune; absent: itself). */
export function goFold(table: Map<number, number>): (key: string) => string {
  return (key) => {
    let out = '';
    for (const ch of key) out += String.fromCodePoint(table.get(ch.codePointAt(0)!) ?? ch.codePointAt(0)!);
    return out;
  };
}

type Lookup = (pairs: [string, Tree][], name: string) => Tree | undefined;

function exactLookup(pairs: [string, Tree][], name: string): Tree | undefined {
  let found: Tree | undefined;
  for (const [k, v] of pairs) if (k === name) found = v;
  return found;
}

type Present = (v: Tree | undefined) => boolean;
type KindOf = (
  method: string | undefined,
  hasId: boolean,
  hasResult: boolean,
  hasError: boolean,
) => CallReading['kind'];

function readTree(tree: Tree, lookup: Lookup, present: Present, kind: KindOf): Reading {
  const batch = tree.t === 'arr';
  const elements = tree.t === 'arr' ? tree.items : [tree];
  return { ok: true, batch, calls: elements.map((e) => treeCall(e, lookup, present, kind)) };
}

function treeCall(e: Tree, lookup: Lookup, present: Present, kind: KindOf): CallReading {
  if (e.t !== 'obj') return { kind: 'invalid' };
  const str = (v: Tree | undefined) => (v?.t === 'str' ? v.s : undefined);
  const call: CallReading = { kind: 'invalid', method: str(lookup(e.pairs, 'method')) };
  const params = lookup(e.pairs, 'params');
  if (params?.t === 'obj') {
    call.name = str(lookup(params.pairs, 'name'));
    call.uri = str(lookup(params.pairs, 'uri'));
    const ref = lookup(params.pairs, 'ref');
    if (ref?.t === 'obj')
      call.ref = cleanRef({
        type: str(lookup(ref.pairs, 'type')),
        name: str(lookup(ref.pairs, 'name')),
        uri: str(lookup(ref.pairs, 'uri')),
      });
  }
  call.kind = kind(
    call.method,
    present(lookup(e.pairs, 'id')),
    present(lookup(e.pairs, 'result')),
    present(lookup(e.pairs, 'error')),
  );
  return clean(call);
}

/** JSON-RPC: a method makes a request (with an id) or a notification; else a result or error makes a response. */
function kindOf(
  method: string | undefined,
  hasId: boolean,
  hasResult: boolean,
  hasError: boolean,
): CallReading['kind'] {
  if (method !== undefined && method !== '') return hasId ? 'request' : 'notification';
  return hasResult || hasError ? 'response' : 'invalid';
}

/** mcp-go: no id is a notification; then a result makes a response; then the method decides. */
function goKindOf(
  method: string | undefined,
  hasId: boolean,
  hasResult: boolean,
  hasError: boolean,
): CallReading['kind'] {
  return hasId && hasResult ? 'response' : kindOf(method, hasId, hasResult, hasError);
}

function cleanRef(r: RefReading): RefReading {
  for (const k of ['type', 'name', 'uri'] as const) if (r[k] === undefined) delete r[k];
  return r;
}

function clean(c: CallReading): CallReading {
  for (const k of ['method', 'name', 'uri', 'ref'] as const) if (c[k] === undefined) delete c[k];
  return c;
}

// ---------------------------------------------------------------- decoding bytes

/** UTF-8 as Go decodes it inside strings: each byte of an invalid sequence is one U+FFFD. */
export function decodeGo(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const [cp, size] = decodeRune(bytes, i, false);
    out += cp < 0 ? '\ufffd' : String.fromCodePoint(cp);
    i += cp < 0 ? 1 : size;
  }
  return out;
}

/** UTF-8 with Python's surrogatepass (a leading BOM dropped, as json.loads does); undefined where Python raises. */
function decodeSurrogatePass(bytes: Uint8Array): string | undefined {
  let out = '';
  const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  for (let i = bom ? 3 : 0; i < bytes.length; ) {
    const [cp, size] = decodeRune(bytes, i, true);
    if (cp < 0) return undefined;
    out += String.fromCharCode(
      ...(cp > 0xffff ? [0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff)] : [cp]),
    );
    i += size;
  }
  return out;
}

/** One code point at `i`: [code point, bytes], or [-1, 1] for an invalid sequence. */
function decodeRune(b: Uint8Array, i: number, surrogates: boolean): [number, number] {
  const c0 = b[i]!;
  if (c0 < 0x80) return [c0, 1];
  const cont = (k: number) => (i + k < b.length && (b[i + k]! & 0xc0) === 0x80 ? b[i + k]! & 0x3f : -1);
  if (c0 >= 0xc2 && c0 <= 0xdf) {
    const c1 = cont(1);
    return c1 < 0 ? [-1, 1] : [((c0 & 0x1f) << 6) | c1, 2];
  }
  if (c0 >= 0xe0 && c0 <= 0xef) {
    const c1 = cont(1);
    const c2 = cont(2);
    if (c1 < 0 || c2 < 0) return [-1, 1];
    const cp = ((c0 & 0x0f) << 12) | (c1 << 6) | c2;
    if (cp < 0x800 || (!surrogates && cp >= 0xd800 && cp <= 0xdfff)) return [-1, 1];
    return [cp, 3];
  }
  if (c0 >= 0xf0 && c0 <= 0xf4) {
    const c1 = cont(1);
    const c2 = cont(2);
    const c3 = cont(3);
    if (c1 < 0 || c2 < 0 || c3 < 0) return [-1, 1];
    const cp = ((c0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3;
    return cp < 0x10000 || cp > 0x10ffff ? [-1, 1] : [cp, 4];
  }
  return [-1, 1];
}

// ---------------------------------------------------------------- a strict JSON parser

interface ParseOptions {
  /** Python reads NaN, Infinity and -Infinity. */
  nonFinite: boolean;
  /** What a \uXXXX escape that is half a surrogate pair becomes. */
  loneSurrogate: 'keep' | 'replace';
  maxDepth: number;
}

/** RFC 8259 JSON, keeping every key of every object; undefined when the text is not JSON. */
export function parseTree(text: string, opts: ParseOptions): Tree | undefined {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw new SyntaxError(`at ${i}`);
  };
  const value = (depth: number): Tree => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      if (depth >= opts.maxDepth) fail();
      i++;
      ws();
      const close = c === '{' ? '}' : ']';
      const pairs: [string, Tree][] = [];
      const items: Tree[] = [];
      if (text[i] === close) {
        i++;
      } else {
        for (;;) {
          if (c === '{') {
            ws();
            if (text[i] !== '"') fail();
            const key = string();
            ws();
            if (text[i++] !== ':') fail();
            pairs.push([key, value(depth + 1)]);
          } else {
            items.push(value(depth + 1));
          }
          ws();
          const sep = text[i++];
          if (sep === close) break;
          if (sep !== ',') fail();
        }
      }
      return c === '{' ? { t: 'obj', pairs } : { t: 'arr', items };
    }
    if (c === '"') return { t: 'str', s: string() };
    for (const [word, tree, nonFinite] of LITERALS) {
      if (text.startsWith(word, i) && (opts.nonFinite || !nonFinite)) {
        i += word.length;
        return tree;
      }
    }
    const m = NUMBER.exec(text.slice(i, i + 400));
    if (m === null) fail();
    i += m![0].length;
    return { t: 'num' };
  };
  const string = (): string => {
    i++; // the opening quote
    let out = '';
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c < 0x20) fail();
      if (c !== 0x5c) {
        out += text[i++];
        continue;
      }
      const e = text[i + 1];
      i += 2;
      if (e !== 'u') {
        const simple = ESCAPES[e ?? ''];
        if (simple === undefined) fail();
        out += simple;
        continue;
      }
      const unit = hex4(text, i);
      i += 4;
      if (unit >= 0xd800 && unit <= 0xdbff && text.startsWith('\\u', i)) {
        const low = hex4(text, i + 2);
        if (low >= 0xdc00 && low <= 0xdfff) {
          out += String.fromCharCode(unit, low);
          i += 6;
          continue;
        }
      }
      out +=
        unit >= 0xd800 && unit <= 0xdfff && opts.loneSurrogate === 'replace' ? '\ufffd' : String.fromCharCode(unit);
    }
  };
  const hex4 = (s: string, at: number): number => {
    const h = s.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) fail();
    return parseInt(h, 16);
  };
  try {
    const tree = value(0);
    ws();
    return i === text.length ? tree : undefined;
  } catch (err) {
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
}

const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/;
const LITERALS: [string, Tree, boolean][] = [
  ['true', { t: 'lit', v: true }, false],
  ['false', { t: 'lit', v: false }, false],
  ['null', { t: 'lit', v: null }, false],
  ['NaN', { t: 'num' }, true],
  ['Infinity', { t: 'num' }, true],
  ['-Infinity', { t: 'num' }, true],
];
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
