// net.cidr_is_valid, net.cidr_contains_matches, net.cidr_expand with Go's net semantics
// (topdown/cidr.go): IPv4 without leading zeros, IPv4-mapped IPv6 addresses matching IPv4
// networks, addresses written back in Go's form.
import { sortValues } from './rego-order.js';
import { BuiltinError, entriesOf, isObject, RegoSet, str, type Value } from './rego-value.js';
import type { Builtin } from './types.js';

type IP = Uint8Array; // 4 or 16 bytes, as Go's net.IP
const V4_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

function parseV4(s: string): number[] | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0')) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

/** netip.ParseAddr without zones: [16 bytes, is4]. */
function parseAddr(s: string): { b: number[]; is4: boolean } | undefined {
  const v4 = parseV4(s);
  if (v4) return { b: [...V4_PREFIX, ...v4], is4: true };
  if (!s.includes(':') || s.includes('%')) return undefined;
  let head = s;
  let tail4: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const v = parseV4(s.slice(lastColon + 1));
    if (!v) return undefined;
    tail4 = v;
    head = s.slice(0, lastColon + 1);
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const want = 8 - tail4.length / 2;
  const dbl = head.indexOf('::');
  if (dbl !== head.lastIndexOf('::') && dbl >= 0) return undefined;
  const group = (g: string) => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : undefined);
  let groups: (number | undefined)[];
  if (dbl >= 0) {
    const l = head.slice(0, dbl);
    const r = head.slice(dbl + 2);
    const lg = l === '' ? [] : l.split(':').map(group);
    const rg = r === '' ? [] : r.split(':').map(group);
    if (lg.length + rg.length >= want) return undefined;
    groups = [...lg, ...Array(want - lg.length - rg.length).fill(0), ...rg];
  } else {
    groups = head === '' ? [] : head.split(':').map(group);
    if (groups.length !== want) return undefined;
  }
  if (groups.some((g) => g === undefined)) return undefined;
  const b: number[] = [];
  for (const g of groups as number[]) b.push(g >> 8, g & 0xff);
  return { b: [...b, ...tail4], is4: false };
}

interface Net {
  ip: IP;
  mask: IP;
}

function parseCidr(s: string): { ip: IP; net: Net } {
  const slash = s.indexOf('/');
  if (slash < 0) throw new BuiltinError(`invalid CIDR address: ${s}`);
  const a = parseAddr(s.slice(0, slash));
  const m = s.slice(slash + 1);
  if (!a || !/^\d+$/.test(m) || m.length > 7) throw new BuiltinError(`invalid CIDR address: ${s}`);
  const bits = a.is4 ? 32 : 128;
  const n = Number(m);
  if (n > bits) throw new BuiltinError(`invalid CIDR address: ${s}`);
  const mask = new Uint8Array(bits / 8);
  for (let i = 0; i < n; i++) mask[i >> 3]! |= 0x80 >> (i & 7);
  const ip = Uint8Array.from(a.b);
  return { ip, net: { ip: maskIp(ip, mask)!, mask } };
}

const isV4Mapped = (ip: IP) => ip.length === 16 && V4_PREFIX.every((x, i) => ip[i] === x);
const to4 = (ip: IP): IP | undefined => (ip.length === 4 ? ip : isV4Mapped(ip) ? ip.subarray(12) : undefined);

/** Go's IP.Mask. */
function maskIp(ip0: IP, mask0: IP): IP | undefined {
  let ip = ip0;
  let mask = mask0;
  if (mask.length === 16 && ip.length === 4 && mask.subarray(0, 12).every((x) => x === 0xff)) mask = mask.subarray(12);
  if (mask.length === 4 && ip.length === 16 && isV4Mapped(ip)) ip = ip.subarray(12);
  if (ip.length !== mask.length) return undefined;
  return ip.map((x, i) => x & mask[i]!);
}

