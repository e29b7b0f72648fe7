import { posix } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { normalizeResourceUri } from '../src/request/normalize-resource-uri.js';
import { RequestRejected } from '../src/contracts/request-rejected.js';

function attempt(uri: string): string | RequestRejected {
  try {
    return normalizeResourceUri(uri);
  } catch (err) {
    if (err instanceof RequestRejected) return err;
    throw err;
  }
}

test('dot segments are removed after decoding unreserved characters; scheme and host are lower-cased', (t) => {
  const cases: [string, string][] = [
    ['file:///public/../secret/key.pem', 'file:///secret/key.pem'],
    ['file:///public/%2e%2e/secret/key.pem', 'file:///secret/key.pem'],
    ['file:///public/.%2E/secret', 'file:///secret'],
    ['file:///public/./a/b/../c', 'file:///public/a/c'],
    ['file:///public/x/..', 'file:///public/'],
    ['file:///..', 'file:///'],
    ['FILE:///public/%41%7e', 'file:///public/A~'],
    ['HTTPS://API.Example.COM:8443/Docs/Read', 'https://api.example.com:8443/Docs/Read'],
    ['https://x.example/caf%c3%a9', 'https://x.example/caf%C3%A9'],
    ['db://main/users?where=a%3Db', 'db://main/users?where=a%3Db'],
    ['urn:isbn:0451450523', 'urn:isbn:0451450523'],
    ['repo:owner/name', 'repo:owner/name'],
    ['ui://widget', 'ui://widget'],
  ];
  for (const [input, want] of cases) t.is(normalizeResourceUri(input), want, input);
});

test('URIs that readers would not agree on are refused with 400 invalid_resource_uri', (t) => {
  const refused = [
    '',
    'no-scheme/x',
    '/abs/path',
    ' file:///x',
    'file:///public/%2f..%2fsecret',
    'file:///public/%2F',
    'file:///public/%5c',
    'file:///public\\..\\secret',
    'file:///a%00',
    'file:///a%zz',
    'file:///a%2',
    'file:///a\nb',
    'file:///a\tb',
    'https://api.example.com@evil.example/x',
    'https://user:pw@api.example.com/',
    'file:///public//../secret',
    'file:////etc/passwd',
    'repo:public/../secret',
    'repo:./x',
    'file:///public/x?/../../secret',
    'file:///public/x#/../secret',
    'file:///public/x?%2e%2e/y/..',
    'file:///p/%252e%252e/secret',
    'file:///public/..;/secret',
    'file:///public/.;x/y',
    'file:///public/x/..?q=1',
    'file:///public/.#f',
    'http:///%2e%2e/public',
    'https:/x/y',
    'https:x',
  ];
  for (const uri of refused) {
    const r = attempt(uri);
    t.true(r instanceof RequestRejected, JSON.stringify(uri));
    if (r instanceof RequestRejected) {
      t.is(r.status, 400);
      t.is(r.code, 'invalid_resource_uri');
    }
  }
});

test('normalizing is idempotent', (t) => {
  fc.assert(
    fc.property(uriArb, (uri) => {
      const n = attempt(uri);
      if (n instanceof RequestRejected) return true;
      return normalizeResourceUri(n) === n;
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

// Three readers of the resource a URI names, as MCP servers read them.
const trim = (p: string) => (p.length > 1 ? p.replace(/\/+$/, '') : p);
/** WHATWG URL (Node, browsers, the TypeScript SDK's servers): the decoded pathname. */
function whatwg(uri: string): string | undefined {
  try {
    return trim(decodeURIComponent(new URL(uri).pathname));
  } catch {
    return undefined; // it cannot read the URI at all: nothing is served
  }
}
/** Python: urllib.parse.urlsplit, unquote, posixpath.normpath. */
function python(uri: string): string | undefined {
  const m = /^[a-z][a-z0-9+.-]*:(\/\/[^/?#]*)?([^?#]*)/i.exec(uri);
  if (!m) return undefined;
  const path = decodeURIComponent(m[2]!);
  if (path === '') return '';
  const lead = path.startsWith('//') && !path.startsWith('///') ? '//' : path.startsWith('/') ? '/' : '';
  const out: string[] = [];
  for (const s of path.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') {
      if (out.length && out[out.length - 1] !== '..') out.pop();
      else if (!lead) out.push('..');
    } else out.push(s);
  }
  return trim(lead + out.join('/'));
}
/** A naive server: everything after the authority decoded, then resolved with Node's path. */
function naive(uri: string): string | undefined {
  const m = /^[a-z][a-z0-9+.-]*:(\/\/[^/]*)?(.*)$/is.exec(uri);
  if (!m) return undefined;
  try {
    return trim(posix.normalize(decodeURIComponent(m[2]!)));
  } catch {
    return undefined;
  }
}

const segment = fc.constantFrom(
  'public',
  'secret',
  'key.pem',
  '..',
  '.',
  '%2e%2e',
  '%2E',
  '.%2e',
  '%2e.',
  '',
  'a%41',
  '%2f',
  '%5C',
  'x%252e',
  '..;',
  'caf%C3%A9',
  'a b',
  'README',
);
const uriArb = fc
  .record({
    scheme: fc.constantFrom('file', 'FILE', 'https', 'http'),
    authority: fc.constantFrom('', 'api.example.com', 'API.Example.com', 'u@h'),
    segments: fc.array(segment, { minLength: 1, maxLength: 6 }),
    query: fc.option(
      fc
        .array(fc.constantFrom('a=1', '..', '.', '%2e%2e', 'x', ''), { minLength: 1, maxLength: 3 })
        .map((s) => s.join('/')),
      { nil: undefined },
    ),
  })
  .map((u) => `${u.scheme}://${u.authority}/${u.segments.join('/')}${u.query !== undefined ? `?${u.query}` : ''}`);

test('every reader sees the same resource in an accepted URI and in its normalized form, with no dot segment left', (t) => {
  let acceptedWithDots = 0;
  let refused = 0;
  fc.assert(
    fc.property(uriArb, (uri) => {
      const n = attempt(uri);
      if (n instanceof RequestRejected) {
        refused++;
        return true;
      }
      if (/(^|\/)(\.|%2e){1,2}(\/|$|\?)/i.test(uri)) acceptedWithDots++;
      for (const read of [whatwg, python, naive]) {
        const before = read(uri);
        const after = read(n);
        if (before === undefined || after === undefined) continue;
        if (before !== after) return false;
      }
      const path = /^[a-z]+:\/\/[^/]*([^?#]*)/.exec(n)![1]!;
      return !path.split('/').some((s) => s === '.' || s === '..');
    }),
    { numRuns: 5000 },
  );
  t.log(`accepted with dot segments: ${acceptedWithDots}, refused: ${refused}`);
  t.true(acceptedWithDots > 100, `accepted URIs with dot segments: ${acceptedWithDots}`);
  t.true(refused > 200, `refused: ${refused}`);
});

test('a grant on a folder cannot be escaped: the normalized URI of anything outside it never starts with the folder', (t) => {
  fc.assert(
    fc.property(fc.array(segment, { minLength: 1, maxLength: 6 }), (segments) => {
      const uri = `file:///public/${segments.join('/')}`;
      const n = attempt(uri);
      if (n instanceof RequestRejected) return true;
      const target = naive(uri)!;
      // `resources:file:///public/*` matches the normalized URI only for what a server reads inside /public.
      return !n.startsWith('file:///public/') || target === '/public' || target.startsWith('/public/');
    }),
    { numRuns: 5000 },
  );
  t.pass();
});
