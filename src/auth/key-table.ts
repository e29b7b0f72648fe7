// The API keys in force, held in columns instead of one object graph per key: a keys file of
// a million keys held as a Map of hex strings to records (a principal, lists, strings each)
// took about a kilobyte per key and most of a load's time in Map and Set growth and garbage
// collection. Here a key costs its SHA-256 (32 bytes), its id's bytes, a few numbers, and two
// slots of an open-addressing index; users, roles and grant lists are interned, since a
// million keys usually hold a few thousand of each. A looked-up key's record (with its
// frozen principal) is built on first use and kept in a bounded cache.
import type { ApiKeyEntry } from '../config/schema.js';
import type { Principal } from '../contracts/principal.js';

export interface ApiKeyRecord {
  id: string;
  /** The entry's position in the keys file (then the config's entries): for messages. */
  at: number;
  /** The principal this key authenticates as, frozen. */
  principal: Principal;
  /** Epoch ms, or Infinity for a key that does not expire. */
  expiresAtMs: number;
  disabled: boolean;
  /** Set only by a store: the key was revoked (refused as key_revoked). */
  revoked?: true;
}

/** Records built for looked-up keys, kept for the next Check with the same key. */
const RECORD_CACHE = 16_384;
const EMPTY_SLOT = -1;
/** Entries indexed between two yields of `finish`. */
const STEP = 16_384;
const NO_TEXT = -1;
const NO_SCOPES = Object.freeze([]) as unknown as string[];

/** A repeated id or hash, found while building: the builder's caller words the message. */
export interface Repeat {
  /** Position of the later entry. */
  at: number;
  /** Position of the first entry with the same id or key. */
  first: number;
  kind: 'id' | 'hash';
  id: string;
}

export class KeyTable {
  private readonly records = new Map<number, ApiKeyRecord>();
  private readonly probe = new Uint32Array(8);

  /** @internal built by KeyTableBuilder */
  constructor(
    private readonly n: number,
    private readonly hashes: Uint32Array,
    private readonly slots: Int32Array,
    private readonly ids: IdColumn,
    private readonly users: Int32Array,
    private readonly roles: Int32Array,
    private readonly grants: Int32Array,
    private readonly expires: Float64Array,
    private readonly disabled: Uint8Array,
    private readonly texts: readonly string[],
    private readonly lists: readonly string[][],
    /** A role text's index → the index of its one-item list in `lists`. */
    private readonly roleLists: ReadonlyMap<number, number>,
  ) {}

  get size(): number {
    return this.n;
  }

  /** The record for a key's SHA-256 hex (either case), or undefined. */
  lookup(sha256: string): ApiKeyRecord | undefined {
    if (this.n === 0 || !hexInto(sha256, this.probe)) return undefined;
    const i = this.find(this.probe);
    return i === EMPTY_SLOT ? undefined : this.record(i);
  }

  /** The record with this id, or undefined; the id index is built on first use (AuthZEN subjects), never on the Check path. */
  byId(id: string): ApiKeyRecord | undefined {
    if (this.idIndex === undefined) {
      this.idIndex = new Map();
      for (let i = 0; i < this.n; i++) {
        const id = this.ids.at(i);
        if (!this.idIndex.has(id)) this.idIndex.set(id, i);
      }
    }
    const i = this.idIndex.get(id);
    return i === undefined ? undefined : this.record(i);
  }

  private idIndex: Map<string, number> | undefined;

  private find(words: Uint32Array): number {
    const { slots, hashes } = this;
    const mask = slots.length - 1;
    for (let s = words[0]! & mask; ; s = (s + 1) & mask) {
      const i = slots[s]!;
      if (i === EMPTY_SLOT) return EMPTY_SLOT;
      if (sameHash(hashes, i, words)) return i;
    }
  }

  private record(i: number): ApiKeyRecord {
    const cached = this.records.get(i);
    if (cached !== undefined) return cached;
    const user = this.users[i]!;
    const role = this.roles[i]!;
    const id = this.ids.at(i);
    const principal: Principal = {
      authenticated: true,
      method: 'api_key',
      id,
      roles: this.lists[role === NO_TEXT ? 0 : this.roleLists.get(role)!]!,
      permissions: this.lists[this.grants[i]!]!,
      scopes: NO_SCOPES,
      keyType: user !== NO_TEXT ? 'private' : 'public',
      keyId: id,
    };
    if (user !== NO_TEXT) principal.userId = this.texts[user]!;
    if (role !== NO_TEXT) principal.role = this.texts[role]!;
    const record: ApiKeyRecord = {
      id,
      at: i,
      principal: Object.freeze(principal),
      expiresAtMs: this.expires[i]!,
      disabled: this.disabled[i] === 1,
    };
    if (this.records.size >= RECORD_CACHE) this.records.delete(this.records.keys().next().value!);
    this.records.set(i, record);
    return record;
  }
}

