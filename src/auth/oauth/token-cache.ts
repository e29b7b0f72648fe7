// Verified tokens, so a repeated bearer token costs a digest and a table lookup instead of a
// signature check. Built to hold a million live tokens in tens of MiB: an entry is the token's
// SHA-256 (the raw token is never stored), its exp and a reference to an interned record that
// every token of the same identity shares, all in typed arrays (no object per token). Full,
// it evicts with CLOCK (second chance), O(1) amortized per insertion; expired entries go first.
import { hash } from 'node:crypto';

/** A record shared by the tokens that map to it (the identity and audiences, without per-token claims). */
export interface SharedRecord {
  /** What makes two tokens' records the same. */
  readonly key: string;
  /** Its estimated heap, counted against the cache's byte budget. */
  readonly bytes: number;
}

/**
 * Bytes per cached token: the digest (32), exp (8, Float64), the record index (4), the CLOCK
 * bit (1) and the hash table's two 4-byte slots per entry (8).
 */
export const ENTRY_BYTES = 53;
const INITIAL_SLOTS = 1024;

/** The SHA-256 of a token, the cache key. */
export function tokenDigest(token: string): Buffer {
  return hash('sha256', token, 'buffer');
}

export class TokenCache<R extends SharedRecord> {
  /** The most entries: the count bound and the byte budget at ENTRY_BYTES each, the lower. */
  readonly maxEntries: number;
  private slots = 0;
  /** Slots handed out so far, [0, used); freed ones wait in `free`. */
  private used = 0;
  private digests = new Int32Array(0);
  private expires = new Float64Array(0);
  private recordOf = new Int32Array(0);
  private referenced = new Uint8Array(0);
  /** Open addressing, linear probing: slot + 1, 0 for empty. */
  private table = new Int32Array(0);
  private mask = 0;
  private free: number[] = [];
  private hand = 0;
  private count = 0;
  private readonly records: (R | undefined)[] = [];
  private readonly recordRefs: number[] = [];
  private readonly recordIds = new Map<string, number>();
  private readonly freeRecords: number[] = [];
  private recordBytes = 0;
  /** The digest being looked up, as words. */
  private readonly probe = new Int32Array(8);
  private readonly probeBytes = new Uint8Array(this.probe.buffer);

  constructor(
    maxEntries: number,
    private readonly maxBytes: number,
  ) {
    this.maxEntries = Math.max(0, Math.min(maxEntries, Math.floor(maxBytes / ENTRY_BYTES)));
  }

  get size(): number {
    return this.count;
  }

  /** Distinct records held. */
  get recordCount(): number {
    return this.recordIds.size;
  }

  /** The budget's view of the memory held: ENTRY_BYTES per slot allocated, plus the records' estimates. */
  get bytes(): number {
    return this.slots * ENTRY_BYTES + this.recordBytes;
  }

  /** The entry for a digest: its slot, or -1. A hit marks the entry recently used. */
  find(digest: Uint8Array): number {
    if (this.count === 0) return -1;
    this.probeBytes.set(digest);
    const p = this.probe;
    const words = this.digests;
    for (let i = p[0]! & this.mask; ; i = (i + 1) & this.mask) {
      const s = this.table[i]! - 1;
      if (s < 0) return -1;
      const o = s << 3;
      if (
        words[o] === p[0] &&
        words[o + 1] === p[1] &&
        words[o + 2] === p[2] &&
        words[o + 3] === p[3] &&
        words[o + 4] === p[4] &&
        words[o + 5] === p[5] &&
        words[o + 6] === p[6] &&
        words[o + 7] === p[7]
      ) {
        this.referenced[s] = 1;
        return s;
      }
    }
  }

  expiresAt(slot: number): number {
    return this.expires[slot]!;
  }

  record(slot: number): R {
    return this.records[this.recordOf[slot]!]!;
  }

  /**
   * Caches a verified token. `record` is interned: when a record with its key is held, that
   * one is shared instead. Entries whose exp is before `deadBefore` are evicted first.
   */
  set(digest: Uint8Array, expiresAt: number, record: R, deadBefore: number): void {
    if (this.maxEntries === 0 || record.bytes + ENTRY_BYTES > this.maxBytes) return;
    const existing = this.find(digest);
    if (existing >= 0) this.remove(existing);
    let id = this.recordIds.get(record.key);
    if (id === undefined) {
      id = this.freeRecords.pop() ?? this.records.length;
      this.records[id] = record;
      this.recordRefs[id] = 0;
      this.recordIds.set(record.key, id);
      this.recordBytes += record.bytes;
    }
    this.recordRefs[id]!++;
    // Hold a reference while evicting so the record just interned is not freed under us.
    this.recordRefs[id]!++;
    while (this.count >= this.maxEntries || this.bytesWith(1) > this.maxBytes) {
      if (!this.evictOne(deadBefore)) break;
    }
    this.recordRefs[id]!--;
    const slot = this.allocate();
    this.probeBytes.set(digest);
    this.digests.set(this.probe, slot << 3);
    this.expires[slot] = expiresAt;
    this.recordOf[slot] = id;
    this.referenced[slot] = 0;
    this.insert(slot);
    this.count++;
  }

