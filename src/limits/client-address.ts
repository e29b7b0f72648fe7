// Which address a request comes from, for the limits. The default is the CheckRequest's
// source address (the peer Envoy saw). Behind other proxies, X-Forwarded-For with a
// configured number of trusted hops, or Envoy's own x-envoy-external-address, can be used
// instead. Only entries written by trusted proxies are read, so a client cannot pick its
// own address by sending extra X-Forwarded-For entries.
import { isIP } from 'node:net';
import { splitHostPort } from '../contracts/host-port.js';
import type { Config } from '../config/schema.js';
import type { Request } from '../contracts/request.js';

export type ClientAddressConfig = Config['clientAddress'];

/** Returned when neither the configured header nor the source address holds an address. */
export const UNKNOWN_ADDRESS = '_unknown';

/** Compiles the configured address source into the function the pipeline calls once per Check. */
export function clientAddressResolver(cfg: ClientAddressConfig): (request: Request) => string {
  switch (cfg.from) {
    case 'x-forwarded-for': {
      const hops = cfg.trustedHops;
      return (request) => fromForwardedFor(request.headers['x-forwarded-for'], hops) ?? fromSource(request);
    }
    case 'x-envoy-external-address':
      return (request) => canonicalAddress(request.headers['x-envoy-external-address']?.[0]) ?? fromSource(request);
    default: // 'source'
      return fromSource;
  }
}

function fromSource(request: Request): string {
  return canonicalAddress(request.sourceAddress) ?? UNKNOWN_ADDRESS;
}

/**
 * The entry `trustedHops` from the right of X-Forwarded-For (all header lines joined in
 * order). Entries further left were written by the client itself and are never read.
 * Fewer entries than hops, or a non-address at that position: undefined (use the source).
 */
export function fromForwardedFor(values: readonly string[] | undefined, trustedHops: number): string | undefined {
  if (!values || values.length === 0 || trustedHops < 1) return undefined;
  const entries: string[] = [];
  for (const line of values) {
    for (const part of line.split(',')) {
      const v = part.trim();
      if (v !== '') entries.push(v);
    }
  }
  if (entries.length < trustedHops) return undefined;
  return canonicalAddress(entries[entries.length - trustedHops]);
}

/**
 * An IP address in one canonical spelling, or undefined. Accepts "a.b.c.d", "a.b.c.d:port",
 * IPv6 with or without brackets and port; IPv4-mapped IPv6 becomes plain IPv4 so one
 * client is one key whichever way it is written.
 */
export function canonicalAddress(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  let v = raw.trim();
  if (v === '' || v.length > 64) return undefined;
  const hp = splitHostPort(v); // "[v6]:port", "v4:port", or a bare address
  if (hp === undefined) return undefined;
  v = hp.host;
  const zone = v.indexOf('%');
  if (zone !== -1) v = v.slice(0, zone);
  const kind = isIP(v);
  if (kind === 4) return v;
  if (kind !== 6) return undefined;
  // WHATWG URL parsing gives IPv6 its one compressed, lower-case spelling.
  const host = new URL(`http://[${v}]/`).hostname.slice(1, -1);
  const mapped = MAPPED_V4.exec(host);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return host;
}

const MAPPED_V4 = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/;
