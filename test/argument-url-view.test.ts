// The URL view's promise, as a differential property: for any string the view accepts, WHATWG
// URL (TypeScript servers, fetch), Python's urllib.parse.urlsplit and Go's net/url.Parse read
// the same scheme, host and port as the view — so an allowlist decided on the view holds for
// the server that fetches it; and any string on which those readers disagree is refused. The
// generator aims at where they part: user information, backslashes, numeric IPv4 forms, IPv6
// spellings, escapes and Unicode in the host, control characters, ports, missing "//".
import test from 'ava';
import fc from 'fast-check';
import { urlView, type UrlView } from '../src/request/url-view.js';
import { goReader, pythonReader } from './helpers/line-readers.js';

interface ForeignReading {
  ok: boolean;
  scheme?: string;
  host?: string | null;
  port?: string | number | null;
  user?: boolean;
}

/** scheme, host (IPv6 without brackets), port as a number (the default when absent); undefined when the reader fails or sees user information. */
type Triple = { scheme: string; host: string; port: number } | undefined;

const DEFAULT_PORTS: Record<string, number> = { http: 80, https: 443, ws: 80, wss: 443, ftp: 21 };

function whatwg(s: string): Triple {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return undefined;
  }
  const scheme = u.protocol.slice(0, -1);
  if (u.username !== '' || u.password !== '' || u.hostname === '') return undefined;
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { scheme, host, port: u.port === '' ? (DEFAULT_PORTS[scheme] ?? -1) : Number(u.port) };
}

function foreign(r: ForeignReading): Triple {
  if (!r.ok || r.user || !r.host || r.scheme === undefined) return undefined;
  const port =
    r.port === null || r.port === undefined || r.port === '' ? (DEFAULT_PORTS[r.scheme] ?? -1) : Number(r.port);
  return { scheme: r.scheme, host: r.host.toLowerCase(), port };
}

const viewTriple = (v: UrlView & { ok: true }): Triple => ({
  scheme: v.scheme,
  host: v.ip !== undefined && v.hostType === 'ipv6' ? v.ip : v.host,
  port: v.port,
});
const same = (a: Triple, b: Triple) =>
  a !== undefined && b !== undefined && a.scheme === b.scheme && a.host === b.host && a.port === b.port;

// ---------------------------------------------------------------- the generator

/** Mostly `common`, now and then one of `odd`. */
const mostly = (common: string[], odd: string[]) =>
  fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...common) }, { weight: 1, arbitrary: fc.constantFrom(...odd) });

const schemes = mostly(
  ['https', 'http', 'HTTPS', 'wss', 'ftp'],
  ['hTtP', 'ws', 'file', 'javascript', 'gopher', 'web+x', ''],
);
const separators = mostly(['://'], [':/', ':', ':///', ':\\\\', '://\\', ' ://']);
const HOST_PIECES = [
  'api',
  'example',
  'com',
  'evil',
  'xn--pi-6kc',
  'API',
  'Example',
  '_',
  '-',
  '.',
  '.',
  '.',
  '0',
  '1',
  '08',
  '127',
  '0x7f',
  '0X7F',
  '0177',
  '255',
  '256',
  '4294967295',
  '2130706433',
  '1.2.3.4',
  '192.0.2.10',
  '[',
  ']',
  '::1',
  '::ffff:127.0.0.1',
  '2001:db8::1',
  '2001:DB8:0::1',
  'fe80::1%25eth0',
  'v1.x',
  '@',
  ':',
  '%2e',
  '%41',
  '%',
  '\t',
  ' ',
  '\n',
  '\u0000',
  '\\',
  '#',
  '?',
  '/',
  '\uff45',
  '\u0430',
  '\u3002',
  '\uff0e',
  '\u00e9',
  '\u200b',
  'ß',
];
const authority = fc.array(fc.constantFrom(...HOST_PIECES), { minLength: 1, maxLength: 7 }).map((p) => p.join(''));
const label = mostly(
  ['api', 'example', 'com', 'evil', 'xn--pi-6kc', 'API', 'a-b', 'x_y'],
  ['1', '127', '0x7f', '08', ''],
);
const simpleHost = fc.oneof(
  { weight: 6, arbitrary: fc.array(label, { minLength: 1, maxLength: 3 }).map((p) => p.join('.')) },
  { weight: 2, arbitrary: fc.constantFrom('10.0.0.1', '192.0.2.10', '[::1]', '[2001:db8::1]', '255.255.255.255') },
  {
    weight: 1,
    arbitrary: fc.constantFrom('[2001:DB8::1]', '[::ffff:7f00:1]', '[0::1]', '010.0.0.1', '1.2.3', '4294967296'),
  },
);
const port = mostly(['', '', ':443', ':80', ':8443', ':65535'], [':0443', ':65536', ':0', ':', ':+1', ':x', ':44 3']);
const rest = fc
  .tuple(
    mostly(['/', '/', '?', '#', ''], ['a', '@', ':', '\\', ' ']),
    fc
      .array(
        mostly(['/', 'a', 'b.c', '?', 'q=1', '&', '#', '..'], ['@', 'evil.example', '%2f', '\\', ':', '\uff0f', ' ']),
        { maxLength: 6 },
      )
      .map((p) => p.join('')),
  )
  .map(([first, p]) => first + p);
