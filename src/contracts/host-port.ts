// "host:port" split once for every reader: a listen address, the client address a peer or a
// header gives, the source address ext_proc's attributes carry. IPv6 comes in brackets with a
// port ("[::1]:9191"); an address with several colons and no brackets is a bare IPv6 address.

export interface HostPort {
  /** The host, brackets removed. */
  host: string;
  /** The text after the colon that ends the host, when there is one (not checked to be a number). */
  port: string | undefined;
  /** False when something other than ":port" follows a bracketed host ("[::1]x"). */
  exact: boolean;
}

/** Splits "host:port", "[v6]:port", "host", "[v6]" or a bare IPv6 address; undefined for an unclosed "[". */
export function splitHostPort(s: string): HostPort | undefined {
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close === -1) return undefined;
    const rest = s.slice(close + 1);
    const port = rest.startsWith(':') ? rest.slice(1) : undefined;
    return { host: s.slice(1, close), port, exact: rest === '' || port !== undefined };
  }
  const colon = s.indexOf(':');
  if (colon === -1 || colon !== s.lastIndexOf(':')) return { host: s, port: undefined, exact: true };
  return { host: s.slice(0, colon), port: s.slice(colon + 1), exact: true };
}

/** A port's text as a TCP port number (1 to 5 digits, at most 65535); undefined otherwise. */
export function portNumber(port: string | undefined): number | undefined {
  if (port === undefined || !/^\d{1,5}$/.test(port)) return undefined;
  const n = Number(port);
  return n <= 65535 ? n : undefined;
}