/** Collects entries in order; `finish` builds the index and reports repeated ids and keys. */
export class KeyTableBuilder {
  private n = 0;
  private hashes = new Uint32Array(8 * 1024);
  private readonly ids = new IdColumn();
  private users = new Int32Array(1024);
  private roles = new Int32Array(1024);
  private grants = new Int32Array(1024);
  private expires = new Float64Array(1024);
  private disabled = new Uint8Array(1024);
  private readonly texts: string[] = [];
  private readonly textIndex = new Map<string, number>();
  /** Interned grant lists; list 0 is the empty list. */
  private readonly lists: string[][] = [NO_SCOPES];
  private readonly listIndex = new Map<string, number>([['', 0]]);
  private readonly roleLists = new Map<number, number>();

  get size(): number {
    return this.n;
  }

  add(e: ApiKeyEntry): void {
    const i = this.n++;
    if (i >= this.users.length) this.grow();
    if (!hexInto(e.sha256, this.hashes.subarray(i * 8, i * 8 + 8)))
      throw new TypeError(`key ${e.id}: sha256 is not 64 hex digits`);
    this.ids.push(e.id);
    this.users[i] = e.userId !== undefined ? this.text(e.userId) : NO_TEXT;
    if (e.role !== undefined) {
      const role = this.text(e.role);
      this.roles[i] = role;
      if (!this.roleLists.has(role)) this.roleLists.set(role, this.list([e.role]));
    } else this.roles[i] = NO_TEXT;
    this.grants[i] = this.list(e.permissions);
    this.expires[i] = e.expiresAt !== undefined ? Date.parse(e.expiresAt) : Number.POSITIVE_INFINITY;
    this.disabled[i] = e.disabled ? 1 : 0;
  }

