// The path constraint's promise, as a differential property through the service's path view
// and the shipped policy's compiled WASM: for any path the policy lets under a prefix, Node's
// path.posix and path.win32, Python's posixpath.normpath and Go's path.Clean read the path as
// written and under that prefix, and nothing in it decodes or NFKC-normalizes into a
// separator or a dot.
import test from 'ava';
import fc from 'fast-check';
import { posix, win32 } from 'node:path';
import { SHIPPED_BUNDLE } from '../src/config/paths.mjs';
import type { McpCall } from '../src/contracts/request.js';
import { viewPlan, viewsOf } from '../src/policy/argument-views.js';
import { loadBundle } from '../src/policy/bundle-loader.js';
import { pathView } from '../src/request/path-view.js';
import { WasmEngine } from '../src/policy/wasm-engine.js';
import { goReader, pythonReader } from './helpers/line-readers.js';

const PREFIXES = ['/docs', '/srv/data'];

const engine = await WasmEngine.create(loadBundle(SHIPPED_BUNDLE), {
  entrypoint: 'mcp/authz/decision',
  maxMemoryPages: 1024,
  data: {},
});

const data = { arguments: [{ tools: ['read_file'], arguments: { path: { path: { under: PREFIXES } } } }] };
const plan = viewPlan(data)!;

/** The shipped policy's decision on read_file(path) under a rule `path: {under: PREFIXES}`, with the service's views. */
function allowed(path: string): boolean {
  const call: McpCall = { method: 'tools/call', kind: 'request', name: 'read_file', arguments: { path } };
  const input = {
    endpoint: { name: 'files', auth: { apiKey: true, oauth: false }, data },
    principal: {
      authenticated: true,
      method: 'api_key',
      id: 'k',
      userId: 'u',
      permissions: ['*'],
      scopes: [],
      roles: [],
    },
    mcp: { present: true, batch: false, calls: [{ ...call, argumentViews: viewsOf(call, plan) }] },
  };
  const ev = engine.evaluate(JSON.stringify(input));
  if (!ev.ok) throw new Error(ev.error);
  return (ev.resultSet as { result: { allow: boolean } }[])[0]!.result.allow;
}

const under = (p: string) => PREFIXES.some((prefix) => p === prefix || p.startsWith(`${prefix}/`));
const withoutTrailingSlash = (p: string) => (p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p);
const SEPARATORS_AND_DOTS = /[/\\.%\0]/g;
const countOf = (s: string) => s.match(SEPARATORS_AND_DOTS)?.length ?? 0;

// ---------------------------------------------------------------- the generator

const mostly = (common: string[], odd: string[]) =>
  fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...common) }, { weight: 1, arbitrary: fc.constantFrom(...odd) });
const segment = mostly(
  ['docs', 'srv', 'data', 'a', 'b.md', 'x y', 'readme..md', '\u00e9t\u00e9', 'e\u0301', '-', '~', '..'],
  [
    '.',
    '...',
    '.. ',
    ' ',
    '',
    '%2e%2e',
    '%2f',
    '%',
    '\\',
    '\u0000',
    '\t',
    '\uff0e\uff0e',
    '\uff0f',
    '\u2024',
    '\u2025',
    '\u2215',
    '\u00a5',
    '\u2044',
    'C:',
    'docsx',
    '\u200b',
    '\u{1f100}',
  ],
);
const start = mostly(
  ['/docs/', '/srv/data/', '/docs', '/'],
  ['', '//', '~/', 'docs/', '\\', 'C:\\docs\\', 'file:///docs/'],
);
const path = fc
  .tuple(start, fc.array(segment, { maxLength: 5 }), mostly(['', '/'], ['//', '/.']))
  .map(([s, segs, end]) => s + segs.join('/') + end);

// ---------------------------------------------------------------- the properties

test('a path the policy lets under a prefix is read as written and under it by Node, Python and Go, and decodes and normalizes to nothing else', async (t) => {
  const go = goReader<{ path: string }>('path');
  const python = pythonReader<{ path: string }>('path');
  t.teardown(() => {
    python.close();
    go.close();
  });
  const runs = 3000;
  let allowedCount = 0;
  let traversals = 0;
  await fc.assert(
    fc.asyncProperty(path, async (p) => {
      const readings = [
        posix.normalize(p),
        win32.normalize(p).replaceAll('\\', '/'),
        (await python.read(p)).path,
        (await go.read(p)).path,
      ].map(withoutTrailingSlash);
      // A path some reader resolves outside every prefix: the policy must refuse it.
      if (readings.some((r) => !under(r))) traversals++;
      if (!allowed(p)) return true;
      allowedCount++;
      const written = withoutTrailingSlash(p);
      return (
        readings.every((r) => r === written) &&
        under(written) &&
        !p.includes('%') &&
        countOf(p.normalize('NFKC')) === countOf(p) &&
        countOf(p.normalize('NFC')) === countOf(p)
      );
    }),
    { numRuns: runs },
  );
  t.log({ runs, allowed: allowedCount, readOutsideByAReader: traversals });
  t.true(allowedCount / runs >= 0.2, `allowed ${allowedCount} of ${runs}`);
  t.true(traversals / runs >= 0.2, `read outside by a reader: ${traversals} of ${runs}`);
});

test('look-alikes of "/", "\\", "." and "%" are refused, other non-ASCII names pass', (t) => {
  const lookAlikes = [
    '\uff0f',
    '\uff3c',
    '\uff0e',
    '\uff05',
    '\ufe52',
    '\ufe68',
    '\ufe6a',
    '\u2024',
    '\u2025',
    '\u2026',
    '\u2488',
    '\u33c2',
    '\u{1f100}',
    '\u00a5',
    '\u20a9',
    '\u2215',
    '\u2216',
    '\u2044',
    '\u29f8',
    '\u29f9',
  ];
  for (const c of lookAlikes)
    t.deepEqual(pathView(`/docs/a${c}b`), { ok: false, why: 'look_alike' }, `U+${c.codePointAt(0)!.toString(16)}`);
  for (const name of [
    '\u00e9t\u00e9',
    'e\u0301',
    'stra\u00dfe',
    '\u65e5\u672c\u8a9e',
    '\u{1f600}',
    '\u0430\u0431',
    'x\u200by',
  ])
    t.deepEqual(pathView(`/docs/${name}.md`), { ok: true }, name);
});

test('paths that are refused, and why they would be read otherwise', (t) => {
  const refusedPaths = [
    '/docs/../etc/passwd', // resolves out
    '/docs/a/../b.md', // stays in lexically, but not through a symlink at /docs/a
    '/docs/%2e%2e/etc/passwd', // a server that decodes escapes reads ".."
    '/docs\\..\\etc', // Windows reads "\" as "/"
    '/docs/.. /etc', // Windows trims trailing dots and spaces
    '/docs/\uff0e\uff0e/etc', // NFKC reads ".."
    '/docs/\u2025/etc', // NFKC reads ".."
    '/docs/..\u00a5etc', // cp932 best-fit reads "\"
    '/docs//etc', // readers disagree on what a following ".." removes
    '/docs/./a', // "." resolved by some readers only
    'docs/a', // relative to an unknown working directory
    '/docs/a\u0000.png', // C strings end at NUL
  ];
  for (const p of refusedPaths) t.false(allowed(p), JSON.stringify(p));
  for (const p of ['/docs', '/docs/', '/docs/a b/c.md', '/srv/data/x..y', '/docs/\u00e9t\u00e9/~'])
    t.true(allowed(p), JSON.stringify(p));
});
