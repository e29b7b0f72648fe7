// io.jwt.decode, io.jwt.decode_verify and io.jwt.verify_* with OPA's semantics
// (topdown/tokens.go and the JWS verification it calls). Verification is synchronous, as a
// WASM import must be: node:crypto, not jose's asynchronous WebCrypto API. Parsed keys are
// cached (bounded), by the certificate or JWKS text, as OPA does.
import {
  createHash,
  createHmac,
  createPublicKey,
  timingSafeEqual,
  verify as cryptoVerify,
  X509Certificate,
  constants,
  type KeyObject,
} from 'node:crypto';
import {
  compareNumbers,
  FloatNumber,
  isNumber,
  isPlainObject,
  newObject,
  obj,
  parseJson,
  str,
  BuiltinError,
  type RegoObject,
  type Value,
} from './rego-value.js';
import { bytesToString } from './strings.js';
import type { Builtin } from './types.js';
import type { EvalState } from './host.js';

// ---- base64url as OPA decodes it (padding added, Go's decoder) ----------------------------

const B64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** OPA's base64url.decode: adds missing padding, then Go's URL decoder (which skips CR/LF). */
export function base64UrlDecode(s: string): Uint8Array {
  let t = s;
  if (!t.endsWith('=')) {
    switch (t.replace(/[\r\n]/g, '').length % 4) {
      case 0:
        break;
      case 2:
        t += '==';
        break;
      case 3:
        t += '=';
        break;
      default:
        throw new BuiltinError(`illegal base64url string: ${s}`);
    }
  }
  t = t.replace(/[\r\n]/g, '');
  if (t.length % 4 !== 0 || !B64URL.test(t)) throw new BuiltinError('illegal base64 data');
  const pad = t.length - t.replace(/=+$/, '').length;
  if (pad > 0 && (t.length - pad) % 4 < 2) throw new BuiltinError('illegal base64 data');
  if (pad === 1 && (t.length - pad) % 4 !== 3) throw new BuiltinError('illegal base64 data');
  if (pad === 2 && (t.length - pad) % 4 !== 2) throw new BuiltinError('illegal base64 data');
  return Buffer.from(t, 'base64url');
}

const decodeText = (s: string): string => String(bytesToString(base64UrlDecode(s)));

// ---- tokens ----------------------------------------------------------------------------------

interface Token {
  header: string;
  payload: string;
  signature: string;
}

function splitToken(v: Value): Token {
  const s = str(v, 1);
  if (!s.includes('.')) throw new BuiltinError('encoded JWT had no period separators');
  const parts = s.split('.');
  if (parts.length !== 3) throw new BuiltinError(`encoded JWT must have 3 sections, found ${parts.length}`);
  return { header: parts[0]!, payload: parts[1]!, signature: parts[2]! };
}

function jsonObject(text: string): RegoObject {
  const v = parseJson(text);
  if (!isPlainObject(v)) throw new BuiltinError('decoded JSON type was not an Object');
  return v;
}

function decodeHeader(t: Token): RegoObject {
  const h = jsonObject(decodeText(t.header));
  if (Object.hasOwn(h, 'enc')) throw new BuiltinError('JWT is a JWE object, which is not supported');
  return h;
}

interface ParsedHeader {
  alg: string;
  kid: string;
  cty: string;
  crit: Set<string> | undefined;
  unknown: string[];
}

function parseHeader(h: RegoObject): ParsedHeader {
  const out: ParsedHeader = { alg: '', kid: '', cty: '', crit: undefined, unknown: [] };
  for (const k of Object.keys(h)) {
    const v = h[k]!;
    if (k === 'alg' || k === 'kid' || k === 'typ' || k === 'cty') {
      if (typeof v !== 'string') throw new BuiltinError(`${k}: must be a string`);
      if (k === 'alg') out.alg = v;
      else if (k === 'kid') out.kid = v;
      else if (k === 'cty') out.cty = v;
    } else if (k === 'crit') {
      if (!Array.isArray(v)) throw new BuiltinError('crit: must be a list');
      // OPA skips non-string entries rather than failing on them.
      out.crit = new Set(v.filter((x): x is string => typeof x === 'string'));
      if (out.crit.size === 0) throw new BuiltinError('crit: must be a nonempty list');
    } else out.unknown.push(k);
  }
  return out;
}

