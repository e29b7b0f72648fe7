// An SQL tool argument as PostgreSQL's own parser reads it (libpg_query, src/request/sql-parser.ts):
// the facts of its parse tree the policy decides on — statement kinds, SELECT … INTO, locking
// clauses, every function, operator and type it names, every kind of node in it — or why it
// cannot be read one way only. For a dialect without a parser here, also whether it is in the
// portable subset every database reads alike (sql-portable.ts). The policy holds the lists
// (docs/policies.md "SQL read-only"); the service only reads. In the service rather than in Rego:
// OPA has no SQL parser.
import { pgParse, pgScan, type PgToken } from './sql-parser.js';
import { portableView, type PortableView } from './sql-portable.js';

export type SqlRefusal =
  | 'not_a_string'
  | 'too_long'
  | 'too_complex'
  | 'nul'
  | 'unpaired_surrogate'
  | 'does_not_parse'
  | 'number_form'
  | 'backslash_in_string'
  | 'parser_unavailable';

export interface SqlReading {
  ok: true;
  /** The node kind of each statement, in order ("SelectStmt", "InsertStmt", …): one per statement. */
  statements: string[];
  /** SELECT … INTO, anywhere. */
  into: boolean;
  /** The strength of each locking clause: "update", "no_key_update", "share", "key_share". */
  locking: string[];
  /** Every function called, as PostgreSQL resolves the name: "pg_catalog." dropped, other schemas kept ("public.f"). */
  functions: string[];
  /** Every operator, named the same way ("=", "~~", "BETWEEN"). */
  operators: string[];
  /** Every type named in a cast or a column definition list ("int4", "text", "public.t"). */
  types: string[];
  /** Every kind of node in the parse tree ("SelectStmt", "FuncCall", "SubLink", …). */
  nodes: string[];
  /** For dialects without a parser here: whether the text is in the portable subset. */
  portable?: PortableView;
}

export type SqlView = SqlReading | { ok: false; why: SqlRefusal };

/** The longest text read, in UTF-16 code units. */
export const SQL_MAX_LENGTH = 65_536;
/**
 * At most this many tokens, counted generously (each run of name characters and each other
 * non-space character), and this many nested brackets. libpg_query writes its tree to JSON by
 * recursion in WASM, on the JavaScript stack: a text nested a few thousand levels deep exhausts
 * it. Within these bounds the deepest text uses less than half of it, with V8's optimized code
 * (test/argument-sql-view.test.ts reads the deepest text of each kind).
 */
export const SQL_MAX_TOKENS = 1024;
export const SQL_MAX_NESTING = 64;

const refused = new Map<SqlRefusal, SqlView>();
function no(why: SqlRefusal): SqlView {
  let v = refused.get(why);
  if (v === undefined) refused.set(why, (v = Object.freeze({ ok: false, why }) as SqlView));
  return v;
}

// String.prototype.isWellFormed (ES2024, Node 20): the compiler's library is older.
type WellFormed = { isWellFormed(): boolean };

/** The view of one SQL argument; `portable` adds the portable-subset reading. */
export function sqlView(value: unknown, portable = false): SqlView {
  if (typeof value !== 'string') return no('not_a_string');
  if (value.length > SQL_MAX_LENGTH) return no('too_long');
  // C reads a string up to its first NUL: the parser would see less than the database is sent.
  if (value.includes('\0')) return no('nul');
  // The body reader refuses these already; UTF-8 has no encoding for them.
  if (!(value as unknown as WellFormed).isWellFormed()) return no('unpaired_surrogate');
  if (!withinBounds(value)) return no('too_complex');
  const parsed = pgParse(value);
  if (!parsed.ok) return no(parsed.why);
  if (NUMBER_CANDIDATE.test(value) || value.includes('\\')) {
    const scanned = pgScan(value);
    if (!scanned.ok) return no(scanned.why);
    const why = lexicalRefusal(scanned.value);
    if (why !== undefined) return no(why);
  }
  const view = readTree(parsed.value);
  if (portable) view.portable = portableView(value);
  return view;
}

function withinBounds(s: string): boolean {
  let tokens = 0;
  let depth = 0;
  let inName = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // Name characters as PostgreSQL's lexer has them: ASCII letters, digits, "_", "$" and every non-ASCII character.
    const name =
      (c >= 0x61 && c <= 0x7a) ||
      (c >= 0x41 && c <= 0x5a) ||
      (c >= 0x30 && c <= 0x39) ||
      c === 0x5f ||
      c === 0x24 ||
      c >= 0x80;
    if (name) {
      if (!inName) tokens++;
      inName = true;
      continue;
    }
    inName = false;
    if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) continue;
    tokens++;
    if (c === 0x28 || c === 0x5b) {
      if (++depth > SQL_MAX_NESTING) return false;
    } else if (c === 0x29 || c === 0x5d) {
      depth--;
    }
  }
  return tokens <= SQL_MAX_TOKENS;
}

