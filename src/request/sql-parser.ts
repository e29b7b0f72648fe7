// PostgreSQL's own parser and lexer (libpg_query, compiled to WebAssembly: the `libpg-query`
// package), loaded once when an endpoint's rules check an argument with an `sql` constraint.
//
// The WASM instance is never used again after a failure that is not a syntax error (a stack
// overflow, an out-of-bounds access): such a failure unwinds through C code that does not clean
// up, so the instance's memory may no longer be what the next parse expects. It is replaced by
// a fresh instance in the background; until then every text reads as "parser unavailable".
import { createRequire } from 'node:module';

/** A token of PostgreSQL's lexer: byte offsets into the UTF-8 text and the token's own text. */
export interface PgToken {
  start: number;
  end: number;
  text: string;
  tokenName: string;
}

/** A statement of PostgreSQL's raw parse tree, as libpg_query writes it in JSON. */
export interface PgRawStmt {
  stmt: Record<string, unknown>;
}

interface PgQueryModule {
  loadModule(): Promise<void>;
  parseSync(query: string): { stmts: PgRawStmt[] };
  scanSync(query: string): { tokens: PgToken[] };
}

export type PgRead<T> = { ok: true; value: T } | { ok: false; why: 'does_not_parse' | 'parser_unavailable' };

const require = createRequire(import.meta.url);
let current: PgQueryModule | undefined;
let loading: Promise<void> | undefined;
let replacements = 0;

/** Loads the parser (once); resolves when texts can be read. Rejects when the WASM cannot be loaded. */
export function loadPostgresParser(): Promise<void> {
  if (current !== undefined) return Promise.resolve();
  loading ??= (async () => {
    const mod = freshModule();
    await mod.loadModule();
    current = mod;
  })().finally(() => (loading = undefined));
  return loading;
}

/** Whether the parser is loaded and usable now. */
export function postgresParserReady(): boolean {
  return current !== undefined;
}

/** How many times a failed instance was replaced since the process started. */
export function postgresParserReplacements(): number {
  return replacements;
}

/** The statements of a text, as PostgreSQL's parser reads it (standard_conforming_strings on). */
export function pgParse(text: string): PgRead<PgRawStmt[]> {
  // The package refuses an empty text with a plain Error; PostgreSQL reads no statement in it.
  if (text === '') return { ok: true, value: [] };
  return call((m) => m.parseSync(text).stmts ?? []);
}

/** The tokens of a text, as PostgreSQL's lexer reads it. */
export function pgScan(text: string): PgRead<PgToken[]> {
  return call((m) => m.scanSync(text).tokens ?? []);
}

function call<T>(fn: (m: PgQueryModule) => T): PgRead<T> {
  const m = current;
  if (m === undefined) return UNAVAILABLE;
  try {
    return { ok: true, value: fn(m) };
  } catch (e) {
    // A syntax error is PostgreSQL's own ereport(ERROR) after a clean longjmp: SqlError from the
    // parser, an Error whose message is the error's text from the lexer.
    if (e instanceof Error && (e.name === 'SqlError' || /^(syntax error|ERROR)/.test(e.message))) return DOES_NOT_PARSE;
    replace(m);
    return UNAVAILABLE;
  }
}

const UNAVAILABLE = Object.freeze({ ok: false, why: 'parser_unavailable' }) as PgRead<never>;
const DOES_NOT_PARSE = Object.freeze({ ok: false, why: 'does_not_parse' }) as PgRead<never>;

function replace(failed: PgQueryModule): void {
  if (current !== failed) return;
  current = undefined;
  replacements++;
  // A failure to load again leaves the parser unavailable: every SQL argument is refused.
  loadPostgresParser().catch(() => undefined);
}

// The package's CommonJS entry starts a new WASM instance each time it is evaluated, so it is
// taken out of the module cache first: the failed instance is then unreferenced and collected.
function freshModule(): PgQueryModule {
  const path = require.resolve('libpg-query');
  delete require.cache[path];
  return require(path) as PgQueryModule;
}