const headerValid = (h: ParsedHeader): boolean => h.alg !== '' && !h.unknown.some((u) => h.crit?.has(u));

// ---- keys ------------------------------------------------------------------------------------

interface VerificationKey {
  alg: string;
  kid: string;
  /** An asymmetric key, or an `oct` JWK's bytes. */
  key: KeyObject | Buffer;
}

const ALGORITHMS = new Set([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'HS256',
  'HS384',
  'HS512',
  'EdDSA',
]);
const KEY_CACHE_MAX = 100;
const keyCache = new Map<string, VerificationKey[]>();

/** The keys of a PEM certificate or public key, or of a JWK / JWKS; cached by the text. */
function keysOf(text: string): VerificationKey[] {
  const hit = keyCache.get(text);
  if (hit) return hit;
  const keys = parseKeys(text);
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value!);
  keyCache.set(text, keys);
  return keys;
}

const PEM_BLOCK = /-----BEGIN ([^-\r\n]*)-----\r?\n([\s\S]*?)-----END \1-----(\r?\n)?/;

function parseKeys(text: string): VerificationKey[] {
  const pem = PEM_BLOCK.exec(text);
  if (pem) {
    if (text.slice(pem.index + pem[0].length).length > 0)
      throw new BuiltinError('extra data after a PEM certificate block');
    const der = Buffer.from(pem[2]!.replace(/\s+/g, ''), 'base64');
    try {
      if (pem[1] === 'CERTIFICATE') return [{ alg: '', kid: '', key: new X509Certificate(der).publicKey }];
      if (pem[1] === 'PUBLIC KEY')
        return [{ alg: '', kid: '', key: createPublicKey({ key: der, format: 'der', type: 'spki' }) }];
    } catch (err) {
      throw new BuiltinError(`failed to parse a PEM key: ${(err as Error).message}`);
    }
    throw new BuiltinError('failed to extract a Key from the PEM certificate');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new BuiltinError('failed to parse a JWK key (set)');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new BuiltinError('failed to parse a JWK key (set)');
  const list = Object.hasOwn(doc, 'keys') ? (doc as { keys: unknown }).keys : [doc];
  if (!Array.isArray(list)) throw new BuiltinError('failed to parse a JWK key set');
  const out: VerificationKey[] = [];
  for (const jwk of list) {
    if (typeof jwk !== 'object' || jwk === null) throw new BuiltinError('failed to parse a JWK');
    const j = jwk as Record<string, unknown>;
    if (j.alg !== undefined && typeof j.alg !== 'string') throw new BuiltinError('invalid alg');
    if (j.kid !== undefined && typeof j.kid !== 'string') throw new BuiltinError('invalid kid');
    const alg = (j.alg as string | undefined) ?? '';
    const key = jwkKey(j);
    if (alg !== '' && !ALGORITHMS.has(alg)) continue;
    out.push({ alg, kid: (j.kid as string | undefined) ?? '', key });
  }
  return out;
}

function jwkKey(j: Record<string, unknown>): KeyObject | Buffer {
  if (j.kty === 'oct') {
    if (typeof j.k !== 'string') throw new BuiltinError('oct key without k');
    return Buffer.from(j.k, 'base64url');
  }
  if (j.kty !== 'RSA' && j.kty !== 'EC' && j.kty !== 'OKP') throw new BuiltinError(`unsupported kty ${String(j.kty)}`);
  try {
    return createPublicKey({ key: j as never, format: 'jwk' });
  } catch (err) {
    throw new BuiltinError(`failed to parse a JWK: ${(err as Error).message}`);
  }
}

// ---- signatures ------------------------------------------------------------------------------

const HASH: Record<string, string> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };

