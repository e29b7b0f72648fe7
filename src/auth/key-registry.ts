// The API key registry: entries (hashes only) from the keys file and from the config
// (`apiKeys.keys`, MCP_API_KEYS), built once into a Map keyed by SHA-256 hex. A Check call
// hashes the presented key and does one Map lookup; no secret is compared byte by byte.
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ApiKeyEntrySchema, type ApiKeyEntry } from '../config/schema.js';
import type { Principal } from '../contracts/principal.js';

export interface ApiKeyRecord {
  id: string;
  /** The principal this key authenticates as, built at load and frozen. */
  principal: Principal;
  /** Epoch ms, or Infinity for a key that does not expire. */
  expiresAtMs: number;
  disabled: boolean;
}

export class KeyRegistry {
  private readonly byHash: Map<string, ApiKeyRecord>;

  constructor(entries: readonly ApiKeyEntry[]) {
    this.byHash = new Map(entries.map((e) => [e.sha256, toRecord(e)]));
  }

  get size(): number {
    return this.byHash.size;
  }

  /** The record for a key's SHA-256 hex, or undefined. */
  lookup(sha256: string): ApiKeyRecord | undefined {
    return this.byHash.get(sha256);
  }

  static readonly EMPTY = new KeyRegistry([]);
}

function toRecord(e: ApiKeyEntry): ApiKeyRecord {
  const principal: Principal = {
    authenticated: true,
    method: 'api_key',
    id: e.id,
    roles: e.role !== undefined ? [e.role] : [],
    permissions: [...e.permissions],
    scopes: [],
    keyType: e.userId !== undefined ? 'private' : 'public',
    keyId: e.id,
  };
  if (e.userId !== undefined) principal.userId = e.userId;
  if (e.role !== undefined) principal.role = e.role;
  Object.freeze(principal.roles);
  Object.freeze(principal.permissions);
  return {
    id: e.id,
    principal: Object.freeze(principal),
    expiresAtMs: e.expiresAt !== undefined ? Date.parse(e.expiresAt) : Number.POSITIVE_INFINITY,
    disabled: e.disabled,
  };
}

/** A keys file (or the merged entries) that cannot be used; `problems` name each bad field. */
export class KeysFileError extends Error {
  readonly code = 'ERR_KEYS_FILE';
  constructor(readonly source: string, readonly problems: string[]) {
    super(`invalid API keys in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export const KeysFileSchema = z.object({ keys: z.array(ApiKeyEntrySchema).default([]) }).strict();

/** Parses a keys file (YAML, or JSON, which is YAML). Throws KeysFileError naming every bad field. */
export function parseKeysFile(text: string, source: string): ApiKeyEntry[] {
  let raw: unknown;
  try {
    raw = parseYaml(text, { uniqueKeys: true });
  } catch (err) {
    // The YAML parser's message quotes the offending line, which could hold a pasted key: keep only its position.
    const pos = (err as { linePos?: { line: number; col: number }[] }).linePos?.[0];
    throw new KeysFileError(source, [`not valid YAML or JSON${pos ? ` (line ${pos.line}, column ${pos.col})` : ''}`]);
  }
  if (raw === null || raw === undefined || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new KeysFileError(source, ['expected a mapping with a "keys:" list']);
  }
  const parsed = KeysFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new KeysFileError(source, parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`));
  }
  return parsed.data.keys;
}

/** Builds a registry from the file's entries and the config's, refusing duplicate ids or hashes. */
export function buildKeyRegistry(fileEntries: readonly ApiKeyEntry[], inline: readonly ApiKeyEntry[], source: string): KeyRegistry {
  const problems: string[] = [];
  const ids = new Map<string, string>();
  const hashes = new Map<string, string>();
  const all = [...fileEntries.map((e, i) => [e, `keys.${i}`] as const), ...inline.map((e, i) => [e, `apiKeys.keys.${i} (config or MCP_API_KEYS)`] as const)];
  for (const [e, where] of all) {
    const idAt = ids.get(e.id);
    if (idAt) problems.push(`${where}.id: duplicate key id "${e.id}" (also at ${idAt})`);
    else ids.set(e.id, where);
    const hashAt = hashes.get(e.sha256);
    if (hashAt) problems.push(`${where}.sha256: the same key is registered twice (also at ${hashAt})`);
    else hashes.set(e.sha256, where);
  }
  if (problems.length) throw new KeysFileError(source, problems);
  return new KeyRegistry(all.map(([e]) => e));
}
