import type { QueryMap } from '../contracts/request.js';

/** Parses a raw query string into name → values (form-decoding: "+" is a space). */
export function parseQuery(rawQuery: string): QueryMap {
  const out: QueryMap = Object.create(null);
  if (rawQuery === '') return out;
  for (const [k, v] of new URLSearchParams(rawQuery)) {
    (out[k] ??= []).push(v);
  }
  return out;
}
