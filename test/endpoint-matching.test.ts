import test from 'ava';
import fc from 'fast-check';
import { validateConfig } from '../src/config/load.js';
import { EndpointRegistry } from '../src/endpoints/registry.js';
import { checkRequest, deniedStatus, rpc, startTestService } from './helpers/service.js';

function registry(endpoints: Record<string, unknown>[]): EndpointRegistry {
  return new EndpointRegistry(validateConfig({ endpoints }, 'test', '/tmp', {}).endpoints);
}

const name = (r: EndpointRegistry, path: string, host: string) => r.match(path, host)?.name;

test('a host endpoint wins over a path-only endpoint whose prefix also matches', (t) => {
  const r = registry([
    { name: 'alice-files', match: { host: 'files.example.com' }, owner: 'alice' },
    { name: 'open', match: { pathPrefix: '/mcp' }, auth: { apiKey: false, oauth: false } },
  ]);
  t.is(name(r, '/mcp', 'files.example.com'), 'alice-files');
  t.is(name(r, '/mcp/x', 'FILES.example.com:8443'), 'alice-files', 'host case and port are ignored');
  t.is(name(r, '/mcp', 'other.example.com'), 'open');
});

test('a host an endpoint names never falls back to path-only endpoints', (t) => {
  const r = registry([
    { name: 'host-mcp', match: { host: 'a.example.com', pathPrefix: '/mcp' } },
    { name: 'public-tools', match: { pathPrefix: '/tools' }, auth: { apiKey: false, oauth: false } },
  ]);
  t.is(name(r, '/mcp/x', 'a.example.com'), 'host-mcp');
  t.is(
    name(r, '/tools', 'a.example.com'),
    undefined,
    'Envoy routes a.example.com to its own virtual host, where /tools has no route',
  );
  t.is(name(r, '/tools', 'b.example.com'), 'public-tools');
});

test('within a host the longest segment-aware prefix wins', (t) => {
  const r = registry([
    { name: 'whole', match: { host: 'a.example.com' } },
    { name: 'mcp', match: { host: 'a.example.com', pathPrefix: '/mcp/' } },
    { name: 'mcp-files', match: { host: 'a.example.com', pathPrefix: '/mcp/files' } },
  ]);
  t.is(name(r, '/mcp/files/read', 'a.example.com'), 'mcp-files');
  t.is(name(r, '/mcp/filesystem', 'a.example.com'), 'mcp');
  t.is(name(r, '/mcp', 'a.example.com'), 'mcp');
  t.is(name(r, '/other', 'a.example.com'), 'whole');
});

test('exact hosts beat suffix wildcards, longer suffixes beat shorter ones, prefix wildcards come last', (t) => {
  const r = registry([
    { name: 'exact', match: { host: 'x.team.example.com' } },
    { name: 'team', match: { host: '*.team.example.com' } },
    { name: 'any-example', match: { host: '*.example.com' } },
    { name: 'mcp-prefix', match: { host: 'mcp.*' } },
    { name: 'default', match: { pathPrefix: '/' } },
  ]);
  t.is(name(r, '/', 'x.team.example.com'), 'exact');
  t.is(name(r, '/', 'y.team.example.com'), 'team');
  t.is(name(r, '/', 'a.b.team.example.com'), 'team');
  t.is(name(r, '/', 'team.example.com'), 'any-example');
  t.is(name(r, '/', 'example.com'), 'default', 'a wildcard never matches the empty string');
  t.is(name(r, '/', '.example.com'), 'default');
  t.is(name(r, '/', 'mcp.example.com'), 'any-example', 'suffix wildcards come before prefix wildcards');
  t.is(name(r, '/', 'mcp.example.org'), 'mcp-prefix');
  t.is(name(r, '/', 'elsewhere.org'), 'default');
});

test('config refuses two endpoints that match the same host and prefix, and hosts with a port or scheme', (t) => {
  const twin = t.throws(() =>
    registry([
      { name: 'a', match: { pathPrefix: '/mcp/' } },
      { name: 'b', match: { pathPrefix: '/mcp' } },
    ]),
  );
  t.regex(twin!.message, /endpoints\.1\.match: matches the same host and path prefix as endpoint "a"/);
  for (const host of ['a.example.com:443', 'https://a.example.com', '*', 'a.*.com', 'a b']) {
    const err = t.throws(() => registry([{ name: 'x', match: { host } }]), undefined, host);
    t.regex(err!.message, /endpoints\.0\.match\.host/);
  }
  const dots = t.throws(() => registry([{ name: 'x', match: { pathPrefix: '/mcp/../x' } }]));
  t.regex(dots!.message, /endpoints\.0\.match\.pathPrefix: must not contain/);
  t.is(registry([{ name: 'x', match: { host: 'Files.Example.COM' } }]).all[0]!.match.host, 'files.example.com');
});

