// The argument views of the policy input (docs/policies.md "Argument views"): for each
// argument an endpoint's rules name, the service adds how every reader reads it, beside the
// raw arguments:
//   mcp.calls[i].argumentViews[name] = { url?, path?, sql?, items?: [{ url?, path?, sql? }, …], sentAs? }
// url, path and sql are made for the arguments a rule checks with that constraint (directly
// or in `items`). sentAs is the key a call sends that is not the rule's name but that Go's
// case-insensitive decoding reads as it ("Limit" for "limit"): the policy would otherwise see
// the argument absent where a Go server fills it. Which arguments get views is decided at
// load from the rules' argument names alone (not their tool globs), so a view is never
// missing where a rule needs one; a missing view denies in the policy.
import { sqlDialectHasParser, type ArgumentRule, type SqlConstraint } from '../config/argument-rules.js';
import type { McpCall, McpView } from '../contracts/request.js';
import { foldKey } from '../request/json-key-fold.js';
import { pathView, type PathView } from '../request/path-view.js';
import { sqlView, type SqlView } from '../request/sql-view.js';
import { urlView, type UrlView } from '../request/url-view.js';

interface ViewKinds {
  url: boolean;
  path: boolean;
  sql: boolean;
  /** The SQL view also reads the portable subset (a rule names a dialect without a parser). */
  portable: boolean;
}

export interface ViewPlan {
  /** Per argument name, the views its value and its items need. */
  readonly views: ReadonlyMap<string, { value: ViewKinds; items: ViewKinds }>;
  /** Every argument name the rules list, by its Go folding. */
  readonly names: ReadonlyMap<string, readonly string[]>;
}

export interface ValueViews {
  url?: UrlView;
  path?: PathView;
  sql?: SqlView;
}

export interface ArgumentViews extends ValueViews {
  items?: ValueViews[];
  sentAs?: string;
}

/** Whether any of these endpoints' rules checks an argument with an `sql` constraint (the SQL parser is then loaded). */
export function needsSqlParser(endpoints: readonly { data?: { arguments?: ArgumentRule[] } }[]): boolean {
  for (const e of endpoints) {
    for (const rule of e.data?.arguments ?? []) {
      for (const c of Object.values(rule.arguments ?? {}))
        if (c.sql !== undefined || c.items?.sql !== undefined) return true;
    }
  }
  return false;
}

/** The endpoints whose rules use `sql: select-only`, which names no dialect (only the portable subset passes). */
export function sqlWithoutDialect(
  endpoints: readonly { name: string; data?: { arguments?: ArgumentRule[] } }[],
): string[] {
  return endpoints
    .filter((e) =>
      (e.data?.arguments ?? []).some((r) =>
        Object.values(r.arguments ?? {}).some((c) => c.sql === 'select-only' || c.items?.sql === 'select-only'),
      ),
    )
    .map((e) => e.name);
}

/** What one endpoint's rules need views of; undefined when it has no rules. */
export function viewPlan(data: { arguments?: ArgumentRule[] } | undefined): ViewPlan | undefined {
  const views = new Map<string, { value: ViewKinds; items: ViewKinds }>();
  const names = new Map<string, string[]>();
  for (const rule of data?.arguments ?? []) {
    for (const [name, c] of Object.entries(rule.arguments ?? {})) {
      const fold = foldKey(name);
      const same = names.get(fold) ?? names.set(fold, []).get(fold)!;
      if (!same.includes(name)) same.push(name);
      const value = kindsOf(c);
      const items = kindsOf(c.items ?? {});
      if (!any(value) && !any(items)) continue;
      const had = views.get(name);
      views.set(
        name,
        had === undefined ? { value, items } : { value: either(had.value, value), items: either(had.items, items) },
      );
    }
  }
  return names.size > 0 ? { views, names } : undefined;
}

/** The MCP part of the input as JSON, with the views of the calls that carry arguments the rules name. */
export function mcpJsonWithViews(mcp: Omit<McpView, 'source'>, plan: ViewPlan): string {
  let calls: unknown[] | undefined;
  for (let i = 0; i < mcp.calls.length; i++) {
    const call = mcp.calls[i]!;
    const views = viewsOf(call, plan);
    if (views === undefined) continue;
    calls ??= mcp.calls.slice();
    calls[i] = { ...call, argumentViews: views };
  }
  return JSON.stringify(calls === undefined ? mcp : { ...mcp, calls });
}

/** The views of one call's arguments; undefined when there is nothing to add. */
export function viewsOf(call: McpCall, plan: ViewPlan): Record<string, ArgumentViews> | undefined {
  const args = call.arguments;
  if (args === undefined) return undefined;
  let views: Record<string, ArgumentViews> | undefined;
  for (const [name, needs] of plan.views) {
    if (!Object.hasOwn(args, name)) continue;
    const v = args[name];
    views ??= noPrototype();
    const out = Object.assign((views[name] ??= {}), valueViews(v, needs.value));
    if (any(needs.items) && Array.isArray(v)) {
      out.items = [];
      for (const item of v) out.items.push(valueViews(item, needs.items));
    }
  }
  // The body reader refused two keys of one object that fold alike, so a rule's name and
  // another spelling of it are never both sent.
  for (const key in args) {
    const names = plan.names.get(foldKey(key));
    if (names === undefined) continue;
    for (const name of names) {
      if (name === key) continue;
      views ??= noPrototype();
      (views[name] ??= {}).sentAs = key;
    }
  }
  return views;
}

// No prototype: an argument named "__proto__" stays an ordinary key.
function noPrototype(): Record<string, ArgumentViews> {
  return Object.create(null) as Record<string, ArgumentViews>;
}

function valueViews(v: unknown, kinds: ViewKinds): ValueViews {
  const out: ValueViews = {};
  if (kinds.url) out.url = urlView(v);
  if (kinds.path) out.path = pathView(v);
  if (kinds.sql) out.sql = sqlView(v, kinds.portable);
  return out;
}

const kindsOf = (c: { url?: unknown; path?: unknown; sql?: SqlConstraint }): ViewKinds => ({
  url: c.url !== undefined,
  path: c.path !== undefined,
  sql: c.sql !== undefined,
  portable: c.sql !== undefined && !sqlDialectHasParser(c.sql),
});
const any = (k: ViewKinds) => k.url || k.path || k.sql;
const either = (a: ViewKinds, b: ViewKinds): ViewKinds => ({
  url: a.url || b.url,
  path: a.path || b.path,
  sql: a.sql || b.sql,
  portable: a.portable || b.portable,
});
