// Resource URIs (`resources/read` and the other resources/* calls) normalized before any
// grant sees them, so `resources:file:///public/*` cannot be escaped with
// `file:///public/../secret` or `file:///public/%2e%2e/secret`. RFC 3986 normalization:
// percent-encoded unreserved characters decoded (6.2.2.2), other escapes upper-cased
// (6.2.2.1), scheme and host lower-cased, dot segments removed (5.2.4). What readers on
// the way (WHATWG URL, Python's urllib + posixpath, Node's path, a naive decode-and-join)
// would not agree on is refused: docs/policies.md "Resource URIs".
import { RequestRejected } from '../contracts/request-rejected.js';

const HEX = /^[0-9A-Fa-f]{2}$/;
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
/** WHATWG's special schemes besides file: always read with a host. */
const NEEDS_HOST = new Set(['http:', 'https:', 'ws:', 'wss:', 'ftp:']);

type Fail = (why: string) => RequestRejected;

/** The normalized URI; throws RequestRejected (400 invalid_resource_uri) for a URI that cannot be read safely. */
export function normalizeResourceUri(uri: string): string {
  return normalize(uri, bad);
}

function normalize(uri: string, bad: Fail): string {
  if (uri.length === 0) throw bad('it is empty');
  const scheme = SCHEME.exec(uri)?.[0];
  if (scheme === undefined) throw bad('it does not start with a scheme ("file:", "https:", …)');
  const text = decodeUnreserved(uri, bad);

  let rest = text.slice(scheme.length);
  let fragment: string | undefined;
  let query: string | undefined;
  const hash = rest.indexOf('#');
  if (hash !== -1) {
    fragment = rest.slice(hash + 1);
    rest = rest.slice(0, hash);
  }
  const q = rest.indexOf('?');
  if (q !== -1) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  let authority: string | undefined;
  let path = rest;
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    authority = rest.slice(2, slash === -1 ? rest.length : slash);
    path = slash === -1 ? '' : rest.slice(slash);
    if (authority.includes('@')) throw bad('it has user information before "@" in its authority');
    authority = authority.toLowerCase();
  }

  // WHATWG URL skips any number of "/" after "http:" and takes what follows as the host.
  if (NEEDS_HOST.has(scheme.toLowerCase()) && !authority) throw bad(`a ${scheme}// URI needs a host`);
  // Readers disagree on what ".." after an empty segment removes ("/a//../b": WHATWG "/a/b", Node and Python "/b").
  if (path.includes('//')) throw bad('its path has an empty segment ("//")');
  // A reader that does not split off the query reads "..?q" as a file name, not as "..".
  if ((query !== undefined || fragment !== undefined) && /(^|\/)\.\.?$/.test(path)) {
    throw bad('a dot segment ends its path right before the query or fragment');
  }
  if (path.startsWith('/')) path = removeDotSegments(path, bad);
  else if (hasDotSegment(path)) throw bad('its path is relative and has "." or ".." segments');
  // A reader that joins path and query (or fragment) before resolving would see these.
  if ((query !== undefined && hasDotSegment(query)) || (fragment !== undefined && hasDotSegment(fragment))) {
    throw bad('its query or fragment has "." or ".." segments');
  }

  let out = scheme.toLowerCase();
  if (authority !== undefined) out += '//' + authority;
  out += path;
  if (query !== undefined) out += '?' + query;
  if (fragment !== undefined) out += '#' + fragment;
  return out;
}

/**
 * Decodes %XX of unreserved characters (ALPHA DIGIT - . _ ~), upper-cases the hex of the
 * others, and refuses what cannot be kept unambiguous: control characters, "\", malformed
 * escapes, encoded "/", "\" or NUL, and double-encoded escapes ("%252e").
 */
