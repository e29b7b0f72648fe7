// Verifies a compact JWS JWT with node:crypto's synchronous verify instead of WebCrypto.
// WebCrypto's verify is asynchronous: every call is a job on libuv's thread pool and a wake-up
// of the event loop when it returns, which costs more than the RSA verification itself. This
// module does what jose's jwtVerify does for the options the verifier uses — the same checks,
// in the same order, raising jose's own error classes so failureOf maps them unchanged — with
// two differences, both refusals: a header that carries `crit` (no IdP issues one for an access
// token; jose would accept `crit: ["b64"]`), and a segment spelt other than its canonical
// base64url (non-zero unused bits in its last character, which jose ignores). test/oauth-compact-jwt.test.ts holds both
// to the same verdicts on generated tokens.
import { KeyObject, constants, verify as verifySignature } from 'node:crypto';
import { errors, type FlattenedJWSInput, type JWSHeaderParameters, type JWTPayload } from 'jose';

/** jose's key resolver shape: the key for a header (JwksCache.getKey). */
export type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

export interface JwtCheck {
  issuer: string;
  /** Accepted audiences: the token's aud must name one. */
  audiences: readonly string[];
  algorithms: readonly string[];
  /** Seconds of clock skew allowed on exp and nbf. */
  clockTolerance: number;
  /** Epoch milliseconds. */
  now: number;
}

interface Algorithm {
  /** What the CryptoKey the JWKS gives must be (the checks jose makes before verifying). */
  key: { name: string; hash?: string; namedCurve?: string };
  /** node:crypto's digest name; null for EdDSA. */
  digest: string | null;
  pssSaltLength?: number;
  ieeeP1363?: boolean;
  minRsaBits?: number;
}

const rsa = (bits: number, pss: boolean): Algorithm => ({
  key: { name: pss ? 'RSA-PSS' : 'RSASSA-PKCS1-v1_5', hash: `SHA-${bits}` },
  digest: `sha${bits}`,
  ...(pss ? { pssSaltLength: bits / 8 } : {}),
  minRsaBits: 2048,
});
const ecdsa = (curve: string, bits: number): Algorithm => ({
  key: { name: 'ECDSA', namedCurve: curve },
  digest: `sha${bits}`,
  ieeeP1363: true,
});
const eddsa: Algorithm = { key: { name: 'Ed25519' }, digest: null };

const ALGORITHMS: Readonly<Record<string, Algorithm>> = {
  RS256: rsa(256, false),
  RS384: rsa(384, false),
  RS512: rsa(512, false),
  PS256: rsa(256, true),
  PS384: rsa(384, true),
  PS512: rsa(512, true),
  ES256: ecdsa('P-256', 256),
  ES384: ecdsa('P-384', 384),
  ES512: ecdsa('P-521', 512),
  EdDSA: eddsa,
  Ed25519: eddsa,
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
/** The KeyObject behind each CryptoKey a JWKS gave (a JWKS refresh gives new CryptoKeys). */
const keyObjects = new WeakMap<CryptoKey, KeyObject>();

/** A compact JWS split into its segments, with its header decoded. */
export interface ParsedJwt {
  header: Record<string, unknown>;
  /** The claims, when the caller decoded them already (decodeSegment); decoded after the signature check otherwise. */
  payload?: Record<string, unknown> | undefined;
  encodedHeader: string;
  encodedPayload: string;
  encodedSignature: string;
}

/** Splits a compact JWS and decodes its header; throws jose's JWSInvalid when it cannot. */
export function parseCompactJwt(token: string): ParsedJwt {
  const parts = token.split('.');
  if (parts.length !== 3) throw new errors.JWSInvalid('Invalid Compact JWS');
  const [encodedHeader, encodedPayload, encodedSignature] = parts as [string, string, string];
  const header = decodeSegment(encodedHeader);
  if (header === undefined) throw new errors.JWSInvalid('JWS Protected Header is invalid');
  return { header, encodedHeader, encodedPayload, encodedSignature };
}

/** Verifies `token`'s signature and claims; resolves with its claims or throws one of jose's errors. */
export async function verifyCompactJwt(token: string, resolveKey: KeyResolver, check: JwtCheck): Promise<JWTPayload> {
  return verifyParsedJwt(parseCompactJwt(token), resolveKey, check);
}

/** verifyCompactJwt after parseCompactJwt: the verifier reads the header and claims once for both. */
export async function verifyParsedJwt(jwt: ParsedJwt, resolveKey: KeyResolver, check: JwtCheck): Promise<JWTPayload> {
  const { header, encodedHeader, encodedPayload, encodedSignature } = jwt;
  if (header.crit !== undefined) throw new errors.JWSInvalid('a "crit" header is not accepted');
  const alg = header.alg;
  if (typeof alg !== 'string' || alg === '')
    throw new errors.JWSInvalid('JWS "alg" (Algorithm) Header Parameter missing or invalid');
  if (!check.algorithms.includes(alg))
    throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
  const algorithm = ALGORITHMS[alg];
  if (algorithm === undefined) throw new errors.JOSENotSupported(`alg ${alg} is not supported`);

  const cryptoKey = await resolveKey(header as JWSHeaderParameters, {
    protected: encodedHeader,
    payload: encodedPayload,
    signature: encodedSignature,
  });
  const signature = base64url(encodedSignature);
  if (signature === undefined) throw new errors.JWSInvalid('Failed to base64url decode the signature');
  const key = keyFor(cryptoKey, alg, algorithm);
  const signingInput = Buffer.from(`${encodedHeader}.${encodedPayload}`, 'latin1');
  let verified = false;
  try {
    verified = verifySignature(
      algorithm.digest,
      signingInput,
      algorithm.pssSaltLength !== undefined
        ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: algorithm.pssSaltLength }
        : algorithm.ieeeP1363
          ? { key, dsaEncoding: 'ieee-p1363' }
          : key,
      signature,
    );
  } catch (cause) {
    throw new errors.JWSSignatureVerificationFailed(undefined, { cause });
  }
  if (!verified) throw new errors.JWSSignatureVerificationFailed();

  const payload = jwt.payload ?? decodeSegment(encodedPayload);
  if (payload === undefined) throw new errors.JWTInvalid('JWT Claims Set must be a top-level JSON object');
  checkClaims(payload, check);
  return payload;
}

