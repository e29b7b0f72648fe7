# Destructive tools only for operators (docs/pinning.md, docs/policies.md "Tool annotations"):
# the shipped policy's decision, and on top of it a tools/call of a tool that may destroy
# something is refused unless the caller holds the role "operator". A tool's annotations are
# trusted only from its pinned definition (input.mcp.calls[i].tool, set on endpoints with
# pins); where a call carries none — an endpoint without pins — the tool is taken as
# destructive, MCP's own default. Use it with
#   policy: {rego: <folder with this file and policies/mcp/authz/*.rego>,
#            entrypoint: mcp/guarded/decision, visibleEntrypoint: mcp/guarded/visible}
package mcp.guarded

import data.mcp.authz

decision := authz.decision if {
	count(refused) == 0
} else := {
	"allow": false,
	"status": 403,
	"error": "destructive_tool",
	"error_description": sprintf("%s may destroy data: only operators may call it", [concat(", ", sort(refused))]),
}

# Listing is not calling: a destructive tool stays listed for whoever may call it otherwise.
visible := authz.visible

refused contains c.name if {
	some c in input.mcp.calls
	c.method == "tools/call"
	destructive(c)
	not "operator" in input.principal.roles
}

# Not pinned, or pinned without annotations: MCP's defaults (destructiveHint true, readOnlyHint false).
destructive(c) if not c.tool

destructive(c) if c.tool.annotations.destructiveHint == true