// A model of Envoy's route selection written independently of the registry: every virtual
// host is a list of domains; the one chosen is the exact domain, else the longest matching
// suffix wildcard, else the longest prefix wildcard, else "*"; within it, the first route
// (path_separated_prefix, longest first) that matches.
function envoyRoute(
  endpoints: { name: string; host?: string; prefix?: string }[],
  path: string,
  rawHost: string,
): string | undefined {
  const host = rawHost.toLowerCase().replace(/:\d+$/, '');
  const domains = [...new Set(endpoints.map((e) => e.host).filter((h): h is string => h !== undefined))];
  const exact = domains.find((d) => !d.includes('*') && d === host);
  const suffix = domains
    .filter((d) => d.startsWith('*') && host.endsWith(d.slice(1)) && host.length > d.length - 1)
    .sort((a, b) => b.length - a.length)[0];
  const prefix = domains
    .filter((d) => d.endsWith('*') && host.startsWith(d.slice(0, -1)) && host.length > d.length - 1)
    .sort((a, b) => b.length - a.length)[0];
  const domain = exact ?? suffix ?? prefix;
  const routes = endpoints
    .filter((e) => e.host === domain)
    .map((e) => ({ name: e.name, prefix: (e.prefix ?? '').replace(/\/+$/, '') }))
    .sort((a, b) => b.prefix.length - a.prefix.length);
  return routes.find((r) => r.prefix === '' || path === r.prefix || path.startsWith(r.prefix + '/'))?.name;
}

test('endpoint choice agrees with a model of Envoy routing for any set of endpoints and requests', (t) => {
  const hosts = ['a.example.com', 'b.example.com', '*.example.com', '*.b.example.com', 'a.*', 'mcp.example.org'];
  const prefixes = ['/', '/mcp', '/mcp/files', '/mcp/file', '/tools', '/mcp/files/deep'];
  const endpoint = fc
    .record({
      host: fc.option(fc.constantFrom(...hosts), { nil: undefined }),
      prefix: fc.option(fc.constantFrom(...prefixes), { nil: undefined }),
    })
    .filter((e) => e.host !== undefined || e.prefix !== undefined);
  const requestHost = fc.constantFrom(
    'a.example.com',
    'A.Example.com:8443',
    'b.example.com',
    'x.b.example.com',
    'c.example.com',
    'example.com',
    'a.other',
    'mcp.example.org',
    'elsewhere',
  );
  const requestPath = fc.constantFrom(
    '/',
    '/mcp',
    '/mcp/files',
    '/mcp/filesystem',
    '/mcp/files/deep/x',
    '/mcp/file',
    '/tools/x',
    '/toolsx',
    '/other',
  );
  fc.assert(
    fc.property(
      fc.uniqueArray(endpoint, { selector: (e) => `${e.host} ${(e.prefix ?? '/').replace(/\/+$/, '')}`, maxLength: 8 }),
      requestHost,
      requestPath,
      (eps, host, path) => {
        const named = eps.map((e, i) => ({ name: `e${i}`, ...e }));
        const r = registry(
          named.map((e) => ({
            name: e.name,
            match: { ...(e.host ? { host: e.host } : {}), ...(e.prefix ? { pathPrefix: e.prefix } : {}) },
          })),
        );
        t.is(
          r.match(path, host.toLowerCase())?.name,
          envoyRoute(named, path, host),
          `${host}${path} with ${JSON.stringify(named)}`,
        );
      },
    ),
    { numRuns: 2000 },
  );
});

test('through the server, a private host endpoint is not decided as an open path endpoint', async (t) => {
  const svc = await startTestService({
    endpoints: [
      { name: 'alice-files', match: { host: 'files.example.com' }, owner: 'alice' },
      { name: 'open', match: { pathPrefix: '/mcp' }, auth: { apiKey: false, oauth: false } },
    ],
  });
  t.teardown(() => svc.stop());
  const body = rpc('tools/call', { name: 'delete_file', arguments: {} });
  const onHost = await svc.check(checkRequest({ host: 'files.example.com', path: '/mcp', body }));
  t.is(deniedStatus(onHost), 401, 'the host endpoint needs a key');
  const elsewhere = await svc.check(checkRequest({ host: 'public.example.com', path: '/mcp', body }));
  t.truthy(elsewhere.ok_response, 'other hosts reach the open path endpoint');
});