  /** Drops one entry (an expired token found on a hit). */
  delete(slot: number): void {
    if (this.recordOf[slot]! >= 0) this.remove(slot);
  }

  clear(): void {
    this.slots = this.used = this.count = this.hand = this.mask = this.recordBytes = 0;
    this.digests = new Int32Array(0);
    this.expires = new Float64Array(0);
    this.recordOf = new Int32Array(0);
    this.referenced = new Uint8Array(0);
    this.table = new Int32Array(0);
    this.free = [];
    this.records.length = this.recordRefs.length = this.freeRecords.length = 0;
    this.recordIds.clear();
  }

  /** The budget's view after `more` entries were added (growing the slots when none is spare). */
  private bytesWith(more: number): number {
    const spare = this.free.length + (this.slots - this.used);
    const slots = spare >= more ? this.slots : this.grownSlots();
    return slots * ENTRY_BYTES + this.recordBytes;
  }

  private grownSlots(): number {
    return Math.min(this.maxEntries, Math.max(INITIAL_SLOTS, this.slots * 2));
  }

  private allocate(): number {
    const freed = this.free.pop();
    if (freed !== undefined) return freed;
    if (this.used === this.slots) this.grow();
    return this.used++;
  }

  /** Doubles the slots (up to maxEntries) and rebuilds the table: amortized O(1) per insertion. */
  private grow(): void {
    const slots = this.grownSlots();
    const digests = new Int32Array(slots * 8);
    digests.set(this.digests);
    const expires = new Float64Array(slots);
    expires.set(this.expires);
    const recordOf = new Int32Array(slots).fill(-1);
    recordOf.set(this.recordOf);
    const referenced = new Uint8Array(slots);
    referenced.set(this.referenced);
    this.digests = digests;
    this.expires = expires;
    this.recordOf = recordOf;
    this.referenced = referenced;
    this.slots = slots;
    // At most half full: 2^k ≥ 2 × slots.
    let size = 2;
    while (size < slots * 2) size *= 2;
    this.table = new Int32Array(size);
    this.mask = size - 1;
    for (let s = 0; s < this.used; s++) if (this.recordOf[s]! >= 0) this.insert(s);
  }

  private insert(slot: number): void {
    let i = this.digests[slot << 3]! & this.mask;
    while (this.table[i] !== 0) i = (i + 1) & this.mask;
    this.table[i] = slot + 1;
  }

  /** CLOCK: the hand clears the referenced bit of live entries and evicts the first without it (or expired). */
  private evictOne(deadBefore: number): boolean {
    if (this.count === 0) return false;
    for (;;) {
      if (this.hand >= this.used) this.hand = 0;
      const s = this.hand++;
      if (this.recordOf[s]! < 0) continue;
      if (this.referenced[s] === 1 && this.expires[s]! >= deadBefore) {
        this.referenced[s] = 0;
        continue;
      }
      this.remove(s);
      return true;
    }
  }

  private remove(slot: number): void {
    // Find its table position, then close the gap (backward-shift deletion keeps probes short
    // without tombstones).
    let i = this.digests[slot << 3]! & this.mask;
    while (this.table[i] !== slot + 1) i = (i + 1) & this.mask;
    for (let j = (i + 1) & this.mask; this.table[j] !== 0; j = (j + 1) & this.mask) {
      const home = this.digests[(this.table[j]! - 1) << 3]! & this.mask;
      // The entry at j may move to i unless its home lies cyclically in (i, j].
      const stays = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!stays) {
        this.table[i] = this.table[j]!;
        i = j;
      }
    }
    this.table[i] = 0;
    const id = this.recordOf[slot]!;
    this.recordOf[slot] = -1;
    this.free.push(slot);
    this.count--;
    if (--this.recordRefs[id]! === 0) {
      const r = this.records[id]!;
      this.recordIds.delete(r.key);
      this.records[id] = undefined;
      this.recordBytes -= r.bytes;
      this.freeRecords.push(id);
    }
  }
}