function decodeUnreserved(uri: string, bad: Fail): string {
  let out = '';
  for (let i = 0; i < uri.length; i++) {
    const c = uri.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) throw bad('it contains a control character');
    if (c === 0x5c) throw bad('it contains "\\" (some readers take it for "/")');
    if (c !== 0x25) {
      out += uri[i];
      continue;
    }
    const hex = uri.slice(i + 1, i + 3);
    if (!HEX.test(hex)) throw bad('it has a malformed percent-escape');
    const byte = parseInt(hex, 16);
    if (byte === 0x2f || byte === 0x5c || byte === 0x00) throw bad('it contains an encoded "/", "\\" or NUL');
    if (byte === 0x25 && HEX.test(uri.slice(i + 3, i + 5)))
      throw bad('it contains a double-encoded escape ("%25" followed by hex digits)');
    out += isUnreserved(byte) ? String.fromCharCode(byte) : '%' + hex.toUpperCase();
    i += 2;
  }
  return out;
}

function isUnreserved(b: number): boolean {
  return (
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    (b >= 0x30 && b <= 0x39) ||
    b === 0x2d ||
    b === 0x2e ||
    b === 0x5f ||
    b === 0x7e
  );
}

/** RFC 3986 5.2.4 for an absolute path ("/a/b/../c" → "/a/c", "/a/.." → "/"). */
function removeDotSegments(path: string, bad: Fail): string {
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (isDotWithParams(s)) throw bad('its path has a dot segment with ";" parameters');
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  return '/' + out.join('/');
}

function hasDotSegment(s: string): boolean {
  return s.split('/').some((seg) => seg === '.' || seg === '..' || isDotWithParams(seg));
}

function isDotWithParams(s: string): boolean {
  return s.startsWith('..;') || s.startsWith('.;');
}

// RFC 6570: an expression is "{" [operator] varspec *("," varspec) "}"; a varname is
// varchars (ALPHA, DIGIT, "_", pct-encoded) joined by single dots; a varspec may end in
// ":" and 1–4 digits (prefix) or "*" (explode). "=,!@|" are reserved operators: refused.
const EXPRESSION =
  /^[+#./;?&]?(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})+(?:\.(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})+)*(?::[1-9][0-9]{0,3}|\*)?(?:,(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})+(?:\.(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})+)*(?::[1-9][0-9]{0,3}|\*)?)*$/;
// A "." or ".." segment, plain or percent-encoded, anywhere in the text.
const DOT_SEGMENT = /(?:^|\/)(?:\.|%2[eE]){1,2}(?:[/?#]|$)/;

/**
 * A resource URI or URI template (RFC 6570) as `completion/complete` names it in
 * `ref/resource`, normalized as a resource URI is (expressions kept as written, but for the
 * case of an authority). What a grant could not be matched against with certainty is refused
 * (400 invalid_resource_uri): a template that is not well-formed RFC 6570 (an unclosed,
 * nested or empty expression, a reserved operator), and one with "." or ".." segments, which
 * a reader could resolve before or after expanding its expressions.
 */
export function normalizeResourceTemplate(template: string): string {
  let at = 0;
  for (;;) {
    const open = template.indexOf('{', at);
    const close = template.indexOf('}', at);
    if (open === -1) {
      if (close !== -1) throw badTemplate('it has a "}" that closes no expression');
      break;
    }
    if (close !== -1 && close < open) throw badTemplate('it has a "}" that closes no expression');
    const end = template.indexOf('}', open + 1);
    if (end === -1) throw badTemplate('it has an expression that is not closed');
    const expression = template.slice(open + 1, end);
    if (expression.includes('{')) throw badTemplate('it nests an expression in another');
    if (!EXPRESSION.test(expression))
      throw badTemplate(
        `its expression {${expression.length > 40 ? `${expression.slice(0, 40)}…` : expression}} is not an RFC 6570 expression`,
      );
    at = end + 1;
  }
  if (DOT_SEGMENT.test(template)) throw badTemplate('it has a "." or ".." segment');
  return normalize(template, badTemplate);
}

function bad(why: string): RequestRejected {
  return new RequestRejected(
    'invalid_resource_uri',
    `The resource URI cannot be authorized: ${why}. Send the URI in its plain form (RFC 3986).`,
  );
}

function badTemplate(why: string): RequestRejected {
  return new RequestRejected(
    'invalid_resource_uri',
    `The resource URI or URI template cannot be authorized: ${why}. Send a URI (RFC 3986) or an RFC 6570 template with plain literals.`,
  );
}