/** An (r, s) pair as a DER ECDSA-Sig-Value, which node:crypto verifies. */
function derSignature(r: Uint8Array, s: Uint8Array): Buffer {
  const int = (b: Uint8Array): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = Buffer.from(b.subarray(i));
    if (v.length === 0) v = Buffer.from([0]);
    if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02]), derLength(v.length), v]);
  };
  const body = Buffer.concat([int(r), int(s)]);
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let x = n; x > 0; x >>= 8) bytes.unshift(x & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function ecKeyBytes(key: KeyObject): number {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve === 'prime256v1' ? 32 : curve === 'secp384r1' ? 48 : curve === 'secp521r1' ? 66 : 0;
}

/** Go's crypto/rsa refuses keys below 1024 bits. */
const rsaUsable = (key: KeyObject): boolean =>
  key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 1024;

function safeVerify(fn: () => boolean): boolean {
  try {
    return fn();
  } catch {
    return false;
  }
}

/** The JWS verification decode_verify uses: the key must suit the algorithm (RFC 7518 sizes). */
function jwsVerify(key: KeyObject | Buffer, alg: string, input: Buffer, sig: Buffer): boolean {
  const bits = alg.slice(2);
  const hash = HASH[bits];
  if (alg.startsWith('HS') && hash) {
    if (!Buffer.isBuffer(key) || key.length === 0) return false;
    const mac = createHmac(hash, key).update(input).digest();
    return mac.length === sig.length && timingSafeEqual(mac, sig);
  }
  if (Buffer.isBuffer(key)) return false;
  if ((alg.startsWith('RS') || alg.startsWith('PS')) && hash) {
    if (!rsaUsable(key)) return false;
    const padding = alg.startsWith('PS')
      ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
      : { padding: constants.RSA_PKCS1_PADDING };
    return safeVerify(() => cryptoVerify(hash, input, { key, ...padding }, sig));
  }
  if (alg.startsWith('ES') && hash) {
    if (key.asymmetricKeyType !== 'ec') return false;
    const n = ecKeyBytes(key);
    if (sig.length !== 2 * n) return false;
    return safeVerify(() => cryptoVerify(hash, input, key, derSignature(sig.subarray(0, n), sig.subarray(n))));
  }
  if (alg === 'EdDSA') {
    if (key.asymmetricKeyType !== 'ed25519') return false;
    return safeVerify(() => cryptoVerify(null, input, key, sig));
  }
  return false;
}

type LegacyVerify = (key: KeyObject | Buffer, input: Buffer, sig: Buffer) => boolean;

/** io.jwt.verify_{rs,ps}NNN: Go's rsa.VerifyPKCS1v15 / rsa.VerifyPSS (salt length detected). */
const rsaLegacy =
  (hash: string, pss: boolean): LegacyVerify =>
  (key, input, sig) => {
    if (Buffer.isBuffer(key) || !rsaUsable(key)) return false;
    const padding = pss
      ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }
      : { padding: constants.RSA_PKCS1_PADDING };
    return safeVerify(() => cryptoVerify(hash, input, { key, ...padding }, sig));
  };

/** io.jwt.verify_esNNN: r and s are the two halves of the signature, whatever its length. */
const ecLegacy =
  (hash: string): LegacyVerify =>
  (key, input, sig) => {
    if (Buffer.isBuffer(key) || key.asymmetricKeyType !== 'ec') return false;
    const n = Math.floor(sig.length / 2);
    return safeVerify(() => cryptoVerify(hash, input, key, derSignature(sig.subarray(0, n), sig.subarray(n))));
  };

const edLegacy: LegacyVerify = (key, input, sig) => {
  if (Buffer.isBuffer(key) || key.asymmetricKeyType !== 'ed25519') return false;
  return safeVerify(() => cryptoVerify(null, input, key, sig));
};

