// The fast reader of a keys file. A general YAML parser builds a document tree of the
// whole file first — 100,000 keys took tens of seconds and over a gigabyte — so the layouts
// keys files are written in are read here directly, line by line, as the file arrives in
// chunks from disk (no copy of the whole file is held): `mcp-authz keys create` and
// hand-written files (a `keys:` list of block mappings, two-space or compact indentation,
// plain or quoted scalars, comments), Helm's toYaml, and JSON (read whole, see
// key-registry.ts). Anything outside that subset — anchors, tags, multi-line or escaped
// scalars, numbers or nulls where strings belong, tabs, CR line ends, other top-level
// fields — makes the reader give up (`undefined`) and the caller parses the file with the
// full YAML parser, so a file means exactly what YAML says it means, and its errors are
// that parser's. test/keys-file-reader.test.ts holds the reader to the YAML parser's output.
import { isAscii } from 'node:buffer';

/** One entry as read: scalars are strings (or the `disabled` boolean), lists are string lists. */
export type RawKeyEntry = Record<string, string | boolean | string[]>;

/** The fields an entry may have; any other name is left to the full parser and the schema's message. */
const FIELDS = new Set(['id', 'sha256', 'name', 'userId', 'role', 'permissions', 'expiresAt', 'disabled']);

// YAML 1.2 core schema: plain scalars that are not strings (the yaml package's own tests).
const NOT_STRING = [
  /^(?:~|[Nn]ull|NULL)?$/,
  /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/,
  /^0o[0-7]+$/,
  /^[-+]?[0-9]+$/,
  /^0x[0-9a-fA-F]+$/,
  /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/,
  /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/,
  /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/,
];
const TRUE = /^(?:[Tt]rue|TRUE)$/;
const FALSE = /^(?:[Ff]alse|FALSE)$/;
/** After a scalar: nothing, or spaces and a comment. */
const REST = /^(?: +(?:#.*)?)?$/;

const GIVE_UP = Symbol('give up');
type Scalar = string | boolean | typeof GIVE_UP;

/**
 * Reads a keys file as it arrives, in chunks of any size (a chunk may end inside a line or
 * inside a UTF-8 character), handing each entry to `onEntry` as soon as it is complete, so
 * neither the file nor a list of its entries is held. After the last chunk, `end()` says
 * whether the whole file was inside the subset (if not, the entries handed over so far are
 * to be thrown away).
 */
export class KeysFileReader {
  ok = true;
  /** Whether a byte has arrived: an empty file is the full parser's. */
  private started = false;
  /** The start of a line whose end has not arrived yet. */
  private carry: Buffer[] = [];
  private sawKeys = false;
  private emptyFlow = false;
  /** Column of the "- " that starts each entry, once seen. */
  private itemIndent = -1;
  private entry: RawKeyEntry | undefined;
  /** A field whose value is a block list on the following lines. */
  private listField: string | undefined;
  private listIndent = -1;
  private list: string[] = [];
  private done = false;

  constructor(private readonly onEntry: (entry: RawKeyEntry) => void) {}

  /** Reads a whole file at once: its entries, or undefined when it is outside the subset. */
  static read(buf: Buffer): RawKeyEntry[] | undefined {
    const entries: RawKeyEntry[] = [];
    const r = new KeysFileReader((e) => entries.push(e));
    r.push(buf);
    return r.end() ? entries : undefined;
  }

  /**
   * Reads the lines `chunk` completes. Nothing of `chunk` is kept by reference: the caller
   * may reuse its buffer.
   */
  push(chunk: Buffer): void {
    if (this.done || chunk.length === 0) return;
    if (!this.started) {
      this.started = true;
      // A BOM (or another non-ASCII first byte): left to the full parser.
      if (chunk[0] === 0xef) {
        this.giveUp();
        return;
      }
    }
    // CR line ends or tabs: left to the full parser.
    if (chunk.includes(13) || chunk.includes(9)) {
      this.giveUp();
      return;
    }
    let pos = 0;
    if (this.carry.length > 0) {
      const nl = chunk.indexOf(10);
      if (nl === -1) {
        this.carry.push(Buffer.from(chunk));
        return;
      }
      this.carry.push(chunk.subarray(0, nl));
      const line = Buffer.concat(this.carry);
      this.carry = [];
      if (!this.take(line, 0, line.length, isAscii(line))) return;
      pos = nl + 1;
    }
    // Lines of an ASCII chunk are decoded as latin1, which is faster and reads ASCII alike.
    const ascii = isAscii(chunk);
    for (;;) {
      const end = chunk.indexOf(10, pos);
      if (end === -1) break;
      if (!this.take(chunk, pos, end, ascii)) return;
      pos = end + 1;
    }
    if (pos < chunk.length) this.carry.push(Buffer.from(chunk.subarray(pos)));
  }

  /** After the last chunk: true when the whole file was inside the subset. */
  end(): boolean {
    if (this.done) return this.ok;
    if (!this.started) {
      this.giveUp();
      return false;
    }
    if (this.carry.length > 0) {
      const line = Buffer.concat(this.carry);
      this.carry = [];
      if (!this.take(line, 0, line.length, isAscii(line))) return false;
    }
    this.finish();
    return this.ok;
  }

  /**
   * One line, decoded to a string of its own: the strings an entry keeps are cut from it,
   * and cutting them from a larger decoded chunk would keep the whole chunk alive.
   */
  private take(buf: Buffer, start: number, end: number, ascii: boolean): boolean {
    if (this.line(buf.toString(ascii ? 'latin1' : 'utf8', start, end))) return true;
    this.giveUp();
    return false;
  }

  private giveUp(): void {
    this.ok = false;
    this.done = true;
    this.carry = [];
  }

  private finish(): void {
    // "keys:" with nothing under it is a null, which the schema refuses.
    if (!this.sawKeys || (!this.emptyFlow && this.itemIndent === -1) || !this.endList()) {
      this.giveUp();
      return;
    }
    if (this.entry) this.onEntry(this.entry);
    this.done = true;
  }

  /** Takes one line; false: outside the subset. */
  private line(line: string): boolean {
    let ind = 0;
    while (ind < line.length && line.charCodeAt(ind) === 32) ind++;
    if (ind === line.length || line.charCodeAt(ind) === 35) return true; // blank or comment
    if (!this.sawKeys) {
      if (ind !== 0 || !line.startsWith('keys:')) return false;
      const rest = line.slice(5);
      this.sawKeys = true;
      if (REST.test(rest)) return true;
      const flow = /^ +\[\](.*)$/.exec(rest);
      if (!flow || !REST.test(flow[1]!)) return false;
      this.emptyFlow = true;
      return true;
    }
    if (this.emptyFlow) return false;
    if (this.listField !== undefined) {
      const item = line.charCodeAt(ind) === 45 && (line.length === ind + 1 || line.charCodeAt(ind + 1) === 32);
      const fits = this.listIndent === -1 ? ind >= this.itemIndent + 2 : ind === this.listIndent;
      if (item && fits) {
        if (line.length === ind + 1) return false; // "-" alone: an empty item
        const v = scalar(line.slice(ind + 2));
        if (typeof v !== 'string') return false;
        this.listIndent = ind;
        this.list.push(v);
        return true;
      }
      if (!this.endList()) return false;
    }
    return this.entryLine(line, ind);
  }

  /** A line that starts an entry ("- field: value") or continues one ("  field: value"). */
  private entryLine(line: string, ind: number): boolean {
    if (line.startsWith('- ', ind) && (this.itemIndent === -1 || ind === this.itemIndent)) {
      if (line.charCodeAt(ind + 2) === 32) return false;
      if (this.entry) this.onEntry(this.entry);
      this.itemIndent = ind;
      this.entry = {};
      return this.field(line.slice(ind + 2));
    }
    if (this.entry && ind === this.itemIndent + 2) return this.field(line.slice(ind));
    return false;
  }

  private field(text: string): boolean {
    const colon = text.indexOf(':');
    if (colon === -1) return false;
    const name = text.slice(0, colon);
    if (!FIELDS.has(name) || Object.hasOwn(this.entry!, name)) return false;
    let at = colon + 1;
    if (at < text.length && text.charCodeAt(at) !== 32) return false;
    while (text.charCodeAt(at) === 32) at++;
    const rest = text.slice(at);
    if (rest === '' || rest.charCodeAt(0) === 35) {
      this.listField = name;
      this.listIndent = -1;
      this.list = [];
      return true;
    }
    if (rest.charCodeAt(0) === 91) {
      const items = flowList(rest);
      if (items === undefined) return false;
      this.entry![name] = items;
      return true;
    }
    const v = scalar(rest, name === 'disabled');
    if (v === GIVE_UP) return false;
    this.entry![name] = v;
    return true;
  }

  /** Closes a pending block list; false when it had no items (the value would be null). */
  private endList(): boolean {
    if (this.listField === undefined) return true;
    if (this.list.length === 0) return false;
    this.entry![this.listField] = this.list;
    this.listField = undefined;
    return true;
  }
}

/** A scalar and what may follow it on its line: a plain one, or a quoted one without escapes. */
function scalar(text: string, booleans = false): Scalar {
  const q = text.charCodeAt(0);
  if (q === 34 || q === 39) {
    const r = quoted(text, 0);
    if (r === undefined || !REST.test(text.slice(r.end))) return GIVE_UP;
    return r.value;
  }
  let end = text.indexOf(' #');
  if (end === -1) end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 32) end--;
  const v = text.slice(0, end);
  if (!plainSafe(v, false)) return GIVE_UP;
  if (booleans) {
    if (TRUE.test(v)) return true;
    if (FALSE.test(v)) return false;
  }
  if (mayNotBeString(v)) return GIVE_UP;
  return v;
}

/** `[]`, or `[a, "b", 'c']` on one line, with what may follow it. */
function flowList(text: string): string[] | undefined {
  const items: string[] = [];
  let i = 1;
  const skip = () => {
    while (text.charCodeAt(i) === 32) i++;
  };
  skip();
  if (text.charCodeAt(i) === 93) return REST.test(text.slice(i + 1)) ? items : undefined;
  for (;;) {
    skip();
    const c = text.charCodeAt(i);
    let v: string;
    if (c === 34 || c === 39) {
      const r = quoted(text, i);
      if (r === undefined) return undefined;
      v = r.value;
      i = r.end;
    } else {
      let end = i;
      while (end < text.length && !',[]{}#'.includes(text[end]!)) end++;
      let last = end;
      while (last > i && text.charCodeAt(last - 1) === 32) last--;
      v = text.slice(i, last);
      if (!plainSafe(v, true)) return undefined;
      if (mayNotBeString(v)) return undefined;
      i = end;
    }
    items.push(v);
    skip();
    const sep = text.charCodeAt(i);
    i++;
    if (sep === 93) return REST.test(text.slice(i)) ? items : undefined;
    if (sep !== 44) return undefined;
  }
}

/** Whether the core schema could read a plain scalar as a null, boolean or number. */
function mayNotBeString(v: string): boolean {
  // Every non-string form starts with one of "~nNtTfF0-9+-." (or is empty).
  if (v !== '' && !'~nNtTfF0123456789+-.'.includes(v[0]!)) return false;
  for (const re of NOT_STRING) if (re.test(v)) return true;
  return false;
}

/** A quoted scalar starting at `at` that the subset reads without escapes or line folding. */
function quoted(text: string, at: number): { value: string; end: number } | undefined {
  const q = text.charCodeAt(at);
  let value = '';
  let i = at + 1;
  for (;;) {
    const close = text.indexOf(q === 34 ? '"' : "'", i);
    if (close === -1) return undefined;
    value += text.slice(i, close);
    if (q === 39 && text.charCodeAt(close + 1) === 39) {
      value += "'";
      i = close + 2;
      continue;
    }
    if (q === 34 && value.includes('\\')) return undefined;
    if (!printable(value)) return undefined;
    return { value, end: close + 1 };
  }
}

/** ASCII printable only: other characters (line separators, controls) are the full parser's to judge. */
function printable(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 32 || c > 126) return false;
  }
  return true;
}

