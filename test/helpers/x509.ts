// Certificates for the TLS tests, made in the test: Node has no certificate generator, so
// this is a minimal X.509 v3 writer (RFC 5280) in DER over node:crypto — ECDSA P-256 keys,
// ecdsa-with-SHA256 signatures, a CA, and leaves with DNS, IP and URI (SPIFFE) subject
// alternative names, any validity period (expired ones too). Node's X509Certificate, OpenSSL
// (inside Node's TLS) and Go's crypto/x509 read what it writes.
import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { isIPv4 } from 'node:net';

// --- DER --------------------------------------------------------------------------------

function tlv(tag: number, value: Buffer): Buffer {
  const n = value.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, value]);
}

const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const explicit = (n: number, inner: Buffer) => tlv(0xa0 | n, inner);
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer, unused = 0) => tlv(0x03, Buffer.concat([Buffer.from([unused]), b]));
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));

function integer(b: Buffer): Buffer {
  let v = b;
  while (v.length > 1 && v[0] === 0 && (v[1]! & 0x80) === 0) v = v.subarray(1);
  if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return tlv(0x02, v);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const stack = [p & 0x7f];
    for (let v = p >> 7; v > 0; v >>= 7) stack.unshift((v & 0x7f) | 0x80);
    out.push(...stack);
  }
  return tlv(0x06, Buffer.from(out));
}

function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'; // YYYYMMDDHHMMSSZ
  // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}

const name = (cn: string) => seq(set(seq(oid('2.5.4.3'), utf8(cn))));

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));
}

// --- Certificates -----------------------------------------------------------------------

export interface Issued {
  /** PEM of the certificate. */
  cert: string;
  /** PKCS#8 PEM of its private key. */
  key: string;
  keyObject: KeyObject;
  x509: X509Certificate;
}

export interface CertOptions {
  commonName: string;
  /** DNS names, IP addresses and URIs (spiffe://…) for subjectAltName. */
  sans?: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** A CA certificate (basicConstraints cA, keyCertSign). */
  ca?: boolean;
  /** Signed by this CA; self-signed when absent. */
  issuer?: Issued;
}

const HOUR = 3600_000;

function subjectAltNames(sans: string[]): Buffer {
  return seq(
    ...sans.map((s) => {
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return tlv(0x86, Buffer.from(s)); // uniformResourceIdentifier [6]
      if (isIPv4(s)) return tlv(0x87, Buffer.from(s.split('.').map(Number))); // iPAddress [7]
      return tlv(0x82, Buffer.from(s)); // dNSName [2]
    }),
  );
}

export function issue(o: CertOptions): Issued {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const signer = o.issuer?.keyObject ?? privateKey;
  const issuerName = o.issuer ? name(o.issuer.x509.subject.replace(/^CN=/, '')) : name(o.commonName);
  // Key identifiers: a SHA-1 of the key's SPKI, the same way for the subject and the issuer, so they match.
  const keyId = createHash('sha1').update(spki).digest();
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const ecdsaWithSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const exts: Buffer[] = [
    extension('2.5.29.19', true, seq(...(o.ca ? [bool(true)] : []))),
    // keyUsage: keyCertSign and cRLSign for a CA (bits 5, 6), digitalSignature for a leaf (bit 0).
    extension('2.5.29.15', true, o.ca ? bits(Buffer.from([0x06]), 1) : bits(Buffer.from([0x80]), 7)),
    extension('2.5.29.14', false, octets(keyId)),
  ];
  if (o.issuer) {
    const issuerSpki = o.issuer.x509.publicKey.export({ type: 'spki', format: 'der' });
    exts.push(extension('2.5.29.35', false, seq(tlv(0x80, createHash('sha1').update(issuerSpki).digest()))));
  }
  if (!o.ca) exts.push(extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2')))); // serverAuth, clientAuth
  if (o.sans?.length) exts.push(extension('2.5.29.17', false, subjectAltNames(o.sans)));
  const now = Date.now();
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    ecdsaWithSha256,
    issuerName,
    seq(time(o.notBefore ?? new Date(now - HOUR)), time(o.notAfter ?? new Date(now + 24 * HOUR))),
    name(o.commonName),
    spki,
    explicit(3, seq(...exts)),
  );
  const der = seq(tbs, ecdsaWithSha256, bits(sign('sha256', tbs, signer)));
  const cert = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`;
  return {
    cert,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    keyObject: privateKey,
    x509: new X509Certificate(cert),
  };
}

/** A CA and what tests usually need from it: a server leaf for loopback and client leaves. */
export interface TestPki {
  ca: Issued;
  server(o?: Partial<CertOptions>): Issued;
  client(commonName: string, o?: Partial<CertOptions>): Issued;
}

export function testPki(caName = 'mcp-authz test CA'): TestPki {
  const ca = issue({ commonName: caName, ca: true, notAfter: new Date(Date.now() + 30 * 24 * HOUR) });
  return {
    ca,
    server: (o = {}) =>
      issue({
        commonName: 'mcp-authz',
        sans: ['localhost', '127.0.0.1', 'mcp-authz.mcp-authz.svc.cluster.local'],
        issuer: ca,
        ...o,
      }),
    client: (commonName, o = {}) =>
      issue({ commonName, sans: [`spiffe://cluster.local/ns/envoy/sa/${commonName}`], issuer: ca, ...o }),
  };
}
