// The API key registry: entries (hashes only) from the keys file and from the config
// (`apiKeys.keys`, MCP_API_KEYS), built once into a KeyTable indexed by SHA-256 (key-table.ts).
// A Check call hashes the presented key and does one index lookup; no secret is compared
// byte by byte.
// A keys file is read in chunks (KeyRegistryLoad), never held whole; a reload reads, parses
// and indexes in small steps that yield to Checks between them (loadKeysFileInSteps);
// principals share their frozen role and grant lists.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ApiKeyEntrySchema, type ApiKeyEntry } from '../config/schema.js';
import { readFileChunks, readFileChunksSync, SourceChanged } from '../config/watched-file.js';
import { checkKeyEntry } from './key-entry.js';
import { KeysFileReader, readJsonKeys } from './keys-file-reader.js';
import { KeyTableBuilder, type ApiKeyRecord, type KeyTable } from './key-table.js';

/** Entries checked or indexed between two yields of a stepped load. */
const STEP = 16_384;
/** Bytes of a keys file read and parsed between two yields of a reload (about 70 keys as `keys create` writes them). */
const STREAM_SLICE = 16 * 1024;

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

  /** The record with this id (AuthZEN subjects name keys by id): the id index is built on first use, never on the Check path. */
  byId(id: string): ApiKeyRecord | undefined {
    return this.table.byId(id);
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
  const stream = new KeyEntryStream((e) => entries.push(e));
  stream.push(buf);
  if (run(stream.end())) return entries;
  return parseWithSchema(buf.toString('utf8'), source);
}

/**
 * Takes a keys file's bytes in chunks and hands its entries to `take`, through the fast
 * reader and the field-by-field check. `end()` returns false when either gave up on
 * something: the caller then throws away what it took and asks the YAML parser and the
 * schema (with the whole file), which also word the messages when something is wrong.
 * A YAML file is read as it streams; a JSON one (its first byte "{") is collected and
 * parsed whole at the end, its entries checked in steps.
 */
class KeyEntryStream {
  private ok = true;
  private kind: 'unknown' | 'yaml' | 'json' = 'unknown';
  /** Chunks held: the leading blank ones until the first byte decides, or all of a JSON file. */
  private held: Buffer[] = [];
  private readonly reader: KeysFileReader;

  constructor(private readonly take: (e: ApiKeyEntry) => void) {
    this.reader = new KeysFileReader((raw) => this.check(raw));
  }

  private check(raw: unknown): void {
    const e = this.ok ? checkKeyEntry(raw) : undefined;
    if (e === undefined) this.ok = false;
    else this.take(e);
  }

  push(chunk: Buffer): void {
    if (!this.ok) return;
    if (this.kind === 'unknown') {
      let at = 0;
      while (at < chunk.length && (chunk[at] === 32 || chunk[at] === 10 || chunk[at] === 13 || chunk[at] === 9)) at++;
      this.held.push(Buffer.from(chunk));
      if (at === chunk.length) return;
      this.kind = chunk[at] === 123 ? 'json' : 'yaml';
      if (this.kind === 'json') return;
      for (const c of this.held) this.reader.push(c);
      this.held = [];
      return;
    }
    if (this.kind === 'json') this.held.push(Buffer.from(chunk));
    else this.reader.push(chunk);
    if (!this.reader.ok) this.ok = false;
  }

  *end(): Generator<void, boolean> {
    if (!this.ok) return false;
    if (this.kind === 'json') {
      const raw = readJsonKeys(Buffer.concat(this.held).toString('utf8'));
      this.held = [];
      if (raw === undefined) return false;
      for (let i = 0; i < raw.length && this.ok; i++) {
        this.check(raw[i]);
        raw[i] = undefined;
        if (i % STEP === STEP - 1) yield;
      }
      return this.ok;
    }
    for (const c of this.held) this.reader.push(c);
    this.held = [];
    return this.reader.end() && this.ok;
  }
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
  return run(b.finish(inline, source));
}

/**
 * Builds the registry from a keys file's bytes as they arrive in chunks (push), then the
 * config's entries (finish). Entries go from the reader straight into the columnar table:
 * neither the file nor a list of its entries is held. When the fast reader gives up,
 * finish asks `whole()` for the file's bytes and the YAML parser reads them.
 */
export class KeyRegistryLoad {
  private builder = new RegistryBuilder();
  private readonly stream = new KeyEntryStream((e) => this.builder.add(e));

  constructor(
    private readonly inline: readonly ApiKeyEntry[],
    private readonly source: string,
  ) {}

  push(chunk: Buffer): void {
    this.stream.push(chunk);
  }

  /** Steps to the registry; throws KeysFileError naming every bad entry. */
  *finish(whole: () => Buffer): Generator<void, KeyRegistry> {
    if (!(yield* this.stream.end())) {
      yield;
      this.builder = new RegistryBuilder();
      for (const e of parseWithSchema(whole().toString('utf8'), this.source)) this.builder.add(e);
    }
    return yield* this.builder.finish(this.inline, this.source);
  }
}

/** Reads a keys file held whole and builds the registry with the config's entries, in one go. */
export function loadKeyRegistry(content: Buffer, inline: readonly ApiKeyEntry[], source: string): KeyRegistry {
  const load = new KeyRegistryLoad(inline, source);
  load.push(content);
  return run(load.finish(() => content));
}

/**
 * Reads the keys file at `path` in chunks and builds the registry, in one go (start-up):
 * the registry and the SHA-256 of the bytes it was built from.
 */
export function loadKeysFileSync(
  path: string,
  inline: readonly ApiKeyEntry[],
  source: string,
): { registry: KeyRegistry; digest: string } {
  const load = new KeyRegistryLoad(inline, source);
  let digest = readFileChunksSync(path, (c) => load.push(c));
  const registry = run(
    load.finish(() => {
      const buf = readFileSync(path);
      digest = createHash('sha256').update(buf).digest('hex');
      return buf;
    }),
  );
  return { registry, digest };
}

/**
 * The same for a reload: the file is read and parsed in slices of STREAM_SLICE bytes, and
 * the table indexed in steps, with a yield to the event loop (setImmediate) after each, so
 * Checks are answered with the keys in force until the new registry replaces them in one
 * assignment. Throws SourceChanged when the bytes read are not the ones `digest` was taken
 * from (the file changed meanwhile). `progress` is told after each step (tests observe a
 * reload in progress with it).
 */
export async function loadKeysFileInSteps(
  path: string,
  inline: readonly ApiKeyEntry[],
  source: string,
  digest: string,
  progress?: (phase: 'read' | 'index') => void,
): Promise<KeyRegistry> {
  const load = new KeyRegistryLoad(inline, source);
  const read = await readFileChunks(
    path,
    (c) => {
      load.push(c);
      progress?.('read');
    },
    { sliceBytes: STREAM_SLICE },
  );
  if (read !== digest) throw new SourceChanged(path);
  const steps = load.finish(() => {
    const whole = readFileSync(path);
    if (createHash('sha256').update(whole).digest('hex') !== digest) throw new SourceChanged(path);
    return whole;
  });
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    progress?.('index');
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Records entries in order; `finish` adds the config's and refuses repeated ids and keys. */
class RegistryBuilder {
  private readonly table = new KeyTableBuilder();
  private fileCount = -1;

  add(e: ApiKeyEntry): void {
    this.table.add(e);
  }

  *finish(inline: readonly ApiKeyEntry[], source: string): Generator<void, KeyRegistry> {
    this.fileCount = this.table.size;
    for (const e of inline) this.table.add(e);
    const { table, repeats } = yield* this.table.finishInSteps();
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
