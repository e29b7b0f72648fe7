import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomically } from '../config/atomic-write.js';
import { isMap, isSeq, parseDocument, stringify, YAMLSeq } from 'yaml';
import { KeysFileError, parseKeysFile } from '../auth/key-registry.js';
import { ApiKeyEntrySchema, type ApiKeyEntry } from '../config/schema.js';
import { generateApiKey, hashApiKey } from '../contracts/api-key.js';
import { USAGE } from './usage.js';

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
    const flag: Record<string, string> = {
      id: '--id',
      userId: '--user',
      role: '--role',
      permissions: '--permission',
      expiresAt: '--expires',
      name: '--name',
    };
    throw new Error(
      parsed.error.issues.map((i) => `${flag[String(i.path[0])] ?? String(i.path[0])}: ${i.message}`).join('\n'),
    );
  }
  const entry = parsed.data;
  if (!entry.disabled) delete (entry as Partial<ApiKeyEntry>).disabled;
  return { key, entry };
}

/**
 * Adds an entry to a keys file, keeping its other entries and comments. Refuses a file the
 * service would refuse, and a duplicate id or hash. The new content goes to a temporary file
 * in the same folder, is flushed, and is renamed over the file: a watcher (the service, or
 * kubelet's copy) sees the old file or the new one, never half of either.
 */
export function appendToKeysFile(file: string, entry: ApiKeyEntry): { created: boolean } {
  const path = resolve(file);
  const created = !existsSync(path);
  const text = created ? 'keys: []\n' : readFileSync(path, 'utf8');
  const existing = parseKeysFile(text, path); // throws KeysFileError naming every bad entry
  const clash = existing.find((k) => k.id === entry.id || k.sha256.toLowerCase() === entry.sha256);
  if (clash)
    throw new KeysFileError(path, [
      `an entry with id ${JSON.stringify(clash.id)} ${clash.id === entry.id ? 'already exists (choose another --id)' : 'already has this hash'}`,
    ]);

  const out = text.trimStart().startsWith('{') ? appendJson(text, entry) : appendYaml(text, entry, path);
  parseKeysFile(out, path); // what is written must load

  writeFileAtomically(path, out, created ? 0o600 : statSync(path).mode & 0o777);
  return { created };
}

/** A JSON keys file stays JSON. */
function appendJson(text: string, entry: ApiKeyEntry): string {
  const doc = JSON.parse(text) as { keys?: unknown[] };
  return JSON.stringify({ ...doc, keys: [...(doc.keys ?? []), entry] }, null, 2) + '\n';
}

/** A YAML keys file keeps its comments and layout; the entry goes at the end of keys:. */
function appendYaml(text: string, entry: ApiKeyEntry, path: string): string {
  const doc = parseDocument(text);
  if (!isMap(doc.contents)) throw new KeysFileError(path, ['the file is not a mapping with a keys: list']);
  let keys = doc.get('keys', true);
  if (!isSeq(keys)) {
    keys = new YAMLSeq();
    doc.set('keys', keys);
  }
  const seq = keys as YAMLSeq;
  // A flow sequence (`keys: []`) would put the entry on one line: write block style.
  seq.flow = false;
  seq.add(doc.createNode(entry));
  return doc.toString();
}

export function keysCommand(args: string[], out: (s: string) => void, now: () => number = Date.now): number {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    out(USAGE.keys);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'create') throw new Error(`keys: unknown subcommand ${JSON.stringify(sub)}\n${USAGE.keys}`);
  const { values } = parseArgs({
    args: rest,
    options: {
      name: { type: 'string' },
      id: { type: 'string' },
      user: { type: 'string' },
      role: { type: 'string' },
      permission: { type: 'string', multiple: true },
      expires: { type: 'string' },
      append: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    out(USAGE.keys);
    return 0;
  }
  if (!values.name) throw new Error('keys create needs --name');
  const created = createKey({
    name: values.name,
    ...(values.id !== undefined ? { id: values.id } : {}),
    ...(values.user !== undefined ? { userId: values.user } : {}),
    ...(values.role !== undefined ? { role: values.role } : {}),
    ...(values.permission !== undefined ? { permissions: values.permission } : {}),
    ...(values.expires !== undefined ? { expires: values.expires } : {}),
  });
  // A key that is expired when made can never be used: almost certainly a typo in the year.
  if (created.entry.expiresAt !== undefined && Date.parse(created.entry.expiresAt) <= now()) {
    throw new Error(`--expires: ${values.expires} (${created.entry.expiresAt}) is not in the future`);
  }
  const appended = values.append !== undefined ? appendToKeysFile(values.append, created.entry) : undefined;
  if (values.json) {
    out(
      JSON.stringify(
        { ...created, ...(values.append !== undefined ? { appendedTo: resolve(values.append) } : {}) },
        null,
        2,
      ) + '\n',
    );
    return 0;
  }
  const publicNote =
    created.entry.userId === undefined ? 'No --user: a public key (it cannot reach private endpoints).\n' : '';
  if (appended) {
    out(
      `New API key for "${created.entry.name}" (shown only now; mcp-authz keeps only its SHA-256):\n\n` +
        `  ${created.key}\n\n` +
        `${appended.created ? 'Created' : 'Added to'} ${resolve(values.append!)} as "${created.entry.id}"; the service picks it up without a restart.\n` +
        publicNote,
    );
    return 0;
  }
  out(
    `New API key for "${created.entry.name}" (shown only now; mcp-authz keeps only its SHA-256):\n\n` +
      `  ${created.key}\n\n` +
      `Add this entry to the keys file (apiKeys.file); it is picked up without a restart:\n\n` +
      stringify({ keys: [created.entry] }) +
      `\n${publicNote}`,
  );
  return 0;
}

function slug(name: string): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  return s || 'key';
}
