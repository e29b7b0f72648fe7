// A URL-valued tool argument as every URL reader reads it, or why it cannot be read one way
// only. The policy compares hosts, schemes and ports from this view (OPA has no URL parser,
// in WASM or out); it gets the raw value beside it. The view accepts a URL only when WHATWG
// URL (TypeScript MCP servers, fetch), Python's urllib.parse and Go's net/url read the same
// scheme, host and port from it: docs/policies.md "URL views"; test/argument-url-view.test.ts
// holds it to that with all three readers.

export type UrlRefusal =
  | 'not_a_string'
  | 'control_or_space'
  | 'backslash'
  | 'no_scheme'
  | 'unsupported_scheme'
  | 'no_authority'
  | 'non_ascii_host'
  | 'user_information'
  | 'percent_in_host'
  | 'bad_escape'
  | 'host_characters'
  | 'empty_host'
  | 'empty_label'
  | 'trailing_dot'
  | 'bad_port'
  | 'not_canonical'
  | 'unparsable';

export type HostType = 'domain' | 'ipv4' | 'ipv6';

export type UrlView =
  | {
      ok: true;
      /** Lower-cased, without ":". */
      scheme: string;
      /** Lower-cased, as WHATWG serializes it: IPv6 in brackets. */
      host: string;
      hostType: HostType;
      /** The address of an IP host, without brackets (for CIDR checks). */
      ip?: string;
      /** The port a client connects to: the explicit one, else the scheme's default. */
      port: number;
    }
  | { ok: false; why: UrlRefusal };

/** Default ports of the schemes a view is made for (WHATWG's special schemes with a host). */
const DEFAULT_PORTS: Readonly<Record<string, number>> = { http: 80, https: 443, ws: 80, wss: 443, ftp: 21 };

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
const AUTHORITY_END = /[/?#]/;
const NON_ASCII = /[^\x21-\x7e]/;
// "%" not followed by two hex digits: Go's net/url refuses the URL, others keep it.
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;
const NAME_CHARS = /^[A-Za-z0-9._-]*$/;
const IPV6_CHARS = /^\[[0-9A-Fa-f:.]+\]$/;
const PORT = /^[1-9][0-9]{0,4}$/;
const IPV4 = /^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$/;

const refused = new Map<UrlRefusal, UrlView>();
function no(why: UrlRefusal): UrlView {
  let v = refused.get(why);
  if (v === undefined) refused.set(why, (v = Object.freeze({ ok: false, why }) as UrlView));
  return v;
}

export function urlView(value: unknown): UrlView {
  if (typeof value !== 'string') return no('not_a_string');
  // WHATWG strips tabs and newlines anywhere and C0/space at the ends; Python strips some; Go refuses them.
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return no('control_or_space');
    // WHATWG reads "\" as "/" in http(s) URLs; Python and Go keep it in the host or path.
    if (c === 0x5c) return no('backslash');
  }
  if (BAD_ESCAPE.test(value)) return no('bad_escape');
  const m = SCHEME.exec(value);
  if (m === null) return no('no_scheme');
  const scheme = m[1]!.toLowerCase();
  const defaultPort = DEFAULT_PORTS[scheme];
  if (defaultPort === undefined) return no('unsupported_scheme');
  const rest = value.slice(m[0].length);
  // "https:evil.example" and "https:/evil.example": WHATWG finds a host there, Python and Go a path.
  if (!rest.startsWith('//')) return no('no_authority');
  const after = rest.slice(2);
  const end = after.search(AUTHORITY_END);
  const authority = end === -1 ? after : after.slice(0, end);

  // IDN hosts are written as punycode: readers map Unicode (fullwidth letters, dots) differently.
  if (NON_ASCII.test(authority)) return no('non_ascii_host');
  // "https://allowed.example@evil.example": the host is after the "@", whatever precedes it.
  if (authority.includes('@')) return no('user_information');
  // WHATWG decodes escapes in a host ("evil%2eexample"); Go refuses some; Python keeps them.
  if (authority.includes('%')) return no('percent_in_host');

  let host: string;
  let portText: string | undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) return no('unparsable');
    host = authority.slice(0, close + 1);
    const tail = authority.slice(close + 1);
    if (tail !== '' && !tail.startsWith(':')) return no('host_characters');
    portText = tail === '' ? undefined : tail.slice(1);
    if (!IPV6_CHARS.test(host)) return no('host_characters');
  } else {
    const colon = authority.indexOf(':');
    if (colon !== authority.lastIndexOf(':')) return no('host_characters');
    host = colon === -1 ? authority : authority.slice(0, colon);
    portText = colon === -1 ? undefined : authority.slice(colon + 1);
    if (!NAME_CHARS.test(host)) return no('host_characters');
  }
  if (host === '') return no('empty_host');
  // "allowed.example." names the same DNS host, but TLS names, Host-header routing and
  // allowlists compare it differently.
  if (host.endsWith('.')) return no('trailing_dot');
  if (host.startsWith('.') || host.includes('..')) return no('empty_label');
  let port = defaultPort;
  if (portText !== undefined) {
    // No leading zeros, no empty port: every reader then takes the same number.
    if (!PORT.test(portText) || Number(portText) > 65535) return no('bad_port');
    port = Number(portText);
  }

  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return no('unparsable');
  }
  const lower = host.toLowerCase();
  // WHATWG reads "2130706433", "0x7f.1", "0177.0.0.1" and "127.1" as 127.0.0.1 where Python
  // and Go keep a name (which a resolver may still read as that address), and rewrites IPv6
  // to its shortest form: only the form WHATWG writes back is accepted.
  if (url.hostname !== lower) return no('not_canonical');
  if ((url.port === '' ? defaultPort : Number(url.port)) !== port) return no('bad_port');
  if (lower.startsWith('[')) return { ok: true, scheme, host: lower, hostType: 'ipv6', ip: lower.slice(1, -1), port };
  if (IPV4.test(lower)) return { ok: true, scheme, host: lower, hostType: 'ipv4', ip: lower, port };
  return { ok: true, scheme, host: lower, hostType: 'domain', port };
}
