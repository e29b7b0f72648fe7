// The argument views of the policy input (docs/policies.md "Argument views"): for each
// argument an endpoint's rules check with `url`, `path` or `sql` (directly or in `items`),
// the service adds how every reader reads its value, beside the raw arguments:
//   mcp.calls[i].argumentViews[name] = { url?, path?, sql?, items?: [{ url?, path?, sql? }, …] }
// Which arguments get views is decided at load from the rules' argument names alone (not
// their tool globs), so a view is never missing where a rule needs one; a missing view
// denies in the policy.
import type { ArgumentRule } from '../config/argument-rules.js';
import type { McpCall, McpView } from '../contracts/request.js';
import { pathView, type PathView } from '../request/path-view.js';
import { sqlView, type SqlView } from '../request/sql-view.js';
import { urlView, type UrlView } from '../request/url-view.js';

interface ViewKinds {
  url: boolean;
  path: boolean;
  sql: boolean;
}

/** Per argument name, the views its value and its items need. */
export type ViewPlan = ReadonlyMap<string, { value: ViewKinds; items: ViewKinds }>;

export interface ValueViews {
  url?: UrlView;
  path?: PathView;
  sql?: SqlView;
}

export interface ArgumentViews extends ValueViews {
  items?: ValueViews[];
}

/** What one endpoint's rules need views of; undefined when nothing. */
export function viewPlan(data: { arguments?: ArgumentRule[] } | undefined): ViewPlan | undefined {
  const plan = new Map<string, { value: ViewKinds; items: ViewKinds }>();
  for (const rule of data?.arguments ?? []) {
    for (const [name, c] of Object.entries(rule.arguments ?? {})) {
      const value = kindsOf(c);
      const items = kindsOf(c.items ?? {});
      if (!any(value) && !any(items)) continue;
      const had = plan.get(name);
      plan.set(name, had === undefined ? { value, items } : { value: either(had.value, value), items: either(had.items, items) });
    }
  }
  return plan.size > 0 ? plan : undefined;
}

/** The MCP part of the input as JSON, with the views of the calls that carry planned arguments. */
export function mcpJsonWithViews(mcp: Omit<McpView, 'source'>, plan: ViewPlan): string {
  let calls: unknown[] | undefined;
  mcp.calls.forEach((call, i) => {
    const views = viewsOf(call, plan);
    if (views === undefined) return;
    calls ??= mcp.calls.slice();
    calls[i] = { ...call, argumentViews: views };
  });
  return JSON.stringify(calls === undefined ? mcp : { ...mcp, calls });
}

/** The views of one call's planned arguments; undefined when it sends none of them. */
export function viewsOf(call: McpCall, plan: ViewPlan): Record<string, ArgumentViews> | undefined {
  const args = call.arguments;
  if (args === undefined) return undefined;
  let views: Record<string, ArgumentViews> | undefined;
  for (const [name, needs] of plan) {
    if (!Object.hasOwn(args, name)) continue;
    const v = args[name];
    const out: ArgumentViews = valueViews(v, needs.value);
    if (any(needs.items) && Array.isArray(v)) out.items = v.map((item) => valueViews(item, needs.items));
    // No prototype: an argument named "__proto__" stays an ordinary key.
    views ??= Object.create(null) as Record<string, ArgumentViews>;
    views[name] = out;
  }
  return views;
}

function valueViews(v: unknown, kinds: ViewKinds): ValueViews {
  const out: ValueViews = {};
  if (kinds.url) out.url = urlView(v);
  if (kinds.path) out.path = pathView(v);
  if (kinds.sql) out.sql = sqlView(v);
  return out;
}

const kindsOf = (c: { url?: unknown; path?: unknown; sql?: unknown }): ViewKinds => ({ url: c.url !== undefined, path: c.path !== undefined, sql: c.sql !== undefined });
const any = (k: ViewKinds) => k.url || k.path || k.sql;
const either = (a: ViewKinds, b: ViewKinds): ViewKinds => ({ url: a.url || b.url, path: a.path || b.path, sql: a.sql || b.sql });
