// Verifies a bundle's `.signatures.json` the way OPA does before it activates anything: one
// JWS (compact) whose payload lists every file with its hash; the key is the configured
// one (`signing.keyid`, else the token's `kid`); the scope must match; every file of the
// bundle must be listed with the right hash and every listed file must be in the bundle.
// Structured files (data.json, data.yaml, .manifest) are hashed in OPA's canonical form —
// object keys sorted, no whitespace, number literals as written — so a signature survives
// re-formatting but not a changed value.
import { createHash, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import type { VerificationKeyConfig } from '../config/management.js';
import type { BundleRefusal } from '../metrics/hooks.js';
import { BundleError } from './bundle-loader.js';

/** Why a bundle was refused before activation (the label of mcp_authz_bundle_refused_total). */
export type Refusal = Exclude<BundleRefusal, 'invalid'>;

export class BundleRefused extends BundleError {
  constructor(
    readonly reason: Refusal,
    message: string,
  ) {
    super(message);
  }
}

export interface SigningOptions {
  keys: Readonly<Record<string, VerificationKeyConfig>>;
  keyid?: string | undefined;
  scope?: string | undefined;
}

const HASHES: Readonly<Record<string, string>> = {
  MD5: 'md5',
  'SHA-1': 'sha1',
  'SHA-224': 'sha224',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
  'SHA-512-224': 'sha512-224',
  'SHA-512-256': 'sha512-256',
};

const SIGNATURES = '.signatures.json';

/** Key objects made once from the config (PEM parsing is not free). */
export function verificationKeys(
  keys: Readonly<Record<string, VerificationKeyConfig>>,
): Map<string, { key: KeyObject; algorithm: string; scope?: string | undefined }> {
  const out = new Map<string, { key: KeyObject; algorithm: string; scope?: string | undefined }>();
  for (const [id, k] of Object.entries(keys)) {
    let key: KeyObject;
    try {
      key = k.algorithm.startsWith('HS') ? createSecretKey(Buffer.from(k.key, 'utf8')) : createPublicKey(k.key);
    } catch (err) {
      throw new BundleError(
        `keys.${id}: not a ${k.algorithm.startsWith('HS') ? 'secret' : 'PEM public key'}: ${(err as Error).message}`,
      );
    }
    out.set(id, { key, algorithm: k.algorithm, scope: k.scope });
  }
  return out;
}

/** Throws BundleRefused unless `files` (names without a leading "/") are exactly what the signature covers. */
export async function verifyBundleFiles(
  source: string,
  files: ReadonlyMap<string, Buffer>,
  keys: ReturnType<typeof verificationKeys>,
  opts: Pick<SigningOptions, 'keyid' | 'scope'>,
): Promise<void> {
  const raw = files.get(SIGNATURES);
  if (raw === undefined)
    throw new BundleRefused('unsigned', `bundle ${source} has no ${SIGNATURES}, and this bundle must be signed`);
  let token: string;
  try {
    const doc = JSON.parse(raw.toString('utf8')) as { signatures?: unknown };
    if (!Array.isArray(doc.signatures) || doc.signatures.length !== 1 || typeof doc.signatures[0] !== 'string')
      throw new Error('expected {"signatures": ["<one JWS>"]}');
    token = doc.signatures[0];
  } catch (err) {
    throw new BundleRefused('bad_signature', `bundle ${source}: ${SIGNATURES} is malformed: ${(err as Error).message}`);
  }
  let kid: string | undefined;
  try {
    kid = decodeProtectedHeader(token).kid;
  } catch (err) {
    throw new BundleRefused('bad_signature', `bundle ${source}: the signature is not a JWS: ${(err as Error).message}`);
  }
  const keyId = opts.keyid ?? kid;
  const key = keyId !== undefined ? keys.get(keyId) : undefined;
  if (key === undefined)
    throw new BundleRefused(
      'bad_signature',
      `bundle ${source}: no verification key ${JSON.stringify(keyId ?? '(none named)')} in keys`,
    );
  let payload: { files?: unknown; scope?: unknown };
  try {
    const verified = await compactVerify(token, key.key, { algorithms: [key.algorithm] });
    payload = JSON.parse(Buffer.from(verified.payload).toString('utf8')) as typeof payload;
  } catch (err) {
    throw new BundleRefused(
      'bad_signature',
      `bundle ${source}: the signature does not verify with key ${keyId}: ${(err as Error).message}`,
    );
  }
  const scope = opts.scope ?? key.scope;
  if (scope !== undefined && payload.scope !== scope) {
    throw new BundleRefused(
      'bad_signature',
      `bundle ${source}: the signature's scope ${JSON.stringify(payload.scope ?? null)} is not ${JSON.stringify(scope)}`,
    );
  }
  if (!Array.isArray(payload.files))
    throw new BundleRefused('bad_signature', `bundle ${source}: the signature lists no files`);
  const signed = new Map<string, { hash: string; algorithm: string }>();
  for (const f of payload.files as { name?: unknown; hash?: unknown; algorithm?: unknown }[]) {
    if (typeof f?.name !== 'string' || typeof f.hash !== 'string' || typeof f.algorithm !== 'string')
      throw new BundleRefused('bad_signature', `bundle ${source}: a signed file entry is malformed`);
    signed.set(f.name.replace(/^\/+/, ''), { hash: f.hash.toLowerCase(), algorithm: f.algorithm });
  }
  for (const [name, content] of files) {
    if (name === SIGNATURES) continue;
    const entry = signed.get(name);
    if (!entry) throw new BundleRefused('tampered', `bundle ${source}: ${name} is not covered by the signature`);
    const alg = HASHES[entry.algorithm];
    if (!alg)
      throw new BundleRefused('bad_signature', `bundle ${source}: unsupported hashing algorithm ${entry.algorithm}`);
    if (fileDigest(name, content, alg, source) !== entry.hash)
      throw new BundleRefused('tampered', `bundle ${source}: ${name} does not match its signed hash`);
    signed.delete(name);
  }
  if (signed.size > 0)
    throw new BundleRefused(
      'tampered',
      `bundle ${source}: signed file(s) missing from the bundle: ${[...signed.keys()].join(', ')}`,
    );
}

function fileDigest(name: string, content: Buffer, alg: string, source: string): string {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const structured = base === 'data.json' || base === '.manifest';
  let bytes: Buffer | string = content;
  if (structured) {
    try {
      bytes = canonicalJson(content.toString('utf8'));
    } catch (err) {
      throw new BundleRefused('tampered', `bundle ${source}: ${name} is not valid JSON: ${(err as Error).message}`);
    }
  }
  return createHash(alg).update(bytes).digest('hex');
}

/**
 * OPA's canonical form of a JSON document: keys sorted by their UTF-8 bytes (the last of
 * duplicates wins), no whitespace, numbers exactly as written, strings as Go's encoder
 * writes them (U+2028 and U+2029 escaped, no HTML escaping, lone surrogates replaced).
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y;
const SCALAR = /(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/y;

export function canonicalJson(text: string): string {
  let i = 0;
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  };
  const fail = (what: string): never => {
    throw new Error(`${what} at offset ${i}`);
  };
  const str = (): string => {
    STRING.lastIndex = i;
    const m = STRING.exec(text);
    if (!m) fail('bad string');
    i += m![0].length;
    return JSON.parse(m![0]) as string;
  };
  const enc = (s: string) =>
    JSON.stringify(s.replace(LONE_SURROGATE, '\ufffd'))
      .replace(/\u2028/g, '\\u2028')
      .replace(/\u2029/g, '\\u2029');
  const value = (depth: number): string => {
    if (depth > 1000) fail('nested too deep');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const members = new Map<string, string>();
      ws();
      if (text[i] === '}') {
        i++;
        return '{}';
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = str();
        ws();
        if (text[i++] !== ':') fail('expected ":"');
        members.delete(k);
        members.set(k, value(depth + 1));
        ws();
        const d = text[i++];
        if (d === '}') break;
        if (d !== ',') fail('expected "," or "}"');
      }
      const keys = [...members.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      return `{${keys.map((k) => `${enc(k)}:${members.get(k)}`).join(',')}}`;
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return '[]';
      }
      const items: string[] = [];
      for (;;) {
        items.push(value(depth + 1));
        ws();
        const d = text[i++];
        if (d === ']') break;
        if (d !== ',') fail('expected "," or "]"');
      }
      return `[${items.join(',')}]`;
    }
    if (c === '"') return enc(str());
    SCALAR.lastIndex = i;
    const m = SCALAR.exec(text);
    if (!m) fail('unexpected token');
    i += m![0].length;
    return m![0];
  };
  const out = value(0);
  ws();
  if (i !== text.length) fail('trailing text');
  return out;
}
