// The session cookie reader (src/request/cookie-header.ts): one reading or a refusal, and a
// rewritten Cookie header that no reader finds the session cookie in.
import test from 'ava';
import fc from 'fast-check';
import { cookieName, findCookie, type CookieLookup } from '../src/request/cookie-header.js';

const SESSION = cookieName('mcp_session');
const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln';
const find = (...headers: string[]) => findCookie(headers, SESSION);

test('the cookie among others: its value, and the others in order without it', (t) => {
  t.deepEqual(find(`theme=dark; mcp_session=${JWT}; lang=en`), {
    kind: 'found',
    value: JWT,
    rest: 'theme=dark; lang=en',
  });
  t.deepEqual(find(`mcp_session=${JWT}`), { kind: 'found', value: JWT, rest: '' });
  t.deepEqual(find('theme=dark;lang=en  ;  '), { kind: 'absent' });
  t.deepEqual(findCookie(undefined, SESSION), { kind: 'absent' });
});

test('HTTP/2 cookie crumbs in several headers are read as one list', (t) => {
  t.deepEqual(find('theme=dark', `mcp_session=${JWT}`, 'lang=en; a=b'), {
    kind: 'found',
    value: JWT,
    rest: 'theme=dark; lang=en; a=b',
  });
});

test('the same value twice is one cookie; two values are refused', (t) => {
  t.deepEqual(find(`mcp_session=${JWT}; x=1`, `mcp_session=${JWT}`), { kind: 'found', value: JWT, rest: 'x=1' });
  t.is(find(`mcp_session=${JWT}; mcp_session=${JWT}x`).kind, 'ambiguous');
});

test('spellings readers disagree on are refused', (t) => {
  const ambiguous = [
    `MCP_SESSION=${JWT}`, // case-insensitive readers
    `Mcp_Session=${JWT}; mcp_session=${JWT}`,
    `mcp_session =${JWT}`, // readers that trim the name
    `mcp_session\t=${JWT}`,
    'mcp_session', // a name without "="
    `theme=dark, mcp_session=${JWT}`, // RFC 2965 readers split on ","; Envoy joins repeated headers with ","
    `theme=dark,mcp_session=${JWT}`,
    `theme="x; mcp_session=${JWT}"`, // inside a quoted value
    `theme="mcp_session=${JWT}"`,
    `mcp_session="${JWT}; a=b"`,
    `=mcp_session=${JWT}`,
    `mcp_session=${JWT},mcp_session=other`,
  ];
  for (const h of ambiguous) t.is(find(h).kind, 'ambiguous', h);
});

test('a cookie whose name merely contains the name is another cookie', (t) => {
  t.deepEqual(find(`my_mcp_session=x; mcp_session.v2=y; mcp_session=${JWT}`), {
    kind: 'found',
    value: JWT,
    rest: 'my_mcp_session=x; mcp_session.v2=y',
  });
});

test('an empty, quoted or spaced value is malformed, and still removed', (t) => {
  for (const [h, why] of [
    ['mcp_session=; a=1', /empty/],
    [`mcp_session="${JWT}"; a=1`, /quoted/],
    ['mcp_session=a b; a=1', /spaces/],
  ] as const) {
    const r = find(h) as Extract<CookieLookup, { kind: 'malformed' }>;
    t.is(r.kind, 'malformed', h);
    t.regex(r.why, why);
    t.is(r.rest, 'a=1');
  }
});

test('a cookie name must be a token', (t) => {
  t.throws(() => cookieName('a b'));
  t.throws(() => cookieName('a;b'));
  t.throws(() => cookieName(''));
});

// ---- Properties: every reader agrees, and the rewritten header hides nothing ----

type Reader = (header: string, name: string) => string[];
/** Cookie readers found in the wild, each returning every value it would take for `name`. */
const readers: Record<string, Reader> = {
  rfc6265: (h, n) =>
    pairs(h.split(';'))
      .filter(([k]) => k === n)
      .map(([, v]) => v),
  commaSplitting: (h, n) =>
    pairs(h.split(/[;,]/))
      .filter(([k]) => k === n)
      .map(([, v]) => v),
  caseInsensitive: (h, n) =>
    pairs(h.split(';'))
      .filter(([k]) => k.toLowerCase() === n.toLowerCase())
      .map(([, v]) => v),
  unquoting: (h, n) =>
    pairs(h.split(';'))
      .filter(([k]) => k === n)
      .map(([, v]) => v.replace(/^"(.*)"$/, '$1')),
  lastEquals: (h, n) =>
    h
      .split(';')
      .map((p) => p.trim())
      .filter((p) => p.includes('='))
      .map((p) => [p.slice(0, p.lastIndexOf('=')).trim(), p.slice(p.lastIndexOf('=') + 1)] as const)
      .filter(([k]) => k === n)
      .map(([, v]) => v),
};
function pairs(parts: string[]): [string, string][] {
  return parts
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((p) => (p.includes('=') ? [p.slice(0, p.indexOf('=')).trim(), p.slice(p.indexOf('=') + 1).trim()] : ['', p]));
}

