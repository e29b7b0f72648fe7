// JSON as the docs write it, read as a pattern of what the service emits: `…` (or `...`)
// stands for what the doc leaves out — more members or items, any value, or part of a
// string — `//` comments are notes, and a bare word such as `N` is any value. Everything
// shown must be there, with the same value (or, with `types`, the same JSON type); a member
// or item the doc does not show must be covered by a `…`, so a field the service adds or
// drops shows up as a difference. With `types`, values are examples: only the members shown,
// their JSON types, and (for items present on both sides) the items' shapes are compared.

export type Pattern =
  | { t: 'obj'; entries: [string, Pattern][]; open: boolean }
  | { t: 'arr'; items: Pattern[]; open: boolean }
  | { t: 'str'; value: string }
  | { t: 'num'; value: number }
  | { t: 'lit'; value: boolean | null }
  | { t: 'any' };

type Token =
  | { k: 'punct'; v: string }
  | { k: 'str'; v: string }
  | { k: 'num'; v: number }
  | { k: 'word'; v: string }
  | { k: 'more' };

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) i++;
    else if (text.startsWith('//', i)) while (i < text.length && text[i] !== '\n') i++;
    else if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) throw new Error('an unclosed /* comment');
      i = end + 2;
    } else if ('{}[]:,'.includes(c)) {
      out.push({ k: 'punct', v: c });
      i++;
    } else if (c === '…') {
      out.push({ k: 'more' });
      i++;
    } else if (text.startsWith('...', i)) {
      out.push({ k: 'more' });
      i += 3;
    } else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) throw new Error('an unclosed string');
      out.push({ k: 'str', v: JSON.parse(text.slice(i, j + 1)) as string });
      i = j + 1;
    } else {
      const m =
        /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])/.exec(text.slice(i)) ?? /^[A-Za-z_][\w-]*/.exec(text.slice(i));
      if (!m) throw new Error(`unexpected ${JSON.stringify(text.slice(i, i + 12))}`);
      out.push(/^-?\d/.test(m[0]) ? { k: 'num', v: Number(m[0]) } : { k: 'word', v: m[0] });
      i += m[0].length;
    }
  }
  return out;
}

/** Parses the doc's JSON; throws with what is wrong. */
export function parsePattern(text: string): Pattern {
  const toks = tokenize(text);
  let p = 0;
  const peek = () => toks[p];
  const punct = (v: string) => {
    const t = toks[p];
    if (t?.k === 'punct' && t.v === v) {
      p++;
      return true;
    }
    return false;
  };
  const value = (): Pattern => {
    const t = toks[p++];
    if (!t) throw new Error('the JSON ends early');
    if (t.k === 'more') return { t: 'any' };
    if (t.k === 'str') return { t: 'str', value: t.v };
    if (t.k === 'num') return { t: 'num', value: t.v };
    if (t.k === 'word')
      return t.v === 'true' || t.v === 'false'
        ? { t: 'lit', value: t.v === 'true' }
        : t.v === 'null'
          ? { t: 'lit', value: null }
          : { t: 'any' };
    if (t.v === '{') {
      const entries: [string, Pattern][] = [];
      let open = false;
      while (!punct('}')) {
        const k = toks[p++];
        if (k?.k === 'more') open = true;
        else if (k?.k === 'str') {
          if (!punct(':')) throw new Error(`":" expected after "${k.v}"`);
          entries.push([k.v, value()]);
        } else throw new Error(`a member name expected, got ${JSON.stringify(k)}`);
        if (!punct(',') && !(peek()?.k === 'punct' && (peek() as { v: string }).v === '}'))
          throw new Error('"," or "}" expected');
      }
      // `{…}` alone: any object.
      return { t: 'obj', entries, open };
    }
    if (t.v === '[') {
      const items: Pattern[] = [];
      let open = false;
      while (!punct(']')) {
        if (peek()?.k === 'more') {
          p++;
          open = true;
        } else items.push(value());
        if (!punct(',') && !(peek()?.k === 'punct' && (peek() as { v: string }).v === ']'))
          throw new Error('"," or "]" expected');
      }
      return { t: 'arr', items, open };
    }
    throw new Error(`unexpected "${t.v}"`);
  };
  const v = value();
  if (p !== toks.length) throw new Error('text after the JSON value');
  return v;
}

