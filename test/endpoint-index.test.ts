import test from 'ava';
import fc from 'fast-check';
import type { EndpointConfig } from '../src/config/schema.js';
import { trimSlash } from '../src/contracts/trim-slash.js';
import { bareHost, EndpointRegistry } from '../src/endpoints/registry.js';

// The reference: the linear matcher the index replaced, kept here as the oracle. Virtual
// hosts in Envoy's order (exact, longest suffix wildcard, longest prefix wildcard, the rest),
// then the first endpoint in longest-prefix-first, config-order-among-equals order whose
// prefix matches on whole segments.
class LinearMatcher {
  private readonly exact = new Map<string, EndpointConfig[]>();
  private readonly suffixes: { part: string; list: EndpointConfig[] }[] = [];
  private readonly prefixes: { part: string; list: EndpointConfig[] }[] = [];
  private readonly anyHost: EndpointConfig[];

  constructor(configs: readonly EndpointConfig[]) {
    const groups = new Map<string | undefined, EndpointConfig[]>();
    for (const e of configs) {
      const host = e.match.host?.toLowerCase();
      let list = groups.get(host);
      if (!list) groups.set(host, (list = []));
      list.push(e);
    }
    const byLongestPrefix = (a: EndpointConfig, b: EndpointConfig) => prefixOf(b).length - prefixOf(a).length;
    this.anyHost = (groups.get(undefined) ?? []).sort(byLongestPrefix);
    for (const [host, list] of groups) {
      if (host === undefined) continue;
      list.sort(byLongestPrefix);
      if (host.startsWith('*')) this.suffixes.push({ part: host.slice(1), list });
      else if (host.endsWith('*')) this.prefixes.push({ part: host.slice(0, -1), list });
      else this.exact.set(host, list);
    }
    this.suffixes.sort((a, b) => b.part.length - a.part.length);
    this.prefixes.sort((a, b) => b.part.length - a.part.length);
  }

  match(path: string, host: string): EndpointConfig | undefined {
    for (const e of this.virtualHost(host)) {
      const prefix = prefixOf(e);
      if (prefix === '') return e;
      if (path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47)) return e;
    }
    return undefined;
  }

  private virtualHost(host: string): EndpointConfig[] {
    const h = bareHost(host);
    const exact = this.exact.get(h);
    if (exact) return exact;
    for (const w of this.suffixes) if (h.length > w.part.length && h.endsWith(w.part)) return w.list;
    for (const w of this.prefixes) if (h.length > w.part.length && h.startsWith(w.part)) return w.list;
    return this.anyHost;
  }
}

const prefixOf = (e: EndpointConfig) => (e.match.pathPrefix !== undefined ? trimSlash(e.match.pathPrefix) : '');

function endpoint(name: string, host: string | undefined, pathPrefix: string | undefined): EndpointConfig {
  const match: { host?: string; pathPrefix?: string } = {};
  if (host !== undefined) match.host = host;
  if (pathPrefix !== undefined) match.pathPrefix = pathPrefix;
  return { name, match } as EndpointConfig;
}

// Small alphabets so that hosts, wildcards and prefixes collide, nest and tie often.
const label = fc.constantFrom('a', 'b', 'x', 'mcp', 'team', 'example', 'com', '');
const hostName = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));
const hostPattern = fc.oneof(
  hostName,
  hostName.map((h) => `*${h}`),
  hostName.map((h) => `*.${h}`),
  hostName.map((h) => `${h}*`),
  hostName.map((h) => `${h}.*`),
  fc.constant('*'),
  hostName.map((h) => h.toUpperCase()),
);
const segment = fc.constantFrom('', 'mcp', 'files', 'filesystem', 'file', 'a', 'b', '.', 'x;v=1');
const path = fc.array(segment, { maxLength: 5 }).map((s) => `/${s.join('/')}`);
const anyString = fc.string({ unit: fc.constantFrom('/', 'a', 'b', '.', 'm'), maxLength: 8 });
const prefix = fc.oneof(
  path,
  path.map((p) => `${p}/`),
  anyString,
);
const config = fc.array(
  fc.record({ host: fc.option(hostPattern, { nil: undefined }), prefix: fc.option(prefix, { nil: undefined }) }),
  { maxLength: 14 },
);
const requestHost = fc.oneof(
  hostName,
  hostName.map((h) => `${h}:8443`),
  hostName.map((h) => h.toUpperCase()),
  fc.constant(''),
  fc.constant('[::1]:80'),
);
const requestPath = fc.oneof(path, anyString);

test('the indexed endpoint choice equals the linear one for any endpoints, duplicates included, and any request', (t) => {
  fc.assert(
    fc.property(
      config,
      fc.array(fc.tuple(requestHost, requestPath), { minLength: 1, maxLength: 20 }),
      (specs, requests) => {
        const configs = specs.map((s, i) => endpoint(`e${i}`, s.host, s.prefix));
        const indexed = new EndpointRegistry(configs);
        const linear = new LinearMatcher(configs);
        for (const [host, p] of requests) {
          const want = linear.match(p, host)?.name;
          const got = indexed.match(p, host)?.name;
          if (got !== want) throw new Error(`${host} ${p}: indexed chose ${got}, linear ${want}`);
        }
      },
    ),
    { numRuns: 3000 },
  );
  t.pass();
});

test('a request is tried against the prefixes its own host selects, with requests built from the configured prefixes', (t) => {
  // Requests derived from the config itself hit every prefix, its extensions and its near misses.
  fc.assert(
    fc.property(
      config.filter((c) => c.length > 0),
      fc.nat(),
      fc.constantFrom('', '/', '/x', 'x', '/mcp/files'),
      fc.constantFrom('', 'z', 'z.', ':1'),
      (specs, pick, tail, hostTail) => {
        const configs = specs.map((s, i) => endpoint(`e${i}`, s.host, s.prefix));
        const chosen = specs[pick % specs.length]!;
        const host = (chosen.host ?? 'elsewhere').replace(/\*/g, 'q') + hostTail;
        const p = (chosen.prefix ?? '') + tail;
        t.is(
          new EndpointRegistry(configs).match(p, host)?.name,
          new LinearMatcher(configs).match(p, host)?.name,
          `${host} ${p}`,
        );
      },
    ),
    { numRuns: 3000 },
  );
});

test('the first endpoint in config order wins between equal prefixes, and a wildcard never matches the empty remainder', (t) => {
  const r = new EndpointRegistry([
    endpoint('first', 'a.example.com', '/mcp/'),
    endpoint('second', 'a.example.com', '/mcp'),
    endpoint('whole-1', 'a.example.com', undefined),
    endpoint('whole-2', 'a.example.com', '/'),
    endpoint('star', '*.example.com', undefined),
    endpoint('any', '*', '/mcp'),
  ]);
  t.is(r.match('/mcp/x', 'a.example.com')?.name, 'first');
  t.is(r.match('/mcpx', 'a.example.com')?.name, 'whole-1');
  t.is(
    r.match('/mcp', '.example.com')?.name,
    'any',
    '"*.example.com" needs at least one character before ".example.com"',
  );
  t.is(r.match('/mcp', 'b.example.com:443')?.name, 'star');
  t.is(r.match('/mcp', '')?.name, undefined, 'an empty host matches no wildcard, not even "*"');
});