const tokenChars = fc.constantFrom(..."abcMNO019_-.!#$%&'*+^`|~".split(''));
const nameArb = fc.oneof(
  { weight: 3, arbitrary: fc.array(tokenChars, { minLength: 1, maxLength: 8 }).map((a) => a.join('')) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'mcp_session',
      'MCP_SESSION',
      'mcp_session ',
      ' mcp_session',
      'xmcp_session',
      'mcp_sessio',
    ),
  },
);
const valueArb = fc.oneof(
  { weight: 3, arbitrary: fc.stringMatching(/^[A-Za-z0-9._-]{0,12}$/) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      JWT,
      `"${JWT}"`,
      'a,mcp_session=evil',
      'x, mcp_session=evil',
      '"mcp_session=evil"',
      'a=b',
      '',
    ),
  },
);
const pairArb = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(nameArb, valueArb).map(([n, v]) => `${n}=${v}`) },
  { weight: 1, arbitrary: nameArb },
);
const headerArb = fc
  .array(pairArb, { maxLength: 6 })
  .chain((ps) => fc.constantFrom('; ', ';', ' ;  ', ', ').map((sep) => ps.join(sep)));

test('property: when the cookie is found, every reader that finds it reads that one value; when absent, none finds it', (t) => {
  fc.assert(
    fc.property(fc.array(headerArb, { minLength: 1, maxLength: 3 }), (headers) => {
      const r = findCookie(headers, SESSION);
      if (r.kind === 'ambiguous' || r.kind === 'malformed') return;
      for (const [who, read] of Object.entries(readers)) {
        const seen = new Set(headers.flatMap((h) => read(h, 'mcp_session')));
        if (r.kind === 'absent') t.is(seen.size, 0, `${who} finds a cookie in ${JSON.stringify(headers)}`);
        // Only a reader that splits at the last "=" may miss a value that holds "=" (a JWT never does).
        else if (seen.size === 0) t.is(who, 'lastEquals', `${who} misses the cookie in ${JSON.stringify(headers)}`);
        else
          t.deepEqual(
            [...seen],
            [r.value],
            `${who} reads ${[...seen]} in ${JSON.stringify(headers)}, we read ${r.value}`,
          );
      }
    }),
    { numRuns: 5000 },
  );
});

test('property: the rewritten header keeps every other cookie and no reader finds the session cookie in it', (t) => {
  let found = 0;
  fc.assert(
    fc.property(fc.array(headerArb, { minLength: 1, maxLength: 3 }), fc.nat(6), (headers, at) => {
      const withSession = headers.map((h, i) =>
        i === 0
          ? [...h.split('; ').slice(0, at), `mcp_session=${JWT}`, ...h.split('; ').slice(at)].filter(Boolean).join('; ')
          : h,
      );
      const r = findCookie(withSession, SESSION);
      if (r.kind !== 'found' && r.kind !== 'malformed') return;
      found++;
      for (const [who, read] of Object.entries(readers))
        t.deepEqual(read(r.rest, 'mcp_session'), [], `${who} finds it in ${JSON.stringify(r.rest)}`);
      t.deepEqual(findCookie([r.rest], SESSION), { kind: 'absent' });
    }),
    { numRuns: 5000 },
  );
  t.true(found > 1000, `only ${found} headers with the cookie were tried`);
});

test('property: any set of other cookies round-trips around the session cookie, in one header or as crumbs', (t) => {
  const otherName = fc
    .array(tokenChars, { minLength: 1, maxLength: 8 })
    .map((a) => a.join(''))
    .filter((n) => !n.toLowerCase().includes('mcp_session'));
  const other = fc.tuple(otherName, fc.stringMatching(/^[A-Za-z0-9._-]{0,12}$/)).map(([n, v]) => `${n}=${v}`);
  fc.assert(
    fc.property(fc.array(other, { maxLength: 6 }), fc.nat(6), fc.boolean(), (others, at, crumbs) => {
      const all = [...others.slice(0, at), `mcp_session=${JWT}`, ...others.slice(at)];
      const r = findCookie(crumbs ? all : [all.join('; ')], SESSION);
      t.deepEqual(r, { kind: 'found', value: JWT, rest: others.join('; ') });
    }),
    { numRuns: 2000 },
  );
});
