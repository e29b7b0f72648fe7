// The keys that seal users' upstream connections at rest (AES-256-GCM), read from a mounted
// file: one key per line, `<key id> <base64 of 32 bytes>`. The first line seals what is
// written; every line opens what was sealed with it, so keys rotate by putting a new line
// first and dropping the old one once every record has been rewritten (a refresh rewrites it).
//
// A sealed value is `v1.<key id>.<iv>.<ciphertext and tag>` (base64url). The additional data
// names what the value is for (the provider and user of a connection, a connect link, a
// connect flow's cookie): a value copied from one user's record to another's does not open.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const B64URL = /^[A-Za-z0-9_-]+$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class SealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealError';
  }
}

export class KeyRing {
  private readonly byId: ReadonlyMap<string, Buffer>;

  private constructor(
    private readonly activeId: string,
    keys: Map<string, Buffer>,
  ) {
    this.byId = keys;
  }

  /** Reads a key file's text; throws with the line that is wrong (never the key). */
  static parse(text: string): KeyRing {
    const keys = new Map<string, Buffer>();
    let first: string | undefined;
    text.split(/\r?\n/).forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const parts = line.split(/\s+/);
      if (parts.length !== 2 || !KEY_ID.test(parts[0]!))
        throw new Error(`line ${i + 1}: expected "<key id> <base64 of 32 bytes>" (key id: letters, digits, . _ -)`);
      const [id, b64] = parts as [string, string];
      const key = Buffer.from(b64, 'base64');
      if (!/^[A-Za-z0-9+/]{43}=?$/.test(b64) || key.length !== 32)
        throw new Error(`line ${i + 1}: key ${id} is not the base64 of exactly 32 bytes (openssl rand -base64 32)`);
      if (keys.has(id)) throw new Error(`line ${i + 1}: key id ${id} appears twice`);
      keys.set(id, key);
      first ??= id;
    });
    if (first === undefined) throw new Error('no key: expected a line "<key id> <base64 of 32 bytes>"');
    return new KeyRing(first, keys);
  }

  get activeKeyId(): string {
    return this.activeId;
  }

  seal(aad: string, plaintext: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.byId.get(this.activeId)!, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `v1.${this.activeId}.${iv.toString('base64url')}.${ct.toString('base64url')}`;
  }

  /** Opens a sealed value; a SealError for anything altered, sealed for something else, or under an unknown key. */
  open(aad: string, sealed: string): string {
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== 'v1') throw new SealError('not a sealed value');
    const [, id, ivText, ctText] = parts as [string, string, string, string];
    const key = this.byId.get(id);
    if (key === undefined)
      throw new SealError(`sealed under key ${KEY_ID.test(id) ? id : '(malformed)'}, not in the key file`);
    if (!B64URL.test(ivText) || !B64URL.test(ctText)) throw new SealError('not a sealed value');
    const iv = Buffer.from(ivText, 'base64url');
    const ct = Buffer.from(ctText, 'base64url');
    if (iv.length !== IV_BYTES || ct.length < TAG_BYTES) throw new SealError('not a sealed value');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(ct.subarray(ct.length - TAG_BYTES));
      return Buffer.concat([decipher.update(ct.subarray(0, ct.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new SealError('the value does not authenticate (altered, or sealed for another record)');
    }
  }

  /** Whether a sealed value was sealed with a key other than the active one (it is rewritten on its next refresh). */
  isStale(sealed: string): boolean {
    return sealed.split('.', 3)[1] !== this.activeId;
  }
}
