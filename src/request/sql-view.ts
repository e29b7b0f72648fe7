// An SQL tool argument split into the words a SQL lexer could read as keywords, or why it is
// not one statement every reader reads alike. The policy decides on the words (the first must
// be SELECT, none may be a write keyword): docs/policies.md "SQL read-only". In the service
// rather than in Rego: WASM compiles a regular expression on every evaluation (a keyword
// pattern costs milliseconds there) and OPA has no tokenizer.
//
// A guard, not a parser: words are split at every character that is not an ASCII letter,
// digit or "_" (non-ASCII characters included), inside string literals and quoted names too,
// so the split can only find more keywords than a database lexer, never fewer.

export type SqlRefusal = 'not_a_string' | 'statement_separator' | 'comment' | 'look_alike';

export type SqlView = { ok: true; words: string[] } | { ok: false; why: SqlRefusal };

const refused = new Map<SqlRefusal, SqlView>();
function no(why: SqlRefusal): SqlView {
  let v = refused.get(why);
  if (v === undefined) refused.set(why, (v = Object.freeze({ ok: false, why }) as SqlView));
  return v;
}

// Comments hide text from the guard and MySQL runs "/*! … */"; "#" starts a MySQL comment.
const COMMENT = /--|#|\/\*|\*\//;
// Letters some readers case-fold into ASCII keyword letters: dotted and dotless i, long s, Kelvin sign.
const LOOK_ALIKE = /[\u0130\u0131\u017f\u212a]/;
const NOT_WORD = /[^a-z0-9_]+/;

export function sqlView(value: unknown): SqlView {
  if (typeof value !== 'string') return no('not_a_string');
  if (value.includes(';')) return no('statement_separator');
  if (COMMENT.test(value)) return no('comment');
  if (LOOK_ALIKE.test(value)) return no('look_alike');
  const words = asciiLower(value).split(NOT_WORD);
  // split leaves "" at either end when the text starts or ends with a separator.
  if (words[0] === '') words.shift();
  if (words.at(-1) === '') words.pop();
  return { ok: true, words };
}

// ASCII letters lower-cased, nothing else changed: toLowerCase on the whole text would turn "İ" into "i̇".
const ASCII_UPPER = /[A-Z]+/g;
const lowerRun = (run: string) => run.toLowerCase();
function asciiLower(s: string): string {
  return s.replace(ASCII_UPPER, lowerRun);
}
