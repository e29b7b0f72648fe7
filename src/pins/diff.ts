// What changed between the pinned definitions and the ones a server lists now, member by
// member: text members (description, title) as a word diff, structured members (schemas,
// annotations, prompt arguments) as the JSON Pointer paths that were added, removed or
// changed. Pure; `mcp-authz pins diff` prints it.
import { canonicalJson as jcs } from '../contracts/jcs.js';

/** A definition's canonical text: any number a server writes is kept (the digest is only compared with itself). */
const canonicalJson = (v: unknown): string => jcs(v, { largeNumbers: true });
import { definitionDigest, PIN_KINDS, PINNED_MEMBERS, type PinKind } from './definition.js';
import type { EndpointPins } from './pins-file.js';

export type ItemStatus = 'unchanged' | 'changed' | 'added' | 'removed';

export interface PathChange {
  op: 'added' | 'removed' | 'changed';
  /** RFC 6901 JSON Pointer inside the member. */
  path: string;
  before?: unknown;
  after?: unknown;
}

export interface MemberChange {
  member: string;
  /** Text members: the word diff ([-removed-]{+added+}). */
  text?: string;
  /** Structured members: the paths that differ. */
  paths?: PathChange[];
}

export interface ItemDiff {
  kind: PinKind;
  name: string;
  status: ItemStatus;
  pinned?: string;
  listed?: string;
  /** For `changed`: member by member; undefined when the pin holds only a digest. */
  members?: MemberChange[];
}

const TEXT_MEMBERS = new Set(['description', 'title', 'name', 'uriTemplate', 'mimeType']);
const MAX_PATHS = 200;

/** Every pinned item compared with what is listed now, kind by kind, in name order. */
export function diffDefinitions(
  pins: EndpointPins | undefined,
  listed: Readonly<Partial<Record<PinKind, readonly Record<string, unknown>[]>>>,
): ItemDiff[] {
  const out: ItemDiff[] = [];
  for (const kind of PIN_KINDS) {
    const now = new Map<string, Record<string, unknown>>();
    for (const item of listed[kind] ?? []) {
      const name = item[PINNED_MEMBERS[kind][0]!];
      if (typeof name === 'string') now.set(name, item);
    }
    const pinned = pins?.pins[kind] ?? new Map();
    // A kind that was not listed (the server has no prompts) is not compared.
    if (listed[kind] === undefined) continue;
    const names = [...new Set([...pinned.keys(), ...now.keys()])].sort();
    for (const name of names) {
      const pin = pinned.get(name);
      const item = now.get(name);
      if (!item) {
        out.push({ kind, name, status: 'removed', pinned: pin!.sha256 });
        continue;
      }
      const digest = definitionDigest(kind, item);
      if (!pin) {
        out.push({ kind, name, status: 'added', listed: digest });
        continue;
      }
      if (pin.sha256 === digest) {
        out.push({ kind, name, status: 'unchanged', pinned: digest, listed: digest });
        continue;
      }
      const d: ItemDiff = { kind, name, status: 'changed', pinned: pin.sha256, listed: digest };
      if (pin.definition) d.members = memberChanges(kind, pin.definition, item);
      out.push(d);
    }
  }
  return out;
}

function memberChanges(
  kind: PinKind,
  before: Readonly<Record<string, unknown>>,
  after: Readonly<Record<string, unknown>>,
): MemberChange[] {
  const out: MemberChange[] = [];
  for (const m of PINNED_MEMBERS[kind]) {
    const a = before[m];
    const b = after[m];
    if (a === undefined && b === undefined) continue;
    if (a !== undefined && b !== undefined && canonicalJson(a) === canonicalJson(b)) continue;
    if (
      TEXT_MEMBERS.has(m) &&
      (typeof a === 'string' || a === undefined) &&
      (typeof b === 'string' || b === undefined)
    ) {
      out.push({ member: m, text: wordDiff(a ?? '', b ?? '') });
    } else {
      const paths: PathChange[] = [];
      jsonPaths(a, b, '', paths);
      out.push({ member: m, paths });
    }
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const escapePointer = (k: string) => k.replaceAll('~', '~0').replaceAll('/', '~1');

function jsonPaths(a: unknown, b: unknown, path: string, out: PathChange[]): void {
  if (out.length >= MAX_PATHS) return;
  if (a === undefined) {
    out.push({ op: 'added', path: path || '/', after: b });
    return;
  }
  if (b === undefined) {
    out.push({ op: 'removed', path: path || '/', before: a });
    return;
  }
  if (isObject(a) && isObject(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      if (Object.hasOwn(a, k) && Object.hasOwn(b, k) && canonicalJson(a[k]) === canonicalJson(b[k])) continue;
      jsonPaths(
        Object.hasOwn(a, k) ? a[k] : undefined,
        Object.hasOwn(b, k) ? b[k] : undefined,
        `${path}/${escapePointer(k)}`,
        out,
      );
    }
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (i < a.length && i < b.length && canonicalJson(a[i]) === canonicalJson(b[i])) continue;
      jsonPaths(i < a.length ? a[i] : undefined, i < b.length ? b[i] : undefined, `${path}/${i}`, out);
    }
    return;
  }
  if (canonicalJson(a) !== canonicalJson(b)) out.push({ op: 'changed', path: path || '/', before: a, after: b });
}

/** Words removed as [-…-], added as {+…+}, as `git diff --word-diff` writes them. */
export function wordDiff(before: string, after: string): string {
  const a = before.split(/(\s+)/).filter((s) => s !== '');
  const b = after.split(/(\s+)/).filter((s) => s !== '');
  // An LCS table costs a·b: a very long text is shown whole, removed then added.
  if (a.length * b.length > 4_000_000) return `[-${before}-]{+${after}+}`;
  const n = a.length;
  const m = b.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  let out = '';
  let del = '';
  let add = '';
  const flush = () => {
    if (del) out += `[-${del}-]`;
    if (add) out += `{+${add}+}`;
    del = add = '';
  };
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      flush();
      out += a[i];
      i++;
      j++;
    } else if (j < m && (i === n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) add += b[j++];
    else del += a[i++];
  }
  flush();
  return out;
}
