import test from 'ava';
import fc from 'fast-check';
import { normalizePath } from '../src/request/normalize-path.js';
import { parseQuery } from '../src/request/parse-query.js';
import { RequestRejected } from '../src/contracts/request-rejected.js';

const segment = fc.stringMatching(/^[A-Za-z0-9._~%-]{0,8}$/);
const rawPath = fc.array(segment, { maxLength: 8 }).map((s) => '/' + s.join('/'));

function attempt(p: string) {
  try {
    return normalizePath(p);
  } catch (err) {
    if (err instanceof RequestRejected) return err;
    throw err;
  }
}

test('any input either normalizes or is rejected with a 400, never another error', (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 64 }), (p) => {
      const r = attempt(p);
      if (r instanceof RequestRejected) return r.status === 400 && r.code === 'invalid_path';
      return true;
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test('a normalized path starts with "/" and has no empty, ".", or ".." segments inside, no NUL and no backslash', (t) => {
  fc.assert(
    fc.property(rawPath, (p) => {
      const r = attempt(p);
      if (r instanceof RequestRejected) return true;
      const inner = r.path.split('/').slice(1, -1);
      return (
        r.path.startsWith('/') &&
        !r.path.includes('//') &&
        !inner.includes('') &&
        !inner.includes('.') &&
        !r.path.split('/').includes('..') &&
        !r.path.includes('\0') &&
        !r.path.includes('\\')
      );
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test('normalizing is idempotent for paths without "%"', (t) => {
  fc.assert(
    fc.property(rawPath, (p) => {
      const r = attempt(p);
      if (r instanceof RequestRejected || r.path.includes('%')) return true;
      return normalizePath(r.path).path === r.path;
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

test('the query is split off whole and never leaks into the path', (t) => {
  const query = fc.stringMatching(/^[A-Za-z0-9=&%+._-]{0,20}$/);
  fc.assert(
    fc.property(
      rawPath.filter((p) => !p.includes('%')),
      query,
      (p, q) => {
        const r = attempt(`${p}?${q}`);
        if (r instanceof RequestRejected) return true;
        return r.rawQuery === q && !r.path.includes('?');
      },
    ),
    { numRuns: 2000 },
  );
  t.pass();
});

test('a ".." segment is rejected however it is spelled', (t) => {
  for (const p of ['/a/../b', '/a/%2e%2e/b', '/a/%2E./b', '/..', '/a/.%2e']) {
    const r = attempt(p);
    t.true(r instanceof RequestRejected, p);
  }
});

test('encoded separators and NUL are rejected, not decoded into the path', (t) => {
  for (const p of [
    '/a%3Fb',
    '/a%23b',
    '/a%2fb',
    '/a%2Fb',
    '/a%5cb',
    '/a%5Cb',
    '/a%00',
    '/a\\b',
    '/a%zz',
    'relative',
    '',
  ]) {
    t.true(attempt(p) instanceof RequestRejected, JSON.stringify(p));
  }
});

test('examples: decoding once, "//" collapse, "." dropped, trailing slash kept, fragment dropped', (t) => {
  t.deepEqual(normalizePath('//mcp//files/./x/?a=1#frag'), { path: '/mcp/files/x/', rawQuery: 'a=1' });
  t.is(normalizePath('/mcp/%2541').path, '/mcp/%41', 'decoded exactly once');
  t.is(normalizePath('/').path, '/');
  t.is(normalizePath('/caf%C3%A9').path, '/café');
});

test('query parameters keep every value in order, form-decoded', (t) => {
  const q = parseQuery('api_key=a&x=1&api_key=b&sp=a+b&enc=%26');
  t.deepEqual(q.api_key, ['a', 'b']);
  t.deepEqual(q.sp, ['a b']);
  t.deepEqual(q.enc, ['&']);
  t.deepEqual(Object.keys(parseQuery('')), []);
});

// How a Java servlet container reads a path: ";params" stripped from every segment, then
// "." and ".." resolved (the upstream of an endpoint may be such a server).
function javaReading(decodedPath: string): string {
  const out: string[] = [];
  for (const raw of decodedPath.split('/').slice(1)) {
    const s = raw.includes(';') ? raw.slice(0, raw.indexOf(';')) : raw;
    if (s === '.' || s === '') continue;
    if (s === '..') out.pop();
    else out.push(s);
  }
  return '/' + out.join('/');
}

test('an accepted path reads the same to a Java server, which strips ";params" and resolves dot segments', (t) => {
  const piece = fc.constantFrom(
    'mcp',
    'public',
    'alice',
    '..',
    '.',
    '..;',
    '..;x',
    '.;',
    '.;a=1',
    'files;v=1',
    '%2e%2e;',
    '%2E;x',
    '..%3B',
    'a',
    '',
  );
  let dotWithParams = 0;
  fc.assert(
    fc.property(fc.array(piece, { minLength: 1, maxLength: 6 }), (parts) => {
      const raw = '/' + parts.join('/');
      if (/(^|\/)(\.|%2e){1,2}(;|%3b)/i.test(raw)) dotWithParams++;
      const r = attempt(raw);
      if (r instanceof RequestRejected) return true;
      // What mcp-authz matched, with the parameters a Java server strips, but no dot resolved.
      const ours =
        '/' +
        r.path
          .split('/')
          .slice(1)
          .map((s) => (s.includes(';') ? s.slice(0, s.indexOf(';')) : s))
          .filter((s) => s !== '')
          .join('/');
      return javaReading(r.path) === ours;
    }),
    { numRuns: 3000 },
  );
  t.true(dotWithParams > 100, `dot segments with parameters were generated ${dotWithParams} times`);
});

test('dot segments with parameters are refused: "..;" and ".;", also encoded', (t) => {
  for (const p of [
    '/mcp/public/..;/alice',
    '/mcp/public/..;x=1/alice',
    '/mcp/.;/files',
    '/mcp/%2e%2e;/alice',
    '/mcp/..%3Bx/alice',
    '/mcp/.%3b/x',
  ]) {
    const r = attempt(p);
    t.true(r instanceof RequestRejected, p);
    if (r instanceof RequestRejected) t.regex(r.description, /dot segment with parameters|"\.\." segment/);
  }
  t.is(normalizePath('/mcp/files;v=1/x').path, '/mcp/files;v=1/x', 'other ";" segments are ordinary characters');
});
