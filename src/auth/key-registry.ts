// The API key registry: entries (hashes only) from the keys file and from the config
// (`apiKeys.keys`, MCP_API_KEYS), built once into a Map keyed by SHA-256 hex. A Check call
// hashes the presented key and does one Map lookup; no secret is compared byte by byte.
// Loading is a sequence of steps (keyRegistrySteps) so that a reload of a large file can
// yield to Checks between them; principals share their frozen role and grant lists.
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ApiKeyEntrySchema, type ApiKeyEntry } from '../config/schema.js';
import type { Principal } from '../contracts/principal.js';
import { checkKeyEntry } from './key-entry.js';
import { KeysFileReader, readJsonKeys } from './keys-file-reader.js';

/** Lines read, or entries checked or registered, between two yields of a stepped load. */
const STEP = 20_000;

export interface ApiKeyRecord {
  id: string;
  /** The entry's position in the keys file (then the config's entries): for messages. */
  at: number;
  /** The principal this key authenticates as, built at load and frozen. */
  principal: Principal;
  /** Epoch ms, or Infinity for a key that does not expire. */
  expiresAtMs: number;
  disabled: boolean;
}

export class KeyRegistry {
  private readonly byHash: Map<string, ApiKeyRecord>;

  constructor(entries: readonly ApiKeyEntry[] | Map<string, ApiKeyRecord>) {
    if (entries instanceof Map) this.byHash = entries;
    else {
      const shared = new SharedLists();
      this.byHash = new Map(entries.map((e, i) => [e.sha256, toRecord(e, shared, i)]));
    }
  }

  get size(): number {
    return this.byHash.size;
  }

  /** The record for a key's SHA-256 hex, or undefined. */
  lookup(sha256: string): ApiKeyRecord | undefined {
    return this.byHash.get(sha256);
  }

  /** The record with this id (AuthZEN subjects name keys by id): the index is built on first use, never on the Check path. */
  byId(id: string): ApiKeyRecord | undefined {
    if (this.ids === undefined) {
      this.ids = new Map();
      for (const r of this.byHash.values()) this.ids.set(r.id, r);
    }
    return this.ids.get(id);
  }

  private ids: Map<string, ApiKeyRecord> | undefined;

  static readonly EMPTY = new KeyRegistry(new Map());
}

const NO_SCOPES = Object.freeze([]) as unknown as string[];

/** Frozen role and grant lists, one per distinct list: a million keys usually hold a few hundred. */
class SharedLists {
  private readonly lists = new Map<string, string[]>();
  private readonly texts = new Map<string, string>();

  /** One string for equal user ids and roles (each read from its own line otherwise). */
  text(s: string): string {
    const known = this.texts.get(s);
    if (known !== undefined) return known;
    this.texts.set(s, s);
    return s;
  }

  get(items: readonly string[]): string[] {
    const key = items.join('\n');
    let list = this.lists.get(key);
    if (list === undefined) this.lists.set(key, (list = Object.freeze([...items]) as string[]));
    return list;
  }
}

function toRecord(e: ApiKeyEntry, shared: SharedLists, at: number): ApiKeyRecord {
  const principal: Principal = {
    authenticated: true,
    method: 'api_key',
    id: e.id,
    roles: shared.get(e.role !== undefined ? [e.role] : []),
    permissions: shared.get(e.permissions),
    scopes: NO_SCOPES,
    keyType: e.userId !== undefined ? 'private' : 'public',
    keyId: e.id,
  };
  if (e.userId !== undefined) principal.userId = shared.text(e.userId);
  if (e.role !== undefined) principal.role = shared.text(e.role);
  return {
    id: e.id,
    at,
    principal: Object.freeze(principal),
    expiresAtMs: e.expiresAt !== undefined ? Date.parse(e.expiresAt) : Number.POSITIVE_INFINITY,
    disabled: e.disabled,
  };
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

/** Records entries in file order, noting duplicate ids and hashes; `finish` adds the config's and refuses duplicates. */
class RegistryBuilder {
  private readonly ids = new Set<string>();
  private readonly byHash = new Map<string, ApiKeyRecord>();
  private readonly shared = new SharedLists();
  /** Positions of the entries that repeat an id or a hash: the messages are worded at the end. */
  private readonly repeats: { at: number; entry: ApiKeyEntry; id: boolean; hash: boolean }[] = [];
  private count = 0;
  private fileCount = -1;

  add(e: ApiKeyEntry): void {
    const at = this.count++;
    const id = this.ids.has(e.id);
    const hash = this.byHash.has(e.sha256);
    if (id || hash) this.repeats.push({ at, entry: e, id, hash });
    if (!id) this.ids.add(e.id);
    if (!hash) this.byHash.set(e.sha256, toRecord(e, this.shared, at));
  }

  finish(inline: readonly ApiKeyEntry[], source: string): KeyRegistry {
    this.fileCount = this.count;
    for (const e of inline) this.add(e);
    if (this.repeats.length)
      throw new KeysFileError(
        source,
        this.repeats.flatMap((r) => this.problems(r)),
      );
    return new KeyRegistry(this.byHash);
  }

  private problems(r: { at: number; entry: ApiKeyEntry; id: boolean; hash: boolean }): string[] {
    const out: string[] = [];
    if (r.id) {
      let first = Infinity;
      for (const rec of this.byHash.values()) if (rec.id === r.entry.id && rec.at < first) first = rec.at;
      for (const x of this.repeats) if (!x.id && x.entry.id === r.entry.id && x.at < first) first = x.at;
      out.push(`${this.where(r.at)}.id: duplicate key id "${r.entry.id}" (also at ${this.where(first)})`);
    }
    if (r.hash)
      out.push(
        `${this.where(r.at)}.sha256: the same key is registered twice (also at ${this.where(this.byHash.get(r.entry.sha256)!.at)})`,
      );
    return out;
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
