// The API key format: "mcp_" + 43 base62 characters of randomness (256 bits) + a 6-character
// base62 checksum. The checksum lets a typo or a truncated key be told apart from an
// unknown one without a registry lookup, and lets secret scanners recognise leaked keys.
import { createHash, randomBytes } from 'node:crypto';

export const API_KEY_PREFIX = 'mcp_';
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const RANDOM_CHARS = 43; // ceil(256 / log2(62))
const CHECKSUM_CHARS = 6; // 32 bits
const KEY_LENGTH = API_KEY_PREFIX.length + RANDOM_CHARS + CHECKSUM_CHARS;
const BASE62_BODY = /^[0-9A-Za-z]+$/;

/** A new API key: 256 bits from crypto.randomBytes, base62, with its checksum. */
export function generateApiKey(): string {
  const random = toBase62(BigInt('0x' + randomBytes(32).toString('hex')), RANDOM_CHARS);
  return API_KEY_PREFIX + random + checksum(API_KEY_PREFIX + random);
}

/** SHA-256 hex of a key: the only form a key is stored, compared or looked up in. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export type KeyShape = 'well_formed' | 'bad_checksum' | 'other';

/** What a presented key looks like: one of ours, one of ours with a typo, or another format (e.g. a development key). */
export function keyShape(key: string): KeyShape {
  if (key.length !== KEY_LENGTH || !key.startsWith(API_KEY_PREFIX)) return 'other';
  const body = key.slice(API_KEY_PREFIX.length);
  if (!BASE62_BODY.test(body)) return 'other';
  const payload = key.slice(0, KEY_LENGTH - CHECKSUM_CHARS);
  return checksum(payload) === key.slice(KEY_LENGTH - CHECKSUM_CHARS) ? 'well_formed' : 'bad_checksum';
}

function checksum(payload: string): string {
  const digest = createHash('sha256').update(payload, 'utf8').digest();
  return toBase62(BigInt(digest.readUInt32BE(0)), CHECKSUM_CHARS);
}

function toBase62(n: bigint, width: number): string {
  let out = '';
  while (n > 0n) {
    out = ALPHABET[Number(n % 62n)]! + out;
    n /= 62n;
  }
  return out.padStart(width, '0');
}