/** Go's IPNet.Contains. */
function contains(n: Net, ip0: IP): boolean {
  let nn: IP | undefined = to4(n.ip) ?? (n.ip.length === 16 ? n.ip : undefined);
  let m = n.mask;
  if (m.length === 4 && nn?.length !== 4) nn = undefined;
  else if (m.length === 16 && nn?.length === 4) m = m.subarray(12);
  if (!nn) return false;
  const ip = to4(ip0) ?? ip0;
  if (ip.length !== nn.length) return false;
  for (let i = 0; i < ip.length; i++) if ((nn[i]! & m[i]!) !== (ip[i]! & m[i]!)) return false;
  return true;
}

const ones = (m: IP) => [...m].reduce((n, b) => n + (b.toString(2).match(/1/g)?.length ?? 0), 0);

/** OPA's net.cidr_contains: an address or a whole network inside the first network. */
function cidrContains(a: string, b: string): boolean {
  const { net } = parseCidr(a);
  const ip = parseAddr(b);
  if (ip) return contains(net, Uint8Array.from(ip.b));
  let other: Net;
  try {
    other = parseCidr(b).net;
  } catch {
    throw new BuiltinError(`not a valid textual representation of an IP address or CIDR: ${b}`);
  }
  const plain6 = (x: Net) => x.ip.length === 16 && x.mask.length === 16 && !isV4Mapped(x.ip);
  if (plain6(net) && plain6(other)) {
    const masked = maskIp(other.ip, net.mask);
    return ones(net.mask) <= ones(other.mask) && masked !== undefined && masked.every((x, i) => x === net.ip[i]);
  }
  if (!contains(net, other.ip)) return false;
  const last = Uint8Array.from(other.ip.map((x, i) => x | (~other.mask[i]! & 0xff)));
  if (last.length !== other.mask.length) return false;
  return contains(net, last);
}

function ipString(ip: IP): string {
  const v4 = to4(ip);
  if (v4) return [...v4].join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((ip[i]! << 8) | ip[i + 1]!);
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

const MAX_EXPAND = 65536;

function matchElements(v: Value, operand: number): [Value, Value][] {
  const cidrOf = (x: Value): Value => {
    if (typeof x === 'string') return x;
    if (Array.isArray(x) && x.length > 0) return x[0]!;
    throw new BuiltinError(`operand ${operand}: element must be string or non-empty array`);
  };
  if (typeof v === 'string') return [[v, v]];
  if (Array.isArray(v)) return v.map((x, i) => [cidrOf(x), i]);
  if (v instanceof RegoSet) return sortValues(v.items).map((x) => [cidrOf(x), x]);
  if (isObject(v)) return entriesOf(v).map(([k, x]) => [cidrOf(x), k]);
  return [];
}

export const netBuiltins: Record<string, Builtin> = {
  'net.cidr_is_valid': ([c]) => {
    if (typeof c !== 'string') return false;
    try {
      parseCidr(c);
      return true;
    } catch {
      return false;
    }
  },
  'net.cidr_contains_matches': ([a, b]) => {
    const out: Value[] = [];
    for (const [c1, i1] of matchElements(a!, 1)) {
      for (const [c2, i2] of matchElements(b!, 2)) {
        if (cidrContains(str(c1, 1), str(c2, 1))) out.push([i1, i2]);
      }
    }
    return new RegoSet(out);
  },
  // Bounded: a large network is refused instead of building millions of strings per Check.
  'net.cidr_expand': ([c]) => {
    const { ip, net } = parseCidr(str(c!, 1));
    const hostBits = net.mask.length * 8 - ones(net.mask);
    if (hostBits > 16) throw new BuiltinError(`net.cidr_expand: more than ${MAX_EXPAND} addresses`);
    const cur = maskIp(ip, net.mask)!;
    const out: Value[] = [];
    for (let k = 0; k < 2 ** hostBits && contains(net, cur); k++) {
      out.push(ipString(cur));
      for (let j = cur.length - 1; j >= 0; j--) {
        cur[j] = (cur[j]! + 1) & 0xff;
        if (cur[j]! > 0) break;
      }
    }
    return new RegoSet(out);
  },
};
