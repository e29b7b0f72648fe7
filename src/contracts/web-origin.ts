// Web origins (RFC 6454) as browsers serialize them in the Origin header: scheme "://" host
// [":" port], nothing else. The config's allowed origins and a request's Origin are both
// read with canonicalOrigin, so one origin has one spelling whatever the case or default port.

const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443', ws: '80', wss: '443' };
// scheme "://" (reg-name | [IPv6]) [":" port]; no userinfo, path, query or fragment.
const SERIALIZED_ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/([a-z0-9._~-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?$/;
const MAX_ORIGIN_LENGTH = 2048;

/**
 * The canonical form of a serialized origin — scheme and host lower-cased, the scheme's
 * default port dropped — or undefined when `s` is not one (a path or trailing "/", userinfo,
 * a port with leading zeros or above 65535, non-ASCII, "null").
 */
export function canonicalOrigin(s: string): string | undefined {
  if (s.length === 0 || s.length > MAX_ORIGIN_LENGTH) return undefined;
  const m = SERIALIZED_ORIGIN.exec(s.toLowerCase());
  if (m === null) return undefined;
  const [, scheme, host, port] = m as unknown as [string, string, string, string | undefined];
  if (port !== undefined) {
    if ((port.length > 1 && port.startsWith('0')) || Number(port) > 65535) return undefined;
    if (DEFAULT_PORTS[scheme] === port) return `${scheme}://${host}`;
    return `${scheme}://${host}:${port}`;
  }
  return `${scheme}://${host}`;
}

/** The origin of an absolute URL (a configured `resource` or `publicBaseUrl`), canonical; undefined when it has none. */
export function originOfUrl(url: string): string | undefined {
  try {
    const origin = new URL(url).origin;
    return origin === 'null' ? undefined : canonicalOrigin(origin);
  } catch {
    return undefined;
  }
}