  /** The table, and every entry that repeats an earlier one's id or key (in entry order). */
  finish(): { table: KeyTable; repeats: Repeat[] } {
    const steps = this.finishInSteps();
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /** The same, yielding every few thousand entries indexed, so a caller can answer requests between. */
  *finishInSteps(): Generator<void, { table: KeyTable; repeats: Repeat[] }> {
    const n = this.n;
    const repeats: Repeat[] = [];
    const hashes = firstItems(this.hashes, n * 8);
    this.hashes = new Uint32Array(0);
    const slots = new Int32Array(capacityFor(n)).fill(EMPTY_SLOT);
    const mask = slots.length - 1;
    for (let i = 0; i < n; i++) {
      if (i % STEP === STEP - 1) yield;
      const words = hashes.subarray(i * 8, i * 8 + 8);
      for (let s = words[0]! & mask; ; s = (s + 1) & mask) {
        const j = slots[s]!;
        if (j === EMPTY_SLOT) {
          slots[s] = i;
          break;
        }
        if (sameHash(hashes, j, words)) {
          repeats.push({ at: i, first: j, kind: 'hash', id: this.ids.at(i) });
          break;
        }
      }
    }
    repeats.push(...(yield* this.repeatedIds()));
    repeats.sort((a, b) => a.at - b.at || (a.kind === 'id' ? -1 : 1));
    const table = new KeyTable(
      n,
      hashes,
      slots,
      this.ids.finish(n),
      firstItems(this.users, n),
      firstItems(this.roles, n),
      firstItems(this.grants, n),
      firstItems(this.expires, n),
      firstItems(this.disabled, n),
      this.texts,
      this.lists,
      this.roleLists,
    );
    return { table, repeats };
  }

  /** Ids seen twice, by an index over a string hash of each id (no Set of a million strings). */
  private *repeatedIds(): Generator<void, Repeat[]> {
    const n = this.n;
    const slots = new Int32Array(capacityFor(n)).fill(EMPTY_SLOT);
    const mask = slots.length - 1;
    const out: Repeat[] = [];
    for (let i = 0; i < n; i++) {
      if (i % STEP === STEP - 1) yield;
      for (let s = this.ids.hash(i) & mask; ; s = (s + 1) & mask) {
        const j = slots[s]!;
        if (j === EMPTY_SLOT) {
          slots[s] = i;
          break;
        }
        if (this.ids.same(i, j)) {
          out.push({ at: i, first: j, kind: 'id', id: this.ids.at(i) });
          break;
        }
      }
    }
    return out;
  }

  private text(s: string): number {
    let i = this.textIndex.get(s);
    if (i === undefined) {
      i = this.texts.length;
      this.texts.push(s);
      this.textIndex.set(s, i);
    }
    return i;
  }

  private list(items: readonly string[]): number {
    const key = items.join('\n');
    let i = this.listIndex.get(key);
    if (i === undefined) {
      i = this.lists.length;
      this.lists.push(Object.freeze([...items]) as string[]);
      this.listIndex.set(key, i);
    }
    return i;
  }

  private grow(): void {
    const cap = this.users.length * 2;
    const more = <T extends Int32Array | Float64Array | Uint8Array | Uint32Array>(a: T, size: number): T => {
      const b = new (a.constructor as new (n: number) => T)(size);
      b.set(a);
      return b;
    };
    this.hashes = more(this.hashes, cap * 8);
    this.users = more(this.users, cap);
    this.roles = more(this.roles, cap);
    this.grants = more(this.grants, cap);
    this.expires = more(this.expires, cap);
    this.disabled = more(this.disabled, cap);
  }
}

/**
 * The first `n` items of a column: a view when the column is nearly full (no copy, so a
 * load does not hold the column twice), a copy when a view would keep much unused room.
 */
function firstItems<T extends Int32Array | Float64Array | Uint8Array | Uint32Array>(a: T, n: number): T {
  return (n >= a.length * 0.75 ? a.subarray(0, n) : a.slice(0, n)) as T;
}

/** A power of two at least twice `n`: probes stay short. */
function capacityFor(n: number): number {
  let c = 16;
  while (c < n * 2) c *= 2;
  return c;
}

function sameHash(hashes: Uint32Array, i: number, words: Uint32Array): boolean {
  const at = i * 8;
  for (let k = 0; k < 8; k++) if (hashes[at + k] !== words[k]) return false;
  return true;
}

/** Writes 64 hex digits as eight 32-bit words; false when `hex` is not 64 hex digits. */
function hexInto(hex: string, out: Uint32Array): boolean {
  if (hex.length !== 64) return false;
  for (let w = 0; w < 8; w++) {
    let v = 0;
    for (let k = 0; k < 8; k++) {
      const d = hexDigit(hex.charCodeAt(w * 8 + k));
      if (d < 0) return false;
      v = (v << 4) | d;
    }
    out[w] = v >>> 0;
  }
  return true;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Key ids packed in one byte array, each ending where the next starts: a million id strings
 * are a million objects the garbage collector traces and moves, which stalled a process
 * reloading a million keys for hundreds of milliseconds at a time. Ids are ASCII (the
 * schema allows letters, digits and "_.:-"); the string of a looked-up key is made when its
 * record is (and cached with it).
 */
class IdColumn {
  private bytes = new Uint8Array(64 * 1024);
  private ends = new Uint32Array(1024);
  private n = 0;

  push(id: string): void {
    const start = this.n === 0 ? 0 : this.ends[this.n - 1]!;
    if (start + id.length > this.bytes.length) {
      let size = this.bytes.length * 2;
      while (start + id.length > size) size *= 2;
      const b = new Uint8Array(size);
      b.set(this.bytes);
      this.bytes = b;
    }
    if (this.n === this.ends.length) {
      const e = new Uint32Array(this.ends.length * 2);
      e.set(this.ends);
      this.ends = e;
    }
    for (let k = 0; k < id.length; k++) {
      const c = id.charCodeAt(k);
      if (c > 127) throw new TypeError(`key id ${JSON.stringify(id)} is not ASCII`);
      this.bytes[start + k] = c;
    }
    this.ends[this.n++] = start + id.length;
  }

  /** The first `n` ids, trimmed to size. */
  finish(n: number): IdColumn {
    const c = new IdColumn();
    c.n = n;
    c.ends = firstItems(this.ends, n);
    c.bytes = firstItems(this.bytes, n === 0 ? 0 : this.ends[n - 1]!);
    return c;
  }

  at(i: number): string {
    const start = i === 0 ? 0 : this.ends[i - 1]!;
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + start, this.ends[i]! - start).toString('latin1');
  }

  /** FNV-1a over the id's bytes. */
  hash(i: number): number {
    const start = i === 0 ? 0 : this.ends[i - 1]!;
    const end = this.ends[i]!;
    let h = 0x811c9dc5;
    for (let k = start; k < end; k++) {
      h ^= this.bytes[k]!;
      h = Math.imul(h, 0x01000193);
    }
    return h >>> 0;
  }

  same(i: number, j: number): boolean {
    const a = i === 0 ? 0 : this.ends[i - 1]!;
    const b = j === 0 ? 0 : this.ends[j - 1]!;
    const len = this.ends[i]! - a;
    if (this.ends[j]! - b !== len) return false;
    for (let k = 0; k < len; k++) if (this.bytes[a + k] !== this.bytes[b + k]) return false;
    return true;
  }
}
