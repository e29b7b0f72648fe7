// What ext_proc answers rewrite. It cannot remove query parameters, so the allow rewrites
// :path to the bytes Envoy's ext_authz filter writes back after removing the same parameters
// (demo/envoy-stand-in/envoy-apply.ts models it): the MCP server gets the same path through either
// filter, and no spelling of a credential's name survives. A filtered list's Cache-Control
// keeps it out of shared caches.
import test from 'ava';
import fc from 'fast-check';
import { parseQuery } from '../src/request/parse-query.js';
import { rawParamNames, removeQueryParams } from '../src/request/remove-query-params.js';
import { privateCacheControl } from '../src/mcp-response/cache-control.js';
import { envoyRemoveQueryParameters } from '../demo/envoy-stand-in/envoy-apply.js';

test('every spelling of a credential is named as written, and the query is written back as Envoy writes it', (t) => {
  t.deepEqual(rawParamNames('a=1&api_key=mcp_x&b=%20&c', ['api_key']), ['api_key']);
  t.deepEqual(rawParamNames('api%5Fkey=1&api+key=2&apikey=3&api%5fkey=4&api_key', ['api_key', 'apikey']), [
    'api%5Fkey',
    'apikey',
    'api%5fkey',
    'api_key',
  ]);
  t.deepEqual(rawParamNames('x=1', []), []);
  t.is(removeQueryParams('/mcp?a=1&api_key=mcp_x&b=%20&c', ['api_key']), '/mcp?a=1&b=%20&c=');
  t.is(
    removeQueryParams('/mcp?z=1&api_key=1&b=2&z=0', ['api_key']),
    '/mcp?b=2&z=1&z=0',
    'names in byte order, values of one name in their order',
  );
  t.is(removeQueryParams('/mcp?api_key=1', ['api_key']), '/mcp');
  t.is(removeQueryParams('/mcp?x=1', []), '/mcp?x=1');
  t.is(removeQueryParams('/mcp', ['api_key']), '/mcp');
  t.is(
    removeQueryParams('/mcp?api_key=a=b&&x', ['api_key']),
    '/mcp?=&x=',
    'an empty part is a parameter with an empty name to Envoy',
  );
});

const names = fc.constantFrom('api_key', 'apikey', 'q', 'x y', 'é', '');
const spelled = (name: string) =>
  fc.constantFrom(
    name,
    encodeURIComponent(name),
    name.replaceAll('_', '%5F').replaceAll(' ', '+'),
    name.replaceAll('_', '%5f'),
  );
const param = names.chain((n) =>
  fc.tuple(
    fc.constant(n),
    spelled(n),
    fc.option(fc.string({ maxLength: 6 }).map(encodeURIComponent), { nil: undefined }),
  ),
);

test('property: the path is the one Envoy writes back, no spelling of a removed name is left, and every other parameter keeps its values', (t) => {
  fc.assert(
    fc.property(fc.array(param, { maxLength: 8 }), fc.subarray(['api_key', 'apikey', 'q']), (params, remove) => {
      const query = params
        .map(([, spelling, value]) => (value === undefined ? spelling : `${spelling}=${value}`))
        .join('&');
      const path = `/mcp/files${query === '' ? '' : `?${query}`}`;
      const raw = rawParamNames(query, remove);
      const out = removeQueryParams(path, raw);
      if (raw.length > 0 && out !== envoyRemoveQueryParameters(path, raw)) return false;
      if (raw.length === 0 && out !== path) return false;
      const before = parseQuery(query);
      const after = parseQuery(out.includes('?') ? out.slice(out.indexOf('?') + 1) : '');
      const sorted = (xs: string[] | undefined) => [...(xs ?? [])].sort();
      for (const name of remove) if (after[name] !== undefined) return false;
      for (const name of Object.keys(before)) {
        if (remove.includes(name) || name === '') continue;
        if (JSON.stringify(sorted(after[name])) !== JSON.stringify(sorted(before[name]))) return false;
      }
      return out.startsWith('/mcp/files');
    }),
  );
  t.pass();
});

test("a filtered list is cacheable by the caller only: private, the upstream's own directives kept", (t) => {
  t.is(privateCacheControl([]), 'private');
  t.is(privateCacheControl(['public, max-age=60']), 'private, max-age=60');
  t.is(privateCacheControl(['no-store', 's-maxage=30, Proxy-Revalidate']), 'private, no-store');
  t.is(privateCacheControl(['private="set-cookie", max-age=5']), 'private');
});
