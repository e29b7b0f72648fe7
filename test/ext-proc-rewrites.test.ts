// What ext_proc answers rewrite. It cannot remove query parameters, so the allow rewrites
// :path: whatever a parameter's spelling, the service's own reading of the result is the
// original's minus the removed names, and every other byte stays. A filtered list's
// Cache-Control keeps it out of shared caches.
import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import fc from 'fast-check';
import { parseQuery } from '../src/request/parse-query.js';
import { removeQueryParams } from '../src/request/remove-query-params.js';
import { privateCacheControl } from '../src/response/cache-control.js';

test('the named parameters go, every other parameter stays byte for byte and in order', (t) => {
  t.is(removeQueryParams('/mcp?a=1&api_key=mcp_x&b=%20&c', ['api_key']), '/mcp?a=1&b=%20&c');
  t.is(removeQueryParams('/mcp?api_key=1', ['api_key']), '/mcp');
  t.is(removeQueryParams('/mcp?api%5Fkey=1&api+key=2&apikey=3', ['api_key', 'apikey']), '/mcp?api+key=2', 'an encoded name is the same parameter');
  t.is(removeQueryParams('/mcp?x=1', []), '/mcp?x=1');
  t.is(removeQueryParams('/mcp', ['api_key']), '/mcp');
  t.is(removeQueryParams('/mcp?api_key=a=b&&x', ['api_key']), '/mcp?&x');
});

const names = fc.constantFrom('api_key', 'apikey', 'q', 'x y', 'é');
const spelled = (name: string) => fc.constantFrom(name, encodeURIComponent(name), name.replaceAll('_', '%5F').replaceAll(' ', '+'), name.replaceAll('_', '%5f'));
const param = names.chain((n) => fc.tuple(fc.constant(n), spelled(n), fc.option(fc.string({ maxLength: 6 }).map(encodeURIComponent), { nil: undefined })));

test('property: the result reads as the original without the removed names', (t) => {
  fc.assert(
    fc.property(fc.array(param, { maxLength: 8 }), fc.subarray(['api_key', 'apikey', 'q']), (params, remove) => {
      const query = params.map(([, spelling, value]) => (value === undefined ? spelling : `${spelling}=${value}`)).join('&');
      const path = `/mcp/files${query === '' ? '' : `?${query}`}`;
      const out = removeQueryParams(path, remove);
      const before = parseQuery(path.includes('?') ? path.slice(path.indexOf('?') + 1) : '');
      const after = parseQuery(out.includes('?') ? out.slice(out.indexOf('?') + 1) : '');
      for (const name of remove) delete before[name];
      return isDeepStrictEqual({ ...after }, { ...before }) && out.startsWith('/mcp/files');
    }),
  );
  t.pass();
});

test('a filtered list is cacheable by the caller only: private, the upstream\'s own directives kept', (t) => {
  t.is(privateCacheControl([]), 'private');
  t.is(privateCacheControl(['public, max-age=60']), 'private, max-age=60');
  t.is(privateCacheControl(['no-store', 's-maxage=30, Proxy-Revalidate']), 'private, no-store');
  t.is(privateCacheControl(['private="set-cookie", max-age=5']), 'private');
});
