// `mcp-authz keys create`: a new API key, printed once, and the registry entry (hash only)
// to paste into the keys file.
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { ApiKeyEntrySchema, type ApiKeyEntry } from '../config/schema.js';
import { generateApiKey, hashApiKey } from '../contracts/api-key.js';

export interface CreatedKey {
  key: string;
  entry: ApiKeyEntry;
}

export interface CreateKeyOptions {
  name: string;
  id?: string;
  userId?: string;
  role?: string;
  permissions?: string[];
  expires?: string;
}

/** Makes a key and its entry; throws naming the bad option. */
export function createKey(o: CreateKeyOptions): CreatedKey {
  const key = generateApiKey();
  const sha256 = hashApiKey(key);
  const raw: Record<string, unknown> = {
    id: o.id ?? `${slug(o.name)}-${sha256.slice(0, 6)}`,
    sha256,
    name: o.name,
  };
  if (o.userId !== undefined) raw.userId = o.userId;
  if (o.role !== undefined) raw.role = o.role;
  raw.permissions = o.permissions ?? [];
  if (o.expires !== undefined) raw.expiresAt = o.expires;
  const parsed = ApiKeyEntrySchema.safeParse(raw);
  if (!parsed.success) {
    const flag: Record<string, string> = { id: '--id', userId: '--user', role: '--role', permissions: '--permission', expiresAt: '--expires', name: '--name' };
    throw new Error(parsed.error.issues.map((i) => `${flag[String(i.path[0])] ?? String(i.path[0])}: ${i.message}`).join('\n'));
  }
  const entry = parsed.data;
  if (!entry.disabled) delete (entry as Partial<ApiKeyEntry>).disabled;
  return { key, entry };
}

export function keysCommand(args: string[], out: (s: string) => void): number {
  const [sub, ...rest] = args;
  if (sub !== 'create') {
    throw new Error(`keys: unknown subcommand ${JSON.stringify(sub ?? '')}; usage: mcp-authz keys create --name N [--id ID] [--user U] [--role R] [--permission P]... [--expires DATE] [--json]`);
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      name: { type: 'string' },
      id: { type: 'string' },
      user: { type: 'string' },
      role: { type: 'string' },
      permission: { type: 'string', multiple: true },
      expires: { type: 'string' },
      json: { type: 'boolean' },
    },
    strict: true,
  });
  if (!values.name) throw new Error('keys create needs --name');
  const created = createKey({
    name: values.name,
    ...(values.id !== undefined ? { id: values.id } : {}),
    ...(values.user !== undefined ? { userId: values.user } : {}),
    ...(values.role !== undefined ? { role: values.role } : {}),
    ...(values.permission !== undefined ? { permissions: values.permission } : {}),
    ...(values.expires !== undefined ? { expires: values.expires } : {}),
  });
  if (values.json) {
    out(JSON.stringify(created, null, 2) + '\n');
    return 0;
  }
  out(
    `New API key for "${created.entry.name}" (shown only now; mcp-authz keeps only its SHA-256):\n\n` +
      `  ${created.key}\n\n` +
      `Add this entry to the keys file (apiKeys.file); it is picked up without a restart:\n\n` +
      stringify({ keys: [created.entry] }) +
      `\n${created.entry.userId === undefined ? 'No --user: a public key (it cannot reach private endpoints).\n' : ''}`,
  );
  return 0;
}

function slug(name: string): string {
  const s = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
  return s || 'key';
}
