// Reads one named cookie out of the Cookie header(s), and the header without it, refusing
// every spelling cookie readers disagree on (docs/clients.md "Web dashboards"): the cookie
// twice with different values, in another case, with spaces around its name, without "=",
// or hidden in another cookie's value where readers that split on "," (RFC 2965, some
// frameworks, and Envoy's joining of repeated headers) would find it. A session cookie is
// then read one way by every reader, and removed entirely before the request goes upstream.

export type CookieLookup =
  | { kind: 'absent' }
  /** `rest`: the other cookies, "; "-joined in arrival order; "" when there are none. */
  | { kind: 'found'; value: string; rest: string }
  /** The cookie is there but its value is unusable (empty, quoted, with spaces); `rest` drops it. */
  | { kind: 'malformed'; why: string; rest: string }
  | { kind: 'ambiguous'; why: string };

/** One cookie name, compiled at load: the Check path compiles nothing. */
export interface CookieName {
  name: string;
  lower: string;
  /** The name (any case) followed by "=" where a looser reader would start a cookie: at the start or after a non-token character. */
  embedded: RegExp;
}

const ABSENT: CookieLookup = Object.freeze({ kind: 'absent' });
const SPACE_OR_COMMA = /[\s,]/;
/** RFC 6265 cookie-name: an RFC 7230 token. */
export const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function cookieName(name: string): CookieName {
  if (!COOKIE_NAME.test(name)) throw new Error(`not a cookie name: ${JSON.stringify(name)}`);
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return {
    name,
    lower: name.toLowerCase(),
    embedded: new RegExp(`(^|[^!#$%&'*+\\-.^_\`|~0-9a-z])${escaped}[ \\t]*=`, 'i'),
  };
}

export function findCookie(headerValues: readonly string[] | undefined, c: CookieName): CookieLookup {
  if (headerValues === undefined) return ABSENT;
  const rest: string[] = [];
  let value: string | undefined;
  for (const header of headerValues) {
    for (const raw of header.split(';')) {
      const pair = trimOws(raw);
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      if (eq === -1) {
        if (pair.toLowerCase() === c.lower)
          return ambiguous(`a "${c.name}" cookie without "=": readers disagree on whether it is a name or a value`);
        rest.push(pair);
        continue;
      }
      const name = pair.slice(0, eq);
      if (name === c.name) {
        const v = pair.slice(eq + 1);
        if (unterminatedQuote(pair, eq + 1))
          return ambiguous(
            `the ${c.name} cookie opens a quote it does not close: readers that honour quotes read on past ";"`,
          );
        if (c.embedded.test(v))
          return ambiguous(
            `the ${c.name} cookie's value holds another "${c.name}=": readers that split cookies on "," see two`,
          );
        if (value !== undefined && v !== value)
          return ambiguous(`the ${c.name} cookie is sent twice with different values`);
        value = v;
        continue;
      }
      const bare = trimOws(name);
      if (bare.toLowerCase() === c.lower) {
        return ambiguous(
          bare === c.name
            ? `spaces around the ${c.name} cookie's name`
            : `a cookie named "${bare}": case-insensitive readers take it for ${c.name}`,
        );
      }
      if (c.embedded.test(pair))
        return ambiguous(
          `another cookie holds "${c.name}=": readers that split cookies on "," or unquote values would read it as ${c.name}`,
        );
      if (unterminatedQuote(pair, eq + 1))
        return ambiguous('a cookie value opens a quote it does not close: readers that honour quotes read on past ";"');
      rest.push(pair);
    }
  }
  if (value === undefined) return ABSENT;
  const joined = rest.join('; ');
  if (value === '') return { kind: 'malformed', why: `the ${c.name} cookie is empty`, rest: joined };
  if (value.startsWith('"'))
    return { kind: 'malformed', why: `the ${c.name} cookie is quoted; send the bare token`, rest: joined };
  if (SPACE_OR_COMMA.test(value))
    return { kind: 'malformed', why: `the ${c.name} cookie's value holds spaces or ","`, rest: joined };
  return { kind: 'found', value, rest: joined };
}

/** A value starting with `"` that does not end with one (or is the lone quote). */
function unterminatedQuote(pair: string, valueAt: number): boolean {
  return pair.charCodeAt(valueAt) === 34 && (pair.length - valueAt < 2 || pair.charCodeAt(pair.length - 1) !== 34);
}

function ambiguous(why: string): CookieLookup {
  return { kind: 'ambiguous', why };
}

/** Strips RFC 7230 OWS (spaces and tabs) at both ends. */
function trimOws(s: string): string {
  let i = 0;
  let j = s.length;
  while (i < j && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
  while (j > i && (s.charCodeAt(j - 1) === 32 || s.charCodeAt(j - 1) === 9)) j--;
  return i === 0 && j === s.length ? s : s.slice(i, j);
}