// A number in a form only PostgreSQL 16 and later read as one: "0x1F", "0o17", "0b101",
// "1_000". Earlier versions read "0x1F" as 0 named x1F and "1_000" as 1 named _000. Every such
// token has a digit right before "_" or a "0" right before the radix letter, and no name
// character before it; texts that have none are not scanned.
const NUMBER_CANDIDATE = /(?<![\p{L}\p{N}_$])(?:0[xXoObB]|[0-9.][0-9.eE+-]*[0-9]_|[0-9]_)/u;
const PLAIN_NUMBER = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/;
// A string literal other than E'…', U&'…' and dollar quotes: with standard_conforming_strings
// off (a server or session setting), "\" escapes a quote in it and the rest of the text reads
// differently.
const PLAIN_STRING = /^[nNbBxX]?'/;

function lexicalRefusal(tokens: PgToken[]): SqlRefusal | undefined {
  for (const t of tokens) {
    if ((t.tokenName === 'ICONST' || t.tokenName === 'FCONST') && !PLAIN_NUMBER.test(t.text)) return 'number_form';
    if (PLAIN_STRING.test(t.text) && t.text.includes('\\')) return 'backslash_in_string';
  }
  return undefined;
}

const LOCK_STRENGTH: Record<string, string> = {
  LCS_FORKEYSHARE: 'key_share',
  LCS_FORSHARE: 'share',
  LCS_FORNOKEYUPDATE: 'no_key_update',
  LCS_FORUPDATE: 'update',
};

/** Walks the whole tree (iteratively: it may be deep) and collects its facts. */
function readTree(stmts: { stmt: Record<string, unknown> }[]): SqlReading {
  const statements: string[] = [];
  let into = false;
  const locking = new Set<string>();
  const functions = new Set<string>();
  const operators = new Set<string>();
  const types = new Set<string>();
  const nodes = new Set<string>();
  const stack: unknown[] = [];
  for (const s of stmts) {
    statements.push(nodeKind(s.stmt) ?? '');
    stack.push(s.stmt);
  }
  while (stack.length > 0) {
    const v = stack.pop() as Record<string, unknown> | unknown[];
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const x = v[i];
        if (typeof x === 'object' && x !== null) stack.push(x);
      }
      continue;
    }
    for (const key in v) {
      const child = v[key];
      if (typeof child !== 'object' || child === null) continue;
      stack.push(child);
      const c = child as Record<string, unknown>;
      if (key === 'intoClause') into = true;
      else if (key === 'typeName') addName(types, c.names);
      else if (key === 'useOp' || key === 'operName') addName(operators, c);
      else if (isNodeKind(key)) {
        nodes.add(key);
        if (key === 'FuncCall') addName(functions, c.funcname);
        else if (key === 'A_Expr') addName(operators, c.name);
        else if (key === 'LockingClause')
          locking.add(LOCK_STRENGTH[String(c.strength)] ?? String(c.strength).toLowerCase());
        else if (key === 'TypeName') addName(types, c.names);
      }
    }
  }
  return {
    ok: true,
    statements,
    into,
    locking: [...locking].sort(),
    functions: [...functions].sort(),
    operators: [...operators].sort(),
    types: [...types].sort(),
    nodes: [...nodes].sort(),
  };
}

// Node kinds are written as the key of a one-key object ("FuncCall": {…}); fields are camelCase.
function isNodeKind(key: string): boolean {
  const c = key.charCodeAt(0);
  return c >= 0x41 && c <= 0x5a;
}

function nodeKind(stmt: Record<string, unknown>): string | undefined {
  for (const key in stmt) if (isNodeKind(key)) return key;
  return undefined;
}

// A qualified name as a list of String nodes; "pg_catalog." is where every built-in lives, and
// what an unqualified built-in name resolves to first.
function addName(into: Set<string>, list: unknown): void {
  if (!Array.isArray(list)) return;
  const parts: string[] = [];
  for (const part of list) {
    const s = (part as { String?: { sval?: unknown } } | null)?.String?.sval;
    parts.push(typeof s === 'string' ? s : '');
  }
  if (parts.length > 1 && parts[0] === 'pg_catalog') parts.shift();
  into.add(parts.join('.'));
}