/** A plain scalar the subset reads as itself: no indicator first, no ": " or " #" inside, ASCII printable. */
function plainSafe(v: string, flow: boolean): boolean {
  if (v === '' || !printable(v)) return false;
  const c = v[0]!;
  if (c === ' ') return false;
  if (',[]{}#&*!|>\'"%@`'.includes(c)) return false;
  if ((c === '-' || c === '?' || c === ':') && (v.length === 1 || v[1] === ' ' || (flow && ',[]{}'.includes(v[1]!))))
    return false;
  if (v.includes(': ') || v.endsWith(':') || v.includes(' #')) return false;
  if (flow && /[,[\]{}]/.test(v)) return false;
  return true;
}

/**
 * A JSON keys file: JSON.parse, with duplicate member names refused as YAML refuses them
 * (JSON.parse would keep the last one silently). undefined: not JSON, a duplicate, or not
 * `{"keys": [...]}` — the full parser decides.
 */
export function readJsonKeys(text: string): unknown[] | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const keys = Object.keys(doc);
  if (keys.length !== 1 || keys[0] !== 'keys') return undefined;
  const list = (doc as { keys: unknown }).keys;
  if (!Array.isArray(list) || hasDuplicateMember(text)) return undefined;
  return list;
}

/** Whether any object of a valid JSON text names a member twice. */
function hasDuplicateMember(text: string): boolean {
  const open: Set<string>[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 123) open.push(new Set());
    else if (c === 125) open.pop();
    else if (c === 34) {
      let j = i + 1;
      let escaped = false;
      for (;;) {
        const d = text.charCodeAt(j);
        if (d === 92) {
          escaped = true;
          j += 2;
        } else if (d === 34) break;
        else j++;
      }
      let k = j + 1;
      while (
        k < text.length &&
        (text.charCodeAt(k) === 32 ||
          text.charCodeAt(k) === 10 ||
          text.charCodeAt(k) === 13 ||
          text.charCodeAt(k) === 9)
      )
        k++;
      if (text.charCodeAt(k) === 58) {
        const raw = text.slice(i, j + 1);
        const name = escaped ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        const members = open[open.length - 1]!;
        if (members.has(name)) return true;
        members.add(name);
      }
      i = j;
    }
  }
  return false;
}
