// The URL views of the policy input (docs/policies.md "URL views"): for each argument an
// endpoint's argument rules check with `url` (or `items.url`), the view of its value is added
// beside the raw arguments as `mcp.calls[i].argumentViews[name]` — an array of views for an
// array value. Which arguments get a view is decided at load from the rules' argument names
// alone (not their tool globs), so a view is never missing where a rule needs it; a missing
// view denies in the policy.
import type { ArgumentRule } from '../config/argument-rules.js';
import type { McpCall, McpView } from '../contracts/request.js';
import { urlView, type UrlView } from '../request/url-view.js';

/** The argument names one endpoint's rules give a URL constraint; undefined when none. */
export function urlArgumentNames(data: { arguments?: ArgumentRule[] } | undefined): ReadonlySet<string> | undefined {
  const names = new Set<string>();
  for (const rule of data?.arguments ?? []) {
    for (const [name, c] of Object.entries(rule.arguments ?? {})) {
      if (c.url !== undefined || c.items?.url !== undefined) names.add(name);
    }
  }
  return names.size > 0 ? names : undefined;
}

/** The MCP part of the input as JSON, with the URL views of `names` added to the calls that carry them. */
export function mcpJsonWithViews(mcp: Omit<McpView, 'source'>, names: ReadonlySet<string>): string {
  let calls: unknown[] | undefined;
  mcp.calls.forEach((call, i) => {
    const views = viewsOf(call, names);
    if (views === undefined) return;
    calls ??= mcp.calls.slice();
    calls[i] = { ...call, argumentViews: views };
  });
  return JSON.stringify(calls === undefined ? mcp : { ...mcp, calls });
}

/** The views of one call's URL arguments; undefined when it has none of them. */
export function viewsOf(call: McpCall, names: ReadonlySet<string>): Record<string, UrlView | UrlView[]> | undefined {
  const args = call.arguments;
  if (args === undefined) return undefined;
  let views: Record<string, UrlView | UrlView[]> | undefined;
  for (const name of names) {
    if (!Object.hasOwn(args, name)) continue;
    const v = args[name];
    // No prototype: an argument named "__proto__" stays an ordinary key.
    views ??= Object.create(null) as Record<string, UrlView | UrlView[]>;
    views[name] = Array.isArray(v) ? v.map(urlView) : urlView(v);
  }
  return views;
}
