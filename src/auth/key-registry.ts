// The API key registry: entries (hashes only) from the keys file and from the config
// (`apiKeys.keys`, MCP_API_KEYS), built once into a KeyTable indexed by SHA-256 (key-table.ts).
// A Check call hashes the presented key and does one index lookup; no secret is compared
// byte by byte.
// Loading is a sequence of steps (keyRegistrySteps) so that a reload of a large file can
// yield to Checks between them; principals share their frozen role and grant lists.
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ApiKeyEntrySchema, type ApiKeyEntry } from '../config/schema.js';
import { checkKeyEntry } from './key-entry.js';
import { KeysFileReader, readJsonKeys } from './keys-file-reader.js';
import { KeyTableBuilder, type ApiKeyRecord, type KeyTable } from './key-table.js';

/** Lines read, or entries checked or registered, between two yields of a stepped load. */
const STEP = 20_000;

export type { ApiKeyRecord };

/** What a key source answers for a hash: the record, undefined (no such key), or that the store cannot say. */
export type KeyAnswer = ApiKeyRecord | undefined | 'unavailable';

/** Where the authenticator looks keys up: the file registry answers at once, a database store may answer later. */
export interface KeyLookup {
  lookup(sha256: string): KeyAnswer | Promise<KeyAnswer>;
}

export class KeyRegistry implements KeyLookup {
  constructor(private readonly table: KeyTable) {}

  get size(): number {
    return this.table.size;
  }

  /** The record for a key's SHA-256 hex, or undefined. */
  lookup(sha256: string): ApiKeyRecord | undefined {
    return this.table.lookup(sha256);
  }

  static readonly EMPTY = new KeyRegistry(new KeyTableBuilder().finish().table);
}

/** A keys file (or the merged entries) that cannot be used; `problems` name each bad field. */
export class KeysFileError extends Error {
  readonly code = 'ERR_KEYS_FILE';
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid API keys in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export const KeysFileSchema = z.object({ keys: z.array(ApiKeyEntrySchema).default([]) }).strict();

/** Parses a keys file (YAML, or JSON, which is YAML). Throws KeysFileError naming every bad field. */
export function parseKeysFile(content: string | Buffer, source: string): ApiKeyEntry[] {
  const buf = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const entries: ApiKeyEntry[] = [];
  if (run(fastSteps(buf, (e) => entries.push(e)))) return entries;
  return parseWithSchema(buf.toString('utf8'), source);
}

/**
 * Hands the keys file's entries to `take` in steps, through the fast reader and the
 * field-by-field check. Returns false when either gave up on something: the caller then
 * throws away what it took and asks the YAML parser and the schema, which also word the
 * messages when something is wrong.
 */
function* fastSteps(buf: Buffer, take: (e: ApiKeyEntry) => void): Generator<void, boolean> {
  let at = 0;
  while (at < buf.length && (buf[at] === 32 || buf[at] === 10 || buf[at] === 13 || buf[at] === 9)) at++;
  let ok = true;
  const check = (raw: unknown) => {
    const e = ok ? checkKeyEntry(raw) : undefined;
    if (e === undefined) ok = false;
    else take(e);
  };
  if (buf[at] === 123) {
    // JSON is parsed whole; its entries are checked in steps.
    const raw = readJsonKeys(buf.toString('utf8'));
    if (raw === undefined) return false;
    for (let i = 0; i < raw.length && ok; i++) {
      check(raw[i]);
      raw[i] = undefined;
      if (i % STEP === STEP - 1) yield;
    }
    return ok;
  }
  const reader = new KeysFileReader(buf, check);
  while (ok && reader.step(STEP)) yield;
  return ok && reader.ok;
}

function parseWithSchema(text: string, source: string): ApiKeyEntry[] {
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
    throw new KeysFileError(
      source,
      parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`),
    );
  }
  return parsed.data.keys;
}

/** Builds a registry from the file's entries and the config's, refusing duplicate ids or hashes. */
export function buildKeyRegistry(
  fileEntries: readonly ApiKeyEntry[],
  inline: readonly ApiKeyEntry[],
  source: string,
): KeyRegistry {
  const b = new RegistryBuilder();
  for (const e of fileEntries) b.add(e);
  return b.finish(inline, source);
}

/** Reads a keys file and builds the registry with the config's entries, in one go. */
export function loadKeyRegistry(content: Buffer, inline: readonly ApiKeyEntry[], source: string): KeyRegistry {
  return run(keyRegistrySteps(content, inline, source));
}

/**
 * The same, yielding to the event loop between steps of a few thousand keys: a reload of
 * a million keys takes seconds of CPU, and Checks are answered between its steps.
 */
export async function loadKeyRegistryInSteps(
  content: Buffer,
  inline: readonly ApiKeyEntry[],
  source: string,
): Promise<KeyRegistry> {
  const steps = keyRegistrySteps(content, inline, source);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Entries go from the reader straight into the registry: no list of the whole file is held. */
function* keyRegistrySteps(
  content: Buffer,
  inline: readonly ApiKeyEntry[],
  source: string,
): Generator<void, KeyRegistry> {
  let b = new RegistryBuilder();
  const fast = yield* fastSteps(content, (e) => b.add(e));
  if (!fast) {
    yield;
    b = new RegistryBuilder();
    for (const e of parseWithSchema(content.toString('utf8'), source)) b.add(e);
  }
  return b.finish(inline, source);
}

/** Records entries in order; `finish` adds the config's and refuses repeated ids and keys. */
class RegistryBuilder {
  private readonly table = new KeyTableBuilder();
  private fileCount = -1;

  add(e: ApiKeyEntry): void {
    this.table.add(e);
  }

  finish(inline: readonly ApiKeyEntry[], source: string): KeyRegistry {
    this.fileCount = this.table.size;
    for (const e of inline) this.table.add(e);
    const { table, repeats } = this.table.finish();
    if (repeats.length)
      throw new KeysFileError(
        source,
        repeats.map((r) =>
          r.kind === 'id'
            ? `${this.where(r.at)}.id: duplicate key id "${r.id}" (also at ${this.where(r.first)})`
            : `${this.where(r.at)}.sha256: the same key is registered twice (also at ${this.where(r.first)})`,
        ),
      );
    return new KeyRegistry(table);
  }

  private where(i: number): string {
    return i < this.fileCount ? `keys.${i}` : `apiKeys.keys.${i - this.fileCount} (config or MCP_API_KEYS)`;
  }
}

/** Runs stepped work to its end without yielding. */
function run<T>(steps: Generator<void, T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}
