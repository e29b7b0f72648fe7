// An entry of the keys file checked field by field, for the common case of a valid entry:
// the schema (ApiKeyEntrySchema) gives the same result but costs several times as much per
// key, which a file of a million keys feels. Anything this check is not sure of returns
// undefined, and the caller asks the schema, whose messages name the problem.
// test/keys-file-reader.test.ts holds the two to the same results.
import type { ApiKeyEntry } from '../config/schema.js';

const ID = /^[a-zA-Z0-9_.:-]{1,64}$/;
const SHA256 = /^[0-9a-fA-F]{64}$/;
const GRANT = /^(\*|(tools|prompts|resources):.+)$/;
const FIELDS = new Set(['id', 'sha256', 'name', 'userId', 'role', 'permissions', 'expiresAt', 'disabled']);

/** The entry as the schema would output it, or undefined when the schema must judge it. */
export function checkKeyEntry(raw: unknown): ApiKeyEntry | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return undefined;
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!FIELDS.has(k)) return undefined;
  const { id, sha256, name, userId, role, permissions, expiresAt, disabled } = r;
  if (typeof id !== 'string' || !ID.test(id)) return undefined;
  if (typeof sha256 !== 'string' || !SHA256.test(sha256)) return undefined;
  if (!optionalText(name) || !optionalText(userId) || !optionalText(role)) return undefined;
  let grants: string[] = [];
  if (permissions !== undefined) {
    if (!Array.isArray(permissions)) return undefined;
    for (const p of permissions) if (typeof p !== 'string' || !GRANT.test(p)) return undefined;
    grants = permissions.slice() as string[];
  }
  let expires: string | undefined;
  if (expiresAt !== undefined) {
    if (typeof expiresAt !== 'string') return undefined;
    const d = new Date(expiresAt);
    if (Number.isNaN(d.getTime())) return undefined;
    expires = d.toISOString();
  }
  if (disabled !== undefined && typeof disabled !== 'boolean') return undefined;
  const entry: ApiKeyEntry = { id, sha256: sha256.toLowerCase(), permissions: grants, disabled: disabled ?? false };
  if (name !== undefined) entry.name = name as string;
  if (userId !== undefined) entry.userId = userId as string;
  if (role !== undefined) entry.role = role as string;
  if (expires !== undefined) entry.expiresAt = expires;
  return entry;
}

function optionalText(v: unknown): boolean {
  return v === undefined || (typeof v === 'string' && v.length > 0);
}