/** The CryptoKey as a KeyObject, after the checks jose makes of a verification key. */
function keyFor(cryptoKey: CryptoKey, alg: string, algorithm: Algorithm): KeyObject {
  const a = cryptoKey.algorithm as {
    name: string;
    hash?: { name: string };
    namedCurve?: string;
    modulusLength?: number;
  };
  const unusable = () => new TypeError(`the key for ${alg} is not a ${algorithm.key.name} verification key`);
  if (a.name !== algorithm.key.name) throw unusable();
  if (algorithm.key.hash !== undefined && a.hash?.name !== algorithm.key.hash) throw unusable();
  if (algorithm.key.namedCurve !== undefined && a.namedCurve !== algorithm.key.namedCurve) throw unusable();
  if (!cryptoKey.usages.includes('verify')) throw unusable();
  if (
    algorithm.minRsaBits !== undefined &&
    !(typeof a.modulusLength === 'number' && a.modulusLength >= algorithm.minRsaBits)
  )
    throw new TypeError(`${alg} requires key modulusLength to be 2048 bits or larger`);
  let key = keyObjects.get(cryptoKey);
  if (key === undefined) {
    key = KeyObject.from(cryptoKey);
    keyObjects.set(cryptoKey, key);
  }
  return key;
}

/**
 * A base64url segment's bytes, when `encoded` is their one canonical spelling. The caller has
 * checked the alphabet (looksLikeJwt). Refused: a length that leaves one character over (not
 * base64 at all: jose and atob refuse it, Buffer would drop the character), and a last
 * character whose unused low bits are not zero — a second spelling of the same bytes, which
 * jose and Buffer both accept and a stricter reader refuses. One token has one spelling.
 */
function base64url(encoded: string): Buffer | undefined {
  const rest = encoded.length % 4;
  if (rest === 1) return undefined;
  if (rest !== 0) {
    const unused = rest === 2 ? 0x0f : 0x03;
    if ((sextet(encoded.charCodeAt(encoded.length - 1)) & unused) !== 0) return undefined;
  }
  return Buffer.from(encoded, 'base64url');
}

/** The value of a base64url character (the alphabet is checked before). */
function sextet(c: number): number {
  if (c >= 65 && c <= 90) return c - 65; // A-Z
  if (c >= 97 && c <= 122) return c - 71; // a-z
  if (c >= 48 && c <= 57) return c + 4; // 0-9
  return c === 45 ? 62 : 63; // - and _
}

/** A segment as base64url → strict UTF-8 → JSON, when that is a plain object. */
export function decodeSegment(encoded: string): Record<string, unknown> | undefined {
  const bytes = base64url(encoded);
  if (bytes === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    return undefined;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** The claim checks jwtVerify makes with { issuer, audience, requiredClaims: ['exp'], clockTolerance, currentDate }. */
function checkClaims(claims: JWTPayload, check: JwtCheck): void {
  for (const claim of ['iss', 'aud', 'exp'] as const)
    if (!Object.hasOwn(claims, claim))
      throw new errors.JWTClaimValidationFailed(`missing required "${claim}" claim`, claims, claim, 'missing');
  if (claims.iss !== check.issuer) unexpected(claims, 'iss');
  const aud = claims.aud;
  const audienceOk =
    typeof aud === 'string'
      ? check.audiences.includes(aud)
      : Array.isArray(aud) && check.audiences.some((a) => aud.includes(a));
  if (!audienceOk) unexpected(claims, 'aud');
  const now = Math.floor(check.now / 1000);
  const tolerance = check.clockTolerance;
  numericDate(claims, 'iat');
  const nbf = numericDate(claims, 'nbf');
  if (nbf !== undefined && nbf > now + tolerance)
    throw new errors.JWTClaimValidationFailed('"nbf" claim timestamp check failed', claims, 'nbf', 'check_failed');
  const exp = numericDate(claims, 'exp');
  if (exp !== undefined && exp <= now - tolerance)
    throw new errors.JWTExpired('"exp" claim timestamp check failed', claims, 'exp', 'check_failed');
}

function numericDate(claims: JWTPayload, claim: 'iat' | 'nbf' | 'exp'): number | undefined {
  const value = claims[claim];
  if (value === undefined) return undefined;
  if (typeof value !== 'number')
    throw new errors.JWTClaimValidationFailed(`"${claim}" claim must be a number`, claims, claim, 'invalid');
  return value;
}

function unexpected(claims: JWTPayload, claim: string): never {
  throw new errors.JWTClaimValidationFailed(`unexpected "${claim}" claim value`, claims, claim, 'check_failed');
}
