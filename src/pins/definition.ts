// What a pin covers: the members of a listed tool, prompt or resource template that tell a
// client (and the model behind it) what the item does. A pin is the SHA-256 of the RFC 8785
// form of those members, so the same definition written any other way (member order,
// whitespace, escapes, 1.0 for 1) has the same pin and any change to them another. Members
// outside the list (`_meta`, `icons`) are not pinned: servers put volatile data there.
import { hash } from 'node:crypto';
import { canonicalJson as jcs } from '../contracts/jcs.js';

/** A definition's canonical text: any number a server writes is kept (the digest is only compared with itself). */
const canonicalJson = (v: unknown): string => jcs(v, { largeNumbers: true });

export type PinKind = 'tools' | 'prompts' | 'resourceTemplates';
export const PIN_KINDS: readonly PinKind[] = ['tools', 'prompts', 'resourceTemplates'];

/** The members pinned, per kind; the first names the item. */
export const PINNED_MEMBERS: Readonly<Record<PinKind, readonly string[]>> = {
  tools: ['name', 'title', 'description', 'inputSchema', 'outputSchema', 'annotations'],
  prompts: ['name', 'title', 'description', 'arguments'],
  resourceTemplates: ['uriTemplate', 'name', 'title', 'description', 'mimeType', 'annotations'],
};

/** The list method whose results hold each kind. */
export const KIND_OF_METHOD: Readonly<Record<string, PinKind>> = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/templates/list': 'resourceTemplates',
};

/** The pinned members of an item, as they were listed (absent members stay absent). */
export function pinnedDefinition(kind: PinKind, item: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const m of PINNED_MEMBERS[kind]) if (Object.hasOwn(item, m)) out[m] = item[m];
  return out;
}

/** The pin of an item: lowercase hex SHA-256 of the RFC 8785 form of its pinned members. Throws on a value JSON cannot hold. */
export function definitionDigest(kind: PinKind, item: Readonly<Record<string, unknown>>): string {
  return hash('sha256', canonicalJson(pinnedDefinition(kind, item)), 'hex');
}

/**
 * Digests of listed items, remembered by their JSON text: a server lists the same definitions
 * again and again, and JSON.stringify costs a fraction of the canonical form. Equal text is an
 * equal value, so a remembered digest is the digest. Bounded by the text it holds (cleared
 * when full); an item that cannot be digested is never remembered.
 */
export class DigestCache {
  private readonly map = new Map<string, string>();
  private chars = 0;

  constructor(private readonly maxChars = 16 * 1024 * 1024) {}

  digest(kind: PinKind, item: Readonly<Record<string, unknown>>): string {
    const key = `${kind}\0${JSON.stringify(item)}`;
    const known = this.map.get(key);
    if (known !== undefined) return known;
    const d = definitionDigest(kind, item);
    if (key.length <= this.maxChars / 16) {
      if (this.chars + key.length > this.maxChars) {
        this.map.clear();
        this.chars = 0;
      }
      this.map.set(key, d);
      this.chars += key.length;
    }
    return d;
  }
}

/** The item's own name in its list: a tool's or prompt's `name`, a template's `uriTemplate`. */
export function itemName(kind: PinKind, item: Readonly<Record<string, unknown>>): string | undefined {
  const v = item[PINNED_MEMBERS[kind][0]!];
  return typeof v === 'string' ? v : undefined;
}

/** Tool annotations as the policy reads them: MCP's defaults where a hint is absent or not a boolean. */
export interface ToolHints {
  readOnlyHint: boolean;
  destructiveHint: boolean;
  idempotentHint: boolean;
  openWorldHint: boolean;
}

/** The MCP specification's defaults: a tool is assumed to write, destroy, repeat badly and reach the outside world. */
export const DEFAULT_HINTS: Readonly<ToolHints> = Object.freeze({
  readOnlyHint: false,
  destructiveHint: true,
  idempotentHint: false,
  openWorldHint: true,
});

/** The hints of a pinned tool definition; every hint absent or not a boolean takes its conservative default. */
export function toolHints(definition: Readonly<Record<string, unknown>> | undefined): Readonly<ToolHints> {
  const a = definition?.annotations;
  if (typeof a !== 'object' || a === null || Array.isArray(a)) return DEFAULT_HINTS;
  const ann = a as Record<string, unknown>;
  const pick = (k: keyof ToolHints) => (typeof ann[k] === 'boolean' ? (ann[k] as boolean) : DEFAULT_HINTS[k]);
  const readOnlyHint = pick('readOnlyHint');
  return Object.freeze({
    readOnlyHint,
    // MCP: destructiveHint is meaningful only when readOnlyHint is false; a read-only tool destroys nothing.
    destructiveHint: readOnlyHint ? false : pick('destructiveHint'),
    idempotentHint: pick('idempotentHint'),
    openWorldHint: pick('openWorldHint'),
  });
}
