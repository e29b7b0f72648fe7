// Go's encoding/json matches object keys to struct fields case-insensitively under Unicode
// simple case folding ("Name", "NAME" and "nAme" all fill `name`; "ſ" U+017F reads as "s",
// the Kelvin sign U+212A as "k"). foldKey maps every key Go would treat as equal to the same
// string, so two keys of one object that fold alike are keys Go reads as one.
//
// Per code point: its simple upper case, then that one's simple lower case (a mapping to
// several code points, such as "ß" → "SS", keeps the code point). This is coarser than Go's
// folding (it also joins "ı" with "i", and characters newer than Go's Unicode tables), never
// finer: test/json-key-fold.test.ts checks every code point against Go's own tables.

/** The key as Go's case-insensitive matching sees it (a superset of its equivalences). */
export function foldKey(key: string): string {
  const n = key.length;
  for (let i = 0; i < n; i++) {
    if (key.charCodeAt(i) >= 0x80) return foldUnicode(key);
  }
  return key.toLowerCase();
}

// The folded key's UTF-16 units, reused across calls; strings are made from it in chunks.
let units = new Uint16Array(256);
const CHUNK = 4096;

function foldUnicode(key: string): string {
  const n = key.length;
  if (units.length < 2 * n) units = new Uint16Array(2 * n);
  let len = 0;
  for (let i = 0; i < n; i++) {
    let c = key.charCodeAt(i);
    if (c < 0x80) {
      units[len++] = c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
      const low = key.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    const f = foldCodePoint(c);
    if (f > 0xffff) {
      units[len++] = 0xd800 + ((f - 0x10000) >> 10);
      units[len++] = 0xdc00 + ((f - 0x10000) & 0x3ff);
    } else {
      units[len++] = f;
    }
  }
  let out = '';
  for (let at = 0; at < len; at += CHUNK)
    out += String.fromCharCode.apply(null, units.subarray(at, Math.min(len, at + CHUNK)) as unknown as number[]);
  return out;
}

// Folded code points of the Basic and Supplementary Multilingual Planes, computed once each
// (-1: not yet); no other plane has case mappings. A body can make the service compute each
// code point once per process, never once per request.
const PLANES = [new Int32Array(0x10000).fill(-1), new Int32Array(0x10000).fill(-1)];

function foldCodePoint(c: number): number {
  if (c >= 0xd800 && c <= 0xdfff) return c; // a lone surrogate has no case
  const plane = PLANES[c >> 16];
  if (plane === undefined) return c;
  let folded = plane[c & 0xffff]!;
  if (folded < 0) {
    const ch = String.fromCodePoint(c);
    const upper = single(ch.toUpperCase(), ch);
    folded = single(upper.toLowerCase(), upper).codePointAt(0)!;
    plane[c & 0xffff] = folded;
  }
  return folded;
}

/** `mapped` when it is one code point, else `fallback` (simple case mappings only). */
function single(mapped: string, fallback: string): string {
  const c = mapped.codePointAt(0)!;
  return mapped.length === (c > 0xffff ? 2 : 1) ? mapped : fallback;
}
