// WWW-Authenticate (RFC 9110 §11.6.1): a list of challenges, each a scheme followed by either
// a token68 or comma-separated auth-params (token = token / quoted-string). Commas separate
// both challenges and parameters, so a name followed by "=" is read as a parameter, anything
// else as the next scheme. A parameter given twice in one challenge makes the header
// unreadable rather than letting this reader pick one value another reader would not.

export interface Challenge {
  /** Lower-cased. */
  scheme: string;
  /** Parameter names lower-cased; values unquoted. */
  params: Map<string, string>;
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68 = /[-._~+/0-9A-Za-z]/;

export class ChallengeSyntaxError extends Error {}

export function parseChallenges(header: string): Challenge[] {
  const s = header;
  let i = 0;
  const out: Challenge[] = [];
  const ws = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const token = () => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  const fail = (what: string): never => {
    throw new ChallengeSyntaxError(`${what} at offset ${i}`);
  };
  // Empty list elements ("a, , b") are allowed by the list syntax.
  const commas = () => {
    for (;;) {
      ws();
      if (s[i] !== ',') return;
      i++;
    }
  };
  /** At i: `token BWS "=" BWS` and then a value? ("abc==" or "abc=" alone is a token68.) */
  const paramAhead = () => {
    const save = i;
    const name = token();
    ws();
    let yes = false;
    if (name !== '' && s[i] === '=') {
      i++;
      ws();
      yes = i < s.length && (s[i] === '"' || TCHAR.test(s[i]!));
    }
    i = save;
    return yes;
  };
  const quoted = () => {
    i++; // opening quote
    let v = '';
    for (;;) {
      if (i >= s.length) fail('unterminated quoted-string');
      const c = s[i]!;
      if (c === '"') {
        i++;
        return v;
      }
      if (c === '\\') {
        if (i + 1 >= s.length) fail('dangling escape');
        v += s[i + 1];
        i += 2;
        continue;
      }
      v += c;
      i++;
    }
  };

  commas();
  while (i < s.length) {
    const scheme = token();
    if (scheme === '') fail('expected an auth-scheme');
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: new Map() };
    out.push(challenge);
    const hadSpace = s[i] === ' ' || s[i] === '\t';
    ws();
    if (i >= s.length || s[i] === ',') {
      commas();
      continue;
    }
    if (!hadSpace) fail('expected a space after the auth-scheme');
    if (!paramAhead()) {
      const start = i;
      while (i < s.length && TOKEN68.test(s[i]!)) i++;
      while (s[i] === '=') i++;
      if (i === start) fail('expected a token68 or auth-param');
      challenge.token68 = s.slice(start, i);
      ws();
      if (i < s.length && s[i] !== ',') fail('unexpected character after token68');
      commas();
      continue;
    }
    for (;;) {
      const name = token().toLowerCase();
      ws();
      i++; // "="
      ws();
      const isQuoted = s[i] === '"';
      const value = isQuoted ? quoted() : token();
      if (value === '' && !isQuoted) fail(`empty value for ${name}`);
      if (challenge.params.has(name)) fail(`parameter ${name} given twice`);
      challenge.params.set(name, value);
      ws();
      if (i >= s.length) break;
      if (s[i] !== ',') fail('expected "," between parameters');
      commas();
      if (i >= s.length || !paramAhead()) break;
    }
  }
  return out;
}

/** The Bearer challenge's parameters, or undefined when there is none. */
export function bearerChallenge(header: string | null): Map<string, string> | undefined {
  if (header === null) return undefined;
  return parseChallenges(header).find((c) => c.scheme === 'bearer')?.params;
}