const userinfo = mostly([''], ['user@', 'api.example.com@', 'a:b@', '@', 'user%40x@']);

const url = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(schemes, separators, userinfo, simpleHost, port, rest).map((p) => p.join('')) },
  { weight: 5, arbitrary: fc.tuple(schemes, separators, authority, port, rest).map((p) => p.join('')) },
  {
    weight: 1,
    arbitrary: fc.array(fc.constantFrom(...HOST_PIECES, 'https', '://', ':'), { maxLength: 10 }).map((p) => p.join('')),
  },
);

// ---------------------------------------------------------------- the properties

test('a URL the view accepts has the same scheme, host and port in WHATWG URL, Python urllib and Go net/url; one they read differently is refused', async (t) => {
  const go = goReader<ForeignReading>('url');
  const python = pythonReader<ForeignReading>('url');
  t.teardown(() => {
    python.close();
    go.close();
  });
  const runs = 4000;
  let accepted = 0;
  let disagree = 0;
  await fc.assert(
    fc.asyncProperty(url, async (s) => {
      const view = urlView(s);
      const readings = [whatwg(s), foreign(await python.read(s)), foreign(await go.read(s))];
      const agree = same(readings[0], readings[1]) && same(readings[0], readings[2]);
      if (!agree && readings.some((r) => r !== undefined)) disagree++;
      if (!view.ok) return true;
      accepted++;
      return agree && same(viewTriple(view), readings[0]);
    }),
    { numRuns: runs },
  );
  t.log({ runs, accepted, disagree });
  // Vacuous unless many URLs are accepted and many are read differently.
  t.true(accepted / runs >= 0.2, `accepted ${accepted} of ${runs}`);
  t.true(disagree / runs >= 0.1, `readers disagree on ${disagree} of ${runs}`);
});

// ---------------------------------------------------------------- examples

const refusals: [string, string][] = [
  ['https://api.example.com@evil.example/', 'user_information'],
  ['https://api.example.com:443@evil.example/', 'user_information'],
  ['https://api.example.com\\@evil.example/', 'backslash'],
  ['https:\\\\evil.example', 'backslash'],
  ['https://2130706433/', 'not_canonical'],
  ['https://0x7f.1/', 'not_canonical'],
  ['https://0177.0.0.1/', 'not_canonical'],
  ['https://127.1/', 'not_canonical'],
  ['https://[::ffff:127.0.0.1]/', 'not_canonical'],
  ['https://[0:0::1]/', 'not_canonical'],
  ['https://[fe80::1%25eth0]/', 'percent_in_host'],
  ['https://evil%2eexample/', 'percent_in_host'],
  ['https://api.example.com./', 'trailing_dot'],
  ['https://api..example.com/', 'empty_label'],
  ['https://\uff45vil.example/', 'non_ascii_host'],
  ['https://\u0430pi.example.com/', 'non_ascii_host'],
  ['https://api.example.com\u3002evil/', 'non_ascii_host'],
  ['https://ev\til.example/', 'control_or_space'],
  [' https://api.example.com/', 'control_or_space'],
  ['https:/evil.example/', 'no_authority'],
  ['https:evil.example', 'no_authority'],
  ['https:///evil.example/', 'empty_host'],
  ['https://api.example.com:0443/', 'bad_port'],
  ['https://api.example.com:/', 'bad_port'],
  ['https://api.example.com:65536/', 'bad_port'],
  ['https://1.2.3.999/', 'unparsable'],
  ['file:///etc/passwd', 'unsupported_scheme'],
  ['javascript:alert(1)', 'unsupported_scheme'],
  ['//api.example.com/', 'no_scheme'],
  ['https://a,b.example/', 'host_characters'],
  ['https://[::1]x/', 'host_characters'],
  ['https://a:1:2/', 'host_characters'],
];

for (const [s, why] of refusals) {
  test(`the URL view refuses ${JSON.stringify(s)} (${why})`, (t) => {
    t.deepEqual(urlView(s), { ok: false, why });
  });
}

test('the URL view reads hosts, IP literals and ports', (t) => {
  t.deepEqual(urlView('https://API.Example.com/v1?q=https://evil.example#@evil'), {
    ok: true,
    scheme: 'https',
    host: 'api.example.com',
    hostType: 'domain',
    port: 443,
  });
  t.deepEqual(urlView('HTTP://api.example.com:8080'), {
    ok: true,
    scheme: 'http',
    host: 'api.example.com',
    hostType: 'domain',
    port: 8080,
  });
  t.deepEqual(urlView('https://192.0.2.10:443/'), {
    ok: true,
    scheme: 'https',
    host: '192.0.2.10',
    hostType: 'ipv4',
    ip: '192.0.2.10',
    port: 443,
  });
  t.deepEqual(urlView('wss://[2001:db8::1]:8443/x'), {
    ok: true,
    scheme: 'wss',
    host: '[2001:db8::1]',
    hostType: 'ipv6',
    ip: '2001:db8::1',
    port: 8443,
  });
  t.deepEqual(urlView('https://xn--pi-6kc.example.com/'), {
    ok: true,
    scheme: 'https',
    host: 'xn--pi-6kc.example.com',
    hostType: 'domain',
    port: 443,
  });
  t.deepEqual(urlView(42), { ok: false, why: 'not_a_string' });
});
