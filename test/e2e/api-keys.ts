// API keys for the end-to-end tests, in the service's format (docs/authentication.md, "API keys"): `mcp_` + 256 bits of randomness,
// registered by SHA-256 only in a keys file.
import { createHash, randomBytes } from 'node:crypto';
import { stringify } from 'yaml';

export interface TestKey {
  /** The secret a client sends. */
  key: string;
  id: string;
  name: string;
  userId?: string;
  role: string;
  permissions: string[];
}

export function mintKey(entry: Omit<TestKey, 'key'>): TestKey {
  return { ...entry, key: `mcp_${randomBytes(32).toString('base64url')}` };
}

/** The keys-file YAML for `keys` (hashes only). */
export function keysFile(keys: TestKey[]): string {
  return stringify({
    keys: keys.map(({ key, ...entry }) => ({ ...entry, sha256: createHash('sha256').update(key).digest('hex') })),
  });
}
