// The grants that can apply to one request (docs/policies.md "Grants in the input"): a
// policy that declares it reads grants only to match the items a request names
// (data.mcp_authz.input.grants: "applicable") sees, in principal.permissions and
// principal.scopes, those of the caller's grants that can match one, instead of all of them —
// so a Check costs the same with 1 grant or 1,000. Each distinct grant list is indexed once,
// on first use, and the index lives as long as the list does (key tables intern their lists,
// the token cache keeps its principals). Lookups return a superset of the grants that match:
// the policy still decides with its own glob matching.
import type { McpCall } from '../contracts/request.js';

/** What a call needs granted: a kind (tools, prompts, resources) and the item, or "*" alone. */
export interface GrantNeed {
  kind: string;
  target: string;
}

/** List methods: the kind of grant every listed item is checked against (visibility). */
const LIST_KINDS: Readonly<Record<string, string>> = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resources',
};

const NAMED: Readonly<Record<string, { kind: string; field: 'name' | 'uri' }>> = {
  'tools/call': { kind: 'tools', field: 'name' },
  'prompts/get': { kind: 'prompts', field: 'name' },
  'resources/read': { kind: 'resources', field: 'uri' },
  'resources/subscribe': { kind: 'resources', field: 'uri' },
  'resources/unsubscribe': { kind: 'resources', field: 'uri' },
};

/** One grant list, indexed by what its grants can match. */
class GrantIndex {
  /** Every grant, for exact lookups: "tools:search" grants exactly the need tools:search. */
  readonly all: ReadonlySet<string>;
  readonly star: boolean;
  /** Per kind: the grants with a "*" in their pattern, by the literal before the first "*". */
  private readonly wild = new Map<string, Map<string, string[]>>();
  /** Per kind: the distinct lengths of those literals, so a lookup tries each once. */
  private readonly wildLengths = new Map<string, number[]>();
  /** Per kind: every grant of it (a list request's items can need any). */
  private readonly byKind = new Map<string, string[]>();

  constructor(grants: readonly string[]) {
    this.all = new Set(grants);
    this.star = this.all.has('*');
    for (const g of this.all) {
      const colon = g.indexOf(':');
      if (colon <= 0) continue;
      const kind = g.slice(0, colon);
      push(this.byKind, kind, g);
      const star = g.indexOf('*', colon + 1);
      if (star < 0) continue;
      const literal = g.slice(colon + 1, star);
      let buckets = this.wild.get(kind);
      if (!buckets) this.wild.set(kind, (buckets = new Map()));
      push(buckets, literal, g);
    }
    for (const [kind, buckets] of this.wild)
      this.wildLengths.set(
        kind,
        [...new Set([...buckets.keys()].map((k) => k.length))].sort((a, b) => a - b),
      );
  }

  /**
   * The grants that can match the need: the one equal to it, and the patterns whose literal
   * before their first "*" starts the target. A URI template's shape (its expressions cut to
   * "{}") starts with the same literal as the template, and a pattern that grants a template
   * has no "{", so the same lookup serves templates.
   */
  matching(kind: string, target: string, out: Set<string>): void {
    const exact = `${kind}:${target}`;
    if (this.all.has(exact)) out.add(exact);
    const buckets = this.wild.get(kind);
    if (!buckets) return;
    for (const len of this.wildLengths.get(kind)!) {
      if (len > target.length) break;
      const found = buckets.get(len === target.length ? target : target.slice(0, len));
      if (found) for (const g of found) out.add(g);
    }
  }

  ofKind(kind: string, out: Set<string>): void {
    const found = this.byKind.get(kind);
    if (found) for (const g of found) out.add(g);
  }
}

function push<K>(m: Map<K, string[]>, k: K, v: string): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

const indexes = new WeakMap<readonly string[], GrantIndex>();

function indexOf(grants: readonly string[]): GrantIndex {
  let index = indexes.get(grants);
  if (index === undefined) indexes.set(grants, (index = new GrantIndex(grants)));
  return index;
}

const NONE: readonly string[] = Object.freeze([]);

/**
 * The grants of `grants` that can apply to a request making `calls`: "*"; those that can match
 * an item a call names (decision.rego call_needs); every grant of a kind whose list the
 * request asks for (the list's items are checked against them, ext_proc visibility); and the
 * grant strings `exact` names (an endpoint's argument rules' exemptGrants, compared as
 * strings). Order: first occurrence in that walk; no repeats.
 */
export function applicableGrants(
  grants: readonly string[],
  calls: readonly McpCall[],
  exact: readonly string[],
): readonly string[] {
  if (grants.length === 0) return grants;
  const index = indexOf(grants);
  const out = new Set<string>();
  if (index.star) out.add('*');
  for (const c of calls) {
    const listKind = LIST_KINDS[c.method];
    if (listKind !== undefined) {
      index.ofKind(listKind, out);
      continue;
    }
    forEachNeed(c, (kind, target) => index.matching(kind, target, out));
  }
  for (const g of exact) if (index.all.has(g)) out.add(g);
  return out.size === 0 ? NONE : [...out];
}

/**
 * The items a call names and the kind of grant each needs, as decision.rego's call_needs
 * reads them (a call that names nothing, or names it with something other than a string,
 * needs nothing here: the policy denies the latter whatever the grants).
 */
export function forEachNeed(c: McpCall, f: (kind: string, target: string) => void): void {
  const named = NAMED[c.method];
  if (named !== undefined) {
    const target = c[named.field];
    if (typeof target === 'string') f(named.kind, target);
    return;
  }
  if (c.method === 'completion/complete') {
    const ref = c.ref as { type?: unknown; name?: unknown; uri?: unknown } | undefined;
    if (ref?.type === 'ref/prompt' && typeof ref.name === 'string') f('prompts', ref.name);
    else if (ref?.type === 'ref/resource' && typeof ref.uri === 'string') f('resources', ref.uri);
    return;
  }
  if (c.method === 'subscriptions/listen') {
    if (Array.isArray(c.resourceSubscriptions))
      for (const uri of c.resourceSubscriptions) if (typeof uri === 'string') f('resources', uri);
  }
  // unknownTarget: only "*" grants it, which is always included.
}
