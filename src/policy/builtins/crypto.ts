// crypto.md5/sha1/sha256, crypto.hmac.*: hex digests of the string's bytes (OPA topdown/crypto.go).
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { bytesOf, type Value } from './rego-value.js';
import type { Builtin } from './types.js';

const digest =
  (alg: string): Builtin =>
  ([x]) =>
    createHash(alg).update(bytesOf(x!, 1)).digest('hex');
const hmac =
  (alg: string): Builtin =>
  ([msg, key]) =>
    createHmac(alg, bytesOf(key!, 2)).update(bytesOf(msg!, 1)).digest('hex');

export const cryptoBuiltins: Record<string, Builtin> = {
  'crypto.md5': digest('md5'),
  'crypto.sha1': digest('sha1'),
  'crypto.sha256': digest('sha256'),
  'crypto.hmac.md5': hmac('md5'),
  'crypto.hmac.sha1': hmac('sha1'),
  'crypto.hmac.sha256': hmac('sha256'),
  'crypto.hmac.sha512': hmac('sha512'),
  // Constant time for equal lengths, as Go's hmac.Equal.
  'crypto.hmac.equal': ([a, b]): Value => {
    const x = bytesOf(a!, 1);
    const y = bytesOf(b!, 2);
    return x.length === y.length && timingSafeEqual(x, y);
  },
};