function verifyWithKeys(tokenValue: Value, keyValue: Value, check: LegacyVerify): boolean {
  const t = splitToken(tokenValue);
  const keys = keysOf(str(keyValue, 2));
  const sig = Buffer.from(base64UrlDecode(t.signature));
  const header = parseHeader(decodeHeader(t));
  const input = Buffer.from(`${t.header}.${t.payload}`);
  if (header.kid !== '') {
    const k = keys.find((x) => x.kid === header.kid);
    if (k) return check(k.key, input, sig);
  }
  for (const k of keys) {
    if (k.alg !== '' && k.alg !== header.alg) continue;
    if (check(k.key, input, sig)) return true;
  }
  return false;
}

function verifyHs(hash: string): Builtin {
  return ([tok, secret]) => {
    const jwt = str(tok!, 1);
    const key = Buffer.from(str(secret!, 2));
    const t = splitToken(jwt);
    const mac = createHmac(hash, key).update(`${t.header}.${t.payload}`).digest();
    const sig = Buffer.from(base64UrlDecode(t.signature));
    return mac.length === sig.length && timingSafeEqual(mac, sig);
  };
}

// ---- decode ----------------------------------------------------------------------------------

function decode(v: Value): Value {
  const t = splitToken(v);
  const header = decodeHeader(t);
  let payloadText = decodeText(t.payload);
  const cty = header.cty;
  if (cty !== undefined) {
    if (typeof cty !== 'string') throw new BuiltinError('cty: must be a string');
    if (cty === 'JWT') {
      payloadText = payloadText.replace(/^["']+|["']+$/g, '');
      return decode(payloadText);
    }
  }
  const payload = jsonObject(payloadText);
  const sig = Buffer.from(base64UrlDecode(t.signature)).toString('hex');
  return [header, payload, sig];
}

// ---- decode_verify ---------------------------------------------------------------------------

interface Constraints {
  keys: VerificationKey[] | undefined;
  secret: string;
  alg: string;
  iss: string;
  aud: string;
  /** Nanoseconds, as a double (OPA converts it with Float64). */
  time: number;
}

function constraintsOf(o: RegoObject, state: EvalState): Constraints {
  const c: Constraints = { keys: undefined, secret: '', alg: '', iss: '', aud: '', time: -1 };
  for (const k of Object.keys(o)) {
    const v = o[k]!;
    switch (k) {
      case 'cert':
        if (typeof v !== 'string') throw new BuiltinError('cert constraint: must be a string');
        c.keys = keysOf(v);
        break;
      case 'secret':
      case 'alg':
      case 'iss':
      case 'aud':
        if (typeof v !== 'string') throw new BuiltinError(`${k} constraint: must be a string`);
        c[k] = v;
        break;
      case 'time': {
        if (!isNumber(v)) throw new BuiltinError('token time constraint: must be a number');
        const t = typeof v === 'number' ? v : Number(v instanceof FloatNumber ? v.text : v);
        if (!Number.isFinite(t)) throw new BuiltinError('token time constraint: unvalid float64');
        if (t < 0) throw new BuiltinError('token time constraint: must not be negative');
        c.time = t;
        break;
      }
      default:
        throw new BuiltinError(`unknown token validation constraint: ${k}`);
    }
  }
  if (c.time === -1) c.time = Number(state.nowNs());
  const keyConstraints = (c.keys !== undefined ? 1 : 0) + (c.secret !== '' ? 1 : 0);
  if (keyConstraints > 1) throw new BuiltinError('duplicate key constraints');
  if (keyConstraints < 1) throw new BuiltinError('no key constraint');
  return c;
}

function signatureVerifies(c: Constraints, h: ParsedHeader, t: Token, sig: Buffer): boolean {
  const input = Buffer.from(`${t.header}.${t.payload}`);
  if (c.keys !== undefined) {
    if (h.kid !== '') {
      const k = c.keys.find((x) => x.kid === h.kid);
      if (k) return jwsVerify(k.key, h.alg, input, sig);
    }
    return c.keys.some((k) => (k.alg === '' || k.alg === h.alg) && jwsVerify(k.key, h.alg, input, sig));
  }
  return jwsVerify(Buffer.from(c.secret), h.alg, input, sig);
}

const UNVERIFIED = (): Value => [false, newObject(), newObject()];

function audienceValid(aud: Value, want: string): boolean {
  if (typeof aud === 'string') return aud === want;
  if (!Array.isArray(aud)) return false;
  return aud.some((x) => typeof x === 'string' && x === want);
}

const decodeVerify: Builtin = ([tok, cons], state) => {
  const c = constraintsOf(obj(cons!, 2) as RegoObject, state);
  let a: Value = tok!;
  let t: Token;
  let header: RegoObject;
  let payloadText: string;
  for (;;) {
    t = splitToken(a);
    header = decodeHeader(t);
    const h = parseHeader(header);
    if (!headerValid(h)) return UNVERIFIED();
    if (c.alg !== '' && c.alg !== h.alg) return UNVERIFIED();
    const sig = Buffer.from(base64UrlDecode(t.signature));
    if (!signatureVerifies(c, h, t, sig)) return UNVERIFIED();
    payloadText = decodeText(t.payload);
    if (h.cty.toLowerCase() === 'jwt') {
      a = payloadText;
      continue;
    }
    break;
  }
  const payload = jsonObject(payloadText);
  if (c.iss !== '') {
    const iss = payload.iss;
    if (iss === undefined || !Object.hasOwn(payload, 'iss')) return UNVERIFIED();
    if (typeof iss !== 'string') throw new BuiltinError('iss must be a string');
    if (iss !== c.iss) return UNVERIFIED();
  }
  if (Object.hasOwn(payload, 'aud')) {
    if (!audienceValid(payload.aud!, c.aud)) return UNVERIFIED();
  } else if (c.aud !== '') return UNVERIFIED();
  // OPA compares the time in seconds, a double written with the shortest digits.
  const now = new FloatNumber(String(c.time / 1e9));
  if (Object.hasOwn(payload, 'exp')) {
    const exp = payload.exp!;
    if (!isNumber(exp)) throw new BuiltinError('exp value must be a number');
    if (compareNumbers(now, exp) !== -1) return UNVERIFIED();
  }
  if (Object.hasOwn(payload, 'nbf')) {
    const nbf = payload.nbf!;
    if (!isNumber(nbf)) throw new BuiltinError('nbf value must be a number');
    if (compareNumbers(now, nbf) === -1) return UNVERIFIED();
  }
  return [true, header, payload];
};

const legacy =
  (check: LegacyVerify): Builtin =>
  ([tok, key]) =>
    verifyWithKeys(tok!, key!, check);

export const jwtBuiltins: Record<string, Builtin> = {
  'io.jwt.decode': ([tok]) => decode(tok!),
  'io.jwt.decode_verify': decodeVerify,
  'io.jwt.verify_rs256': legacy(rsaLegacy('sha256', false)),
  'io.jwt.verify_rs384': legacy(rsaLegacy('sha384', false)),
  'io.jwt.verify_rs512': legacy(rsaLegacy('sha512', false)),
  'io.jwt.verify_ps256': legacy(rsaLegacy('sha256', true)),
  'io.jwt.verify_ps384': legacy(rsaLegacy('sha384', true)),
  'io.jwt.verify_ps512': legacy(rsaLegacy('sha512', true)),
  'io.jwt.verify_es256': legacy(ecLegacy('sha256')),
  'io.jwt.verify_es384': legacy(ecLegacy('sha384')),
  'io.jwt.verify_es512': legacy(ecLegacy('sha512')),
  'io.jwt.verify_eddsa': legacy(edLegacy),
  'io.jwt.verify_hs256': verifyHs('sha256'),
  'io.jwt.verify_hs384': verifyHs('sha384'),
  'io.jwt.verify_hs512': verifyHs('sha512'),
};

export { createHash };
