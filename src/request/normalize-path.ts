// Path normalization: the one place a request path is turned into the form endpoints
// are matched on and the policy sees.
import { RequestRejected } from '../contracts/request-rejected.js';

export interface SplitPath {
  path: string;
  rawQuery: string;
}

/**
 * Splits Envoy's `:path` into the normalized path and the raw query string.
 * Rejects (400) what cannot be interpreted safely: `..` segments (also `..;x`, `.;x`), encoded `/`, `\`, `?` or `#`,
 * a backslash, NUL, malformed percent-escapes, and paths that do not start with `/`.
 */
export function normalizePath(raw: string): SplitPath {
  let end = raw.length;
  const hash = raw.indexOf('#');
  if (hash !== -1) end = hash;
  const q = raw.indexOf('?');
  let rawPath = raw;
  let rawQuery = '';
  if (q !== -1 && q < end) {
    rawPath = raw.slice(0, q);
    rawQuery = raw.slice(q + 1, end);
  } else if (end !== raw.length) {
    rawPath = raw.slice(0, end);
  }
  if (rawPath.length === 0 || rawPath.charCodeAt(0) !== 47 /* / */) {
    throw bad(`the path must start with "/"`);
  }
  let decoded = rawPath;
  if (rawPath.includes('%')) {
    // Decoding these would change the path's structure (or let it differ on a second parse).
    if (/%(2f|5c|00|3f|23)/i.test(rawPath)) throw bad('the path contains an encoded "/", "\\", "?", "#" or NUL');
    try {
      decoded = decodeURIComponent(rawPath);
    } catch {
      throw bad('the path contains a malformed percent-escape');
    }
  }
  if (decoded.includes('\\')) throw bad('the path contains "\\"');
  if (decoded.includes('\0')) throw bad('the path contains NUL');
  const segments = decoded.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '..') throw bad('the path contains a ".." segment');
    // Java servers (Tomcat, Jetty) strip ";params" from a segment, so "..;x" is ".." to them.
    if (s.startsWith('..;') || s.startsWith('.;'))
      throw bad(
        `the path contains a dot segment with parameters (${JSON.stringify(s.slice(0, s.indexOf(';') + 1))}), which Java servers read as "${s.slice(0, s.indexOf(';'))}"`,
      );
    if (s === '' && i !== segments.length - 1) continue; // "//" collapses
    if (s === '.') continue;
    out.push(s);
  }
  return { path: '/' + out.join('/'), rawQuery };
}

function bad(description: string): RequestRejected {
  return new RequestRejected('invalid_path', description);
}