const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** Where `actual` differs from the pattern: one line per difference, with its JSON path. */
export function matchPattern(
  pattern: Pattern,
  actual: unknown,
  opts: { typesOnly?: boolean } = {},
  path = '$',
): string[] {
  const show = (v: unknown) => {
    const s = JSON.stringify(v);
    return s === undefined ? 'nothing' : s.length > 120 ? `${s.slice(0, 117)}…` : s;
  };
  switch (pattern.t) {
    case 'any':
      return actual === undefined ? [`${path}: missing`] : [];
    case 'obj': {
      if (typeOf(actual) !== 'object') return [`${path}: the doc shows an object, the service gives ${show(actual)}`];
      const a = actual as Record<string, unknown>;
      const out: string[] = [];
      for (const [k, sub] of pattern.entries) {
        if (!(k in a)) out.push(`${path}.${k}: shown in the doc, absent from the service's answer`);
        else out.push(...matchPattern(sub, a[k], opts, `${path}.${k}`));
      }
      if (!pattern.open) {
        const shown = new Set(pattern.entries.map(([k]) => k));
        for (const k of Object.keys(a))
          if (!shown.has(k))
            out.push(`${path}.${k}: the service gives ${show(a[k])}, the doc does not show it (and has no "…" there)`);
      }
      return out;
    }
    case 'arr': {
      if (!Array.isArray(actual)) return [`${path}: the doc shows an array, the service gives ${show(actual)}`];
      const out: string[] = [];
      // With `types`, the doc's items are examples: how many the service gives does not matter.
      if (
        !opts.typesOnly &&
        (pattern.open ? actual.length < pattern.items.length : actual.length !== pattern.items.length)
      ) {
        out.push(
          `${path}: the doc shows ${pattern.items.length}${pattern.open ? ' or more' : ''} items, the service gives ${actual.length}: ${show(actual)}`,
        );
      }
      pattern.items.forEach((sub, i) => {
        if (i < actual.length) out.push(...matchPattern(sub, actual[i], opts, `${path}[${i}]`));
      });
      return out;
    }
    case 'str':
      if (typeof actual !== 'string') return [`${path}: the doc shows a string, the service gives ${show(actual)}`];
      if (opts.typesOnly || stringMatches(pattern.value, actual)) return [];
      return [`${path}: the doc shows ${show(pattern.value)}, the service gives ${show(actual)}`];
    case 'num':
      if (typeof actual !== 'number') return [`${path}: the doc shows a number, the service gives ${show(actual)}`];
      return opts.typesOnly || actual === pattern.value
        ? []
        : [`${path}: the doc shows ${pattern.value}, the service gives ${actual}`];
    case 'lit':
      if (pattern.value === null)
        return actual === null ? [] : [`${path}: the doc shows null, the service gives ${show(actual)}`];
      if (typeof actual !== 'boolean') return [`${path}: the doc shows a boolean, the service gives ${show(actual)}`];
      return opts.typesOnly || actual === pattern.value
        ? []
        : [`${path}: the doc shows ${pattern.value}, the service gives ${actual}`];
  }
}

/** A string of the doc matches when equal, or when its parts around each `…` appear in order. */
export function stringMatches(shown: string, actual: string): boolean {
  const parts = shown.split(/…|\.\.\./);
  if (parts.length === 1) return shown === actual;
  if (!actual.startsWith(parts[0]!) || !actual.endsWith(parts.at(-1)!)) return false;
  let at = parts[0]!.length;
  for (const part of parts.slice(1, -1)) {
    const i = actual.indexOf(part, at);
    if (i < 0) return false;
    at = i + part.length;
  }
  return at <= actual.length - parts.at(-1)!.length;
}

/**
 * An HTTP answer as the docs write it: `429  {json}` and header lines (`Retry-After: N`).
 * Returns undefined when the text does not start with a status.
 */
export function parseAnswer(text: string): { status: number; body: Pattern; headers: [string, string][] } | undefined {
  const m = /^(\d{3})\s+([\s\S]*)$/.exec(text.trim());
  if (!m) return undefined;
  const rest = m[2]!;
  // The body is the balanced JSON value at the start; header lines follow it.
  let depth = 0;
  let end = -1;
  let inStr = false;
  for (let i = 0; i < rest.length && end < 0; i++) {
    const c = rest[i]!;
    if (inStr) {
      if (c === '\\') i++;
      else if (c === '"') inStr = false;
    } else if (c === '"') inStr = true;
    else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) end = i + 1;
  }
  if (end < 0) throw new Error("the answer's JSON body is not closed");
  const headers = rest
    .slice(end)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l): [string, string] => {
      const i = l.indexOf(':');
      if (i <= 0) throw new Error(`not a header line: ${JSON.stringify(l)}`);
      return [l.slice(0, i).trim(), l.slice(i + 1).trim()];
    });
  return { status: Number(m[1]), body: parsePattern(rest.slice(0, end)), headers };
}

/** A header value of the doc: `N` is a number, `…` any text, else the value itself. */
export function headerMatches(shown: string, actual: string | undefined): boolean {
  if (actual === undefined) return false;
  if (shown === 'N') return /^\d+$/.test(actual);
  return stringMatches(shown, actual);
}
