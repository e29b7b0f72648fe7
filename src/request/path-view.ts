// A file-path tool argument as every path reader reads it, or why it cannot be read one way
// only. The policy compares the raw value with its prefixes (whole segments) only when the
// view says the path is read as written: absolute, nothing a reader resolves (".", "..", "//"),
// decodes ("%2e%2e") or translates ("\", NFKC and best-fit look-alikes of "/", "\", ".", "%").
// In the service rather than in Rego: OPA has no Unicode normalization, and a regular
// expression of the look-alikes would be compiled on every evaluation in WASM.
// docs/policies.md "Path views"; test/argument-paths.test.ts checks it against Node, Python and Go.

export type PathRefusal =
  | 'not_a_string'
  | 'not_absolute'
  | 'control_character'
  | 'backslash'
  | 'percent'
  | 'look_alike'
  | 'empty_segment'
  | 'dot_segment';

export type PathView = { ok: true } | { ok: false; why: PathRefusal };

const OK: PathView = Object.freeze({ ok: true });
const refused = new Map<PathRefusal, PathView>();
function no(why: PathRefusal): PathView {
  let v = refused.get(why);
  if (v === undefined) refused.set(why, (v = Object.freeze({ ok: false, why }) as PathView));
  return v;
}

/**
 * Characters no NFKC mapping covers that Windows' best-fit code pages turn into "\" or "/":
 * ¥ and ₩ (the backslash byte of the Japanese and Korean code pages), the division, fraction
 * and big slashes and the set minus.
 */
const BEST_FIT = /[\u00a5\u20a9\u2044\u2215\u2216\u29f8\u29f9]/u;
const NON_ASCII = /[^\x00-\x7f]/;
const READ_AS_SEPARATOR_OR_DOT = /[/\\.%\0]/;
// A segment of dots and spaces only: ".", "..", and what Windows trims to them ("... ", ". .").
const DOTS_AND_SPACES = /^[. ]+$/;

export function pathView(value: unknown): PathView {
  if (typeof value !== 'string') return no('not_a_string');
  // Relative paths resolve against a working directory the policy does not know ("~" included).
  if (!value.startsWith('/')) return no('not_absolute');
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // C readers stop at NUL; newlines and other controls split logs and shell words.
    if (c < 0x20 || c === 0x7f) return no('control_character');
    // Windows reads "\" as a separator.
    if (c === 0x5c) return no('backslash');
    // A server that decodes escapes reads "%2e%2e" as "..", "%2f" as "/".
    if (c === 0x25) return no('percent');
  }
  if (NON_ASCII.test(value) && hasLookAlike(value)) return no('look_alike');
  if (value === '/') return OK;
  const body = value.endsWith('/') ? value.slice(1, -1) : value.slice(1);
  for (const segment of body.split('/')) {
    // "/a//../b": WHATWG reads "/a/b", Node and Python "/b".
    if (segment === '') return no('empty_segment');
    // ".." is refused rather than resolved: through a symlink, "/docs/link/../x" is not "/docs/x".
    if (DOTS_AND_SPACES.test(segment)) return no('dot_segment');
  }
  return OK;
}

/** A character NFKC normalization or a best-fit code page turns into "/", "\", "." or "%" (fullwidth, small, dot leaders…). */
function hasLookAlike(s: string): boolean {
  for (const ch of s) {
    if (ch.charCodeAt(0) < 0x80) continue;
    if (BEST_FIT.test(ch) || READ_AS_SEPARATOR_OR_DOT.test(ch.normalize('NFKC'))) return true;
  }
  return false;
}
